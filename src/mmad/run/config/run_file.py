"""A run file (TOML, JSON, or a run folder's run.json) read into a config: `RunConfig.from_file`."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmad.data.clean import exclude_paths_from
from mmad.errors import ConfigError, RunError
from mmad.run.config.build import IDENTITY
from mmad.run.config.names import FLAT_NAMES, OLD_NAMES, SECTIONS, canonical_name, canonical_settings, did_you_mean

if TYPE_CHECKING:
    from mmad.run.config.run_config import RunConfig

# Keys of a config file's top level besides the sections and the flat names.
_TOP_LEVEL = frozenset({*IDENTITY, "overridden"})
# Settings that name files: relative ones in a config file are relative to the file's folder.
PATH_SETTINGS = (("prompt", "knowledge"), ("execution", "prices"), ("execution", "cache_dir"))


def from_file(cls: type[RunConfig], path: str | Path, **flat: Any) -> RunConfig:
    """`RunConfig.from_file`'s work (its docstring says what it takes)."""
    source = Path(path)
    if source.suffix.lower() not in {".toml", ".json"}:
        kind = source.suffix or "a file without a suffix"
        msg = f"{source}: a run file is TOML (.toml) or JSON (.json, or a run folder's run.json), not {kind}"
        raise ConfigError(msg)
    try:
        text = source.read_text(encoding="utf-8")
        raw = tomllib.loads(text) if source.suffix.lower() == ".toml" else json.loads(text)
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"cannot read the config file {source}: {exc}"
        raise ConfigError(msg) from exc
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        msg = f"{source} is not valid {'TOML' if source.suffix.lower() == '.toml' else 'JSON'}: {exc}"
        raise ConfigError(msg) from exc
    if isinstance(raw, dict) and isinstance(raw.get("config"), dict) and "mmad_version" in raw:
        # a run folder's run.json: run the same config again (it was checked when it was made), read as
        # its manifest so that an older run.json is upgraded and a newer one refused
        from mmad.run.manifest import recorded_config

        try:
            recorded = recorded_config(raw, source)
        except RunError as exc:
            raise ConfigError(str(exc)) from None
        return cls.from_nested_with_flat(recorded.model_dump(mode="json"), flat, source=str(source))
    if not isinstance(raw, dict):
        msg = f"{source}: a config file is a table of settings (model, data, [prompt], [execution], ...)"
        raise ConfigError(msg)
    flat = canonical_settings(flat)
    raw = _resolve_paths(_lift_flat(_renamed_in_sections(raw, str(source)), str(source)), source.parent)
    in_file = {f"{s}.{f}" for s in SECTIONS if isinstance(raw.get(s), dict) for f in raw[s]}
    flags = {".".join(FLAT_NAMES[n]) for n in flat if n in FLAT_NAMES}
    return cls.from_nested_with_flat(raw, flat, source=str(source), explicit=in_file | flags, file_keys=in_file - flags)


def _renamed_in_sections(raw: dict[str, Any], source: str) -> dict[str, Any]:
    """A run file's sections with their old keys ([images] size) renamed, each with a FutureWarning."""
    out = dict(raw)
    for section in SECTIONS:
        table = raw.get(section)
        if isinstance(table, dict) and any(k in OLD_NAMES and k not in FLAT_NAMES for k in table):
            out[section] = canonical_settings(table, source=f"{source} [{section}]")
    return out


def _lift_flat(raw: dict[str, Any], source: str) -> dict[str, Any]:
    """A config file's top-level flat settings (``limit = 10``) moved into their sections."""
    out = {k: v for k, v in raw.items() if k in _TOP_LEVEL or k in SECTIONS}
    lifted: dict[str, str] = {}  # field -> the top-level key that gave it
    for old, value in raw.items():
        if old in out:
            continue
        name = canonical_name(old, source=source)
        if name not in FLAT_NAMES:
            positive = name.removeprefix("no_").removeprefix("no-")
            if name != positive and positive in FLAT_NAMES:  # the --no-cache style of a flag
                msg = (
                    f"{source}: {name!r} is the flag --{name.replace('_', '-')}; in a run file write {positive} = false"
                )
            elif name == "out":
                msg = f"{source}: out is not a setting of a run file (one file can make many runs); give --out DIR"
            else:
                msg = (
                    f"{source}: {name!r} is not a setting; {did_you_mean(name, [*FLAT_NAMES, *_TOP_LEVEL])}"
                    "the top level holds model, data, recipe, the sections "
                    f"[{'], ['.join(SECTIONS)}] and flat settings by their names "
                    f"({', '.join(sorted(FLAT_NAMES))})"
                )
            raise ConfigError(msg)
        section, field = FLAT_NAMES[name]
        table = out.setdefault(section, {})
        if not isinstance(table, dict):
            continue  # reported by from_nested: [section] must be a table
        if field in lifted:
            names = " and ".join(sorted({lifted[field], old}, key=lambda n: n != field))
            msg = f"{source}: {field} is given twice at the top level, as {names}; keep {field}"
            raise ConfigError(msg)
        if field in table:
            msg = f"{source}: {field} is given twice, as {old} at the top level and in [{section}]; keep one"
            raise ConfigError(msg)
        table[field] = value
        lifted[field] = old
    return out


def _resolve_paths(raw: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Relative file settings of a config file, made relative to its folder (as most tools read them)."""

    def resolve(value: Any) -> Any:
        if isinstance(value, str) and value.strip() and not Path(value).expanduser().is_absolute():
            return str(folder / value)
        return value

    out = dict(raw)
    out["data"] = resolve(out.get("data"))
    selection = out.get("selection")
    if isinstance(selection, dict) and isinstance(selection.get("exclude"), str | list):
        rules = selection["exclude"]
        out["selection"] = {
            **selection,
            "exclude": exclude_paths_from([rules] if isinstance(rules, str) else rules, folder),
        }
    for section, field in PATH_SETTINGS:
        table = out.get(section)
        if isinstance(table, dict) and field in table:
            out[section] = {**table, field: resolve(table[field])}
    return out
