"""The config's building blocks: strict scalars, NOT_GIVEN, and the base class of its sections."""

from __future__ import annotations

import numbers
from enum import Enum
from typing import Annotated, Any, Final, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Strict, ValidationInfo, model_validator
from pydantic.fields import FieldInfo


class _NotGiven(Enum):
    NOT_GIVEN = "not given"

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Final = _NotGiven.NOT_GIVEN
"""A keyword of `mmad.evaluate` left out: the recipe's value or the default (None is a setting's own value)."""
NotGiven = Literal[_NotGiven.NOT_GIVEN]
ProtocolName = Literal["per-question", "cumulative", "gemini", "per-image", "api-per-question", "system-cumulative"]
"""`Variant`'s values, for a type checker and an IDE (a test keeps them the same)."""


def _plain_number(kind: type[int] | type[float]) -> BeforeValidator:
    # numpy's and other numeric types (np.int64 from an array in the Python API) are numbers, not mistakes;
    # a bool is an int to Python but a mistake here.
    def convert(value: Any) -> Any:
        if isinstance(value, bool | kind):
            return value
        if kind is int and isinstance(value, numbers.Integral):
            return int(value)
        if kind is float and isinstance(value, numbers.Real):
            return float(value)
        return value

    return BeforeValidator(convert)


# Strict scalars: in a run file ``shots = true`` or ``limit = "10"`` is a mistake to name, not 1 or 10.
Int = Annotated[int, Strict(), _plain_number(int)]
Float = Annotated[float, Strict(), _plain_number(float)]  # still takes a whole number: timeout_s = 30
Bool = Annotated[bool, Strict()]


def _admits_none(info: FieldInfo) -> bool:
    return info.annotation is None or type(None) in get_args(info.annotation)


class Section(BaseModel):
    """A section of the config: an unknown key is refused, and "none" is None where a setting takes None."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @model_validator(mode="before")
    @classmethod
    def _none_spelt_out(cls, values: Any) -> Any:
        # TOML has no null: a run file, a sweep and `mmad.evaluate` say "none", as the flags do, for a
        # setting's None (leave the field out, keep the size, no detail).
        if not isinstance(values, dict):
            return values
        return {
            name: None
            if isinstance(value, str)
            and value.strip().lower() == "none"
            and name in cls.model_fields
            and _admits_none(cls.model_fields[name])
            else value
            for name, value in values.items()
        }


RECORDED: Final = {"recorded": True}
"""The validation context of a config read back from a run (run.json, a Ray actor's copy): checks that
keep a mistake out of a new run (a key in a URL) do not make an older run unreadable."""


def recorded(info: ValidationInfo) -> bool:
    """Whether the config being validated was read back from a run (`RECORDED` context)."""
    return bool(info.context and info.context.get("recorded"))
