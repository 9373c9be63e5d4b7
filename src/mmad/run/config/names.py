"""Each setting's one name, its section and its flag; the names from before, read with a FutureWarning."""

from __future__ import annotations

import difflib
import json
import warnings
from collections.abc import Collection
from typing import Any

from mmad.errors import ConfigError
from mmad.run.config.base import Section
from mmad.run.config.execution import ConnectionConfig, ExecutionConfig
from mmad.run.config.images import ImageConfig
from mmad.run.config.prompt import DecodingConfig, PromptConfig
from mmad.run.config.questions import AnswerConfig, SelectionConfig

SECTIONS: dict[str, type[Section]] = {
    "prompt": PromptConfig,
    "decoding": DecodingConfig,
    "images": ImageConfig,
    "answers": AnswerConfig,
    "selection": SelectionConfig,
    "execution": ExecutionConfig,
    "connection": ConnectionConfig,
}

# One name per setting: a field's name is its run-file key (at the top level or in its section), its
# keyword of mmad.evaluate, its key in a sweep's settings and on the protocol card; its flag is the kebab
# of it. Field names are unique across the sections, so a flat name says which section it is in.
FLAT_NAMES: dict[str, tuple[str, str]] = {
    name: (section, name) for section, cls in SECTIONS.items() for name in cls.model_fields
}
# Names a setting had before it had one name: still read, with a warning (users' files and scripts say them).
OLD_NAMES: dict[str, str] = {
    "similar": "similar_templates",
    "strategy": "strategies",
    "size": "image_size",
    "format": "image_format",
    "original": "original_images",
    "dataset": "datasets",
    "category": "categories",
    "subtask": "subtasks",
    "timeout": "timeout_s",
    "text_only_server": "text_only",
}
# Flags users' scripts use that are not the kebab of the name: still taken, without a warning.
OLD_FLAGS: dict[str, tuple[str, ...]] = {
    "similar_templates": ("--similar",),
    "strategies": ("--strategy",),
    "datasets": ("--dataset",),
    "categories": ("--category",),
    "subtasks": ("--subtask",),
    "timeout_s": ("--timeout",),
    "text_only": ("--text-only-server",),
}
IMAGE_FIELDS = tuple(ImageConfig.model_fields)
"""The image settings: a backend that reads the files itself (hf:, vllm-local:) reads none of them."""
# Settings a resumed run may change: how it is sent, not what is asked.
RESUMABLE_SECTIONS = frozenset({"execution", "connection"})
RESUMABLE_SETTINGS = frozenset({"answers.judge_base_url"})
"""Others a resumed run may change: where the judge is (its server moved, as the model's base_url may)."""


def flag_of(section: str, name: str) -> str:
    """The command-line flag that sets a field: the kebab of its name."""
    return "--" + name.replace("_", "-")


def setting_default(name: str) -> Any:
    """A flat setting's default, as a run file writes it (None for none)."""
    section, field = FLAT_NAMES[name]
    return SECTIONS[section]().model_dump(mode="json")[field]


def setting_help(name: str) -> str:
    """A flat setting's help line: its description and its default, both read from the schema."""
    section, field = FLAT_NAMES[name]
    description = SECTIONS[section].model_fields[field].description or ""
    default = setting_default(name)
    if default in (None, [], {}) or (default is False and field != "cache"):
        return description
    if isinstance(default, bool):
        return f"{description} [default: {'yes' if default else 'no'}]"
    shown = f"{default:g}" if isinstance(default, float) else shown_value(default)
    return f"{description} [default: {shown}]"


def canonical_name(name: str, *, source: str = "", warn: bool = True) -> str:
    """The one name of a flat setting given by an old one (with a FutureWarning), or the name itself."""
    new = OLD_NAMES.get(name)
    if new is None or name in FLAT_NAMES:
        return name
    if not warn:
        return new
    where = f"{source}: " if source else ""
    warnings.warn(
        f"{where}{name!r} is the old name of the setting {new!r}; write {new} (the old name will stop working)",
        FutureWarning,
        stacklevel=3,
    )
    return new


def shown_value(value: Any) -> str:
    """A setting's value as a flag takes it (none for None)."""
    value = getattr(value, "value", value)  # an enum
    if value is None:
        return "none"
    return value if isinstance(value, str) else json.dumps(value, default=str)


def as_toml(value: Any) -> str:
    """A setting's value as a run file writes it (a quoted string; "none" for None, as the file says it)."""
    value = getattr(value, "value", value)
    return '"none"' if value is None else json.dumps(value, default=str)


def did_you_mean(name: str, known: Collection[str]) -> str:
    """'did you mean X? ' for the closest known name, or nothing (a message's opening words)."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}? " if close else ""


def unknown_setting(name: str) -> ConfigError:
    return ConfigError(
        f"unknown setting {name!r}; {did_you_mean(name, FLAT_NAMES)}known settings: {', '.join(sorted(FLAT_NAMES))}"
    )


def canonical_settings(flat: dict[str, Any], *, source: str = "", warn: bool = True) -> dict[str, Any]:
    """Flat settings by their one names (an old name warned about); a setting given by both names is an error."""
    out: dict[str, Any] = {}
    said: dict[str, str] = {}  # the name each setting was given by
    for name, value in flat.items():
        new = canonical_name(name, source=source, warn=warn)
        if new in out:
            where = f"{source}: " if source else ""
            old = name if name != new else said[new]
            msg = f"{where}{new} is given twice, as {new} and by its old name {old}; keep {new}"
            raise ConfigError(msg)
        out[new], said[new] = value, name
    return out
