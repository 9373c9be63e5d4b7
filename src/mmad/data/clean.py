"""Clean splits: the errata and exclusion filters that leave questions out of what is asked and scored.

``--errata keep`` (the default) asks and scores everything, as the official scripts do; ``drop``
leaves out what the shipped errata manifest names (mmad.data.errata). ``--exclude`` leaves out a
source dataset, a category, or the images a file lists: for a model trained on MMAD's sources, so
that its figures cover only what it cannot have seen. Both act on (image key, question type), so
one filter serves the selection of a run and the re-scoring of a run's records, and both are
recorded in the protocol card and counted per reason.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from mmad.data.errata import errata_of
from mmad.data.schema import Benchmark
from mmad.errors import ConfigError

ErrataMode = Literal["keep", "drop"]
ERRATA_MODES: tuple[ErrataMode, ...] = ("keep", "drop")
EXCLUDE_KINDS = ("dataset", "category", "images")
EXCLUDE_FORMS = (
    "dataset:NAME, category:NAME (or DATASET/CATEGORY), images:FILE (image keys, one a line, or a json list "
    "or mmad.json-shaped object), or a bare dataset or category name of the benchmark"
)


@dataclass(frozen=True)
class ExcludeRule:
    """One ``--exclude``: a dataset, a category (``name`` or ``dataset/name``), or a file's image keys."""

    kind: Literal["dataset", "category", "images"]
    value: str
    keys: frozenset[str] = frozenset()

    @property
    def label(self) -> str:
        """How the rule is named in counts, cards and marks; a file by its content, not its path."""
        if self.kind == "images":
            digest = hashlib.sha256("\n".join(sorted(self.keys)).encode()).hexdigest()[:12]
            return f"images:{digest} ({len(self.keys):,} keys)"
        return f"{self.kind}:{self.value}"

    def matches(self, image: str) -> bool:
        """Whether the rule leaves out this image key."""
        parts = image.split("/")
        if self.kind == "dataset":
            return parts[0] == self.value
        if self.kind == "category":
            category = parts[1] if len(parts) > 1 else ""
            return self.value in (category, f"{parts[0]}/{category}")
        return image in self.keys


def read_image_list(path: str | Path) -> frozenset[str]:
    """The image keys a file lists: one a line (``#`` comments), a json list, or a json object keyed by
    image (an mmad.json, or a training file in its shape)."""
    source = Path(path).expanduser()
    try:
        raw = source.read_bytes()
    except OSError as exc:
        msg = f"--exclude images:{path}: cannot read it ({exc.strerror}); give a file of image keys, one a line"
        raise ConfigError(msg) from exc
    # utf-8-sig: a BOM (Notepad writes one) would otherwise stick to the first key, which then matches nothing;
    # PowerShell's `>` writes UTF-16 with a BOM
    encoding = "utf-16" if raw.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8-sig"
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        msg = f"--exclude images:{path}: not a text file ({exc.reason} at byte {exc.start}); save it as UTF-8"
        raise ConfigError(msg) from exc
    stripped = text.lstrip()
    if stripped.startswith(("[", "{")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            msg = f"--exclude images:{path}: not valid json ({exc.msg}, line {exc.lineno}); or list one key a line"
            raise ConfigError(msg) from exc
        keys = list(data) if isinstance(data, dict) else data
        if not all(isinstance(k, str) for k in keys):
            msg = f"--exclude images:{path}: a json list must hold image keys (strings) only"
            raise ConfigError(msg)
    else:
        keys = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    found = frozenset(k.strip().removeprefix("./") for k in keys if k.strip())
    if not found:
        msg = f"--exclude images:{path}: the file lists no image key; list keys like DS-MVTec/pill/image/good/000.png"
        raise ConfigError(msg)
    return found


def parse_exclude(
    values: Iterable[str],
    *,
    datasets: Iterable[str] = (),
    categories: Iterable[str] = (),
    where: str = "this benchmark",
) -> list[ExcludeRule]:
    """``--exclude`` values as rules. A bare name is taken as a dataset or category of the benchmark
    (``datasets``, ``categories``: its known names); anything else must say which it is."""
    known_datasets = set(datasets)
    known_categories = set(categories)
    rules: list[ExcludeRule] = []
    for raw in values:
        text = raw.strip()
        kind, sep, value = text.partition(":")
        if sep and kind in EXCLUDE_KINDS:
            value = value.strip()
            if not value:
                msg = f"--exclude {raw!r}: nothing after '{kind}:'; use {EXCLUDE_FORMS}"
                raise ConfigError(msg)
            if kind == "images":
                rules.append(ExcludeRule("images", value, read_image_list(value)))
            else:
                rules.append(ExcludeRule("dataset" if kind == "dataset" else "category", value))
        elif text in known_datasets:
            rules.append(ExcludeRule("dataset", text))
        elif text in known_categories or _dataset_category(text, known_datasets, known_categories):
            rules.append(ExcludeRule("category", text))
        else:
            close = difflib.get_close_matches(text, sorted(known_datasets | known_categories), n=1, cutoff=0.6)
            close += [name for name in sorted(known_datasets | known_categories) if name.lower() == text.lower()]
            hint = f" (did you mean {close[-1]!r}?)" if close else ""
            msg = f"--exclude {raw!r}: not a dataset or category of {where}{hint}; use {EXCLUDE_FORMS}"
            raise ConfigError(msg)
    return rules


def _dataset_category(text: str, datasets: set[str], categories: set[str]) -> bool:
    """Whether a bare name is DATASET/CATEGORY of known names (DS-MVTec/pill), the category form the docs give."""
    dataset, slash, category = text.partition("/")
    return bool(slash) and dataset in datasets and category in categories


@dataclass
class DropCounts:
    """What a filter left out, per reason: questions, and the images it took questions from."""

    questions: Counter[str] = field(default_factory=Counter)
    images: dict[str, set[str]] = field(default_factory=dict)
    whole_images: set[str] = field(default_factory=set)
    """Images every question of which was left out (so the image is not asked at all)."""

    def add(self, reason: str, image: str) -> None:
        """Count one question left out for ``reason``."""
        self.questions[reason] += 1
        self.images.setdefault(reason, set()).add(image)

    def merge(self, other: DropCounts) -> None:
        """Add another filtering's counts (one image's, as the selection goes) to these."""
        self.questions.update(other.questions)
        for reason, images in other.images.items():
            self.images.setdefault(reason, set()).update(images)
        self.whole_images |= other.whole_images

    @property
    def total_questions(self) -> int:
        """Questions left out, all reasons together."""
        return sum(self.questions.values())

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready summary: per reason, questions and images; and the totals."""
        return {
            "questions": self.total_questions,
            "images_left_out": len(self.whole_images),
            "by_reason": {
                reason: {"questions": self.questions[reason], "images": len(self.images[reason])}
                for reason in self.questions
            },
        }

    def describe(self) -> str:
        """One line: how many questions left out, and why."""
        if not self.questions:
            return "no question left out"
        parts = [
            f"{reason}: {_count(self.questions[reason], 'question')} on {_count(len(self.images[reason]), 'image')}"
            for reason in self.questions
        ]
        return f"{_count(self.total_questions, 'question')} left out ({'; '.join(parts)})"


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


@dataclass(frozen=True)
class CleanSplit:
    """The errata mode and exclusion rules of a run (or a re-scoring)."""

    errata: ErrataMode = "keep"
    exclude: tuple[ExcludeRule, ...] = ()

    def __post_init__(self) -> None:
        if self.errata not in ERRATA_MODES:
            msg = f"--errata {self.errata!r}: choose keep (ask and score everything, as published) or drop"
            raise ConfigError(msg)

    @property
    def active(self) -> bool:
        """Whether the filter leaves anything out at all."""
        return self.errata == "drop" or bool(self.exclude)

    def reason(self, image: str, question_type: str) -> str | None:
        """Why a question is left out (the first reason that applies), or None when it is kept."""
        if self.errata == "drop":
            found = errata_of(image, question_type)
            if found:
                return f"erratum:{found[0].id}"
        for rule in self.exclude:
            if rule.matches(image):
                return f"exclude {rule.label}"
        return None

    def card(self) -> dict[str, Any]:
        """The protocol card's fields: only what differs from the official behaviour, so that the cards of
        runs without a filter keep their hash."""
        out: dict[str, Any] = {}
        if self.errata == "drop":
            out["errata"] = "drop"
        if self.exclude:
            out["exclude"] = [rule.label for rule in self.exclude]
        return out

    def marks(self) -> list[str]:
        """What a leaderboard says of a run under this filter."""
        marks = []
        if self.errata == "drop":
            marks.append("errata dropped (--errata drop): not the official question set")
        if self.exclude:
            marks.append("excluded " + ", ".join(rule.label for rule in self.exclude) + " (--exclude)")
        return marks


def filter_pairs(split: CleanSplit, pairs: Sequence[tuple[str, str]]) -> tuple[list[bool], DropCounts]:
    """For (image key, question type) pairs: which are kept, and the counts of those left out."""
    counts = DropCounts()
    kept: list[bool] = []
    per_image: dict[str, list[bool]] = {}
    for image, question_type in pairs:
        why = split.reason(image, question_type) if split.active else None
        if why is not None:
            counts.add(why, image)
        kept.append(why is None)
        per_image.setdefault(image, []).append(why is None)
    counts.whole_images = {image for image, flags in per_image.items() if not any(flags)}
    return kept, counts


def clean_split_of(
    errata: str,
    exclude: Sequence[str],
    *,
    datasets: Iterable[str] = (),
    categories: Iterable[str] = (),
    where: str = "this benchmark",
) -> CleanSplit:
    """A CleanSplit from the settings (``errata``, ``exclude`` as given on the command line)."""
    if errata not in ERRATA_MODES:
        msg = f"--errata {errata!r}: choose keep (ask and score everything, as published) or drop"
        raise ConfigError(msg)
    parsed = parse_exclude(exclude, datasets=datasets, categories=categories, where=where)
    # one rule per label, in label order: the same rules in another order or repeated are the same split, so they
    # must give the same card (and hash) and count a question under the same reason
    rules = tuple(sorted({rule.label: rule for rule in parsed}.values(), key=lambda rule: rule.label))
    return CleanSplit(errata, rules)


def benchmark_split(errata: str, exclude: Sequence[str], benchmark: Benchmark) -> CleanSplit:
    """The filter of a run over ``benchmark``: bare ``--exclude`` names are read as its datasets or categories,
    and a dataset or category it does not have is refused (a typo would leave nothing out, silently)."""
    split = split_for_images(errata, exclude, [item.key for item in benchmark.items], "this benchmark")
    if split.errata == "drop" and not any(
        errata_of(q.image, q.type) for item in benchmark.items for q in item.questions
    ):
        # errata that name none of its questions (a benchmark of one's own, a corrected copy) leave nothing out: the
        # run asks what keep asks, so it must keep that card, not be marked as a question set of its own
        split = replace(split, errata="keep")
    return split


def split_for_images(errata: str, exclude: Sequence[str], images: Iterable[str], where: str) -> CleanSplit:
    """The filter over the given image keys (a benchmark's, or the answers of a run being re-scored): bare
    ``--exclude`` names are read as their datasets or categories, and a rule that matches none is refused."""
    keys = set(images)
    datasets = {key.split("/", 1)[0] for key in keys}
    categories = {parts[1] for parts in (key.split("/") for key in keys) if len(parts) > 1}
    split = clean_split_of(errata, exclude, datasets=datasets, categories=categories, where=where)
    for rule in split.exclude:
        if rule.kind == "images" and not rule.keys & keys:
            msg = (
                f"--exclude images:{rule.value}: none of its {len(rule.keys):,} keys is an image of {where} "
                "(keys look like DS-MVTec/pill/image/good/000.png)"
            )
            raise ConfigError(msg)
        if rule.kind != "images" and not any(rule.matches(key) for key in keys):
            names = sorted(datasets) if rule.kind == "dataset" else sorted(categories)
            plural = "datasets" if rule.kind == "dataset" else "categories"
            msg = f"--exclude {rule.label}: no image of {where} is in it; its {plural}: {', '.join(names)}"
            raise ConfigError(msg)
    return split


def partly_matched(split: CleanSplit, images: Iterable[str], where: str, shown: int = 3) -> list[str]:
    """A line for each ``images:FILE`` rule only some of whose keys are images of ``where``: how many matched, and
    a few that did not (a typo, another benchmark's keys, a path from another root). A rule none of whose keys
    match is refused by `split_for_images`; one whose keys all match says nothing."""
    keys = set(images)
    lines = []
    for rule in split.exclude:
        if rule.kind != "images":
            continue
        missing = sorted(rule.keys - keys)
        if not missing or len(missing) == len(rule.keys):
            continue
        few = ", ".join(missing[:shown]) + (", ..." if len(missing) > shown else "")
        lines.append(
            f"--exclude images:{rule.value}: {len(rule.keys) - len(missing):,} of its {len(rule.keys):,} keys are "
            f"images of {where}; {len(missing):,} match none and leave nothing out ({few}); keys look like "
            "DS-MVTec/pill/image/good/000.png"
        )
    return lines


def split_change(card: Mapping[str, Any] | None, split: CleanSplit, benchmark: Benchmark) -> str | None:
    """Why ``split`` would not select what a run's protocol card recorded (a listed file edited since, errata
    shipped with another mmad), or None. A run file names an images file, not its keys: a resume reads it again."""
    recorded = (card or {}).get("clean_split") or {}
    was = [label for label in recorded.get("exclude", []) if str(label).startswith("images:")]
    for rule in split.exclude:
        if rule.kind == "images" and rule.label not in was:
            gone = [label for label in was if label not in {r.label for r in split.exclude}]
            then = f"then {', '.join(gone)}, " if gone else ""
            return f"--exclude images:{rule.value} changed since the run started ({then}now {rule.label})"
    then_n = int((recorded.get("left_out") or {}).get("questions", 0))
    now_n = benchmark_counts(split, benchmark).total_questions if split.active else 0
    if then_n != now_n:
        return (
            f"--errata drop / --exclude leave out {now_n:,} questions now, {then_n:,} when the run started "
            "(the errata shipped with this mmad, or a listed file, changed)"
        )
    return None


def benchmark_counts(split: CleanSplit, benchmark: Benchmark) -> DropCounts:
    """What the filter leaves out of the whole benchmark, per reason."""
    pairs = [(q.image, q.type) for item in benchmark.items for q in item.questions]
    return filter_pairs(split, pairs)[1]


def exclude_paths_from(values: Sequence[str], folder: Path) -> list[str]:
    """--exclude rules with an images file named relative to ``folder`` made absolute: a run file's folder, or
    the current one when a run starts, so that a resume from another folder reads the same file."""
    out = []
    for value in values:
        kind, sep, rest = value.partition(":")
        name = rest.strip()
        if sep and kind == "images" and name:
            path = Path(name).expanduser()
            value = f"images:{path if path.is_absolute() else (folder / path).resolve()}"
        out.append(value)
    return out
