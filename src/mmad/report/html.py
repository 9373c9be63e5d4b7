"""The HTML report: one self-contained page (or a folder with the page and its thumbnails).

It holds the leaderboard (your runs beside the published results, ranked only among comparable
rows), a radar chart and heatmaps of the seven subtasks, per run a card (model, protocol card,
cost, tokens, time), the MMAD table with Overkill and Miss, per-category and per-defect-type
tables, and a viewer of every question the runs asked, rendered page by page from JSON in the page.

Nothing a model wrote can act as markup or script: the template autoescapes (and fails on
undefined values), the JSON is escaped so that ``</script>`` and ``<!--`` cannot end its block,
the viewer sets text with ``textContent`` only, and a Content-Security-Policy allows only the
page's own script (by hash) and no network at all.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from mmad._io import atomic_write_text
from mmad.data.schema import SUBTASKS, Subtask
from mmad.errors import RunError
from mmad.report.charts import CostPoint, Series, cost_quality_png, heat_colour, pareto_front, radar_svg
from mmad.report.heatmap import heatmap_png
from mmad.report.leaderboard import (
    Leaderboard,
    LeaderboardRow,
    RunScores,
    build_leaderboard,
    card_summary,
    run_card_hash,
)
from mmad.report.samples import SampleData, auto_thumb_size
from mmad.report.tables import fmt
from mmad.run.folder import RunFolder
from mmad.run.manifest import Manifest
from mmad.score.answers import covers_text
from mmad.score.breakdown import GroupBy, breakdown
from mmad.score.metrics import Bootstrap, MetricResult
from mmad.score.metrics.builtin import (
    DOLLARS_PER_QUESTION,
    SECONDS_PER_QUESTION,
    TOKENS_PER_CORRECT,
    TOKENS_PER_QUESTION,
)
from mmad.score.published import PublishedEntry, leakage_notes, load_published_results
from mmad.score.robustness import RunForRobustness, robustness_pairs
from mmad.score.table import Policy, ScoreTable

if TYPE_CHECKING:  # numpy, which only --ci needs
    from mmad.score.intervals import TableIntervals

logger = logging.getLogger(__name__)
PAGE_SIZE_WARNING = 50_000_000
_JSON_ESCAPES = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def script_json(value: Any) -> Markup:
    """JSON that is safe inside ``<script type="application/json">``: no ``<``, ``>`` or ``&`` survive,
    so no ``</script>`` or ``<!--`` in the data can end or alter the block."""
    return Markup(json.dumps(value, ensure_ascii=False, separators=(",", ":")).translate(_JSON_ESCAPES))


def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("mmad.report", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
    )


def _asset(name: str) -> str:
    return (resources.files("mmad.report") / "templates" / name).read_text(encoding="utf-8")


def _csp_hash(script: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")


def _cell(value: float | None, digits: int = 2, interval: Sequence[float] | None = None) -> dict[str, str]:
    """A coloured table cell; ``ci`` is its 95% interval in words ('' without one)."""
    return {"text": fmt(value, digits), "colour": heat_colour(value), "ci": _ci_text(interval)}


def _table_rows(table: ScoreTable, intervals: TableIntervals | None = None) -> list[dict[str, Any]]:
    # every interval by name, once per table: the cells' (`named_cells`) and Overkill's and Miss's (`detection_cells`)
    named = {**intervals.named_cells(), **intervals.detection_cells()} if intervals is not None else {}

    def bounds(name: str) -> tuple[float, float] | None:
        interval = named.get(name)
        return (interval.low, interval.high) if interval is not None else None

    rows = []
    for row in table.rows:
        metrics = row.detection_metrics()
        rows.append(
            {
                "name": row.name,
                "cells": [_cell(row.cells.get(s), interval=bounds(f"{row.name}/{s.value}")) for s in SUBTASKS],
                "average": _cell(row.average, interval=bounds(f"{row.name}/Average")),
                "overkill": fmt(metrics["Overkill"]),
                "miss": fmt(metrics["Miss"]),
                "overkill_ci": _ci_text(bounds(f"{row.name}/Overkill")),
                "miss_ci": _ci_text(bounds(f"{row.name}/Miss")),
            }
        )
    rows.append(
        {
            "name": "Average",
            "cells": [_cell(table.average_cells.get(s), interval=bounds(f"Average/{s.value}")) for s in SUBTASKS],
            "average": _cell(table.average, interval=bounds("Average")),
            "overkill": fmt(table.average_detection["Overkill"]),
            "miss": fmt(table.average_detection["Miss"]),
            "overkill_ci": _ci_text(bounds("Overkill")),
            "miss_ci": _ci_text(bounds("Miss")),
        }
    )
    return rows


def _ci_text(interval: Sequence[float] | None) -> str:
    return f"{interval[0]:.1f}–{interval[1]:.1f}" if interval else ""


def _breakdown_rows(scores: RunScores, by: GroupBy) -> list[dict[str, Any]]:
    return [
        {
            "name": b.group,
            "cells": [_cell(b.cells[s], 1) for s in SUBTASKS],
            "average": _cell(b.average, 1),
            "covers": covers_text(b.covers),
            "n": b.n_questions,
        }
        for b in breakdown(scores.graded, by)
    ]


def _duration(manifest: Manifest) -> str:
    try:
        start = datetime.fromisoformat(manifest.created_at)
        end = datetime.fromisoformat(manifest.finished_at or "")
    except ValueError:
        return "–"
    seconds = max(0.0, (end - start).total_seconds())
    minutes, rest = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {rest:02d}s" if hours else f"{minutes}m {rest:02d}s"


def _cost_text(spent: float | None, per_question: float | None) -> str:
    """The run's total (run.json's: every session, and requests whose records a later one replaced) beside the
    per-question figure of the cost metric (the latest records'), which may be less."""
    if per_question is None:
        return "– (not measured: no price, or no usage reported)"
    if spent is None:  # records carry their cost, but some call of the run had none (an unpriced --judge)
        return (
            "– paid by the run in all sessions (not measured: a call without a price or usage, such as an "
            f"unpriced --judge's); ${per_question:,.4f} a question by its latest record"
        )
    return f"${spent:,.4f} paid by the run in all sessions; ${per_question:,.4f} a question by its latest record"


def _run_card(run: RunFolder, per_question: float | None) -> list[tuple[str, str]]:
    """The run's facts; ``per_question`` is the cost metric's $/question (a --circular run pays every rotation)."""
    manifest = run.manifest
    usage = manifest.usage
    plain = run.plain
    # The model's seconds, as the cost metric's s/question counts them: a cached reply's when it was asked
    latencies = [s for r in plain if (s := r.model_latency_s) is not None]
    # run.json's usage counts a call without a price or a usage report as $0 and 0 tokens: its figures are
    # measured only where some record carries them, else the card says so rather than show $0.0000
    costs = [r.cost_usd for r in plain if r.cost_usd is not None]
    cost = usage.cost_usd if usage is not None else sum(costs)
    counted = any(r.prompt_tokens is not None or r.completion_tokens is not None for r in plain)
    card_hash = run_card_hash(run)
    if usage is not None:
        prompt_tokens, completion_tokens, cached = usage.prompt_tokens, usage.completion_tokens, usage.cached
    else:  # a run that never finished a session: what its records say
        prompt_tokens = sum(r.prompt_tokens or 0 for r in plain)
        completion_tokens = sum(r.completion_tokens or 0 for r in plain)
        cached = 0
    tokens = f"{prompt_tokens:,} prompt, {completion_tokens:,} completion" if counted else "– (no usage reported)"
    described = "".join(f"; {k} {v}" for k, v in manifest.model.items() if isinstance(v, str | int | float))
    return [
        ("Model", run.model + described),
        ("Run folder", str(run.path)),
        ("Status", f"{run.status}; {run.completeness.describe()}"),
        ("Protocol card", f"{card_hash[:16]}" if card_hash else "no card (run made before protocol cards)"),
        ("Benchmark", f"sha256 {(run.benchmark_sha256 or '?')[:16]}; {manifest.dataset.source}"),
        ("Cost", _cost_text(cost, per_question)),
        ("Tokens", f"{tokens}; {cached:,} cached"),
        (
            "Time",
            f"{_duration(manifest)} wall ({manifest.created_at} → {manifest.finished_at or '?'}); "
            + (
                f"{sum(latencies):,.1f} s of requests, {sum(latencies) / len(latencies):.2f} s each"
                if latencies
                else ""
            ),
        ),
        ("Made with", f"mmad {manifest.mmad_version}, Python {manifest.python}"),
    ]


def _run_section(scores: RunScores, name: str, index: int, policy: Policy) -> dict[str, Any]:
    run = scores.run
    table = scores.strict if policy is Policy.STRICT else scores.upstream
    with tempfile.TemporaryDirectory() as scratch:
        png = heatmap_png(table, Path(scratch) / "heatmap.png", title=f"{name} ({policy.value})")
        heatmap = base64.b64encode(png.read_bytes()).decode("ascii")
    failures = ", ".join(f"{k} {v}" for k, v in sorted(table.failures.items())) or "none"
    card = run.card
    scored = scores.with_policy(policy)
    cost = scored.metric("cost")
    dollars = cost.cell(DOLLARS_PER_QUESTION) if cost is not None else None
    return {
        "name": name,
        "anchor": f"run-{index}",
        "facts": _run_card(run, dollars.value if dollars is not None else None),
        "card_json": json.dumps(card, indent=2, sort_keys=True, ensure_ascii=False) if card else "",
        "card_line": card_summary(card) if card else "",
        "rows": _table_rows(table, scored.intervals),
        "metrics": _metric_rows(scored.metrics),
        "caption": (
            f"{policy.value} policy: {table.n_counted:,} answers counted, without an answer: {failures}; "
            f"strict average {fmt(scores.strict.average)}, upstream average {fmt(scores.upstream.average)}"
        ),
        "notes": table.notes,
        "heatmap": heatmap,
        "radar": radar_svg(
            [Series(name, {s.value: table.average_cells.get(s) for s in SUBTASKS})], title=name, size=340
        ),
        "categories": _breakdown_rows(scores, GroupBy.CATEGORY),
        "defects": _breakdown_rows(scores, GroupBy.DEFECT_TYPE),
    }


def _metric_rows(results: Sequence[MetricResult]) -> list[dict[str, str]]:
    """Every registered metric's headline figures, as `mmad score` shows them."""
    rows = []
    for result in results:
        for cell in result.headline_cells():
            unit = "" if cell.unit in ("%", "$", "s") or cell.value is None else f" {cell.unit}"
            rows.append(
                {"title": result.title, "name": cell.name, "value": cell.text() + unit, "ci": cell.interval_text()}
            )
    return rows


def _leaderboard_view(board: Leaderboard) -> dict[str, Any]:
    letters = board.group_letters()

    def row(r: LeaderboardRow) -> dict[str, Any]:
        return {
            "rank": str(r.rank) if r.rank else "–",
            "group": letters[r.group],
            "name": r.name,
            "mine": r.kind == "run",
            "protocol": (f"card {r.card_hash[:8]}" if r.card_hash else "no card") if r.kind == "run" else "published",
            "score": _cell(r.score, interval=r.intervals.get("Average")),
            "strict": fmt(r.strict),
            "upstream": fmt(r.upstream),
            "cells": [_cell(r.subtasks.get(s.value), interval=r.intervals.get(s.value)) for s in SUBTASKS],
            "overkill": fmt(r.overkill),
            "miss": fmt(r.miss),
            "overkill_ci": _ci_text(r.intervals.get("Overkill")),
            "miss_ci": _ci_text(r.intervals.get("Miss")),
            "completeness": r.completeness,
            "marks": r.marks,
            "protocol_text": r.protocol,
            "source": r.source,
            "citation": r.citation,
        }

    return {
        "ranked": [row(r) for r in board.ranked],
        "unranked": [row(r) for r in board.unranked],
        "trained": [row(r) for r in board.trained_on_mmad],
        "detection": [row(r) for r in board.detection_only],
        "detection_figure": board.detection_figure(),
        "groups": [(letters[key], label) for key, label in board.groups.items()],
        "notes": board.notes,
        "policy": board.policy.value,
    }


def _overview(
    scored: Sequence[RunScores], names: Sequence[str], entries: Sequence[PublishedEntry], policy: Policy
) -> tuple[Markup, list[dict[str, Any]]]:
    series = []
    for scores, name in zip(scored, names, strict=True):
        table = scores.strict if policy is Policy.STRICT else scores.upstream
        series.append(Series(name, {s.value: table.average_cells.get(s) for s in SUBTASKS}))
    for entry in entries:
        if entry.id == "paper/human-expert" and entry.subtasks:
            series.append(Series(f"{entry.system} (published)", entry.subtasks, reference=True))
    heat = []
    for scores, name in zip(scored, names, strict=True):
        table = scores.strict if policy is Policy.STRICT else scores.upstream
        heat.append(
            {
                "name": name,
                "cells": [_cell(table.average_cells.get(s)) for s in SUBTASKS],
                "average": _cell(table.average),
            }
        )
    return radar_svg(series, title="Seven subtasks, every run"), heat


def _cost_quality(scored: Sequence[RunScores], names: Sequence[str], policy: Policy) -> dict[str, Any]:
    """Accuracy beside tokens, dollars and seconds per question for every run, and the cost-quality chart
    (accuracy against the cost every plotted run has: dollars, else tokens, else seconds) with its Pareto front."""
    columns = (DOLLARS_PER_QUESTION, TOKENS_PER_QUESTION, SECONDS_PER_QUESTION, TOKENS_PER_CORRECT)
    figures = []
    for scores, name in zip(scored, names, strict=True):
        cost = scores.with_policy(policy).metric("cost")
        cells = {c: (cost.cell(c) if cost is not None else None) for c in columns}
        figures.append((name, scores.table(policy).average, cells))
    axis, points = "", list[CostPoint]()
    best = (False, 0)
    for column in columns[:3]:
        candidates = [
            CostPoint(name, average, cell.value)
            for name, average, cells in figures
            if average is not None and (cell := cells[column]) is not None and cell.value is not None
        ]
        # a cost every run shares (free models: $0 each) ranks nothing and draws a line of dots at 0
        rank = (len({p.cost for p in candidates}) > 1, len(candidates))
        if rank > best:
            axis, points, best = column, candidates, rank
    front = {p.name for p in pareto_front(points)}
    rows = [
        {
            "name": name,
            "average": fmt(average),
            "cells": [cell.text() if cell is not None else "–" for cell in cells.values()],
            "front": name in front,
        }
        for name, average, cells in figures
    ]
    png = ""
    if len(points) >= 2:
        label = {DOLLARS_PER_QUESTION: "dollars", TOKENS_PER_QUESTION: "tokens", SECONDS_PER_QUESTION: "seconds"}[axis]
        image = cost_quality_png(points, cost_label=f"{label} per question", title=f"Cost and quality ({policy.value})")
        png = base64.b64encode(image).decode("ascii")
    return {"columns": list(columns), "rows": rows, "png": png, "axis": axis, "plotted": len(points)}


def _robustness(scored: Sequence[RunScores], names: Sequence[str], bootstrap: Bootstrap | None) -> list[dict[str, Any]]:
    """Each perturbed run against the clean run of the same card: per-subtask change with paired intervals."""
    chosen = bootstrap or Bootstrap()
    runs = [RunForRobustness(n, s.run.card, s.answers, s.run.model) for s, n in zip(scored, names, strict=True)]
    return [
        {
            "clean": pair.clean,
            "perturbed": pair.perturbed,
            "perturb": pair.perturb,
            "samples": chosen.samples,
            "rows": [
                {
                    "group": d.group,
                    "clean": fmt(d.a, 1),
                    "perturbed": fmt(d.b, 1),
                    "delta": f"{d.delta:+.1f}",
                    "ci": f"[{d.low:+.1f}, {d.high:+.1f}]",
                    "significant": d.low > 0 or d.high < 0,
                    "n": d.n,
                }
                for d in pair.differences
            ],
        }
        for pair in robustness_pairs(runs, samples=chosen.samples, seed=chosen.seed)
    ]


def _display_names(scored: Sequence[RunScores]) -> list[str]:
    models = [s.run.model for s in scored]
    return [m if models.count(m) == 1 else f"{m} ({s.run.path.name})" for m, s in zip(models, scored, strict=True)]


def write_html_report(
    runs: Sequence[str | os.PathLike[str] | RunFolder],
    out: str | os.PathLike[str],
    *,
    published: Sequence[PublishedEntry] | None = None,
    title: str = "MMAD report",
    data: str | os.PathLike[str] | None = None,
    thumb_size: int | None = None,
    policy: Policy | str = Policy.STRICT,
    reply_chars: int = 2000,
    progress: Callable[[int, int], None] | None = None,
    bootstrap: Bootstrap | None = None,
) -> Path:
    """Write the report; returns the page's path.

    ``out`` ending in ``.html`` gives one self-contained file (thumbnails inline); any other path
    is a folder that receives ``index.html`` and ``thumbs/``. ``published`` defaults to the results
    shipped with mmad; ``data`` overrides the data root the runs' images are read from. ``progress``
    is called with (done, total) thumbnails, the part that takes time on a large run.
    """
    from mmad._version import __version__

    policy = Policy(policy)
    destination = Path(out)
    single_file = destination.suffix.lower() in {".html", ".htm"}
    page_path = destination if single_file else destination / "index.html"
    page_path.parent.mkdir(parents=True, exist_ok=True)

    opened = [RunScores.of(r, policy=policy, bootstrap=bootstrap) for r in runs]
    scored = [s for s in opened if s.has_answers]
    if opened and not scored:
        msg = (
            f"none of the {len(opened)} runs has an answer (every request failed or none was asked): "
            f"{', '.join(str(s.run.path) for s in opened)}; see their records.jsonl, then `mmad eval --resume RUN`"
        )
        raise RunError(msg)
    names = _display_names(scored)
    entries = load_published_results() if published is None else list(published)
    board = build_leaderboard(opened, entries, policy=policy)  # notes the runs left out

    samples = SampleData()
    for scores, name in zip(scored, names, strict=True):
        samples.add_run(scores.run, name, data=Path(data) if data else None, reply_chars=reply_chars)
    size = thumb_size or auto_thumb_size(samples.n_images, single_file=single_file)
    thumbs = samples.thumbnails.render(size, None if single_file else page_path.parent, progress)
    sample_json = script_json(samples.to_json_ready(thumbs))

    radar, heat = _overview(scored, names, entries, policy)
    cost_quality = _cost_quality(scored, names, policy)
    robustness = _robustness(scored, names, bootstrap)
    script = _asset("report.js")
    page = (
        _environment()
        .get_template("report.html.j2")
        .render(
            title=title,
            version=__version__,
            generated=datetime.now().astimezone().isoformat(timespec="seconds"),
            subtasks=[s.value for s in SUBTASKS],
            shorts=[Subtask(s).short for s in SUBTASKS],
            board=_leaderboard_view(board),
            radar=radar,
            heat=heat,
            cost_quality=cost_quality,
            robustness=robustness,
            runs=[_run_section(s, n, i, policy) for i, (s, n) in enumerate(zip(scored, names, strict=True))],
            published=entries,
            leakage=leakage_notes(),
            samples_json=sample_json,
            n_questions=sum(len(r["rows"]) for r in samples.runs),
            n_images=samples.n_images,
            thumb_size=size,
            single_file=single_file,
            style=Markup(_asset("report.css")),
            script=Markup(script),
            script_hash=_csp_hash(script),
        )
    )
    atomic_write_text(page_path, page)
    if single_file and len(page.encode("utf-8")) > PAGE_SIZE_WARNING:
        logger.warning(
            "%s is %.0f MB; browsers slow down on pages this large: write a report folder instead (--out DIR)",
            page_path,
            len(page.encode("utf-8")) / 1e6,
        )
    return page_path
