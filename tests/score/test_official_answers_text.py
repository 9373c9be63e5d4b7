"""The official answers json is written without json's pure-Python indenting encoder, and must read the
same, byte for byte, as ``json.dumps(records, indent=4, ensure_ascii=False)`` (what the scripts write)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from mmad.score.answers import GradedAnswer, indented_json, official_records, write_official_answers

ODD_TEXTS = ["", 'a "quoted" stem', "back\\slash", "line\nbreak\ttab", "Ünïcödé 缺陷 🙂", "\x00\x1f control", "\u2028"]


def random_value(rng: random.Random, depth: int = 0) -> Any:
    kinds = ["str", "int", "float", "none", "bool"] + (["dict", "list", "tuple"] if depth < 3 else [])
    kind = rng.choice(kinds)
    if kind == "str":
        return rng.choice(ODD_TEXTS) + str(rng.random())
    if kind == "int":
        return rng.randint(-(10**12), 10**12)
    if kind == "float":
        return rng.choice([rng.random() * 1e6, -0.0, 1e-300, float("nan"), float("inf")])
    if kind == "none":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    n = rng.randint(0, 3)
    if kind == "dict":
        keys = [rng.choice(ODD_TEXTS) + str(i) for i in range(n)] + ([1, None] if rng.random() < 0.2 else [])
        return {k: random_value(rng, depth + 1) for k in keys}
    items = [random_value(rng, depth + 1) for _ in range(n)]
    return items if kind == "list" else tuple(items)


def test_indented_json_is_json_dumps_with_indent_4() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        value = random_value(rng)
        assert indented_json(value) == json.dumps(value, indent=4, ensure_ascii=False), value
        nested = indented_json(value, "    ")
        assert nested == json.dumps(value, indent=4, ensure_ascii=False).replace("\n", "\n    "), value


def test_the_answers_file_is_what_the_official_script_writes(tmp_path: Path) -> None:
    answers = [
        GradedAnswer(f"MVTec-AD/bottle/test/broken/{i:03d}.png", "Anomaly Detection", "A", letter)
        for i, letter in enumerate(["A", "B", None, "Z", ""])
    ]
    answers.append(GradedAnswer('VisA/a "b"/ü.png', "Defect Description", "C", "C", question_text=ODD_TEXTS[3]))
    path = tmp_path / "answers.json"
    write_official_answers(answers, path)
    expected = json.dumps(list(official_records(answers)), indent=4, ensure_ascii=False)
    assert path.read_text(encoding="utf-8") == expected
    write_official_answers([], path)
    assert path.read_text(encoding="utf-8") == json.dumps([], indent=4)
