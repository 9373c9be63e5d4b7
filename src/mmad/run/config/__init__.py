"""Everything that defines a run: one nested, validated config (recorded in run.json; never a secret).

The command line, the Python API and a run file give the same config, through the same checks:
`RunConfig.from_flat` takes flat settings (``shots=1``, ``concurrency=32``: the CLI flags and
`mmad.evaluate`'s keyword arguments) and `RunConfig.from_file` a TOML or JSON file with the nested
sections. A bad value becomes one ConfigError that names the setting, its flag and what is allowed.

Each setting has one name, its field's: the run file's key, `mmad.evaluate`'s keyword, a sweep's key,
the card's; its flag is the kebab of it, made with its help and default from the field
(`mmad.cli.setting_flags`). A new setting is a field with a description in its section's module
and a keyword of `mmad.evaluate` (tests/run/test_settings.py says which is missing); docs/settings.md's
table is regenerated from the schema. Names from before (``similar``, ``timeout``) are read with a FutureWarning.

The package's modules, each one part of that: `base` (strict scalars, NOT_GIVEN, the sections' base),
the sections (`prompt`, `images`, `questions`, `execution`), `names` (one name per setting, its flag,
the old names), `messages` (pydantic's errors in mmad's words), `build` (flat and nested settings over
a recipe), `run_file` (TOML, JSON, run.json), `notes` (what a run says about its recipe) and
`run_config` (`RunConfig`). Import from here: the modules' split is not an interface.
"""

from mmad.run.config.base import NOT_GIVEN, Bool, Float, Int, NotGiven, ProtocolName
from mmad.run.config.build import IDENTITY
from mmad.run.config.execution import ConnectionConfig, ExecutionConfig
from mmad.run.config.images import ImageConfig
from mmad.run.config.messages import config_error, in_callers_words, plain_reason
from mmad.run.config.names import (
    FLAT_NAMES,
    IMAGE_FIELDS,
    OLD_FLAGS,
    OLD_NAMES,
    RESUMABLE_SECTIONS,
    RESUMABLE_SETTINGS,
    SECTIONS,
    canonical_name,
    did_you_mean,
    flag_of,
    setting_default,
    setting_help,
)
from mmad.run.config.prompt import DecodingConfig, PromptConfig
from mmad.run.config.questions import AnswerConfig, SelectionConfig
from mmad.run.config.run_config import RunConfig
from mmad.run.config.run_file import PATH_SETTINGS

__all__ = [
    "FLAT_NAMES",
    "IDENTITY",
    "IMAGE_FIELDS",
    "NOT_GIVEN",
    "OLD_FLAGS",
    "OLD_NAMES",
    "PATH_SETTINGS",
    "RESUMABLE_SECTIONS",
    "RESUMABLE_SETTINGS",
    "SECTIONS",
    "AnswerConfig",
    "Bool",
    "ConnectionConfig",
    "DecodingConfig",
    "ExecutionConfig",
    "Float",
    "ImageConfig",
    "Int",
    "NotGiven",
    "PromptConfig",
    "ProtocolName",
    "RunConfig",
    "SelectionConfig",
    "canonical_name",
    "config_error",
    "did_you_mean",
    "flag_of",
    "in_callers_words",
    "plain_reason",
    "setting_default",
    "setting_help",
]
