"""A run's card in the report shows dollars and tokens only where they were measured: run.json counts a
call without a price, or a reply without usage, as $0 and 0 tokens, and a card must not repeat it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mmad.cli import main
from tests.helpers.runs import edit_records
from tests.helpers.serving import running_server

pytestmark = pytest.mark.slow


def _card_line(page: str, label: str) -> str:
    found = re.search(rf"<dt>{label}</dt><dd>(.*?)</dd>", page, re.S)
    assert found is not None, label
    return found.group(1)


def test_an_unpriced_model_and_one_without_usage_show_no_measured_zero(mmad_json: Path, tmp_path: Path) -> None:
    run = tmp_path / "compat"
    with running_server() as server:
        command = ["eval", "-m", "compat:random", "-d", str(mmad_json), "--base-url", server.base_url]
        assert main([*command, "--no-cache", "--limit", "8", "--out", str(run)]) == 0
    page = tmp_path / "report.html"
    assert main(["report", str(run), "--no-published", "--out", str(page)]) == 0
    html = page.read_text()
    assert "$0.0000" not in _card_line(html, "Cost") and "not measured" in _card_line(html, "Cost")
    assert re.match(r"[1-9][\d,]* prompt", _card_line(html, "Tokens"))  # the server reported usage
    # the same run from a server that reports no usage: its records carry no tokens
    edit_records(run, lambda _, r: r.model_copy(update={"prompt_tokens": None, "completion_tokens": None}))
    assert main(["report", str(run), "--no-published", "--out", str(page)]) == 0
    html = page.read_text()
    assert _card_line(html, "Tokens").startswith("– (no usage reported)")


def test_a_missing_metric_figure_in_the_report_is_a_bare_dash() -> None:
    from mmad.report.html import _metric_rows
    from mmad.score.metrics import Cell, MetricResult

    result = MetricResult(
        "cost",
        "Cost",
        [Cell("tokens/correct", None, unit="tokens"), Cell("tokens/question", 5.0, unit="tokens")],
        ["tokens/correct", "tokens/question"],
    )
    assert [row["value"] for row in _metric_rows([result])] == ["–", "5 tokens"]


def test_the_cost_chart_plots_a_cost_the_runs_differ_in(mmad_json: Path, tmp_path: Path) -> None:
    runs = []
    for seed in (3, 4):
        run = tmp_path / f"random{seed}"
        assert (
            main(
                ["eval", "-m", f"random:{seed}", "-d", str(mmad_json), "--no-cache", "--limit", "6", "--out", str(run)]
            )
            == 0
        )
        # both free ($0 a question) and equally long: only their request time tells them apart
        edit_records(run, lambda i, r, s=seed: r.model_copy(update={"cost_usd": 0.0, "latency_s": 0.1 * s + 0.01 * i}))
        runs.append(str(run))
    page = tmp_path / "report.html"
    assert main(["report", *runs, "--no-published", "--out", str(page)]) == 0
    assert "Average accuracy against s/question (2 runs)" in page.read_text()


def test_the_cards_dollars_a_question_are_the_cost_metrics(mmad_json: Path, tmp_path: Path) -> None:
    # --circular: a question is posed in every rotation and pays for each; the card counted its unrotated
    # record alone, a quarter of the $/question `mmad score` shows for the same run
    from mmad.run.scoring import score_run

    run = tmp_path / "circular"
    command = ["eval", "-m", "random", "-d", str(mmad_json), "--no-cache", "--limit", "4", "--circular"]
    assert main([*command, "--out", str(run)]) == 0
    edit_records(run, lambda i, r: r.model_copy(update={"cost_usd": 0.001 * (1 + i % 3)}))
    cost = score_run(run).metric("cost")
    figure = cost.cell("$/question") if cost is not None else None
    assert figure is not None and figure.value is not None
    page = tmp_path / "report.html"
    assert main(["report", str(run), "--no-published", "--out", str(page)]) == 0
    assert f"${figure.value:,.4f} a question" in _card_line(page.read_text(), "Cost")
