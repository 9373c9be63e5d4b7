"""Broken benchmarks through the CLI: every field of the schema with a wrong type, a wrong shape, missing or empty,
and broken files. `mmad validate` names the file and the record and exits 1 (invalid data) or 2 (input it cannot
read), never with a traceback; `mmad info` (load_benchmark) refuses what cannot be loaded with the same clear line;
neither changes a file."""

from __future__ import annotations

import hashlib
import json
import re
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mmad.cli import main

X = "DS-MVTec/bottle/image/broken_large/000.png"  # AD, DC, DL, DD, DA
NORMAL = "VisA/candle/test/good/000.JPG"
JPG = "VisA/candle/test/bad/000.JPG"
TEMPLATE = "MVTec-AD/bottle/train/good/000.png"
MASK = "DS-MVTec/bottle/ground_truth/broken_large/000_mask.png"

Breaker = Callable[[Path, dict[str, Any]], bytes | None]


def snapshot(root: Path) -> dict[str, str]:
    """Every file and folder under root, files with the SHA-256 of their bytes."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in root.rglob("*")
    }


def qa(key: str, index: int) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda d: d[key]["conversation"][index]


def set_qa(key: str, index: int, field: str, value: Any) -> Breaker:
    def change(root: Path, d: dict[str, Any]) -> None:
        d[key]["conversation"][index][field] = value

    return change


def drop_qa(key: str, index: int, field: str) -> Breaker:
    def change(root: Path, d: dict[str, Any]) -> None:
        del d[key]["conversation"][index][field]

    return change


def set_record(key: str, field: str, value: Any) -> Breaker:
    def change(root: Path, d: dict[str, Any]) -> None:
        d[key][field] = value

    return change


def drop_record_field(key: str, field: str) -> Breaker:
    def change(root: Path, d: dict[str, Any]) -> None:
        del d[key][field]

    return change


def raw(text: bytes) -> Breaker:
    return lambda root, d: text


def file(relative: str, content: bytes | Callable[[bytes], bytes]) -> Breaker:
    def change(root: Path, d: dict[str, Any]) -> None:
        path = root / relative
        path.write_bytes(content(path.read_bytes()) if callable(content) else content)

    return change


def folder_instead(relative: str) -> Breaker:
    def change(root: Path, d: dict[str, Any]) -> None:
        (root / relative).unlink()
        (root / relative).mkdir()

    return change


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims a size and holds no pixels: Pillow's bomb guard fires on the header alone."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(b"")) + _chunk(b"IEND", b"")


def rename_key(old: str, new: str) -> Breaker:
    def change(root: Path, d: dict[str, Any]) -> None:
        d[new] = d.pop(old)

    return change


def nested(depth: int) -> bytes:
    return b'{"a": ' + b"[" * depth + b"]" * depth + b"}"


def utf16(root: Path, d: dict[str, Any]) -> bytes:
    return json.dumps(d).encode("utf-16")


def utf16_no_bom(root: Path, d: dict[str, Any]) -> bytes:
    return json.dumps(d).encode("utf-16-le")


def utf8_bom(root: Path, d: dict[str, Any]) -> bytes:
    return b"\xef\xbb\xbf" + json.dumps(d).encode()


def latin1(root: Path, d: dict[str, Any]) -> bytes:
    d[X]["conversation"][0]["Question"] = "Is there any défect?"
    return json.dumps(d, ensure_ascii=False).encode("latin-1")


def truncated_json(root: Path, d: dict[str, Any]) -> bytes:
    text = json.dumps(d, indent=2).encode()
    return text[: len(text) // 2]


def duplicate_option_key(root: Path, d: dict[str, Any]) -> bytes:
    text = json.dumps(d)
    return text.replace('"A": "Yes.", "B": "No."', '"A": "Yes.", "A": "No."', 1).encode()


def duplicate_image_key(root: Path, d: dict[str, Any]) -> bytes:
    text = json.dumps(d)
    return (text[:-1] + f', "{X}": {json.dumps(d[X])}}}').encode()


def copied_id(root: Path, d: dict[str, Any]) -> None:
    d[X]["conversation"][0]["id"] = "q-same"
    d[NORMAL]["conversation"][0]["id"] = "q-same"


def record(code: str, key: str, text: str, *, question: int | None = None) -> str:
    """The validate line of a problem: its code, the json file, the record (and question), what is wrong."""
    where = re.escape(key) + (f"#{question}" if question is not None else "")
    return rf"\[{code}\] \S*mmad\.json: {where}: .*{text}"


def loaded(text: str, key: str = "") -> str:
    """The one line load_benchmark gives: the json file and the record."""
    return rf"\S*mmad\.json: record {re.escape(repr(key))}: .*{text}" if key else rf"\S*mmad\.json.*{text}"


# (name, break, validate exit, validate message, info exit, info message)
CASES: list[tuple[str, Breaker, int, str, int, str | None]] = [
    # --- the json file itself: unreadable input, exit 2 everywhere ---
    ("json not utf-8", latin1, 2, r"mmad\.json is not UTF-8 text \(byte 0xE9 at line 1, column \d+", 2, "same"),
    ("json utf-16 with bom", utf16, 2, r"mmad\.json is UTF-16 or UTF-32 text .*byte-order mark", 2, "same"),
    ("json utf-16 without bom", utf16_no_bom, 2, r"mmad\.json is not valid json .*NUL bytes", 2, "same"),
    ("json utf-8 bom", utf8_bom, 2, r"mmad\.json starts with a UTF-8 byte-order mark", 2, "same"),
    ("json cut short", truncated_json, 2, r"mmad\.json is not valid json \(line \d+, column \d+", 2, "same"),
    ("json empty", raw(b""), 2, r"mmad\.json is empty", 2, "same"),
    ("json whitespace", raw(b"  \n"), 2, r"mmad\.json is empty", 2, "same"),
    ("json trailing data", raw(b"{} {}"), 2, r"mmad\.json is not valid json \(line 1, column 4: Extra data", 2, "same"),
    ("json is binary", raw(png_header(4, 4)), 2, r"mmad\.json is not UTF-8 text", 2, "same"),
    ("json too deep", raw(nested(100_000)), 2, r"mmad\.json nests lists or objects too deeply", 2, "same"),
    ("top level list", raw(b"[1, 2]"), 2, r"mmad\.json: the top level is a list; MMAD's json is one object", 2, "same"),
    ("top level string", raw(b'"x"'), 2, r"mmad\.json: the top level is a string", 2, "same"),
    ("top level null", raw(b"null"), 2, r"mmad\.json: the top level is null", 2, "same"),
    ("top level number", raw(b"3"), 2, r"mmad\.json: the top level is a number", 2, "same"),
    ("no image records", raw(b"{}"), 1, r"\[no-images\] .*mmad\.json: the json is an empty object", 0, None),
    # --- a record (image) of the wrong shape: validate 1; load_benchmark refuses, naming the record ---
    (
        "record is a list",
        lambda root, d: d.__setitem__(X, []),
        1,
        record("bad-record", X, "the value is a list, not an object"),
        2,
        loaded("the value is a list", X),
    ),
    (
        "record is null",
        lambda root, d: d.__setitem__(X, None),
        1,
        record("bad-record", X, "the value is null"),
        2,
        loaded("the value is null", X),
    ),
    (
        "record is a string",
        lambda root, d: d.__setitem__(X, "x"),
        1,
        record("bad-record", X, "is a string, not an object"),
        2,
        loaded("a string", X),
    ),
    (
        "image key empty",
        rename_key(X, ""),
        1,
        r"\[bad-record\] \S*mmad\.json: : the image key is empty",
        2,
        loaded("the image key is empty", ""),
    ),
    (
        "no conversation",
        drop_record_field(X, "conversation"),
        1,
        record("bad-record", X, "has no 'conversation' list"),
        2,
        loaded("has no 'conversation'", X),
    ),
    (
        "conversation is an object",
        set_record(X, "conversation", {}),
        1,
        record("bad-record", X, "'conversation' is an object, not a list"),
        2,
        loaded("'conversation' is an object", X),
    ),
    (
        "conversation is null",
        set_record(X, "conversation", None),
        1,
        record("bad-record", X, "'conversation' is null, not a list"),
        2,
        loaded("null", X),
    ),
    (
        "conversation empty",
        set_record(X, "conversation", []),
        1,
        record("no-questions", X, "'conversation' holds no questions"),
        0,
        None,
    ),
    (
        "question is a string",
        lambda root, d: d[X]["conversation"].__setitem__(1, "q?"),
        1,
        record("bad-record", X, "question 1: is a string, not an object"),
        2,
        loaded("question 1: is a string", X),
    ),
    (
        "question is null",
        lambda root, d: d[X]["conversation"].__setitem__(1, None),
        1,
        record("bad-record", X, "question 1: is null, not an object"),
        2,
        loaded("question 1: is null", X),
    ),
    (
        "question lacks Question",
        drop_qa(X, 1, "Question"),
        1,
        record("bad-record", X, "question 1: lacks Question"),
        2,
        loaded("question 1: lacks Question", X),
    ),
    (
        "question lacks Options",
        drop_qa(X, 1, "Options"),
        1,
        record("bad-record", X, "question 1: lacks Options"),
        2,
        loaded("lacks Options", X),
    ),
    (
        "question lacks Answer",
        drop_qa(X, 1, "Answer"),
        1,
        record("bad-record", X, "question 1: lacks Answer"),
        2,
        loaded("lacks Answer", X),
    ),
    (
        "question lacks type",
        drop_qa(X, 1, "type"),
        1,
        record("bad-record", X, "question 1: lacks type"),
        2,
        loaded("lacks type", X),
    ),
    (
        "Question is a number",
        set_qa(X, 1, "Question", 5),
        1,
        record("bad-record", X, "question 1: Question is a number, not a string"),
        2,
        loaded("Question is a number", X),
    ),
    (
        "Question is null",
        set_qa(X, 1, "Question", None),
        1,
        record("bad-record", X, "question 1: Question is null, not a string"),
        2,
        loaded("Question is null", X),
    ),
    (
        "Question is a list",
        set_qa(X, 1, "Question", ["q"]),
        1,
        record("bad-record", X, "Question is a list"),
        2,
        loaded("Question is a list", X),
    ),
    (
        "Answer is a number",
        set_qa(X, 1, "Answer", 2),
        1,
        record("bad-record", X, "question 1: Answer is a number, not a string"),
        2,
        loaded("Answer is a number", X),
    ),
    (
        "Answer is null",
        set_qa(X, 1, "Answer", None),
        1,
        record("bad-record", X, "Answer is null"),
        2,
        loaded("Answer is null", X),
    ),
    (
        "type is null",
        set_qa(X, 1, "type", None),
        1,
        record("bad-record", X, "question 1: type is null, not a string"),
        2,
        loaded("type is null", X),
    ),
    (
        "type is a number",
        set_qa(X, 1, "type", 3),
        1,
        record("bad-record", X, "type is a number"),
        2,
        loaded("type is a number", X),
    ),
    (
        "Options is a list",
        set_qa(X, 1, "Options", ["a", "b"]),
        1,
        record("bad-record", X, "question 1: Options is a list, not an object"),
        2,
        loaded("Options is a list", X),
    ),
    (
        "Options is a string",
        set_qa(X, 1, "Options", "A: x"),
        1,
        record("bad-record", X, "Options is a string"),
        2,
        loaded("Options is a string", X),
    ),
    (
        "Options is null",
        set_qa(X, 1, "Options", None),
        1,
        record("bad-record", X, "Options is null"),
        2,
        loaded("Options is null", X),
    ),
    (
        "option text is a number",
        set_qa(X, 1, "Options", {"A": 1, "B": "b", "C": "c", "D": "d"}),
        1,
        record("bad-record", X, "question 1: Options: A is a number, not a string"),
        2,
        loaded("Options: A is a number", X),
    ),
    (
        "option text is null",
        set_qa(X, 1, "Options", {"A": "a", "B": None}),
        1,
        record("bad-record", X, "Options: B is null"),
        2,
        loaded("B is null", X),
    ),
    (
        "option text is an object",
        set_qa(X, 1, "Options", {"A": "a", "B": {"t": "b"}}),
        1,
        record("bad-record", X, "B is an object"),
        2,
        loaded("B is an object", X),
    ),
    (
        "annotation is a string",
        set_qa(X, 1, "annotation", "yes"),
        1,
        record("bad-annotation", X, "annotation is 'yes', not true or false", question=1),
        0,
        None,
    ),
    (
        "id is a number",
        set_qa(X, 1, "id", 7),
        1,
        record("bad-record", X, "question 1: id is a number"),
        2,
        loaded("id is a number", X),
    ),
    (
        "id is empty",
        set_qa(X, 1, "id", ""),
        1,
        record("bad-record", X, "question 1: id is an empty string"),
        2,
        loaded("id is an empty string", X),
    ),
    (
        "random_templates is a string",
        set_record(X, "random_templates", TEMPLATE),
        1,
        record("bad-record", X, "'random_templates' is a string, not a list of paths"),
        2,
        loaded("'random_templates' is a string", X),
    ),
    (
        "random_templates is null",
        set_record(X, "random_templates", None),
        1,
        record("bad-record", X, "'random_templates' is null"),
        2,
        loaded("'random_templates' is null", X),
    ),
    (
        "random_templates holds a number",
        set_record(X, "random_templates", [TEMPLATE, 3]),
        1,
        record("bad-record", X, "'random_templates' holds something other than strings"),
        2,
        loaded("holds something other than strings", X),
    ),
    (
        "similar_templates is an object",
        set_record(X, "similar_templates", {}),
        1,
        record("bad-record", X, "'similar_templates' is an object"),
        2,
        loaded("'similar_templates' is an object", X),
    ),
    (
        "mask_path is a number",
        set_record(X, "mask_path", 0),
        1,
        record("bad-record", X, "'mask_path' is a number, not a string"),
        2,
        loaded("'mask_path' is a number", X),
    ),
    (
        "mask_path is a list",
        set_record(X, "mask_path", ["m.png"]),
        1,
        record("bad-record", X, "'mask_path' is a list"),
        2,
        loaded("'mask_path' is a list", X),
    ),
    (
        "two records share a key",
        duplicate_image_key,
        1,
        record("duplicate-key", X, "this image key appears more than once"),
        0,
        None,
    ),
    (
        "an option letter repeats",
        duplicate_option_key,
        1,
        r"\[duplicate-field\] \S*mmad\.json: DS-MVTec/bottle/image/good/000\.png: "
        r"conversation\[0\]\.Options repeats the field\(s\) 'A'",
        0,
        None,
    ),
    # --- questions that parse but are wrong: validate 1, loading works ---
    (
        "question text empty",
        set_qa(X, 1, "Question", ""),
        1,
        record("empty-question", X, "the question text is empty", question=1),
        0,
        None,
    ),
    (
        "question text blank",
        set_qa(X, 1, "Question", " \n "),
        1,
        record("empty-question", X, "empty", question=1),
        0,
        None,
    ),
    (
        "option text empty",
        set_qa(X, 1, "Options", {"A": "a", "B": "", "C": "c", "D": "d"}),
        1,
        record("empty-option", X, "option B has no text", question=1),
        0,
        None,
    ),
    (
        "option texts repeat",
        set_qa(X, 1, "Options", {"A": "A crack.", "B": "b", "C": "a  crack.", "D": "d"}),
        1,
        record("duplicate-options", X, "options A and C have the same text", question=1),
        0,
        None,
    ),
    (
        "answer not an option",
        set_qa(X, 1, "Answer", "E"),
        1,
        record("answer-not-an-option", X, "answer 'E' is not among the options", question=1),
        0,
        None,
    ),
    (
        "answer empty",
        set_qa(X, 1, "Answer", ""),
        1,
        record("answer-not-an-option", X, "answer '' is not among", question=1),
        0,
        None,
    ),
    (
        "answer lower case",
        set_qa(X, 1, "Answer", "c"),
        1,
        record("answer-not-an-option", X, "answer 'c'", question=1),
        0,
        None,
    ),
    (
        "Options empty",
        set_qa(X, 1, "Options", {}),
        1,
        record("wrong-option-count", X, "0 options", question=1),
        0,
        None,
    ),
    (
        "one option",
        set_qa(X, 0, "Options", {"A": "Yes."}),
        1,
        record("wrong-option-count", X, "1 options", question=0),
        0,
        None,
    ),
    (
        "option letters wrong",
        set_qa(X, 1, "Options", {"a": "1", "b": "2", "c": "3", "d": "4"}),
        1,
        record("bad-option-letters", X, "not A, B, C", question=1),
        0,
        None,
    ),
    (
        "type empty",
        set_qa(X, 1, "type", ""),
        1,
        record("unknown-type", X, "type '' is not one of MMAD's eight types", question=1),
        0,
        None,
    ),
    (
        "type unknown",
        set_qa(X, 1, "type", "Colour"),
        1,
        record("unknown-type", X, "type 'Colour'", question=1),
        0,
        None,
    ),
    (
        "ids repeat",
        copied_id,
        1,
        record("duplicate-id", NORMAL, "id 'q-same' is also the id of " + re.escape(X) + "#0", question=0),
        0,
        None,
    ),
    # --- files the records name: validate 1 ---
    ("image missing", lambda root, d: (root / X).unlink(), 1, record("missing-image", X, "does not exist"), 0, None),
    ("image zero bytes", file(X, b""), 1, record("empty-image", X, "is empty \\(0 bytes\\)"), 0, None),
    ("image is a folder", folder_instead(X), 1, record("image-not-a-file", X, "is a folder, not a file"), 0, None),
    (
        "image png cut short",
        file(X, lambda b: b[: len(b) // 2]),
        1,
        record("unreadable-image", X, "it is cut short"),
        0,
        None,
    ),
    (
        "image jpeg cut short",
        file(JPG, lambda b: b[: len(b) // 2]),
        1,
        record("unreadable-image", JPG, "it is cut short"),
        0,
        None,
    ),
    (
        "image is text",
        file(X, b"not an image"),
        1,
        record("unreadable-image", X, "is not an image file Pillow can read"),
        0,
        None,
    ),
    (
        "image is a bomb",
        file(X, png_header(20_000, 20_000)),
        1,
        record("image-too-large", X, "too large to open safely: Image size \\(400000000 pixels\\)"),
        0,
        None,
    ),
    (
        "image over the bomb warning",
        file(X, png_header(10_000, 10_000)),
        1,
        record("image-too-large", X, "too large to open safely"),
        0,
        None,
    ),
    (
        "template is a folder",
        folder_instead(TEMPLATE),
        1,
        record("template-not-a-file", X, "template " + re.escape(TEMPLATE) + " is a folder"),
        0,
        None,
    ),
    ("template zero bytes", file(TEMPLATE, b""), 1, record("empty-template", X, "is empty"), 0, None),
    (
        "mask zero bytes",
        file(MASK, b""),
        1,
        record("unreadable-mask", X, "mask ground_truth/broken_large/000_mask.png .* is empty"),
        0,
        None,
    ),
    (
        "template path with a NUL byte",
        set_record(X, "random_templates", ["MVTec-AD/bottle/\x00.png"]),
        1,
        record("missing-template", X, "template MVTec-AD/bottle/\x00.png does not exist"),
        0,
        None,
    ),
    (
        "template path too long",
        set_record(X, "random_templates", ["a" * 5000 + ".png"]),
        1,
        record("unreadable-template", X, "cannot be looked up"),
        0,
        None,
    ),
    (
        "mask path with a NUL byte",
        set_record(X, "mask_path", "m\x00.png"),
        1,
        record("missing-mask", X, "mask m\x00.png .* does not exist"),
        0,
        None,
    ),
    (
        "template leaves the root",
        set_record(X, "random_templates", ["../../etc/passwd"]),
        1,
        record("unsafe-path", X, "leaves the data root"),
        0,
        None,
    ),
    (
        "template absolute",
        set_record(X, "similar_templates", ["/etc/passwd"]),
        1,
        record("unsafe-path", X, "is absolute"),
        0,
        None,
    ),
]


@pytest.mark.parametrize(
    ("breaker", "validate_code", "validate_message", "info_code", "info_message"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_a_broken_benchmark_is_named_never_a_traceback_and_never_changed(
    fresh_mmad_json: Path,
    capsys: pytest.CaptureFixture[str],
    breaker: Breaker,
    validate_code: int,
    validate_message: str,
    info_code: int,
    info_message: str | None,
) -> None:
    root = fresh_mmad_json.parent
    data = json.loads(fresh_mmad_json.read_text())
    written = breaker(root, data)
    fresh_mmad_json.write_bytes(written if written is not None else json.dumps(data, indent=2).encode())
    before = snapshot(root)

    code = main(["validate", str(root), "--show", "500"])
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert code == validate_code, text
    assert re.search(validate_message, text), text
    assert "Traceback" not in text
    if validate_code == 2:  # input it cannot read: one line on stderr, nothing on stdout
        assert captured.out == "" and len(captured.err.strip().splitlines()) == 1, text
        assert str(fresh_mmad_json) in text

    code = main(["info", str(root), "--json"])
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert code == info_code, text
    assert "Traceback" not in text
    if info_code == 2:
        expected = validate_message if info_message == "same" else info_message
        assert expected is not None and re.search(expected, captured.err), text
        assert captured.out == "" and len(captured.err.strip().splitlines()) == 1, text
    else:
        json.loads(captured.out)
    assert snapshot(root) == before


def test_validate_json_reports_each_problem_with_its_file_and_record(
    fresh_mmad_json: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = json.loads(fresh_mmad_json.read_text())
    data[X]["conversation"][1]["Question"] = ""
    data[NORMAL]["conversation"][0]["Options"] = {"A": 1}
    fresh_mmad_json.write_text(json.dumps(data))
    assert main(["validate", str(fresh_mmad_json), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    found = {(p["code"], p["key"], p["question"], p["file"]) for p in report["problems"]}
    assert ("empty-question", X, 1, str(fresh_mmad_json)) in found
    assert ("bad-record", NORMAL, None, str(fresh_mmad_json)) in found


def made(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def written(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda root: root / "nowhere",
            r"no mmad\.json, benchmark\.json, metadata\.csv or <dataset>/<category>/QA\.json in \S*nowhere "
            r"\(the path does not exist\)",
        ),
        (
            lambda root: made(root / "empty"),
            r"no mmad\.json, benchmark\.json, metadata\.csv or .* in \S*empty \(the folder exists\)",
        ),
        (
            lambda root: made(root / "d" / "mmad.json").parent,
            r"in \S*d \(\S*d/mmad\.json is a folder, not a file\)",
        ),
        (lambda root: written(root / "m.csv", b"\xff\xfe\x00"), r"m\.csv is not UTF-8 text"),
        (
            lambda root: written(root / "m.csv", b"a,b\n1,2\n"),
            r"m\.csv lacks the column\(s\) query_image",
        ),
    ],
    ids=["missing path", "folder without a benchmark", "mmad.json is a folder", "binary csv", "foreign csv"],
)
def test_a_path_that_holds_no_benchmark_says_what_was_looked_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: Callable[[Path], Path], message: str
) -> None:
    target = make(tmp_path)
    before = snapshot(tmp_path)
    for command in (["validate", str(target)], ["validate", str(target), "--json"], ["info", str(target), "--json"]):
        code = main(command)
        captured = capsys.readouterr()
        assert code == 2, captured
        assert re.search(message, captured.err), captured.err
        assert captured.out == "" and len(captured.err.strip().splitlines()) == 1 and "Traceback" not in captured.err
    assert snapshot(tmp_path) == before
