"""Read and write the official ``mmad.json`` format.

The json is one object keyed by query-image path (relative to the data root). Each value holds
``conversation`` (the questions), ``mask_path``, ``random_templates`` and ``similar_templates``.
The official code takes the first field whose name starts with "conversation"; so do we.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmad._io import atomic_write_text
from mmad.data.schema import Benchmark, ImageItem, Question, question_id
from mmad.errors import BenchmarkFormatError

logger = logging.getLogger(__name__)

KNOWN_RECORD_FIELDS = ("mask_path", "random_templates", "similar_templates")
KNOWN_QA_FIELDS = ("Question", "Options", "Answer", "type", "annotation")

IssueSink = Callable[[str, str, str], None]
"""Receives (record key, problem, fix) for a record that cannot be parsed."""


def _raise(key: str, problem: str, fix: str) -> None:
    msg = f"record {key!r}: {problem}. {fix}"
    raise BenchmarkFormatError(msg)


def parse_item(key: str, record: Any, on_issue: IssueSink) -> ImageItem | None:
    """Turn one json record into an ImageItem; structural problems go to on_issue."""
    if not isinstance(record, dict):
        on_issue(key, f"the value is a {type(record).__name__}, not an object", "Make it an object.")
        return None
    conv_field = next((name for name in record if name.startswith("conversation")), None)
    if conv_field is None:
        on_issue(key, "has no 'conversation' list", "Add the questions under 'conversation'.")
        return None
    conversation = record[conv_field]
    if not isinstance(conversation, list):
        on_issue(key, f"'{conv_field}' is not a list", "Make it a list of question objects.")
        return None
    questions: list[Question] = []
    for index, qa in enumerate(conversation):
        where = f"question {index}"
        if not isinstance(qa, dict):
            on_issue(
                key,
                f"{where} is not an object",
                "Each question is an object with Question/Options/Answer/type.",
            )
            return None
        missing = [name for name in ("Question", "Options", "Answer", "type") if name not in qa]
        if missing:
            on_issue(key, f"{where} lacks {', '.join(missing)}", "Add the missing fields.")
            return None
        options = qa["Options"]
        if not isinstance(options, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in options.items()
        ):
            on_issue(key, f"{where}: Options is not an object of letter -> text", "Write Options as {'A': '...'}.")
            return None
        annotation = qa.get("annotation")
        questions.append(
            Question(
                id=question_id(key, index),
                image=key,
                index=index,
                type=str(qa["type"]),
                stem=str(qa["Question"]),
                options=options,
                answer=str(qa["Answer"]),
                annotation=annotation if isinstance(annotation, bool) else None,
                extra={k: v for k, v in qa.items() if k not in KNOWN_QA_FIELDS},
            )
        )
    templates: dict[str, list[str]] = {}
    for name in ("random_templates", "similar_templates"):
        value = record.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            on_issue(key, f"'{name}' is not a list of paths", "Write it as a list of strings.")
            return None
        templates[name] = value
    mask_path = record.get("mask_path") or ""
    if not isinstance(mask_path, str):
        on_issue(key, "'mask_path' is not a string", "Write the mask path as a string ('' for normal images).")
        return None
    return ImageItem(
        key=key,
        mask_path=mask_path,
        random_templates=templates["random_templates"],
        similar_templates=templates["similar_templates"],
        questions=questions,
        conversation_field=conv_field,
        extra={k: v for k, v in record.items() if k not in KNOWN_RECORD_FIELDS and k != conv_field},
    )


def parse_benchmark(
    raw: Any, *, root: Path, source: Path | None = None, sha256: str = "", on_issue: IssueSink = _raise
) -> Benchmark:
    """Build a Benchmark from the decoded json object."""
    if not isinstance(raw, dict):
        where = source or "the benchmark json"
        msg = f"{where}: the top level is a {type(raw).__name__}; MMAD's json is one object keyed by image path"
        raise BenchmarkFormatError(msg)
    items = [item for key, record in raw.items() if (item := parse_item(key, record, on_issue)) is not None]
    return Benchmark(items=items, root=root, source=source, sha256=sha256)


def read_json(path: Path) -> tuple[Any, str]:
    """Decode a json file and return it with its SHA-256."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        msg = f"cannot read {path}: {exc.strerror}. Check the path, or run `mmad download` first"
        raise BenchmarkFormatError(msg) from exc
    try:
        raw = json.loads(data)
    except json.JSONDecodeError as exc:
        msg = f"{path} is not valid json (line {exc.lineno}, column {exc.colno}: {exc.msg}); re-download it"
        raise BenchmarkFormatError(msg) from exc
    return raw, hashlib.sha256(data).hexdigest()


def find_benchmark_json(data: Path) -> Path:
    """The benchmark json of a data root (``mmad.json``), or the file itself."""
    if data.is_file():
        return data
    for name in ("mmad.json", "benchmark.json"):
        candidate = data / name
        if candidate.is_file():
            return candidate
    msg = f"no mmad.json in {data}; pass the json file itself, or run `mmad download --out {data}`"
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
        raw, digest = read_json(json_path)
        benchmark = parse_benchmark(raw, root=base_root or json_path.parent, source=json_path, sha256=digest)
    logger.info("loaded %s (%s): %d images, %d questions", path, shape, len(benchmark.items), benchmark.n_questions)
    return benchmark


def item_to_record(item: ImageItem) -> dict[str, Any]:
    """The official json record of an item."""
    conversation = []
    for question in item.questions:
        qa: dict[str, Any] = {
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
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
