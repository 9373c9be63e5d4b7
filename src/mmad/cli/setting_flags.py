"""The run settings' flags, made from the config's schema (`mmad.run.config`): one per setting.

A setting's flag is the kebab of its name (``image_size`` → ``--image-size``); a yes/no setting has its
``--no-`` form too (``--no-cache``), so a flag can undo a recipe's or a run file's value. The help line
and its default are the field's description and default, so they cannot drift from the schema. Flags
users' scripts already say (``--similar``, ``--strategy``, ``--timeout``) stay as second names of the
same option (`mmad.run.config.OLD_FLAGS`).

A command gets every setting's flag by `with_setting_flags`; its callback receives them as keyword
arguments, which `settings_from_flags` turns into the flat settings `RunConfig.from_flat` takes. A new
config field needs no code here.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Collection
from typing import Any, TypeVar, Union, get_args, get_origin

import typer

from mmad.cli.common import json_option, optional_number
from mmad.run.config import FLAT_NAMES, OLD_FLAGS, SECTIONS, flag_of, setting_help

_SHORT = {"concurrency": ("-c",)}
"""One-letter forms kept from before the flags were made from the schema."""

F = TypeVar("F", bound=Callable[..., Any])


def _kind(name: str) -> str:
    """How a setting's flag reads its text: flag, list, json, number-or-none, int, float or text."""
    section, field = FLAT_NAMES[name]
    annotation = SECTIONS[section].model_fields[field].annotation
    args = [a for a in get_args(annotation) if a is not type(None)]
    nullable = get_origin(annotation) in (Union, types.UnionType) and type(None) in get_args(annotation)
    inner = args[0] if nullable and len(args) == 1 else annotation
    inner = get_args(inner)[0] if get_origin(inner) is not None and _is_annotated(inner) else inner
    if inner is bool:
        return "flag"
    if get_origin(inner) is list:
        return "list"
    if get_origin(inner) is dict:
        return "json"
    if inner in (int, float):
        # a setting that may be None takes "none": to say what None means (leave the field out, keep the
        # size) or to undo a run file's or a recipe's value (--limit none, --blend none)
        return "number-or-none" if nullable else inner.__name__
    return "text"


def _is_annotated(hint: Any) -> bool:
    return hasattr(hint, "__metadata__")


def _inner_number(name: str) -> type[int] | type[float]:
    section, field = FLAT_NAMES[name]
    annotation = SECTIONS[section].model_fields[field].annotation
    for arg in get_args(annotation):
        base = get_args(arg)[0] if _is_annotated(arg) else arg
        if base in (int, float):
            return base  # type: ignore[no-any-return]
    return float


def _option(name: str) -> tuple[Any, Any]:
    """(annotation, typer.Option) of a setting's flag."""
    kind = _kind(name)
    flag = flag_of(*FLAT_NAMES[name])
    names = [*OLD_FLAGS.get(name, ()), *_SHORT.get(name, ())]
    help_text = setting_help(name)
    if kind == "flag":
        decl = f"{flag}/--no-{flag.removeprefix('--')}"
        return bool | None, typer.Option(None, decl, *names, help=help_text, show_default=False)
    if kind == "list":
        return list[str] | None, typer.Option(
            None, flag, *names, help=help_text + " (repeat for more)", metavar="<str>"
        )
    if kind == "number-or-none":
        return str | None, typer.Option(None, flag, *names, help=help_text, metavar="<number|none>")
    if kind == "json":
        return str | None, typer.Option(None, flag, *names, help=help_text, metavar="<json>")
    annotation: Any = {"int": int, "float": float}.get(kind, str)
    return annotation | None, typer.Option(None, flag, *names, help=help_text)


def setting_parameters(skip: Collection[str] = ()) -> list[inspect.Parameter]:
    """A keyword parameter per setting (but those in ``skip``), for a typer command's signature."""
    out = []
    for name in FLAT_NAMES:
        if name in skip:
            continue
        annotation, option = _option(name)
        out.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation))
    return out


def with_setting_flags(command: F) -> F:
    """``command`` with a flag per setting besides its own parameters (its ``**settings`` receive them)."""
    signature = inspect.signature(command)
    own = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    explicit = {p.name for p in own}
    # keyword-only after the command's own: its options come first in --help, as before
    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + setting_parameters(explicit)
    command.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    return command


def settings_from_flags(values: dict[str, Any]) -> dict[str, Any]:
    """The flat settings given on the command line (flags left out are not settings given)."""
    flat: dict[str, Any] = {}
    for name, value in values.items():
        if name not in FLAT_NAMES or value is None:
            continue
        kind = _kind(name)
        flag = flag_of(*FLAT_NAMES[name])
        if kind == "list":
            if not value:
                continue
            value = list(value)
        elif kind == "json":
            value = json_option(flag, value)
        elif kind == "number-or-none":
            number = optional_number(flag, value, _inner_number(name))
            value = "none" if number is None else number  # the config reads "none" as the setting's None
        flat[name] = value
    return flat
