"""The paper-style accuracy heatmap (datasets × subtasks, with averages), drawn with Pillow.

Pillow, not matplotlib: importing matplotlib alone takes longer than scoring all 39,672 answers,
and `mmad score` draws this figure every time. Colours run from red (25, chance on four options)
through yellow to green (100), as the HTML report colours its tables; a missing cell is grey.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from mmad._io import atomic_write_bytes
from mmad.report.tables import table_columns, table_rows
from mmad.score.table import ScoreTable

LOW, HIGH = 25.0, 100.0
_LOW_RGB, _MID_RGB, _HIGH_RGB = (165, 0, 38), (255, 255, 191), (0, 104, 55)
_MISSING = (235, 235, 235)
_SCALE = 2  # drawn at twice the size, for sharp text on high-density screens


def colour(value: float | None) -> tuple[int, int, int]:
    """The cell colour of an accuracy."""
    if value is None:
        return _MISSING
    t = min(1.0, max(0.0, (value - LOW) / (HIGH - LOW)))
    start, end, u = (_LOW_RGB, _MID_RGB, t * 2) if t < 0.5 else (_MID_RGB, _HIGH_RGB, t * 2 - 1)
    r, g, b = (round(a + (c - a) * u) for a, c in zip(start, end, strict=True))
    return (r, g, b)


def _text_colour(fill: tuple[int, int, int]) -> tuple[int, int, int]:
    luminance = 0.299 * fill[0] + 0.587 * fill[1] + 0.114 * fill[2]
    return (0, 0, 0) if luminance > 120 else (255, 255, 255)


def _wrap(
    label: str, width: float, draw: ImageDraw.ImageDraw, font: ImageFont.FreeTypeFont | ImageFont.ImageFont
) -> list[str]:
    lines: list[str] = []
    for word in label.split():
        if lines and draw.textlength(f"{lines[-1]} {word}", font=font) <= width:
            lines[-1] += f" {word}"
        else:
            lines.append(word)
    return lines


def heatmap_image(table: ScoreTable, *, title: str = "MMAD accuracy") -> Image.Image:
    """The heatmap as an image."""
    s = _SCALE
    font = ImageFont.load_default(size=12 * s)
    bold = ImageFont.load_default(size=14 * s)
    rows = table_rows(table)
    columns = [c.value for c in table_columns(table)] + ["Average"]
    cell_w, cell_h = 92 * s, 34 * s
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_w = max([probe.textlength(name, font=font) for name, _, _ in rows] + [60 * s]) + 16 * s
    headers = [_wrap(c, cell_w - 8 * s, probe, font) for c in columns]
    header_h = (max(len(h) for h in headers) * 15 + 10) * s
    title_h, legend_w = 34 * s, 70 * s
    width = int(label_w + cell_w * len(columns) + legend_w)
    height = int(title_h + header_h + cell_h * len(rows) + 16 * s)
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    # The bundled font has no dashes beyond ASCII: draw them as hyphens rather than as boxes.
    title = title.replace("—", "-").replace("–", "-")
    draw.text((width / 2, 10 * s), title, fill="black", font=bold, anchor="mt")
    top = title_h + header_h
    for j, lines in enumerate(headers):
        x = label_w + j * cell_w + cell_w / 2
        for k, line in enumerate(lines):
            y = title_h + header_h - (len(lines) - k) * 15 * s - 4 * s
            draw.text((x, y), line, fill="black", font=font, anchor="mt")
    for i, (name, cells, average) in enumerate(rows):
        y = top + i * cell_h
        draw.text((label_w - 8 * s, y + cell_h / 2), name, fill="black", font=font, anchor="rm")
        for j, value in enumerate([*cells, average]):
            x = label_w + j * cell_w
            fill = colour(value)
            draw.rectangle((x, y, x + cell_w - 1, y + cell_h - 1), fill=fill, outline="white", width=s)
            text = "-" if value is None else f"{value:.1f}"
            draw.text((x + cell_w / 2, y + cell_h / 2), text, fill=_text_colour(fill), font=font, anchor="mm")
    bar_x, bar_top, bar_bottom = float(width - legend_w + 12 * s), float(top), float(top + cell_h * len(rows))
    span = max(1, bar_bottom - bar_top)
    for offset in range(int(span)):
        value = HIGH - (HIGH - LOW) * offset / span
        draw.line((bar_x, bar_top + offset, bar_x + 14 * s, bar_top + offset), fill=colour(value))
    for tick in (25, 50, 75, 100):
        tick_y = bar_top + (HIGH - tick) / (HIGH - LOW) * span
        draw.text((bar_x + 18 * s, tick_y), str(tick), fill="black", font=font, anchor="lm")
    return image


def heatmap_png(table: ScoreTable, path: str | os.PathLike[str], *, title: str = "MMAD accuracy") -> Path:
    """Draw the table as an annotated heatmap and save it as a PNG (atomically)."""
    buffer = io.BytesIO()
    heatmap_image(table, title=title).save(buffer, format="PNG", optimize=False)
    target = Path(path)
    atomic_write_bytes(target, buffer.getvalue())
    return target
