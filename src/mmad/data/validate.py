"""Check a benchmark and its files; every problem names its record and what to do."""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel

from mmad.data.errata import item_errata, question_errata
from mmad.data.formats import MMAD_JSON, detect_format
from mmad.data.imagefile import image_problem, path_problem
from mmad.data.official import find_benchmark_json, load_benchmark, parse_benchmark, read_json
from mmad.data.schema import LETTERS, Benchmark, ImageItem, Question, Subtask, resolve_inside
from mmad.errors import UnsafePathError

logger = logging.getLogger(__name__)


class Severity(StrEnum):
    """How bad a problem is: errors make `mmad validate` exit non-zero."""

    ERROR = "error"
    WARNING = "warning"


class Problem(BaseModel):
    """One thing wrong with the data."""

    severity: Severity
    code: str
    key: str
    question: int | None = None
    message: str
    fix: str
    path: str | None = None  # the data-root-relative file concerned, when there is one
    file: str | None = None  # the benchmark file the record is in (mmad.json), for messages

    def __str__(self) -> str:
        where = self.key if self.question is None else f"{self.key}#{self.question}"
        if self.file:
            where = f"{self.file}: {where}"
        return f"{self.severity.value}: [{self.code}] {where}: {self.message}. {self.fix}"


class ValidationReport(BaseModel):
    """Everything `validate` found."""

    source: str
    sha256: str
    n_images: int
    n_questions: int
    problems: list[Problem]

    @property
    def n_errors(self) -> int:
        """How many problems are errors."""
        return sum(p.severity is Severity.ERROR for p in self.problems)

    @property
    def ok(self) -> bool:
        """True when no problem is an error."""
        return self.n_errors == 0


EXPECTED_OPTIONS = {Subtask.ANOMALY_DISCRIMINATION: 2}
DEFAULT_EXPECTED_OPTIONS = 4
ProgressHook = Callable[[int], None]
"""Called with the number of image items checked so far."""
TotalHook = Callable[[int], None]
"""Called once, before the first item is checked, with how many image items there are to check: a progress
display can then say how far it is and how long is left (a plain count said neither)."""


def _check_file(
    benchmark: Benchmark, relative: str, what: str, key: str, problems: list[Problem], *, open_image: bool
) -> None:
    code = what.replace(" ", "-")

    def add(code: str, message: str, fix: str, path: str | None = relative) -> None:
        problems.append(Problem(severity=Severity.ERROR, code=code, key=key, message=message, fix=fix, path=path))

    try:
        path = resolve_inside(benchmark.root, relative)
    except UnsafePathError as exc:
        problems.append(_unsafe_path(key, what, exc))
        return
    try:
        if not path.exists():
            add(
                f"missing-{code}",
                f"{what} {relative} does not exist under {benchmark.root}",
                "Re-download or re-extract the image archives, or fix the path in the json.",
            )
            return
        wrong = path_problem(path) or (image_problem(path) if open_image else None)
    except (OSError, ValueError) as exc:  # a name the file system refuses: too long, a NUL byte, ...
        add(f"unreadable-{code}", f"{what} path {relative!r} cannot be looked up ({exc})", "Fix the path.")
        return
    if wrong is None:
        return
    fixes = {
        "not-a-file": f"Point the path at the {what} file itself.",
        "too-large": "Replace it with the intended image; MMAD's images are at most a few megapixels.",
    }
    codes = {"not-a-file": f"{code}-not-a-file", "too-large": f"{code}-too-large", "empty": f"empty-{code}"}
    add(
        codes.get(wrong.code, f"unreadable-{code}"),
        f"{what} {relative} {wrong.message}",
        fixes.get(wrong.code, _REPLACE),
    )


_REPLACE = "Replace the file with an intact copy."


FileFindings = dict[tuple[str, str], list[Problem]]


def check_item(
    benchmark: Benchmark,
    item: ImageItem,
    *,
    check_files: bool,
    open_images: bool,
    checked: FileFindings | None = None,
) -> list[Problem]:
    """The problems of one image item.

    ``checked`` keeps each file's findings across items: MMAD's items share their templates (a few
    normal images per category), and a file is opened and decoded once however many items name it.
    """
    problems: list[Problem] = []
    key = item.key
    for erratum in item_errata(item):
        problems.append(
            Problem(
                severity=Severity.WARNING,
                code=erratum.code,
                key=key,
                message=erratum.message,
                fix=erratum.source,
            )
        )
    paths = [
        (key, "image"),
        *((t, "template") for t in dict.fromkeys(item.random_templates + item.similar_templates)),
    ]
    unsafe_key = False
    for relative, what in paths:
        found: list[Problem] = []
        if check_files and checked is not None and (relative, what) in checked:
            found = [p.model_copy(update={"key": key}) for p in checked[(relative, what)]]
        elif check_files:
            _check_file(benchmark, relative, what, key, found, open_image=open_images)
            if checked is not None:
                checked[(relative, what)] = found
        else:
            try:
                resolve_inside(benchmark.root, relative)
            except UnsafePathError as exc:
                found.append(_unsafe_path(key, what, exc))
        problems.extend(found)
        unsafe_key = unsafe_key or (relative == key and any(p.code == "unsafe-path" for p in found))
    # The mask is looked up beside the image: under an unsafe key that is the record's fault, reported as the image's.
    if item.mask_path and not unsafe_key:
        try:
            mask = benchmark.mask_file(item)
            if check_files:
                problems.extend(_mask_problems(item, mask, open_images=open_images))
        except UnsafePathError as exc:
            problems.append(
                Problem(
                    severity=Severity.ERROR,
                    code="unsafe-path",
                    key=key,
                    message=f"mask_path {item.mask_path!r}: {exc}",
                    fix="Fix mask_path: it is relative to the image's <dataset>/<category>/ folder.",
                )
            )
        except (OSError, ValueError) as exc:  # a name the file system refuses: too long, a NUL byte, ...
            problems.append(
                Problem(
                    severity=Severity.ERROR,
                    code="unreadable-mask",
                    key=key,
                    message=f"mask_path {item.mask_path!r} cannot be looked up ({exc})",
                    fix="Fix the path.",
                )
            )
    elif not item.defect_free and item.questions:
        problems.append(
            Problem(
                severity=Severity.WARNING,
                code="no-mask",
                key=key,
                message="abnormal image without mask_path",
                fix="Add the mask path if one exists; the agent's ground-truth oracle needs it.",
            )
        )
    if item.is_normal != item.defect_free:
        reading = "normal" if item.is_normal else "defective"
        problems.append(
            Problem(
                severity=Severity.WARNING,
                code="scorer-misreads-key",
                key=key,
                message=f"the image lies in {item.defect_type}/ but MMAD's scorer reads it as {reading}: it calls an "
                "image normal when 'good' occurs anywhere in its key",
                fix="Rename the dataset, category or file so that 'good' (lower case) appears only as the normal "
                "folder; `mmad build` writes such names with a capital G.",
            )
        )
    if not item.questions:
        problems.append(
            Problem(
                severity=Severity.ERROR,
                code="no-questions",
                key=key,
                message=f"'{item.conversation_field}' holds no questions",
                fix="Add the image's questions, or remove the record.",
            )
        )
    if benchmark.origin == MMAD_JSON and not item.random_templates and item.questions:
        problems.append(
            Problem(
                severity=Severity.WARNING,
                code="no-templates",
                key=key,
                message="the record lists no random_templates",
                fix="k-shot runs (MMAD's default is 1-shot) record its questions as failed; 0-shot runs need none.",
            )
        )
    for question in item.questions:
        problems.extend(check_question(key, question))
    return problems


def _built_by_mmad(item: ImageItem) -> bool:
    return any("mmad_source" in q.extra for q in item.questions)


def _unsafe_path(key: str, what: str, exc: UnsafePathError) -> Problem:
    return Problem(severity=Severity.ERROR, code="unsafe-path", key=key, message=f"{what} {exc}", fix="Fix the path.")


def _mask_problems(item: ImageItem, mask: Path | None, *, open_images: bool = False) -> list[Problem]:
    """A mask_path must name a file; MMAD's own LOCO records may name a folder of instance masks instead.

    `Benchmark.mask_file` accepts ``<stem>/`` for ``<stem>.png`` as MMAD's GT agent does
    (``SoftPatch/call.py``). For MMAD's data that is a warning (readers that open mask_path as a
    file fail on it); a benchmark mmad built always writes one file, so there it is an error.
    """
    where = f"{item.dataset}/{item.category}/"
    if mask is None or not mask.exists():
        return [
            Problem(
                severity=Severity.ERROR,
                code="missing-mask",
                key=item.key,
                message=f"mask {item.mask_path} (relative to {where}) does not exist",
                fix="Re-extract the dataset archive that holds the masks, or fix mask_path.",
            )
        ]
    if mask.is_file():
        wrong = image_problem(mask) if open_images else None
        if wrong is None:
            return []
        return [
            Problem(
                severity=Severity.ERROR,
                code="unreadable-mask",
                key=item.key,
                message=f"mask {item.mask_path} (relative to {where}) {wrong.message}",
                fix=_REPLACE,
            )
        ]
    instances = [p for p in mask.iterdir() if p.is_file() and p.suffix.lower() in {".png", ".jpg", ".bmp", ".tif"}]
    if not instances:
        return [
            Problem(
                severity=Severity.ERROR,
                code="missing-mask",
                key=item.key,
                message=f"mask {item.mask_path} (relative to {where}) does not exist and its folder {mask.name}/ "
                "holds no mask images",
                fix="Re-extract the dataset archive that holds the masks, or fix mask_path.",
            )
        ]
    built = _built_by_mmad(item)
    return [
        Problem(
            severity=Severity.ERROR if built else Severity.WARNING,
            code="mask-not-a-file",
            key=item.key,
            message=f"mask_path {item.mask_path} (relative to {where}) does not exist as a file; only the folder "
            f"{mask.name}/ of {len(instances)} instance mask(s) does, which readers that open mask_path fail on",
            fix="Rebuild with `mmad build` (it writes the union of instance masks as one file)"
            if built
            else "MMAD's GT agent reads the folder; write the union of its masks to mask_path for other readers.",
        )
    ]


def check_question(key: str, question: Question) -> list[Problem]:
    """The problems of one question."""
    index = question.index
    problems: list[Problem] = []

    def add(severity: Severity, code: str, message: str, fix: str) -> None:
        problems.append(Problem(severity=severity, code=code, key=key, question=index, message=message, fix=fix))

    subtask = question.subtask
    if subtask is None:
        add(
            Severity.ERROR,
            "unknown-type",
            f"type {question.type!r} is not one of MMAD's eight types",
            "Use one of: Anomaly Detection, Defect Classification, Defect Localization, Defect Description, "
            "Defect Analysis, Object Classification, Object Structure, Object Details.",
        )
    letters = list(question.options)
    if any(letter not in LETTERS for letter in letters) or letters != list(LETTERS[: len(letters)]):
        add(
            Severity.ERROR,
            "bad-option-letters",
            f"option letters {letters} are not A, B, C, ... in order",
            "Letter the options A, B, C, ... in order.",
        )
    n = len(letters)
    if n < 2 or n > len(LETTERS):
        add(
            Severity.ERROR,
            "wrong-option-count",
            f"{n} options; a question needs 2 to 5",
            "Give the question between 2 and 5 options.",
        )
    elif subtask is not None:
        expected = EXPECTED_OPTIONS.get(subtask, DEFAULT_EXPECTED_OPTIONS)
        if n != expected:
            add(
                Severity.WARNING,
                "unusual-option-count",
                f"{n} options where MMAD's {subtask.value} has {expected}",
                "Check the question; scores stay comparable only with MMAD's option counts.",
            )
    if question.answer not in question.options:
        add(
            Severity.ERROR,
            "answer-not-an-option",
            f"answer {question.answer!r} is not among the options {letters}",
            "Set Answer to the letter of the correct option.",
        )
    if "annotation" in question.extra:
        value = question.extra["annotation"]
        add(
            Severity.ERROR,
            "bad-annotation",
            f"annotation is {value!r}, not true or false",
            "Write annotation as true or false, or remove it.",
        )
    if not question.stem.strip():
        add(Severity.ERROR, "empty-question", "the question text is empty", "Write the question.")
    empty = [letter for letter, text in question.options.items() if not text.strip()]
    if empty:
        add(
            Severity.ERROR,
            "empty-option",
            f"option {', '.join(empty)} has no text",
            "Write every option's text, or remove the option and re-letter the rest.",
        )
    seen: dict[str, str] = {}
    for letter, text in question.options.items():
        norm = " ".join(text.split()).lower()
        if norm and norm in seen:
            add(
                Severity.ERROR,
                "duplicate-options",
                f"options {seen[norm]} and {letter} have the same text {text.strip()!r}; a model cannot choose "
                "between them",
                "Make the options distinct.",
            )
        seen.setdefault(norm, letter)
    for erratum in question_errata(question):
        add(Severity.WARNING, erratum.code, erratum.message, erratum.source)
    return problems


def _load_for_validation(data: Path, root: Path | None, problems: list[Problem]) -> Benchmark:
    """Load any shape; for mmad.json also find duplicate keys and records that do not parse."""
    if detect_format(data) != MMAD_JSON:
        benchmark = load_benchmark(data, root=root)
        for field, why in benchmark.lacks.items():
            problems.append(
                Problem(
                    severity=Severity.WARNING,
                    code="shape-lacks",
                    key=str(benchmark.source),
                    message=f"{field}: {why}",
                    fix="Protocols that need it are refused before a run; mmad.json has everything (`mmad download`).",
                )
            )
        return benchmark
    json_path = find_benchmark_json(data)
    raw, digest = read_json(json_path)
    if isinstance(raw, dict):
        from mmad.data.structure import duplicate_fields

        problems.extend(duplicate_fields(json_path))
        if not raw:
            problems.append(
                Problem(
                    severity=Severity.ERROR,
                    code="no-images",
                    key=str(json_path),
                    message="the json is an empty object: it holds no image records",
                    fix="Give the benchmark json that holds the questions (`mmad download`, or `mmad build`).",
                )
            )

    def on_issue(key: str, problem: str, fix: str) -> None:
        problems.append(Problem(severity=Severity.ERROR, code="bad-record", key=key, message=problem, fix=fix))

    return parse_benchmark(raw, root=root or json_path.parent, source=json_path, sha256=digest, on_issue=on_issue)


def validate(
    data: str | Path,
    *,
    root: str | Path | None = None,
    check_files: bool = True,
    open_images: bool = True,
    progress: ProgressHook | None = None,
    on_total: TotalHook | None = None,
) -> ValidationReport:
    """Check a benchmark and the files it names, then sum up the known gaps of the published copies.

    Args:
        data: the data root, or the file (mmad.json, metadata.csv), or a tree of QA.json files.
        root: the folder paths are relative to; defaults to the file's folder.
        check_files: whether to look for images, templates and masks on disk.
        open_images: whether to read each image's header (catches truncated or non-image files).
        progress: called with the number of items checked so far.
        on_total: called once, before `progress`, with the number of items to check (known once the file is read).
    """
    from mmad.data.gaps import known_gaps
    from mmad.data.structure import duplicate_ids

    problems: list[Problem] = []
    benchmark = _load_for_validation(Path(data), Path(root) if root else None, problems)
    checked: FileFindings = {}
    if on_total is not None:
        on_total(len(benchmark.items))
    for done, item in enumerate(benchmark.items, start=1):
        problems.extend(check_item(benchmark, item, check_files=check_files, open_images=open_images, checked=checked))
        if progress is not None:
            progress(done)
    problems.extend(duplicate_ids(benchmark))
    source = str(benchmark.source or data)
    for problem in problems:
        if problem.file is None and problem.key != source:
            problem.file = source
    problems.extend(known_gaps(benchmark, problems, check_files=check_files))
    problems.sort(key=lambda p: p.severity is not Severity.ERROR)  # errors first, each kind in file order
    report = ValidationReport(
        source=source,
        sha256=benchmark.sha256,
        n_images=len(benchmark.items),
        n_questions=benchmark.n_questions,
        problems=problems,
    )
    logger.info("validated %s: %d errors, %d problems", source, report.n_errors, len(problems))
    return report
