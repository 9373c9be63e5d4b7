"""The per-sample viewer's data: every question a run asked, its images as small thumbnails, and the
model's reply, packed for a page that renders them on demand.

The whole of MMAD is 39,672 questions on about 8,400 query images plus their templates, so the
data is packed: strings (question texts, option texts, replies) are stored once in a table and
referred to by index, each image is thumbnailed once however many questions and runs show it, and
a question id is rebuilt in the page from its image key and index. Thumbnails are JPEG data URLs
in a single-file report, or files beside the page in a report folder.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import math
import os
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from mmad._io import atomic_write_bytes
from mmad.data.official import load_benchmark
from mmad.data.schema import RAW_TYPE_TO_SUBTASK, SUBTASKS, Benchmark
from mmad.errors import MMADError
from mmad.records.record import Record, Status
from mmad.run.folder import RunFolder

logger = logging.getLogger(__name__)

THUMB_QUALITY = 70
THUMB_FOLDER = "thumbs"
SINGLE_FILE_IMAGE_BUDGET = 30_000_000
"""Bytes of base64 thumbnails a single-file report aims at, leaving room for the data under ~50 MB."""
STATUSES = [s.value for s in Status]
LETTERS = "ABCDE"


def auto_thumb_size(n_images: int, *, single_file: bool) -> int:
    """The thumbnail side: 192 px in a report folder; in one file, the largest of 128/96/80/64 px whose
    estimated total (about 0.35 bytes per pixel of JPEG, a third more as base64) fits the budget."""
    if not single_file:
        return 192
    for size in (128, 96, 80, 64):
        if n_images * size * size * 0.35 * 4 / 3 <= SINGLE_FILE_IMAGE_BUDGET:
            return size
    return 48


def thumbnail_jpeg(path: Path, size: int) -> bytes | None:
    """A JPEG thumbnail whose longest side is at most ``size``; None (with a warning) when the file cannot
    be read or claims more pixels than Pillow's bomb limit (the page then shows it as unavailable)."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > (Image.MAX_IMAGE_PIXELS or math.inf):
                # Above the limit Pillow only warns, then would decode it all: refuse it as an error would.
                msg = f"{width}x{height} pixels is over the limit of {Image.MAX_IMAGE_PIXELS:,} (a decompression bomb?)"
                raise Image.DecompressionBombError(msg)
            image.draft("RGB", (size * 2, size * 2))  # JPEG: decode at a reduced scale, much faster
            picture = image.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
        logger.warning("no thumbnail for %s: %s", path, exc)
        return None
    picture.thumbnail((size, size), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=THUMB_QUALITY)
    return buffer.getvalue()


class Thumbnails:
    """Each image thumbnailed once; an index per image, resolved to a data URL or a file name."""

    def __init__(self) -> None:
        self._index: dict[Path, int] = {}
        self.paths: list[Path] = []

    def add(self, path: Path) -> int:
        """The index of an image (registered on first sight)."""
        key = Path(os.path.normpath(path.absolute()))  # no symlink lookups: 16,000 resolve() calls cost seconds
        index = self._index.get(key)
        if index is None:
            index = self._index[key] = len(self.paths)
            self.paths.append(key)
        return index

    def __len__(self) -> int:
        return len(self.paths)

    def render(
        self, size: int, folder: Path | None = None, progress: Callable[[int, int], None] | None = None
    ) -> list[str | None]:
        """The sources in index order: data URLs, or ``thumbs/<digest>.jpg`` files written under folder;
        ``progress`` is called with (done, total) thumbnails."""
        workers = min(8, (os.cpu_count() or 1) + 1)
        # Set here, not in the threads (the filters are global): an image over Pillow's bomb warning limit
        # is refused in thumbnail_jpeg with a logged line, so the warning itself would only repeat it.
        with warnings.catch_warnings(), ThreadPoolExecutor(max_workers=workers) as pool:
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            blobs = []
            if progress is not None:  # the total before the first thumbnail is made
                progress(0, len(self.paths))
            for blob in pool.map(lambda p: thumbnail_jpeg(p, size), self.paths):
                blobs.append(blob)
                if progress is not None:
                    progress(len(blobs), len(self.paths))
        sources: list[str | None] = []
        for blob in blobs:
            if blob is None:
                sources.append(None)
            elif folder is None:
                sources.append("data:image/jpeg;base64," + base64.b64encode(blob).decode("ascii"))
            else:
                name = f"{THUMB_FOLDER}/{hashlib.sha256(blob).hexdigest()[:20]}.jpg"
                target = folder / name
                if not target.exists():
                    atomic_write_bytes(target, blob)
                sources.append(name)
        return sources


class StringTable:
    """Strings stored once, referred to by index."""

    def __init__(self) -> None:
        self._index: dict[str, int] = {}
        self.values: list[str] = []

    def add(self, text: str) -> int:
        """The index of a string."""
        index = self._index.get(text)
        if index is None:
            index = self._index[text] = len(self.values)
            self.values.append(text)
        return index


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n… ({len(text) - limit:,} more characters in records.jsonl)"


def benchmark_of(run: RunFolder, data: Path | None) -> Benchmark | None:
    """The benchmark a run asked, to find its images; None (with a warning) when it cannot be read."""
    source = data or Path(run.config.data)
    try:
        return load_benchmark(source)
    except (MMADError, OSError) as exc:
        logger.warning("%s: cannot read the benchmark at %s (%s); thumbnails are left out", run.path, source, exc)
        return None


@dataclass
class SampleData:
    """Everything the viewer needs, ready to become JSON."""

    strings: StringTable = field(default_factory=StringTable)
    thumbnails: Thumbnails = field(default_factory=Thumbnails)
    keys: list[list[Any]] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    questions: list[list[Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    _key_index: dict[str, int] = field(default_factory=dict)
    _question_index: dict[str, int] = field(default_factory=dict)
    _category_index: dict[str, int] = field(default_factory=dict)
    _benchmarks: dict[str, Benchmark | None] = field(default_factory=dict)

    def _benchmark(self, run: RunFolder, data: Path | None) -> Benchmark | None:
        marker = str(data or run.config.data)
        if marker not in self._benchmarks:
            self._benchmarks[marker] = benchmark_of(run, data)
        benchmark = self._benchmarks[marker]
        asked = run.benchmark_sha256
        if benchmark is not None and asked and benchmark.sha256 and benchmark.sha256 != asked:
            # Another benchmark's images under the same keys would show the wrong picture and templates.
            logger.warning(
                "%s: the benchmark at %s is not the one the run asked (its sha256 is %s…, the run recorded %s…); "
                "its images and templates are left out: give --data the benchmark the run was made on",
                run.path,
                data or marker,
                benchmark.sha256[:12],
                asked[:12],
            )
            return None
        return benchmark

    def _key(self, image: str, benchmark: Benchmark | None) -> int:
        index = self._key_index.get(image)
        if index is not None:
            return index
        parts = image.split("/")
        category = "/".join(parts[:2]) if len(parts) > 1 else image
        if category not in self._category_index:
            self._category_index[category] = len(self.categories)
            self.categories.append(category)
        thumb = None
        if benchmark is not None:
            try:
                thumb = self.thumbnails.add(benchmark.resolve(image))
            except MMADError as exc:
                logger.warning("%s: %s", image, exc)
        defect = parts[-2] if len(parts) > 1 else ""
        index = self._key_index[image] = len(self.keys)
        self.keys.append([image, thumb, self._category_index[category], defect])
        return index

    def _question(self, record: Record, key: int) -> int:
        index = self._question_index.get(record.question_id)
        if index is not None:
            return index
        subtask = RAW_TYPE_TO_SUBTASK.get(record.question_type)
        letters = list(record.options)
        if letters == list(LETTERS[: len(letters)]):
            options: list[Any] = [self.strings.add(text) for text in record.options.values()]
        else:
            options = [[letter, self.strings.add(text)] for letter, text in record.options.items()]
        number = record.question_id.rsplit("#", 1)[-1] if "#" in record.question_id else record.question_id
        index = self._question_index[record.question_id] = len(self.questions)
        self.questions.append(
            [
                key,
                number,
                SUBTASKS.index(subtask) if subtask else -1,
                self.strings.add(record.question_text),
                options,
                record.correct_answer,
            ]
        )
        return index

    def add_run(self, run: RunFolder, name: str, *, data: Path | None = None, reply_chars: int = 2000) -> None:
        """Add a run's plain records (the ones the MMAD table scores)."""
        benchmark = self._benchmark(run, data)
        prompt = run.config.prompt
        shots, similar, blind = prompt.shots, prompt.similar_templates, prompt.blind
        templates: dict[int, list[int]] = {}
        rows = []
        conversations: dict[str, Any] = {}
        for record in run.plain:
            key = self._key(record.image, benchmark)
            question = self._question(record, key)
            if benchmark is not None and shots and not blind and key not in templates:
                templates[key] = self._templates(benchmark, record.image, shots, similar=similar)
            reply = record.raw_reply if record.raw_reply is not None else (record.error_message or "")
            row: list[Any] = [
                question,
                STATUSES.index(record.status.value),
                record.answer or "",
                self.strings.add(_truncate(reply, reply_chars)),
            ]
            if record.correct_answer != self.questions[question][5]:
                row.append(record.correct_answer)  # posed with other letters than the first run that asked it
            rows.append(row)
            conversation = self._conversation(record, reply_chars, run.path)
            if conversation is not None:
                conversations[str(question)] = conversation
        packed: dict[str, Any] = {"name": name, "templates": {str(k): v for k, v in templates.items()}, "rows": rows}
        if conversations:
            packed["tools"] = conversations
        self.runs.append(packed)

    def _conversation(self, record: Record, reply_chars: int, run_dir: Path) -> dict[str, Any] | None:
        """A tools record's conversation after the question (turns: role, text, tool images), and the
        direct branch's answer; None for a record of another strategy."""
        tools = record.extra.get("tools")
        if not isinstance(tools, dict) or not isinstance(tools.get("conversation"), list):
            return None
        messages = tools["conversation"]
        # The question's own turns (instructions, images, question) are shown above; the turns after them
        # are new (none where the conversation failed before the model's first reply).
        start = next(
            (i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "assistant"), len(messages)
        )
        turns = []
        for message in messages[start:]:
            if not isinstance(message, dict):
                continue
            text = str(message.get("text") or "")
            calls = message.get("tool_calls") or []
            if calls:
                text = (text + "\n" if text else "") + "\n".join(
                    f"calls {c.get('name')}({c.get('arguments')})" for c in calls if isinstance(c, dict)
                )
            images = [
                self.thumbnails.add(_recorded_image(run_dir, p))
                for p in message.get("images") or []
                if isinstance(p, str)
            ]
            turns.append([str(message.get("role")), self.strings.add(_truncate(text, reply_chars)), images])
        if tools.get("error_class"):  # a conversation that failed outright (--blend fell back to the direct answer)
            failure = f"the conversation failed ({tools['error_class']}): {tools.get('error_message') or ''}"
            turns.append(["error", self.strings.add(_truncate(failure, reply_chars)), []])
        direct = record.extra.get("direct")
        return {
            "direct": direct.get("answer") if isinstance(direct, dict) else None,
            "calls": len(tools.get("calls") or []),
            "turns": turns,
        }

    def _templates(self, benchmark: Benchmark, image: str, shots: int, *, similar: bool) -> list[int]:
        try:
            item = benchmark.item(image)
        except KeyError:
            return []
        chosen = []
        for relative in item.templates(shots, similar=similar):
            try:
                chosen.append(self.thumbnails.add(benchmark.resolve(relative)))
            except MMADError as exc:
                logger.warning("%s: template %s: %s", image, relative, exc)
        return chosen

    def to_json_ready(self, thumbs: Sequence[str | None]) -> dict[str, Any]:
        """The packed data, with the thumbnails' sources."""
        return {
            "subtasks": [s.value for s in SUBTASKS],
            "statuses": STATUSES,
            "strings": self.strings.values,
            "thumbs": list(thumbs),
            "keys": self.keys,
            "categories": self.categories,
            "questions": self.questions,
            "runs": self.runs,
        }

    @property
    def n_images(self) -> int:
        """How many distinct images (query and template) the viewer shows."""
        return len(self.thumbnails)


def _recorded_image(run_dir: Path, path: str) -> Path:
    """A conversation's image file: a tool image is recorded relative to its run folder (``tools/...``);
    a benchmark image, and a tool image of a record written before that, as it was sent."""
    given = Path(path)
    if given.is_absolute():
        return given
    inside = run_dir / given
    return inside if inside.exists() or not given.exists() else given
