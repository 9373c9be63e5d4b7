"""Human review of a benchmark's questions: export a CSV and a page, import the verdicts (mmad-protocol.md §F).

`export_review` writes ``review.csv`` (one row per question; fill ``verdict`` with accept or
reject) and ``review.html`` (each image with its questions; everything a model wrote is escaped).
`import_review` applies the verdicts: rejected questions are removed (an image left without any
is removed with them), accepted ones get ``annotation: true``.

Rows name questions by content id (``Question.uid``, recorded as each question's ``id``), not by
position, so a verdict reaches the question it was written for even after other questions were
removed. The import changes nothing unless the whole CSV is well formed and every verdict names
a question of this benchmark; it then keeps the previous json as ``mmad.json.bak-<time>``,
writes the new one atomically, and appends each change to ``mmad.json.review-log.jsonl``. A
verdict for a question an earlier import removed is found in that log and reported, not applied.
"""

from __future__ import annotations

import csv
import html
import io
import json
import logging
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from mmad._io import atomic_write_bytes, atomic_write_text, sha256_bytes
from mmad.builder.verdicts import ACCEPT, MAX_LISTED, REJECT, Verdict, read_verdicts
from mmad.data.formats import MMAD_JSON
from mmad.data.official import load_benchmark, write_benchmark
from mmad.data.schema import Benchmark, ImageItem, Question, question_id
from mmad.errors import AnswersFormatError, BenchmarkFormatError, ConfigError, DataError

logger = logging.getLogger(__name__)

REVIEW_COLUMNS = (
    "id",
    "image",
    "type",
    "question",
    "A",
    "B",
    "C",
    "D",
    "E",
    "answer",
    "generator",
    "verdict",
    "note",
)
OUTPUTS = ("review.csv", "review.html")
# A cell starting with one of these is a formula to a spreadsheet; model-written text is defused with a quote.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_POSITION_ID = re.compile(r"^.+#\d+$")


def _cell(text: str) -> str:
    return "'" + text if text.startswith(_FORMULA_START) else text


def export_review(
    benchmark_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    only_unreviewed: bool = True,
    overwrite: bool = False,
) -> tuple[Path, Path]:
    """Write review.csv (fill the verdict column: accept or reject) and review.html into the folder out.

    Refuses (ConfigError) to replace a review.csv or review.html already there, which may hold a
    reviewer's work, unless overwrite is given.
    """
    benchmark = load_benchmark(benchmark_path)
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        msg = f"--out {folder} is a file; give a folder for review.csv and review.html"
        raise ConfigError(msg)
    taken = [name for name in OUTPUTS if (folder / name).exists()]
    if taken and not overwrite:
        msg = (
            f"{folder / taken[0]} already exists and may hold verdicts; nothing was written. "
            "Import it first, choose another --out, or pass --overwrite"
        )
        raise ConfigError(msg)
    rows, sections = [], []
    for item in benchmark.items:
        questions = [q for q in item.questions if not (only_unreviewed and q.annotation)]
        if not questions:
            continue
        rows += [_row(q) for q in questions]
        sections.append(_section(benchmark, item, questions, folder))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=REVIEW_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    csv_path, html_path = folder / "review.csv", folder / "review.html"
    try:
        atomic_write_text(csv_path, buffer.getvalue())
        atomic_write_text(html_path, _page(rows, sections))
    except OSError as exc:
        msg = f"cannot write {exc.filename or folder}: {exc.strerror or exc}; choose another --out"
        raise ConfigError(msg) from exc
    logger.info("exported %d questions for review to %s", len(rows), folder)
    return csv_path, html_path


def _page(rows: list[dict[str, str]], sections: list[str]) -> str:
    return (
        '<!doctype html><html><head><meta charset="utf-8"><title>mmad review</title><style>'
        "body{font-family:sans-serif;margin:2em}section{display:flex;gap:1.5em;border-top:1px solid #ccc;"
        "padding:1em 0}img{max-width:320px;height:auto}.gold{font-weight:bold;color:#1a7f37}"
        ".caption{color:#555}</style></head><body>"
        f"<h1>Review: {len(rows)} questions</h1><p>Fill the <code>verdict</code> column of review.csv with "
        "<code>accept</code> or <code>reject</code>, then run <code>mmad review import</code>. The gold answer "
        f"is in bold.</p>{''.join(sections)}</body></html>"
    )


def _row(q: Question) -> dict[str, str]:
    source = q.extra.get("mmad_source", {})
    return {
        "id": q.uid,
        "image": q.image,
        "type": q.type,
        "question": _cell(q.stem),
        **{k: _cell(q.options.get(k, "")) for k in "ABCDE"},
        "answer": q.answer,
        "generator": str(source.get("generator", "")) if isinstance(source, dict) else "",
        "verdict": "",
        "note": "",
    }


def _section(benchmark: Benchmark, item: ImageItem, questions: list[Question], folder: Path) -> str:
    image_url = os.path.relpath(benchmark.resolve(item.key), folder.resolve())
    caption = str(item.extra.get("caption", ""))
    blocks = []
    gold = ' class="gold"'
    for q in questions:
        options = "".join(
            f"<li{gold if k == q.answer else ''}>{html.escape(k)}. {html.escape(v)}</li>" for k, v in q.options.items()
        )
        blocks.append(
            f'<div class="q"><code>{html.escape(q.uid)}</code> <b>{html.escape(q.type)}</b>'
            f"<p>{html.escape(q.stem)}</p><ol>{options}</ol></div>"
        )
    return (
        f'<section><img src="{html.escape(image_url)}" alt="{html.escape(item.key)}">'
        f'<div><h2>{html.escape(item.key)}</h2><p class="caption">{html.escape(caption)}</p>'
        f"{''.join(blocks)}</div></section>"
    )


@dataclass(frozen=True)
class ReviewChange:
    """One question removed or accepted."""

    action: str  # "removed" or "accepted"
    uid: str
    image: str
    type: str
    stem: str
    line: int  # the CSV line of the verdict


@dataclass
class ReviewResult:
    """What importing verdicts did (or, in a dry run, would do)."""

    changes: list[ReviewChange] = field(default_factory=list)
    unchanged: int = 0  # accepted again: the question was accepted already
    pending: int = 0  # rows without a verdict
    already_removed: list[Verdict] = field(default_factory=list)  # found in the review log
    skipped: list[Verdict] = field(default_factory=list)  # not in the benchmark, passed over (ignore_missing)
    images_removed: list[str] = field(default_factory=list)
    backup: Path | None = None
    log: Path | None = None
    written: bool = False

    @property
    def accepted(self) -> int:
        """Questions newly accepted."""
        return sum(change.action == "accepted" for change in self.changes)

    @property
    def rejected(self) -> int:
        """Questions removed."""
        return sum(change.action == "removed" for change in self.changes)


def review_log_path(json_path: Path) -> Path:
    """Where the changes of every import are logged: beside the json."""
    return json_path.with_name(json_path.name + ".review-log.jsonl")


def _removed_before(log: Path) -> dict[str, str]:
    """Content id -> when an earlier import removed it, from the review log (unreadable lines are skipped)."""
    removed: dict[str, str] = {}
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return removed
    except OSError as exc:
        logger.warning("cannot read the review log %s (%s); verdicts for removed questions count as unknown", log, exc)
        return removed
    for line in lines:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and entry.get("action") == "removed" and isinstance(entry.get("id"), str):
            removed[entry["id"]] = str(entry.get("time", "earlier"))
    return removed


def _refuse(path: Path, problems: list[str], hint: str) -> AnswersFormatError:
    more = f"; and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
    return AnswersFormatError(f"{path}: {'; '.join(problems[:MAX_LISTED])}{more}. {hint}; nothing was changed")


def _match(
    benchmark: Benchmark, verdicts: list[Verdict], path: Path, log: Path, *, ignore_missing: bool
) -> tuple[dict[str, Verdict], ReviewResult]:
    """The verdicts by content id of the questions they reach; refuses rows that reach none, or two."""
    places: dict[str, list[Question]] = {}
    for question in benchmark.questions():
        places.setdefault(question.uid, []).append(question)
    result = ReviewResult(pending=sum(not v.verdict for v in verdicts))
    removed = _removed_before(log)
    decided: dict[str, Verdict] = {}
    problems: list[str] = []
    unknown: list[Verdict] = []
    seen: set[str] = set()
    for verdict in verdicts:
        if not verdict.verdict or verdict.uid in seen:
            continue  # a repeated row: read_verdicts refused repeats that disagree
        seen.add(verdict.uid)
        found = places.get(verdict.uid, [])
        if len(found) > 1:
            where = ", ".join(q.id for q in found)
            problems.append(f"{verdict.describe()} names {len(found)} questions ({where}); run `mmad validate`")
        elif found and verdict.image and verdict.image != found[0].image:
            problems.append(f"{verdict.describe()} is a question of {found[0].image} in this benchmark")
        elif found:
            decided[verdict.uid] = verdict
        elif verdict.uid in removed:
            result.already_removed.append(verdict)
        else:
            unknown.append(verdict)
    if problems:
        raise _refuse(path, problems, "Fix those rows")
    if unknown and not ignore_missing:
        positional = any(_POSITION_ID.match(v.uid) for v in unknown)
        hint = (
            "Those ids are positions (image#n), written by an mmad before content ids; export the review again "
            "with `mmad review export` and copy the verdicts over"
            if positional
            else "Was the CSV exported from another benchmark, or were those questions edited or removed since? "
            "Pass --ignore-missing to apply the other verdicts"
        )
        listed = [f"{v.describe()} is not a question of {benchmark.source}" for v in unknown]
        raise _refuse(path, [f"{len(unknown)} verdict(s) name no question of this benchmark", *listed], hint)
    result.skipped = unknown
    return decided, result


def import_review(
    benchmark_path: str | os.PathLike[str],
    verdicts: str | os.PathLike[str],
    *,
    dry_run: bool = False,
    ignore_missing: bool = False,
) -> ReviewResult:
    """Apply accept/reject verdicts by content id; the json is rewritten atomically after a backup, or not at all.

    Args:
        benchmark_path: the benchmark folder or its mmad.json.
        verdicts: the filled-in review CSV.
        dry_run: say what would change, change nothing.
        ignore_missing: pass over verdicts whose question is not in the benchmark (and say so) instead of refusing.
    """
    benchmark = load_benchmark(benchmark_path)
    source = benchmark.source
    if benchmark.origin != MMAD_JSON or source is None or not source.is_file():
        msg = f"{benchmark_path} is {benchmark.origin}; review import rewrites a benchmark json (mmad.json)"
        raise BenchmarkFormatError(msg)
    csv_path = Path(verdicts)
    log = review_log_path(source)
    decided, result = _match(benchmark, read_verdicts(csv_path), csv_path, log, ignore_missing=ignore_missing)
    kept_items = []
    for item in benchmark.items:
        kept = []
        for question in item.questions:
            verdict = decided.get(question.uid)
            if verdict is not None and verdict.verdict == REJECT:
                result.changes.append(_change("removed", question, verdict))
                continue
            if verdict is not None and verdict.verdict == ACCEPT:
                if question.annotation is True:
                    result.unchanged += 1
                else:
                    result.changes.append(_change("accepted", question, verdict))
                    question = question.model_copy(update={"annotation": True})
            kept.append(question)
        if item.questions and not kept:
            result.images_removed.append(item.key)
            continue
        # Record keys are positions: they follow the conversation; content ids stay.
        item.questions = [q.model_copy(update={"index": i, "id": question_id(item.key, i)}) for i, q in enumerate(kept)]
        kept_items.append(item)
    if dry_run or not result.changes:
        return result
    _write(benchmark.model_copy(update={"items": kept_items}), source, csv_path, log, result)
    return result


def _change(action: str, question: Question, verdict: Verdict) -> ReviewChange:
    return ReviewChange(action, question.uid, question.image, question.type, question.stem, verdict.line)


def _write(benchmark: Benchmark, source: Path, csv_path: Path, log: Path, result: ReviewResult) -> None:
    """Back the old json up, write the new one atomically, then log each change."""
    original = source.read_bytes()
    if sha256_bytes(original) != benchmark.sha256:
        msg = f"{source} changed while the verdicts were being applied; nothing was changed. Run the import again"
        raise AnswersFormatError(msg)
    now = datetime.now(UTC)
    stamp = now.strftime("%Y%m%d-%H%M%S")
    backup = source.with_name(f"{source.name}.bak-{stamp}")
    n = 1
    while backup.exists():
        n += 1
        backup = source.with_name(f"{source.name}.bak-{stamp}-{n}")
    try:
        atomic_write_bytes(backup, original)
        write_benchmark(benchmark, source)
    except OSError as exc:  # both writes are atomic: the json is the old one or the new one, never half
        msg = f"cannot write {exc.filename or source}: {exc.strerror or exc}; {source} was not changed"
        raise DataError(msg) from exc
    entries = [
        json.dumps(
            {
                "time": now.isoformat(timespec="seconds"),
                "action": change.action,
                "id": change.uid,
                "image": change.image,
                "type": change.type,
                "question": change.stem,
                "verdicts": str(csv_path),
                "line": change.line,
                "backup": backup.name,
            },
            ensure_ascii=False,
        )
        for change in result.changes
    ]
    result.backup, result.written = backup, True
    try:
        with log.open("a", encoding="utf-8") as handle:
            handle.write("".join(entry + "\n" for entry in entries))
    except OSError as exc:
        logger.warning("the verdicts were applied, but the review log %s could not be written: %s", log, exc)
    else:
        result.log = log
    logger.info("review import: %d accepted, %d removed; backup %s", result.accepted, result.rejected, backup)
