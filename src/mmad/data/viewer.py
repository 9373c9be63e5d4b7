"""Read the Hugging Face viewer export of MMAD (``metadata.csv``) into a Benchmark, where it can serve.

The export (``dataset/MMAD/generate_metadata.py`` upstream; what ``load_dataset("jiang-cc/MMAD")``
shows) has one row per question with the columns ``query_image, question, options, answer,
template_image, mask``: options joined as ``"A: text\\nB: text"``, ``template_image`` the first of
``similar_templates``, ``mask`` the json's ``mask_path`` prefixed with the first *three* key
components (so for DS-MVTec it names a folder that does not exist). What is recovered here:

- questions in file order, grouped by image; ids ``<image>#<n>`` match those of mmad.json, since
  the export keeps each image's conversation order;
- ``mask_path`` exactly as in mmad.json, by removing the prefix the export added;
- the question type, which the export drops, from the question text (the templated stems of
  the six fixed subtasks; other questions on normal images are Object Analysis questions, whose
  two raw types, Object Structure and Object Details, score together).

What is not there, and is refused by :func:`mmad.data.formats.check_protocol` when a protocol
needs it: random templates, similar templates beyond the first, the ``annotation`` flags.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from pathlib import Path

from mmad.data.formats import VIEWER_CSV
from mmad.data.official import content_ids
from mmad.data.schema import Benchmark, ImageItem, Question, is_normal_key, question_id
from mmad.errors import BenchmarkFormatError

COLUMNS = ("query_image", "question", "options", "answer", "template_image", "mask")
_OPTION = re.compile(r"^([A-Z]):\s?(.*)$")
_STEMS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bis there (any|a) defect\b", re.IGNORECASE), "Anomaly Detection"),
    (re.compile(r"\btype of (the )?defect\b", re.IGNORECASE), "Defect Classification"),
    (re.compile(r"\bwhere is the defect\b", re.IGNORECASE), "Defect Localization"),
    (re.compile(r"\bappearance of the defect\b", re.IGNORECASE), "Defect Description"),
    (re.compile(r"\beffect of the defect\b", re.IGNORECASE), "Defect Analysis"),
    (re.compile(r"\bwhat kind of product\b", re.IGNORECASE), "Object Classification"),
)
LACKS = {
    "random_templates": "the viewer export keeps no random templates",
    "similar_templates": "the viewer export keeps only the first similar template of each image",
    "annotation": "the viewer export drops the per-question annotation flag",
    "type": "the viewer export has no type column; types are read from the question text",
}


def infer_type(stem: str, *, normal: bool) -> str:
    """The raw MMAD type of a question from its text ('' when it cannot be told)."""
    for pattern, qtype in _STEMS:
        if pattern.search(stem):
            return qtype
    return "Object Details" if normal else ""


def parse_options(text: str, where: str) -> dict[str, str]:
    """``"A: text\\nB: text"`` back into ``{"A": "text", "B": "text"}`` (a line without a letter continues the last)."""
    options: dict[str, str] = {}
    last = ""
    for line in text.splitlines():
        match = _OPTION.match(line)
        if match:
            last = match.group(1)
            options[last] = match.group(2)
        elif last:
            options[last] += "\n" + line
        elif line.strip():
            msg = (
                f"{where}: options {text!r} do not start with 'A: '; "
                "the viewer export joins them as 'A: text\\nB: text'"
            )
            raise BenchmarkFormatError(msg)
    return options


def mask_path_from_export(key: str, mask: str) -> str:
    """Undo the export's prefix: ``DS-MVTec/bottle/image/<mask_path>`` -> ``<mask_path>``."""
    if not mask:
        return ""
    parts = key.split("/")
    for depth in (3, 2):
        prefix = "/".join(parts[:depth]) + "/"
        if mask.startswith(prefix):
            return mask[len(prefix) :]
    return mask


def read_metadata_csv(path: Path, *, root: Path | None = None) -> Benchmark:
    """Build a Benchmark from the viewer export; paths resolve against ``root`` (default: the csv's folder)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        msg = f"cannot read {path}: {exc.strerror}"
        raise BenchmarkFormatError(msg) from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        msg = f"{path} is not UTF-8 text (byte 0x{data[exc.start]:02X} at offset {exc.start}); save it again as UTF-8"
        raise BenchmarkFormatError(msg) from None
    if "\x00" in text:
        msg = f"{path} holds NUL bytes: it is UTF-16 text or not text at all; save it again as UTF-8"
        raise BenchmarkFormatError(msg)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [name for name in COLUMNS if name not in (reader.fieldnames or [])]
    if missing:
        msg = (
            f"{path} lacks the column(s) {', '.join(missing)}; the viewer export has {', '.join(COLUMNS)}. "
            "Pass the metadata.csv of jiang-cc/MMAD, or mmad.json"
        )
        raise BenchmarkFormatError(msg)
    try:
        rows = list(reader)
    except csv.Error as exc:
        msg = f"{path}, line {reader.line_num}: {exc}; the viewer export is a plain comma-separated file"
        raise BenchmarkFormatError(msg) from None
    items: dict[str, ImageItem] = {}
    untyped = 0
    for line, row in enumerate(rows, start=2):
        key = (row["query_image"] or "").strip()
        if not key:
            msg = f"{path}, line {line}: query_image is empty; every row names its image"
            raise BenchmarkFormatError(msg)
        item = items.get(key)
        if item is None:
            template = (row["template_image"] or "").strip()
            item = items[key] = ImageItem(
                key=key,
                mask_path=mask_path_from_export(key, (row["mask"] or "").strip()),
                similar_templates=[template] if template else [],
            )
        index = len(item.questions)
        stem = row["question"] or ""
        qtype = infer_type(stem, normal=is_normal_key(key))
        untyped += not qtype
        item.questions.append(
            Question(
                id=question_id(key, index),
                image=key,
                index=index,
                type=qtype,
                stem=stem,
                options=parse_options(row["options"] or "", f"{path}, line {line}"),
                answer=(row["answer"] or "").strip(),
            )
        )
    lacks = dict(LACKS)
    if untyped:
        lacks["type"] += f"; {untyped} question(s) on abnormal images could not be typed"
    for item in items.values():
        # Identical rows of one image are distinct questions: number their ids as mmad.json's reader does.
        rows_as_json = [
            {"type": q.type, "Question": q.stem, "Options": q.options, "Answer": q.answer} for q in item.questions
        ]
        ids = content_ids(item.key, rows_as_json)
        item.questions = [q.model_copy(update={"uid": uid}) for q, uid in zip(item.questions, ids, strict=True)]
    most_similar = max((len(i.similar_templates) for i in items.values()), default=0)
    return Benchmark(
        items=list(items.values()),
        root=root or path.parent,
        source=path,
        sha256=hashlib.sha256(data).hexdigest(),
        origin=VIEWER_CSV,
        lacks=lacks,
        template_limit={"random_templates": 0, "similar_templates": most_similar},
    )
