"""Operating points and intervals as files: JSON-ready dicts, Markdown and the reliability diagram."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmad._io import atomic_write_bytes, atomic_write_text
from mmad.data.schema import Subtask
from mmad.report.tables import fmt
from mmad.score.operating import TARGETS, LetterOperating, OperatingReport, ScoreOperating

if TYPE_CHECKING:
    from mmad.score.intervals import Interval, TableIntervals

LEVEL_TITLES = {"overall": "Overall", "dataset": "Per dataset", "category": "Per category"}


def _score_dict(row: ScoreOperating) -> dict[str, Any]:
    return {
        "group": row.group,
        "source": row.source,
        "n_normal": row.n_normal,
        "n_defect": row.n_defect,
        "distinct_scores": row.distinct,
        "coarse": row.coarse,
        **row.cells(),
        "operating_points": {
            **{
                f"miss_at_{t:g}pct_overkill": {"miss": p.value, "overkill_reached": p.reached}
                for t, p in row.miss_at_overkill.items()
            },
            **{
                f"overkill_at_{t:g}pct_miss": {"overkill": p.value, "miss_reached": p.reached}
                for t, p in row.overkill_at_miss.items()
            },
        },
        "reliability": [vars(b) for b in row.reliability],
    }


def _letter_dict(row: LetterOperating) -> dict[str, Any]:
    return {"group": row.group, "n_normal": row.n_normal, "n_defect": row.n_defect, **row.cells()}


def operating_to_dict(report: OperatingReport) -> dict[str, Any]:
    """Every figure of the report, JSON-ready (percent; None where missing)."""
    return {
        "unit": "percent",
        "n_questions": report.n_questions,
        "n_scored": report.n_scored,
        "by_score": {level: [_score_dict(r) for r in rows] for level, rows in report.by_score.items()},
        "by_letter": {level: [_letter_dict(r) for r in rows] for level, rows in report.by_letter.items()},
        "notes": report.notes,
    }


def _score_markdown(rows: list[ScoreOperating], title: str) -> list[str]:
    names = list(rows[0].cells()) if rows else []
    header = ["Group", "Source", "Normal", "Defective", *names, "Coarse"]
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [fmt(v) for v in row.cells().values()]
        coarse = f"yes ({row.distinct} values)" if row.coarse else ""
        lines.append(
            f"| {row.group} | {row.source} | {row.n_normal} | {row.n_defect} | {' | '.join(cells)} | {coarse} |"
        )
    return [*lines, ""]


def _letter_markdown(rows: list[LetterOperating], title: str) -> list[str]:
    lines = [f"### {title}", "", "| Group | Normal | Defective | Overkill | Miss |", "|---|---|---|---|---|"]
    lines += [f"| {r.group} | {r.n_normal} | {r.n_defect} | {fmt(r.overkill)} | {fmt(r.miss)} |" for r in rows]
    return [*lines, ""]


def operating_to_markdown(report: OperatingReport, *, title: str) -> str:
    """The report as Markdown: score figures per level (where there are scores), then Overkill and Miss
    from the letters per category and per defect type."""
    lines = [f"## {title}", ""]
    targets = "/".join(f"{t:g}%" for t in TARGETS)
    lines.append(
        f"Anomaly Discrimination, percent. {report.n_scored} of {report.n_questions} answers carry a defect score. "
        f"Miss@X%Overkill is the lowest miss at a threshold whose overkill is at most X% ({targets}); "
        "ECE is the expected calibration error of p(defect) over 10 bins."
    )
    lines.append("")
    for level, rows in report.by_score.items():
        if rows:
            lines += _score_markdown(rows, f"{LEVEL_TITLES[level]} (from the score)")
    lines += _letter_markdown(report.by_letter["category"], "Per category (from the letters)")
    lines += _letter_markdown(report.by_letter["defect_type"], "Per defect type (from the letters)")
    lines.extend(f"- {note}" for note in report.notes)
    return "\n".join(lines) + "\n"


def reliability_png(report: OperatingReport, path: str | os.PathLike[str], *, title: str) -> Path | None:
    """A reliability diagram (defect rate against mean p(defect) per bin), overall and per dataset; None
    where no group has calibration figures. matplotlib is imported here only: it is slow to import."""
    curves = [r for r in report.by_score["overall"] + report.by_score["dataset"] if r.reliability]
    if not curves:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(5.5, 5.0), dpi=100)
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="calibrated")
    for row in curves:
        xs = [b.mean_probability for b in row.reliability]
        ys = [b.defect_rate for b in row.reliability]
        label = f"{row.group} (ECE {fmt(row.ece, 1)})"
        axes.plot(xs, ys, marker="o", linewidth=2.5 if row.group == "all" else 1.2, label=label)
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_xlabel("mean p(defect) in bin")
    axes.set_ylabel("share of defective images in bin")
    axes.set_title(title, fontsize=10)
    axes.legend(fontsize=8, loc="upper left")
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    target = Path(path)
    atomic_write_bytes(target, buffer.getvalue())
    return target


def write_operating_files(
    report: OperatingReport, folder: str | os.PathLike[str], *, stem: str = "", title: str, plot: bool = True
) -> dict[str, Path]:
    """Write ``[stem_]operating_points.json`` and ``.md``, and ``[stem_]reliability.png`` where the score
    is a probability. Returns the paths by kind."""
    base = Path(folder)
    prefix = f"{stem}_" if stem else ""
    paths = {
        "operating_json": base / f"{prefix}operating_points.json",
        "operating_markdown": base / f"{prefix}operating_points.md",
    }
    atomic_write_text(paths["operating_json"], json.dumps(operating_to_dict(report), indent=2))
    atomic_write_text(paths["operating_markdown"], operating_to_markdown(report, title=f"Operating points — {title}"))
    if plot:
        target = base / f"{prefix}reliability.png"
        png = reliability_png(report, target, title=f"Reliability — {title}")
        if png is not None:
            paths["reliability"] = png
        else:  # one left by an earlier scoring (`mmad eval`'s, of other scores) would describe other figures
            target.unlink(missing_ok=True)
    return paths


def _interval_dict(interval: Interval | None) -> dict[str, float] | None:
    return None if interval is None else {"value": interval.point, "low": interval.low, "high": interval.high}


def intervals_to_dict(intervals: TableIntervals) -> dict[str, Any]:
    """The intervals, JSON-ready: per dataset and subtask, per row average, per subtask average, overall."""
    return {
        "level": intervals.level,
        "method": "bootstrap over images, within each dataset",
        "samples": intervals.samples,
        "seed": intervals.seed,
        "n_images": intervals.n_images,
        "single_image": intervals.single_image,
        "policy": intervals.policy.value,
        "rows": {
            name: {
                "cells": {s.value: _interval_dict(intervals.cells[name][s]) for s in intervals.columns},
                "average": _interval_dict(intervals.row_averages[name]),
            }
            for name in intervals.datasets
        },
        "subtask_averages": {s.value: _interval_dict(intervals.subtask_averages[s]) for s in intervals.columns},
        "average": _interval_dict(intervals.average),
        # Overkill, Miss, Recall, Precision and F1 per dataset and their means over datasets (`average`)
        "detection": {
            "rows": {
                name: {c: _interval_dict(v) for c, v in intervals.detection[name].items()}
                for name in intervals.datasets
            },
            "average": {c: _interval_dict(v) for c, v in intervals.average_detection.items()},
        },
    }


DETECTION_SHOWN = ("Overkill", "Miss")
"""The detection figures shown beside the table's intervals (every one is in the json)."""


def interval_text(interval: Interval | None) -> str:
    """'61.2 [58.0, 64.3]', or a dash for a missing cell."""
    if interval is None:
        return "–"
    return f"{interval.point:.1f} [{interval.low:.1f}, {interval.high:.1f}]"


def intervals_to_markdown(intervals: TableIntervals) -> str:
    """The MMAD table with each cell's 95% interval, as Markdown, Overkill and Miss beside each row's Average."""
    shown = DETECTION_SHOWN if Subtask.ANOMALY_DISCRIMINATION in intervals.columns else ()
    header = ["Dataset", *(s.value for s in intervals.columns), "Average", *shown]
    lines = [
        f"### {intervals.level:g}% intervals",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for name in intervals.datasets:
        cells = [interval_text(intervals.cells[name][s]) for s in intervals.columns]
        detection = [interval_text(intervals.detection.get(name, {}).get(c)) for c in shown]
        lines.append(
            "| " + " | ".join([name, *cells, f"**{interval_text(intervals.row_averages[name])}**", *detection]) + " |"
        )
    averages = [interval_text(intervals.subtask_averages[s]) for s in intervals.columns]
    detection = [interval_text(intervals.average_detection.get(c)) for c in shown]
    lines.append(
        "| " + " | ".join(["Average", *averages, f"**{interval_text(intervals.average)}**", *detection]) + " |"
    )
    lines += [
        "",
        f"Bootstrap over {intervals.n_images} images (the questions of an image move together), resampled within "
        f"each dataset, {intervals.samples} resamples, seed {intervals.seed}, policy `{intervals.policy.value}`; "
        "– is a missing cell (no questions, or declined), which has no interval.",
    ]
    if intervals.single_image:
        lines.append(f"No interval from one image: {', '.join(intervals.single_image)} (its cells are in the table).")
    return "\n".join(lines) + "\n"
