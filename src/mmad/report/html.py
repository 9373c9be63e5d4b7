"""A self-contained HTML report: a leaderboard (your runs beside the published results) and, per
run, the MMAD table, its heatmap, a per-category breakdown and sample answers. Everything a model
wrote is escaped (Jinja autoescape); undefined template values are errors (StrictUndefined)."""

from __future__ import annotations

import base64
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from mmad._io import atomic_write_text
from mmad.data.schema import SUBTASKS
from mmad.records.folder import open_run
from mmad.records.record import Record, Status
from mmad.report.plots import heatmap_png
from mmad.report.tables import fmt
from mmad.score.answers import graded_from_record
from mmad.score.breakdown import GroupBy, breakdown
from mmad.score.official_csv import PublishedResult
from mmad.score.table import score_answers


def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("mmad.report", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
    )


def _run_section(run_dir: Path, samples: int) -> tuple[dict[str, Any], dict[str, Any]]:
    run = open_run(run_dir)
    plain = run.plain
    graded = [graded_from_record(r) for r in plain]
    table = score_answers(graded)
    meta = run.meta
    name = run.model
    with tempfile.TemporaryDirectory() as scratch:
        png = heatmap_png(table, Path(scratch) / "heatmap.png", title=name)
        heatmap = base64.b64encode(png.read_bytes()).decode("ascii")
    metrics = {r.name: r.detection_metrics() for r in table.rows}
    rows = [
        {
            "name": r.name,
            "cells": [fmt(r.cells.get(s)) for s in SUBTASKS],
            "average": fmt(r.average),
            "overkill": fmt(metrics[r.name]["Overkill"]),
            "miss": fmt(metrics[r.name]["Miss"]),
        }
        for r in table.rows
    ]
    rows.append(
        {
            "name": "Average",
            "cells": [fmt(table.average_cells.get(s)) for s in SUBTASKS],
            "average": fmt(table.average),
            "overkill": fmt(table.average_detection["Overkill"]),
            "miss": fmt(table.average_detection["Miss"]),
        }
    )
    categories = [
        {
            "name": b.group,
            "cells": [fmt(b.cells[s], 1) for s in SUBTASKS],
            "average": fmt(b.average, 1),
            "n": b.n_questions,
        }
        for b in breakdown(graded, GroupBy.CATEGORY)
    ]

    def order(record: Record) -> tuple[int, str]:
        wrong = record.status is not Status.ANSWERED or record.answer != record.correct_answer
        return (0 if wrong else 1, record.question_id)

    chosen = sorted(plain, key=order)[:samples]
    sample_rows = [
        {
            "question": f"{r.question_id} — {r.question_text}",
            "gold": r.correct_answer,
            "answer": r.answer or "–",
            "correct": r.answer == r.correct_answer,
            "status": r.status.value,
            "reply": (r.raw_reply or r.error_message or "")[:600],
        }
        for r in chosen
    ]
    failures = ", ".join(f"{k} {v}" for k, v in sorted(table.failures.items())) or "none"
    section = {
        "name": name,
        "anchor": re.sub(r"[^a-z0-9]+", "-", name.lower()),
        "meta": f"{run_dir} · protocol {meta.get('protocol', {}).get('variant', '?')}, "
        f"{meta.get('config', {}).get('shots', '?')}-shot · images: {meta.get('images', '?')} · "
        f"strategies: {', '.join(meta.get('strategies', [])) or 'none'} · dataset sha256 "
        f"{str(meta.get('dataset', {}).get('sha256', ''))[:12]}",
        "rows": rows,
        "caption": f"{table.n_counted} answers (strict policy); without an answer: {failures}",
        "heatmap": heatmap,
        "categories": categories,
        "samples": sample_rows,
    }
    board = {
        "name": name,
        "source": "this run",
        "mine": True,
        "cells": [fmt(table.average_cells.get(s)) for s in SUBTASKS],
        "average": fmt(table.average),
        "sort": table.average or 0.0,
    }
    return section, board


def write_html_report(
    runs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    published: Sequence[PublishedResult] = (),
    title: str = "MMAD report",
    samples: int = 25,
) -> Path:
    """Write the report as one HTML file; returns its path."""
    from mmad._version import __version__

    sections, board = [], []
    for run in runs:
        section, row = _run_section(Path(run), samples)
        sections.append(section)
        board.append(row)
    for result in published:
        averages = result.subtask_averages()
        board.append(
            {
                "name": f"{result.model}{result.suffix}",
                "source": f"published, {result.shots}-shot",
                "mine": False,
                "cells": [fmt(averages.get(s.official_column)) for s in SUBTASKS],
                "average": fmt(result.average),
                "sort": result.average or 0.0,
            }
        )
    board.sort(key=lambda row: -float(row["sort"]))
    page = (
        _environment()
        .get_template("report.html.j2")
        .render(
            title=title, version=__version__, subtasks=[s.value for s in SUBTASKS], leaderboard=board, runs=sections
        )
    )
    target = Path(out)
    atomic_write_text(target, page)
    return target
