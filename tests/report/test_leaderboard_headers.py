"""The detection-only table names its figure (AirIAD's 'Accuracy (%)' on anomaly detection), not
Average/Strict/Upstream; and at 80 columns the leaderboard's names wrap between words, not inside them."""

import csv
import io
import json
import re
from pathlib import Path

import pytest
from rich.console import Console

from mmad.cli.report_commands import render_leaderboard
from mmad.report.leaderboard import build_leaderboard, leaderboard_csv, leaderboard_json, leaderboard_markdown

FIGURE = "AD accuracy (%)"


def _terminal(width: int) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    for part in render_leaderboard(build_leaderboard(), width):
        console.print(part)
    assert isinstance(console.file, io.StringIO)
    return console.file.getvalue()


@pytest.mark.parametrize("width", [80, 200])
def test_the_terminal_detection_table_is_headed_by_its_figure(width: int) -> None:
    out = _terminal(width)
    start = out.index("Anomaly discrimination only")
    detection = out[start : out.index("Groups (ranks count")]
    header = next(line for line in detection.splitlines() if "Model" in line)
    assert FIGURE in header
    assert not re.search(r"\b(Average|Strict|Upstream|Overkill|Miss)\b", header), header


def test_markdown_csv_and_json_say_what_the_detection_figure_is() -> None:
    board = build_leaderboard()
    markdown = leaderboard_markdown(board)
    table = markdown[markdown.index("#### Anomaly discrimination only") :]
    assert f"| # | Group | Model | {FIGURE} | What it measures |" in table
    assert "'Accuracy (%)'" in table and "balanced" in table  # what the source's axis says, and what it does not
    rows = {r["name"]: r for r in csv.DictReader(io.StringIO(leaderboard_csv(board)))}
    assert rows["GPT-5.4"]["figure"] == FIGURE and rows["GPT-5.4"]["score"] == "73.1000"
    assert rows["Human expert"]["figure"] == "seven-subtask average"
    named = {r["name"]: r for r in json.loads(leaderboard_json(board))["rows"]}
    assert named["Gemini-3.1-Pro"]["figure"] == FIGURE


@pytest.mark.slow
def test_the_html_detection_table_is_headed_by_its_figure(random_run: Path, tmp_path: Path) -> None:
    from mmad.report.html import write_html_report

    page = write_html_report([random_run], tmp_path / "report.html").read_text(encoding="utf-8")
    table = page[page.index('id="detection-table"') :]
    head = table[: table.index("</thead>")]
    assert f"<th>{FIGURE}</th>" in head and "<th>Figure</th>" not in head


def test_at_80_columns_names_wrap_between_words(random_run: Path) -> None:
    out = _terminal(80)
    assert all(len(line) <= 80 for line in out.splitlines())
    assert out.count("Completeness") >= 3  # headers whole, never cut to make room
    names = [r.name for r in build_leaderboard().rows]
    # a word up to 24 characters is never folded ('Qwen2-VL-72B-Instru' / 'ct' read as two names)
    for word in {w for name in names for w in name.split() if len(w) <= 24}:
        assert word in out, word
    # beside a run (a Strict column, a longer completeness) a long word breaks after a hyphen, never inside a part
    console = Console(file=io.StringIO(), width=80, color_system=None)
    for part in render_leaderboard(build_leaderboard([random_run]), 80):
        console.print(part)
    assert isinstance(console.file, io.StringIO)
    text = console.file.getvalue()
    assert all(len(line) <= 80 for line in text.splitlines()) and "Completeness" in text
    for piece in ("LLaVA-NeXT-", "Qwen2.5-VL-72B-", "Instruct-AWQ", "InternLM-", "XComposer2-VL-7B"):
        assert piece in text, piece


def test_a_long_name_breaks_after_hyphens_and_between_words() -> None:
    from mmad.cli.report_commands import _wrap_name

    assert _wrap_name("Qwen2-VL-72B-Instruct (_test1)", 16) == "Qwen2-VL-72B-\nInstruct\n(_test1)"
    assert _wrap_name("Gemini 1.5 Pro (gemini-1.5-pro)", 20) == "Gemini 1.5 Pro\n(gemini-1.5-pro)"
    assert _wrap_name("random", 10) == "random"
    assert _wrap_name("LLaVA-NeXT-Interleave-Qwen-7B-DPO", 20).split("\n") == [
        "LLaVA-NeXT-",
        "Interleave-Qwen-7B-",
        "DPO",
    ]
