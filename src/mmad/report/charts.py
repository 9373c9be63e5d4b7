"""Charts for the HTML report: the seven-subtask radar as inline SVG (no script, no network), the colour
scale of the heatmap tables, and the cost-quality chart across runs with its Pareto front (a PNG)."""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from mmad.data.schema import SUBTASKS

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777")
REFERENCE_COLOUR = "#6b7280"


@dataclass
class Series:
    """One polygon of a radar chart: a name and a value (0-100) per subtask."""

    name: str
    values: Mapping[str, float | None]
    reference: bool = False


def _point(cx: float, cy: float, radius: float, index: int, count: int) -> tuple[float, float]:
    angle = -math.pi / 2 + 2 * math.pi * index / count
    return cx + radius * math.cos(angle), cy + radius * math.sin(angle)


def radar_svg(series: Sequence[Series], *, title: str, size: int = 420) -> Markup:
    """A radar chart of the seven subtasks, 0 to 100, one polygon per series; names are escaped."""
    axes = [s.value for s in SUBTASKS]
    count = len(axes)
    legend_height = 18 * len(series) + 10
    width, height = size + 160, size + legend_height
    cx, cy, radius = width / 2, size / 2 + 4, size / 2 - 60
    parts = [
        f'<svg class="radar" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for level in (25, 50, 75, 100):
        ring = " ".join(
            f"{x:.1f},{y:.1f}" for x, y in (_point(cx, cy, radius * level / 100, i, count) for i in range(count))
        )
        parts.append(f'<polygon class="ring" points="{ring}" fill="none" stroke="#d1d5db" stroke-width="1"/>')
        x, y = _point(cx, cy, radius * level / 100, 0, count)
        parts.append(f'<text x="{x + 3:.1f}" y="{y + 11:.1f}" font-size="10" fill="#9ca3af">{level}</text>')
    for index, axis in enumerate(axes):
        x, y = _point(cx, cy, radius, index, count)
        parts.append(f'<line x1="{cx:.1f}" y1="{cy:.1f}" x2="{x:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>')
        lx, ly = _point(cx, cy, radius + 16, index, count)
        anchor = "middle" if abs(lx - cx) < 5 else ("start" if lx > cx else "end")
        parts.append(
            f'<text x="{lx:.1f}" y="{ly + 4:.1f}" font-size="12" text-anchor="{anchor}" fill="#374151">'
            f"{escape(axis)}</text>"
        )
    for number, item in enumerate(series):
        colour = REFERENCE_COLOUR if item.reference else PALETTE[number % len(PALETTE)]
        points = " ".join(
            f"{x:.1f},{y:.1f}"
            for x, y in (
                _point(cx, cy, radius * max(0.0, min(100.0, item.values.get(axis) or 0.0)) / 100, i, count)
                for i, axis in enumerate(axes)
            )
        )
        dash = ' stroke-dasharray="5 4"' if item.reference else ""
        fill = "none" if item.reference else colour
        parts.append(
            f'<polygon class="series" data-name="{escape(item.name)}" points="{points}" fill="{fill}" '
            f'fill-opacity="0.12" stroke="{colour}" stroke-width="2"{dash}/>'
        )
        ly = size + 8 + 18 * number
        parts.append(
            f'<rect x="20" y="{ly}" width="14" height="4" fill="{colour}"/>'
            f'<text x="40" y="{ly + 6}" font-size="12" fill="#111827">{escape(item.name)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def heat_colour(value: float | None, low: float = 25.0, high: float = 100.0) -> str:
    """A background colour for a percentage: red (low) through pale yellow to green (high)."""
    if value is None:
        return "#f3f4f6"
    t = max(0.0, min(1.0, (value - low) / (high - low)))
    stops = ((0.0, (248, 113, 113)), (0.5, (254, 240, 138)), (1.0, (74, 222, 128)))
    for (t0, c0), (t1, c1) in itertools.pairwise(stops):
        if t <= t1:
            f = (t - t0) / (t1 - t0)
            r, g, b = (round(a + (z - a) * f) for a, z in zip(c0, c1, strict=True))
            return f"#{r:02x}{g:02x}{b:02x}"
    return "#4ade80"


@dataclass(frozen=True)
class CostPoint:
    """One run on the cost-quality chart: its accuracy (percent) and its cost per question (any unit)."""

    name: str
    accuracy: float
    cost: float


def pareto_front(points: Sequence[CostPoint]) -> list[CostPoint]:
    """The runs no other run beats on both counts (at most the cost and at least the accuracy, better on
    one), cheapest first. Two runs with the same cost and accuracy are both on the front."""
    front = [
        p
        for p in points
        if not any(
            q.cost <= p.cost and q.accuracy >= p.accuracy and (q.cost < p.cost or q.accuracy > p.accuracy)
            for q in points
        )
    ]
    return sorted(front, key=lambda p: (p.cost, -p.accuracy))


def cost_quality_png(points: Sequence[CostPoint], *, cost_label: str, title: str) -> bytes:
    """Accuracy against cost per question, one dot per run, the Pareto front joined and its runs ringed.

    matplotlib is imported here only: it is slow to import, and only a report with runs draws this."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    front = pareto_front(points)
    on_front = set(front)
    figure, axes = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    try:
        axes.plot([p.cost for p in front], [p.accuracy for p in front], color=PALETTE[0], linewidth=1.5, zorder=1)
        for number, point in enumerate(points):
            marked = point in on_front
            axes.scatter(
                [point.cost],
                [point.accuracy],
                s=70 if marked else 40,
                color=PALETTE[number % len(PALETTE)],
                edgecolors="black" if marked else "none",
                linewidths=1.2,
                zorder=2,
            )
            axes.annotate(
                point.name, (point.cost, point.accuracy), textcoords="offset points", xytext=(5, 4), fontsize=8
            )
        axes.set_xlabel(cost_label)
        axes.set_ylabel("Average accuracy (%)")
        axes.set_title(title, fontsize=10)
        axes.grid(True, alpha=0.3)
        buffer = io.BytesIO()
        figure.tight_layout()
        figure.savefig(buffer, format="png")
    finally:
        plt.close(figure)
    return buffer.getvalue()
