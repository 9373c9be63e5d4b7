"""Read and write the official ``mmad.json`` format.

The json is one object keyed by query-image path (relative to the data root). Each value holds
``conversation`` (the questions), ``mask_path``, ``random_templates`` and ``similar_templates``.
The official code takes the first field whose name starts with "conversation"; so do we.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmad._io import atomic_write_text, collector_paused, sha256_bytes, sha256_text
from mmad.data.formats import JSON_NAMES
from mmad.data.schema import Benchmark, ImageItem, Question, content_id, question_id
from mmad.errors import BenchmarkFormatError

logger = logging.getLogger(__name__)

KNOWN_RECORD_FIELDS = ("mask_path", "random_templates", "similar_templates")
KNOWN_QA_FIELDS = ("id", "Question", "Options", "Answer", "type", "annotation")
REQUIRED_QA_FIELDS = ("Question", "Options", "Answer", "type")

IssueSink = Callable[[str, str, str], None]
"""Receives (record key, problem, fix) for a record that cannot be parsed."""


def _raiser(source: Path | None) -> IssueSink:
    """An issue sink that stops at the first bad record, naming the file and the record."""
    where = f"{source}: " if source is not None else ""

    def on_issue(key: str, problem: str, fix: str) -> None:
        msg = f"{where}record {key!r}: {problem}. {fix} (`mmad validate` lists every problem)"
        raise BenchmarkFormatError(msg)

    return on_issue


def _kind(value: Any) -> str:
    """A json value's kind, as a json reader would name it."""
    if value is None:
        return "null"
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list", dict: "an object"}
    return names.get(type(value), type(value).__name__)


def qa_problems(qa: Any) -> list[tuple[str, str]]:
    """What is wrong with the shape of one question object: (problem, fix) pairs, [] when it is well formed."""
    if not isinstance(qa, dict):
        return [(f"is {_kind(qa)}, not an object", "Each question is an object with Question/Options/Answer/type.")]
    problems: list[tuple[str, str]] = []
    missing = [name for name in REQUIRED_QA_FIELDS if name not in qa]
    if missing:
        problems.append((f"lacks {', '.join(missing)}", "Add the missing fields."))
    for name in ("Question", "Answer", "type"):
        if name in qa and not isinstance(qa[name], str):
            problems.append((f"{name} is {_kind(qa[name])}, not a string", f"Write {name} as a string."))
    options = qa.get("Options")
    if "Options" in qa:
        if not isinstance(options, dict):
            problems.append((f"Options is {_kind(options)}, not an object", "Write Options as {'A': '...', ...}."))
        else:
            bad = [letter for letter, text in options.items() if not isinstance(text, str)]
            if bad:
                kinds = ", ".join(f"{letter} is {_kind(options[letter])}" for letter in bad)
                problems.append((f"Options: {kinds}, not a string", "Write each option's text as a string."))
    if "id" in qa and (not isinstance(qa["id"], str) or not qa["id"].strip()):
        shown = "an empty string" if isinstance(qa["id"], str) else _kind(qa["id"])
        problems.append(
            (f"id is {shown}", "Remove the id (mmad derives one from the content) or write a non-empty string.")
        )
    return problems


def _odd_annotation(field: str, value: Any) -> bool:
    return field == "annotation" and value is not None and not isinstance(value, bool)


def content_ids(key: str, conversation: list[dict[str, Any]]) -> list[str]:
    """The content id of each well-formed question of one image: its recorded ``id``, else one derived from content.

    Derived ids of identical questions on one image get ``-2``, ``-3``, ... so that each id names one question.
    """
    taken = {qa["id"] for qa in conversation if isinstance(qa.get("id"), str) and qa["id"].strip()}
    ids = []
    for qa in conversation:
        recorded = qa.get("id")
        if isinstance(recorded, str) and recorded.strip():
            ids.append(recorded)
            continue
        base = content_id(key, qa["type"], qa["Question"], qa["Options"], qa["Answer"])
        uid, n = base, 1
        while uid in taken:
            n += 1
            uid = f"{base}-{n}"
        taken.add(uid)
        ids.append(uid)
    return ids


def parse_item(key: str, record: Any, on_issue: IssueSink) -> ImageItem | None:
    """Turn one json record into an ImageItem; structural problems go to on_issue (each one), and None is returned."""
    if not key.strip():
        on_issue(key, "the image key is empty", "Key each record by its image path, relative to the data root.")
        return None
    if not isinstance(record, dict):
        on_issue(key, f"the value is {_kind(record)}, not an object", "Make it an object.")
        return None
    conv_field = next((name for name in record if name.startswith("conversation")), None)
    if conv_field is None:
        on_issue(key, "has no 'conversation' list", "Add the questions under 'conversation'.")
        return None
    conversation = record[conv_field]
    if not isinstance(conversation, list):
        on_issue(key, f"'{conv_field}' is {_kind(conversation)}, not a list", "Make it a list of question objects.")
        return None
    well_formed = True
    for index, qa in enumerate(conversation):
        for problem, fix in qa_problems(qa):
            on_issue(key, f"question {index}: {problem}", fix)
            well_formed = False
    templates: dict[str, list[str]] = {}
    for name in ("random_templates", "similar_templates"):
        value = record.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            what = f"is {_kind(value)}" if not isinstance(value, list) else "holds something other than strings"
            on_issue(key, f"'{name}' {what}, not a list of paths", "Write it as a list of strings.")
            well_formed = False
        else:
            templates[name] = value
    mask_path = record.get("mask_path")
    if mask_path is not None and not isinstance(mask_path, str):
        on_issue(
            key,
            f"'mask_path' is {_kind(mask_path)}, not a string",
            "Write the mask path as a string ('' for normal images).",
        )
        well_formed = False
    if not well_formed:
        return None
    ids = content_ids(key, conversation)
    questions = [
        Question(
            id=question_id(key, index),
            uid=ids[index],
            image=key,
            index=index,
            type=qa["type"],
            stem=qa["Question"],
            options=qa["Options"],
            answer=qa["Answer"],
            annotation=qa["annotation"] if isinstance(qa.get("annotation"), bool) else None,
            # An annotation that is not true/false is kept as it is (validate names it); no run needs it.
            extra={k: v for k, v in qa.items() if k not in KNOWN_QA_FIELDS or _odd_annotation(k, v)},
        )
        for index, qa in enumerate(conversation)
    ]
    return ImageItem(
        key=key,
        mask_path=mask_path or "",
        random_templates=templates["random_templates"],
        similar_templates=templates["similar_templates"],
        questions=questions,
        conversation_field=conv_field,
        extra={k: v for k, v in record.items() if k not in KNOWN_RECORD_FIELDS and k != conv_field},
    )


def parse_benchmark(
    raw: Any, *, root: Path, source: Path | None = None, sha256: str = "", on_issue: IssueSink | None = None
) -> Benchmark:
    """Build a Benchmark from the decoded json object; a bad record raises BenchmarkFormatError, or goes to on_issue."""
    if not isinstance(raw, dict):
        where = source or "the benchmark json"
        msg = f"{where}: the top level is {_kind(raw)}; MMAD's json is one object keyed by image path"
        raise BenchmarkFormatError(msg)
    sink = on_issue or _raiser(source)
    items = [item for key, record in raw.items() if (item := parse_item(key, record, sink)) is not None]
    return Benchmark(items=items, root=root, source=source, sha256=sha256)


def _position(data: bytes, offset: int) -> str:
    line = data.count(b"\n", 0, offset) + 1
    column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    return f"line {line}, column {column}"


def decode_json_bytes(data: bytes, path: Path) -> Any:
    """Decode a json file's bytes as MMAD's loader does (UTF-8, no byte-order mark); BenchmarkFormatError otherwise."""
    if path.suffix.lower() == ".jsonl":
        # JSON Lines is what a run writes (records.jsonl); re-downloading would not turn it into a benchmark.
        msg = (
            f"{path} is a JSON Lines file (a run's records.jsonl?), not a benchmark json; give the data root "
            "that holds mmad.json, or the json itself (a run's records are scored with `mmad score RUN`)"
        )
        raise BenchmarkFormatError(msg)
    if not data.strip():
        msg = f"{path} is empty; re-download it (`mmad download`) or re-build it"
        raise BenchmarkFormatError(msg)
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        msg = (
            f"{path} is UTF-16 or UTF-32 text (it starts with a byte-order mark); MMAD's json is UTF-8. "
            "Save it again as UTF-8"
        )
        raise BenchmarkFormatError(msg)
    if data.startswith(b"\xef\xbb\xbf"):
        msg = (
            f"{path} starts with a UTF-8 byte-order mark, which Python's json (and so MMAD's official loader) "
            "refuses; save it again as UTF-8 without BOM"
        )
        raise BenchmarkFormatError(msg)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        msg = (
            f"{path} is not UTF-8 text (byte 0x{data[exc.start]:02X} at {_position(data, exc.start)} cannot be "
            "decoded); MMAD's json is UTF-8: save it again as UTF-8, or re-download it"
        )
        raise BenchmarkFormatError(msg) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        hint = "; it holds NUL bytes, so it is UTF-16/32 text or not text at all" if "\x00" in text else ""
        msg = f"{path} is not valid json (line {exc.lineno}, column {exc.colno}: {exc.msg}{hint}); re-download it"
        raise BenchmarkFormatError(msg) from None
    except RecursionError:
        msg = f"{path} nests lists or objects too deeply to read; it is not an MMAD benchmark json"
        raise BenchmarkFormatError(msg) from None


def read_json(path: Path) -> tuple[Any, str]:
    """Decode a json file and return it with its SHA-256; BenchmarkFormatError names the file and what is wrong."""
    if path.is_dir():
        msg = f"{path} is a folder, not a json file; give the data root that holds mmad.json, or the file itself"
        raise BenchmarkFormatError(msg)
    try:
        data = path.read_bytes()
    except OSError as exc:
        msg = f"cannot read {path}: {exc.strerror or exc}. Check the path, or run `mmad download` first"
        raise BenchmarkFormatError(msg) from exc
    return decode_json_bytes(data, path), sha256_bytes(data)


def find_benchmark_json(data: Path) -> Path:
    """The benchmark json of a data root (``mmad.json``, else ``benchmark.json``), or the file itself."""
    if data.is_file():
        return data
    for name in JSON_NAMES:
        candidate = data / name
        if candidate.is_file():
            return candidate
    folders = [name for name in JSON_NAMES if (data / name).is_dir()]
    state = f"; {data / folders[0]} is a folder, not a file" if folders else ""
    msg = (
        f"no {' or '.join(JSON_NAMES)} file in {data}{state}. "
        f"Pass the json file itself, or run `mmad download --out {data}`"
    )
    raise BenchmarkFormatError(msg)


def load_benchmark(data: str | os.PathLike[str], *, root: str | os.PathLike[str] | None = None) -> Benchmark:
    """Load an MMAD benchmark: a data root, an mmad.json, a metadata.csv, or a tree of QA.json files.

    The shape is told from the path (see :mod:`mmad.data.formats`): a folder with mmad.json, a
    json file, the Hub viewer's metadata.csv (or a folder holding one), or a folder of
    ``<dataset>/<category>/QA.json``. What a shape lacks is in ``Benchmark.lacks``; call
    :func:`mmad.data.formats.check_protocol` before a k-shot run.

    Args:
        data: the data root, or the file.
        root: the folder image paths are relative to; defaults to the file's (or the tree's) folder.
    """
    from mmad.data.formats import QA_TREE, VIEWER_CSV, detect_format

    path = Path(data)
    shape = detect_format(path)
    base_root = Path(root) if root is not None else None
    if shape == VIEWER_CSV:
        from mmad.data.viewer import read_metadata_csv

        csv_path = path if path.is_file() else path / "metadata.csv"
        benchmark = read_metadata_csv(csv_path, root=base_root)
    elif shape == QA_TREE:
        from mmad.data.qa_tree import read_qa_tree

        benchmark = read_qa_tree(path, root=base_root)
    else:
        json_path = find_benchmark_json(path)
        # ~50,000 models and their dicts, none in a cycle: the collector's passes over the growing heap
        # were half of MMAD's load (0.9 s -> 0.45 s on the 2-core box without them)
        with collector_paused():
            raw, digest = read_json(json_path)
            benchmark = parse_benchmark(raw, root=base_root or json_path.parent, source=json_path, sha256=digest)
    logger.info("loaded %s (%s): %d images, %d questions", path, shape, len(benchmark.items), benchmark.n_questions)
    return benchmark


def item_to_record(item: ImageItem) -> dict[str, Any]:
    """The official json record of an item."""
    conversation = []
    for question in item.questions:
        qa: dict[str, Any] = {
            "id": question.uid,
            "Question": question.stem,
            "Options": dict(question.options),
            "Answer": question.answer,
            "type": question.type,
        }
        if question.annotation is not None:
            qa["annotation"] = question.annotation
        qa.update(question.extra)
        conversation.append(qa)
    record: dict[str, Any] = {
        "mask_path": item.mask_path,
        "random_templates": list(item.random_templates),
        "similar_templates": list(item.similar_templates),
        item.conversation_field: conversation,
    }
    record.update(item.extra)
    return record


def write_benchmark(benchmark: Benchmark, path: str | os.PathLike[str], *, indent: int | None = 4) -> str:
    """Write a benchmark in the official json format, atomically; returns the file's SHA-256."""
    raw = {item.key: item_to_record(item) for item in benchmark.items}
    text = json.dumps(raw, indent=indent, ensure_ascii=False)
    target = Path(path)
    atomic_write_text(target, text)
    return sha256_text(text)
