"""The benchmark as data: subtasks, questions, image items and the benchmark itself."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mmad.errors import UnsafePathError


class Subtask(StrEnum):
    """The seven MMAD subtasks, in the paper's order."""

    ANOMALY_DISCRIMINATION = "Anomaly Discrimination"
    DEFECT_CLASSIFICATION = "Defect Classification"
    DEFECT_LOCALIZATION = "Defect Localization"
    DEFECT_DESCRIPTION = "Defect Description"
    DEFECT_ANALYSIS = "Defect Analysis"
    OBJECT_CLASSIFICATION = "Object Classification"
    OBJECT_ANALYSIS = "Object Analysis"

    @property
    def official_column(self) -> str:
        """The column name in the official scorer and result CSVs."""
        return "Anomaly Detection" if self is Subtask.ANOMALY_DISCRIMINATION else self.value

    @property
    def short(self) -> str:
        """A two-letter abbreviation for narrow tables."""
        return "".join(word[0] for word in self.value.split())

    @classmethod
    def parse(cls, text: str) -> Subtask:
        """Read a subtask from its name, official column, raw type or abbreviation."""
        wanted = text.strip().lower().replace("_", " ").replace("-", " ")
        for subtask in cls:
            names = {subtask.value.lower(), subtask.official_column.lower(), subtask.short.lower()}
            if wanted in names:
                return subtask
        if text in RAW_TYPE_TO_SUBTASK:
            return RAW_TYPE_TO_SUBTASK[text]
        known = ", ".join(s.value for s in cls)
        msg = f"unknown subtask {text!r}; choose one of: {known}"
        raise ValueError(msg)


SUBTASKS: tuple[Subtask, ...] = tuple(Subtask)

RAW_TYPE_TO_SUBTASK: dict[str, Subtask] = {
    "Anomaly Detection": Subtask.ANOMALY_DISCRIMINATION,
    "Defect Classification": Subtask.DEFECT_CLASSIFICATION,
    "Defect Localization": Subtask.DEFECT_LOCALIZATION,
    "Defect Description": Subtask.DEFECT_DESCRIPTION,
    "Defect Analysis": Subtask.DEFECT_ANALYSIS,
    "Object Classification": Subtask.OBJECT_CLASSIFICATION,
    "Object Structure": Subtask.OBJECT_ANALYSIS,
    "Object Details": Subtask.OBJECT_ANALYSIS,
}
RAW_TYPES: tuple[str, ...] = tuple(RAW_TYPE_TO_SUBTASK)

# The four query roots of MMAD; MVTec-AD appears only in template paths.
SOURCE_DATASETS: tuple[str, ...] = ("DS-MVTec", "MVTec-LOCO", "VisA", "GoodsAD")

# The official scorer calls an image normal iff this substring occurs in its key.
NORMAL_FLAG = "good"

LETTERS = "ABCDE"


def dataset_of(key: str) -> str:
    """The source dataset of an image key: its first path component, as the official scorer does."""
    return key.split("/", 1)[0]


def is_normal_key(key: str) -> bool:
    """Whether the official scorer treats this image as normal."""
    return NORMAL_FLAG in key


class Question(BaseModel):
    """One multiple-choice question about one image."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="record key '<image key>#<index in its conversation>': the position, which runs use")
    uid: str = Field(
        default="",
        description="content id: the QA's recorded 'id', else derived from its content (see content_id); "
        "survives edits of other questions, so review verdicts reach the question they were written for",
    )
    image: str
    index: int
    type: str = Field(description="the raw `type` value of the json")
    stem: str
    options: dict[str, str] = Field(description="letter -> option text, in json order")
    answer: str
    annotation: bool | None = None
    extra: dict[str, Any] = Field(default_factory=dict, description="unknown QA fields, kept for round trips")

    @model_validator(mode="before")
    @classmethod
    def _derive_uid(cls, data: Any) -> Any:
        # A question made without a content id (a reader, a test) gets the one its content gives.
        if isinstance(data, dict) and not data.get("uid"):
            try:
                uid = content_id(data["image"], data["type"], data["stem"], data["options"], data["answer"])
            except (KeyError, TypeError, AttributeError):
                return data  # pydantic names the missing or wrong field
            return {**data, "uid": uid}
        return data

    @property
    def subtask(self) -> Subtask | None:
        """The subtask, with Object Structure and Object Details merged as Object Analysis."""
        return RAW_TYPE_TO_SUBTASK.get(self.type)

    @property
    def dataset(self) -> str:
        """The source dataset (first path component of the image key)."""
        return dataset_of(self.image)

    @property
    def is_normal(self) -> bool:
        """Whether the image counts as normal for the official scorer."""
        return is_normal_key(self.image)


def question_id(key: str, index: int) -> str:
    """The record key of the index-th question of an image: its position, which changes when questions are removed."""
    return f"{key}#{index}"


CONTENT_ID_PREFIX = "q-"


def content_id(image: str, qtype: str, stem: str, options: Mapping[str, str], answer: str) -> str:
    """A question's content id: ``q-`` and 16 hex digits of the SHA-256 of its image, type, stem, options and answer.

    The ``q-`` prefix keeps spreadsheets from reading an id such as ``1234e567...`` as a number.
    The annotation flag is left out, so accepting a question in review does not change its id.
    """
    # Fields joined by ASCII separator characters, which no text of a benchmark holds.
    options_text = "\x1e".join(f"{letter}\x1f{text}" for letter, text in options.items())
    canonical = "\x1d".join((image, qtype, stem, options_text, answer))
    return CONTENT_ID_PREFIX + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


class ImageItem(BaseModel):
    """One query image and its questions."""

    key: str = Field(description="query-image path relative to the data root")
    mask_path: str = ""
    random_templates: list[str] = Field(default_factory=list)
    similar_templates: list[str] = Field(default_factory=list)
    questions: list[Question] = Field(default_factory=list)
    conversation_field: str = "conversation"
    extra: dict[str, Any] = Field(default_factory=dict, description="unknown record fields, kept")

    @property
    def dataset(self) -> str:
        """The source dataset."""
        return dataset_of(self.key)

    @property
    def parts(self) -> tuple[str, ...]:
        """The key's path components."""
        return tuple(self.key.split("/"))

    @property
    def category(self) -> str:
        """The product category (second path component)."""
        parts = self.parts
        return parts[1] if len(parts) > 1 else ""

    @property
    def split(self) -> str:
        """The split folder ('image' for DS-MVTec, 'test' elsewhere)."""
        parts = self.parts
        return parts[2] if len(parts) > 3 else ""

    @property
    def defect_type(self) -> str:
        """The defect folder, 'good' for normal images."""
        parts = self.parts
        return parts[-2] if len(parts) > 1 else ""

    @property
    def is_normal(self) -> bool:
        """Normal or abnormal, as the official scorer decides it: 'good' anywhere in the key."""
        return is_normal_key(self.key)

    @property
    def defect_free(self) -> bool:
        """Normal by the path itself: the defect folder is 'good'. Differs from `is_normal` only when
        'good' also occurs elsewhere in the key ('goods/...'), which the official scorer misreads."""
        return self.defect_type == NORMAL_FLAG

    def templates(self, k: int, *, similar: bool = False) -> list[str]:
        """The first k template paths, random or similar ones."""
        pool = self.similar_templates if similar else self.random_templates
        return pool[:k]


class Benchmark(BaseModel):
    """A whole benchmark: image items in file order, tied to the data root its paths resolve against."""

    items: list[ImageItem]
    root: Path = Field(description="the data root; image and template paths are relative to it")
    source: Path | None = Field(default=None, description="the json file it was read from")
    sha256: str = ""
    origin: str = Field(default="mmad.json", description="the shape it was read from: mmad.json, metadata.csv, QA.json")
    lacks: dict[str, str] = Field(
        default_factory=dict, description="what this shape does not carry (field -> why), for messages"
    )
    template_limit: dict[str, int] = Field(
        default_factory=dict,
        description="'random_templates'/'similar_templates' -> the most templates any image has, where capped",
    )
    _by_key: dict[str, ImageItem] | None = None

    @property
    def n_questions(self) -> int:
        """How many questions the benchmark holds."""
        return sum(len(item.questions) for item in self.items)

    def questions(self) -> Iterator[Question]:
        """Every question, in file order."""
        for item in self.items:
            yield from item.questions

    def item(self, key: str) -> ImageItem:
        """The image item of a key."""
        if self._by_key is None:
            self._by_key = {item.key: item for item in self.items}
        return self._by_key[key]

    def resolve(self, relative: str) -> Path:
        """An absolute path for a data-root-relative path; refuses paths that leave the root."""
        return resolve_inside(self.root, relative)

    def mask_file(self, item: ImageItem) -> Path | None:
        """The ground-truth mask of an item: a file, or a folder of masks (MVTec LOCO), or None.

        ``mask_path`` is relative to ``{dataset}/{category}/`` (as the InternVL script and
        third-party readers resolve it). ``generate_metadata.py`` prefixes one more component,
        the split; that is tried second. A LOCO mask may name a file whose stem is a folder.
        The published copies also spell DS-MVTec's colour-mask folder both ``rgb_mask`` and
        ``rbg_mask``, and hold GoodsAD masks as ``.png`` where a path may say ``.jpg``; both
        spellings are tried (see :meth:`locate_mask`). When nothing exists, the first candidate
        is returned (a path that does not exist), for messages.
        """
        if not item.mask_path:
            return None
        found = self.locate_mask(item)
        if found.path is not None:
            return found.path
        return self.resolve(f"{'/'.join(item.parts[:2])}/{item.mask_path}")

    def locate_mask(self, item: ImageItem) -> MaskLookup:
        """Find an item's mask and say which rule found it ('' = as written; None path = not found)."""
        if not item.mask_path:
            return MaskLookup(None, "")
        parts = item.parts
        bases = ["/".join(parts[:2]), "/".join(parts[:3])]
        for variant, how in mask_variants(item.mask_path):
            for depth, base in enumerate(bases):
                candidate = self.resolve(f"{base}/{variant}")
                rule = how or ("split folder" if depth else "")
                if candidate.exists():
                    return MaskLookup(candidate, rule)
                folder = candidate.with_suffix("")
                if folder.is_dir():
                    return MaskLookup(folder, rule)
        return MaskLookup(None, "missing")


class MaskLookup(NamedTuple):
    """Where a mask was found, and which rule found it."""

    path: Path | None
    how: str  # "" as written, "split folder", "rgb/rbg spelling", "png for jpg", "missing"


_RGB_RBG = re.compile(r"r(gb|bg)_mask")


def mask_variants(mask_path: str) -> list[tuple[str, str]]:
    """A mask path as written, then with DS-MVTec's other folder spelling, then as .png (GoodsAD)."""
    variants = [(mask_path, "")]
    swapped = _RGB_RBG.sub(lambda m: "rbg_mask" if m.group(1) == "gb" else "rgb_mask", mask_path)
    if swapped != mask_path:
        variants.append((swapped, "rgb/rbg spelling"))
    pure = PurePosixPath(mask_path)
    if pure.suffix.lower() in {".jpg", ".jpeg"}:
        variants.append((str(pure.with_suffix(".png")), "png for jpg"))
    return variants


def resolve_inside(root: Path, relative: str) -> Path:
    """Join a relative data path to root, refusing absolute paths and paths that leave root."""
    pure = PurePosixPath(relative)
    if pure.is_absolute() or relative.startswith("\\") or (len(relative) > 1 and relative[1] == ":"):
        msg = f"path {relative!r} is absolute; data paths must be relative to the data root {root}"
        raise UnsafePathError(msg)
    depth = 0
    for part in pure.parts:
        depth += -1 if part == ".." else (0 if part == "." else 1)
        if depth < 0:
            msg = f"path {relative!r} leaves the data root {root} through '..'; remove the '..' parts"
            raise UnsafePathError(msg)
    return root / pure
