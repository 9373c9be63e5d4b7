"""pydantic's errors as one readable ConfigError: the setting, its flag, its value, what is allowed."""

from __future__ import annotations

import numbers
import re
from collections.abc import Collection

from pydantic import ValidationError

from mmad.errors import ConfigError
from mmad.run.config.names import FLAT_NAMES, OLD_FLAGS, SECTIONS, did_you_mean, flag_of
from mmad.run.secrets import redact

_PHRASES = (
    ("Value error, ", ""),
    ("Input should be greater than or equal to ", "must be at least "),
    ("Input should be less than or equal to ", "must be at most "),
    ("Input should be greater than ", "must be more than "),
    ("Input should be less than ", "must be less than "),
    ("Input should be ", "must be "),
)


def _plain(message: str) -> str:
    for old, new in _PHRASES:
        if message.startswith(old):
            return new + message[len(old) :]
    return message


def plain_reason(message: str) -> str:
    """A pydantic message in the words of mmad's errors ("must be at least 1")."""
    return _plain(message)


# The run's identity (and where it goes), given by a flag on the command line and by a keyword or key elsewhere.
_IDENTITY_FLAGS = {"-m": "model", "--model": "model", "-d": "data", "--data": "data", "--recipe": "recipe"}
_IDENTITY_FLAGS |= {"--out": "out", "--resume": "resume"}  # mmad.evaluate's keywords; a run file has neither


def _by_names(reason: str, keys: Collection[str], *, identity: bool = False) -> str:
    """A check's reason with the flags of settings given by name (``keys``, dotted) said as those names:
    "(--answer-from likelihood)" restating the setting goes, "--perturb" is "perturb"; with ``identity``,
    -m and --data are model and data. A `quoted command` keeps its flags: it is run as written."""
    named = {flag_of(*FLAT_NAMES[n]): n for n in FLAT_NAMES if ".".join(FLAT_NAMES[n]) in keys}
    named |= {old: n for n, olds in OLD_FLAGS.items() if ".".join(FLAT_NAMES[n]) in keys for old in olds}
    if identity:
        named |= _IDENTITY_FLAGS
    if not named:
        return reason
    flags = "|".join(re.escape(f) for f in sorted(named, key=len, reverse=True))
    parts = reason.split("`")
    for i in range(0, len(parts), 2):  # the odd parts are quoted
        part = re.sub(rf" \((?:{flags})(?: [^()]*)?\)", "", parts[i])
        parts[i] = re.sub(rf"(?<![\w-])({flags})(?![\w-])", lambda m: named[m.group(1)], part)
    return "`".join(parts)


def in_callers_words(message: str, *, flagged: Collection[str] = (), identity: bool = True) -> str:
    """A message for a caller who names settings (`mmad.evaluate`'s keywords, a run file's keys), not
    flags: each setting's flag said as its name, but for those in ``flagged`` (dotted: given by a flag
    beside a run file); with ``identity``, -m, --data and --out too (a script has no command line; `mmad
    eval --config` does). A fix the message suggests is then written as the caller would write it."""
    keys = {".".join(place) for place in FLAT_NAMES.values()} - set(flagged)
    return _by_names(message, keys, identity=identity)


def config_error(exc: ValidationError, source: str = "", *, keys: Collection[str] = ()) -> ConfigError:
    """One readable ConfigError from pydantic's errors: setting, flag, value, what is allowed.

    A setting among ``keys`` (dotted) was given by its name (a `mmad.evaluate` keyword, a run file's key),
    not by a flag: it is named alone, as the caller wrote it; a flag there would send them looking for it.
    """
    lines = []
    for error in exc.errors():
        location = [str(p) for p in error["loc"]]
        if len(location) >= 2 and location[0] in SECTIONS:
            section, field = location[0], location[1]
            by_name = f"{section}.{field}" in keys
            name = field if by_name else f"{field} ({flag_of(section, field)})"
        elif location and location[0] in SECTIONS:  # a check across a section's settings: it has no flag
            name = f"[{location[0]}]"
        elif location:
            name = f"{location[0]} (--{location[0]})"
        else:
            name = "the config"
        reason = _by_names(_plain(str(error["msg"])), keys)
        if location[-1:] == ["detail"] and error["type"] == "literal_error":  # None is spelt "none" in flags
            reason = "must be 'low', 'high', 'auto' or 'none' (none leaves the field out of the request)"
        if error["type"] == "extra_forbidden":
            fields = list(SECTIONS[location[0]].model_fields) if location and location[0] in SECTIONS else []
            known = did_you_mean(location[-1], fields) + "known " + ", ".join(fields) if fields else ""
            reason = f"is not a setting{' of [' + location[0] + ']: ' + known if known else ''}"
            if len(location) == 2 and location[1] in FLAT_NAMES:
                home, field = FLAT_NAMES[location[1]]
                named = "" if field == location[1] else f" (as {field})"
                reason = f"belongs in [{home}]{named}; or write it at the top level as {location[1]} = ..."
            name = ".".join(location)
        value = error.get("input")
        if isinstance(value, numbers.Number) and not isinstance(value, int | float) and hasattr(value, "item"):
            value = value.item()  # numpy's np.int64(0) shown as the 0 it is
        shown = (
            "" if error["type"] in {"missing", "extra_forbidden"} or isinstance(value, dict) else f" (got {value!r})"
        )
        lines.append(f"{name}: {reason}{redact(shown)}")  # a key pasted into a setting is not repeated
    prefix = f"{source}: " if source else ""
    return ConfigError(prefix + "; ".join(lines))
