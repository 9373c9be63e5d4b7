"""How a config is made from flat settings (the CLI's flags, `mmad.evaluate`'s keywords) and nested
sections (a run file's, a recorded run's), over a recipe: `RunConfig.from_flat` and its kin."""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from mmad.errors import ConfigError
from mmad.run.config.messages import config_error
from mmad.run.config.names import FLAT_NAMES, SECTIONS, canonical_name, canonical_settings, unknown_setting

if TYPE_CHECKING:
    from mmad.run.config.run_config import RunConfig

# The run's identity: given beside the settings (a flag, a keyword, a run file's key), in no section.
IDENTITY = ("model", "data", "recipe")


def _nest(flat: dict[str, Any]) -> dict[str, dict[str, Any]]:
    nested: dict[str, dict[str, Any]] = {}
    for name, value in flat.items():
        if name not in FLAT_NAMES:
            raise unknown_setting(name)
        section, field = FLAT_NAMES[name]
        nested.setdefault(section, {})[field] = value
    return nested


def _apply_flat(raw: dict[str, Any], flat: dict[str, Any]) -> dict[str, Any]:
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    for name, value in flat.items():
        if name in IDENTITY:
            out[name] = value
            continue
        if name not in FLAT_NAMES:
            raise unknown_setting(name)
        section, field = FLAT_NAMES[name]
        out.setdefault(section, {})[field] = value
    return out


def from_flat(
    cls: type[RunConfig],
    model: str,
    data: str,
    *,
    recipe: str | None = None,
    check_unused: Collection[str] | None = None,
    by_name: bool = False,
    **settings: Any,
) -> RunConfig:
    """`RunConfig.from_flat`'s work (its docstring says what it takes)."""
    settings = canonical_settings(settings)
    nested = _nest(settings)
    names = settings if check_unused is None else [canonical_name(n, warn=False) for n in check_unused]
    explicit = {".".join(FLAT_NAMES[n]) for n in names if n in FLAT_NAMES}
    named = {".".join(FLAT_NAMES[n]) for n in settings if n in FLAT_NAMES} if by_name else set()
    raw = {"model": model, "data": data, "recipe": recipe, **nested}
    return cls.from_nested(raw, explicit=explicit, file_keys=named)


def from_nested(
    cls: type[RunConfig],
    raw: dict[str, Any],
    *,
    source: str = "",
    explicit: Collection[str] | None = None,
    file_keys: Collection[str] = (),
) -> RunConfig:
    """`RunConfig.from_nested`'s work (its docstring says what it takes)."""
    raw = dict(raw)
    recipe_name = raw.get("recipe")
    given = {s: raw.pop(s) or {} for s in SECTIONS if s in raw}
    for section, values in given.items():
        if not isinstance(values, dict):
            msg = f"{source or 'config'}: [{section}] must be a table of settings"
            raise ConfigError(msg)
    merged: dict[str, dict[str, Any]] = {}
    overridden: list[str] = []
    if recipe_name:
        from mmad.run.recipes import recipe_settings

        for section, values in recipe_settings(recipe_name).items():
            merged.setdefault(section, {}).update(values)
    for section, values in given.items():
        for field, value in values.items():
            if section in merged and field in merged[section] and merged[section][field] != value:
                overridden.append(f"{section}.{field}")
            merged.setdefault(section, {})[field] = value
    raw.setdefault("overridden", sorted(set(overridden) | set(raw.get("overridden") or [])))
    try:
        config = cls.model_validate({**raw, **merged})
    except ValidationError as exc:
        raise config_error(exc, source, keys=file_keys) from None
    from mmad.run.unused import refuse_unused

    if explicit is None:
        explicit = {f"{section}.{field}" for section, values in given.items() for field in values}
    refuse_unused(config, explicit, source=source, file_keys=file_keys)
    return config


def from_nested_with_flat(
    cls: type[RunConfig],
    raw: dict[str, Any],
    flat: dict[str, Any],
    *,
    source: str,
    explicit: Collection[str] | None = None,
    file_keys: Collection[str] = (),
) -> RunConfig:
    """`RunConfig.from_nested_with_flat`'s work (its docstring says what it takes)."""
    flat = canonical_settings(flat, warn=explicit != ())
    raw = _apply_flat(raw, flat)
    missing = [k for k in ("model", "data") if not raw.get(k)]
    if missing:
        msg = f"{source} does not say {' or '.join(missing)}; add it to the file or give --{missing[0]}"
        raise ConfigError(msg)
    if explicit is None:
        explicit = {".".join(FLAT_NAMES[n]) for n in flat if n in FLAT_NAMES}
    return cls.from_nested(raw, source=str(source), explicit=explicit, file_keys=file_keys)
