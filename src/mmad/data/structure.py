"""Checks of a benchmark json that a decoded dict can no longer see: repeated keys and repeated question ids.

A json object may repeat a key; every reader keeps only the last value, so a repeated image key
loses a record and a repeated ``"A"`` in Options loses an option without a word. A second decode
with a pairs hook sees them. Content ids (``Question.uid``) must each name one question, or a
review verdict could reach two.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from mmad.data.schema import Benchmark
from mmad.data.validate import Problem, Severity

_MARK = "\x00repeated"


def _mark_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    counts = Counter(key for key, _ in pairs)
    result = dict(pairs)
    repeated = [key for key, n in counts.items() if n > 1]
    if repeated:
        result[_MARK] = repeated
    return result


def _repeats_inside(value: Any, where: str) -> list[tuple[str, list[str]]]:
    """(location, repeated keys) for every object below a record."""
    found: list[tuple[str, list[str]]] = []
    if isinstance(value, dict):
        if _MARK in value:
            found.append((where, value[_MARK]))
        for key, child in value.items():
            if key != _MARK:
                found.extend(_repeats_inside(child, f"{where}.{key}" if where else key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found.extend(_repeats_inside(child, f"{where}[{index}]"))
    return found


def duplicate_fields(json_path: Path) -> list[Problem]:
    """Image keys that occur twice, and fields repeated inside a record (the file has already decoded once)."""
    checked = json.loads(json_path.read_bytes().decode("utf-8"), object_pairs_hook=_mark_repeats)
    if not isinstance(checked, dict):
        return []
    problems = [
        Problem(
            severity=Severity.ERROR,
            code="duplicate-key",
            key=key,
            message="this image key appears more than once; only the last record is kept by json readers",
            fix="Merge the records' conversations into one record.",
        )
        for key in checked.get(_MARK, [])
    ]
    for key, record in checked.items():
        if key == _MARK:
            continue
        for where, names in _repeats_inside(record, ""):
            fields = ", ".join(repr(name) for name in names)
            problems.append(
                Problem(
                    severity=Severity.ERROR,
                    code="duplicate-field",
                    key=key,
                    message=f"{where or 'the record'} repeats the field(s) {fields}; json readers keep only the last",
                    fix="Keep one of each field.",
                )
            )
    return problems


def duplicate_ids(benchmark: Benchmark) -> list[Problem]:
    """Question ids (the recorded ``id`` fields) that name more than one question."""
    places: dict[str, list[str]] = defaultdict(list)
    for question in benchmark.questions():
        places[question.uid].append(question.id)
    problems = []
    for uid, where in places.items():
        if len(where) < 2:
            continue
        key, _, index = where[1].rpartition("#")
        problems.append(
            Problem(
                severity=Severity.ERROR,
                code="duplicate-id",
                key=key,
                question=int(index),
                message=f"id {uid!r} is also the id of {', '.join(where[:1] + where[2:])}; review verdicts "
                "would reach both",
                fix="Remove the id fields of copied questions; mmad derives ids from the content.",
            )
        )
    return problems
