"""Reading a tools run: direct, tools and blend paired per question, with intervals; tool use per subtask."""

from __future__ import annotations

import math
from typing import Any

import pytest

from mmad.records.record import Record, Status
from mmad.score.metrics import Bootstrap, Graded, compute_metrics, registered_metrics
from mmad.score.metrics.tools import ToolsVersusDirect, ToolUse

YES_NO = {"A": "Yes.", "B": "No."}


def _record(
    image: str,
    gold: str,
    direct: str,
    tools: str,
    *,
    qtype: str = "Anomaly Detection",
    calls: tuple[str, ...] = ("zoom",),
    direct_p: float | None = None,
    tools_p: float | None = None,
    blend: str | None = None,
) -> Record:
    def scores(p: float | None) -> dict[str, float]:
        return {} if p is None else {"A": math.log(p), "B": math.log(1 - p)}

    extra: dict[str, Any] = {
        "direct": {"answer": direct, "scores": scores(direct_p), "prompt_tokens": 100, "completion_tokens": 1},
        "tools": {
            "answer": tools,
            "scores": scores(tools_p),
            "calls": [{"name": n, "error": n == "bad", "latency_s": 0.5} for n in calls],
            "turns": [{"prompt_tokens": 300, "completion_tokens": 5, "latency_s": 1.0}] * (len(calls) + 1),
            "forced_final": len(calls) >= 3,
        },
    }
    if blend:
        extra["blend"] = {"answer": blend, "probabilities": {"A": 0.5, "B": 0.5}}
    return Record(
        question_id=f"{image}#0",
        image=image,
        question_type=qtype,
        options=YES_NO,
        correct_answer=gold,
        status=Status.ANSWERED,
        answer=tools,
        extra=extra,
    )


def _graded(records: list[Record], bootstrap: Bootstrap | None = None) -> Graded:
    return Graded(answers=[], records=records, bootstrap=bootstrap)


def _runs() -> list[Record]:
    good = "DS-MVTec/bottle/image/good/{:03d}.png"
    bad = "DS-MVTec/bottle/image/broken/{:03d}.png"
    return [
        # direct right on the normal images, tools right on the defective ones
        *(_record(good.format(i), "B", "B", "A", direct_p=0.3, tools_p=0.6) for i in range(4)),
        *(_record(bad.format(i), "A", "B", "A", direct_p=0.4, tools_p=0.9) for i in range(6)),
        _record("DS-MVTec/bottle/image/broken/100.png", "C", "C", "C", qtype="Defect Classification", calls=()),
    ]


def test_the_branches_are_compared_on_the_same_questions() -> None:
    result = ToolsVersusDirect().compute(_graded(_runs()))
    assert result is not None
    assert result.cell("direct accuracy").value == pytest.approx(100 * 5 / 11)  # type: ignore[union-attr]
    assert result.cell("tools accuracy").value == pytest.approx(100 * 7 / 11)  # type: ignore[union-attr]
    assert result.cell("tools − direct").value == pytest.approx(100 * 2 / 11)  # type: ignore[union-attr]
    # AUROC from p(Yes): direct 0.3 on normals, 0.4 on defects (perfectly ranked); tools 0.6 / 0.9, too
    assert result.cell("direct AUROC").value == 100.0  # type: ignore[union-attr]
    assert result.cell("tools AUROC").value == 100.0  # type: ignore[union-attr]
    assert result.cell("tools AUROC").unit == "%"  # type: ignore[union-attr]  # as the operating points'

    assert result.cell("tools tokens/question").value == pytest.approx((10 * 2 * 305 + 305) / 11)  # type: ignore[union-attr]
    assert result.cell("direct tokens/question").value == pytest.approx(101)  # type: ignore[union-attr]
    assert result.headline == ["direct accuracy", "tools accuracy", "tools − direct", "direct AUROC", "tools AUROC"]


def test_intervals_come_from_a_bootstrap_over_images() -> None:
    result = ToolsVersusDirect().compute(_graded(_runs(), Bootstrap(samples=200, seed=1)))
    assert result is not None
    gain = result.cell("tools − direct")
    assert gain is not None and gain.has_interval
    assert gain.low is not None and gain.high is not None and gain.low <= gain.value <= gain.high  # type: ignore[operator]
    again = ToolsVersusDirect().compute(_graded(_runs(), Bootstrap(samples=200, seed=1)))
    assert again is not None and again.cell("tools − direct") == gain  # seeded


def test_the_blend_branch_is_read_where_the_run_has_one() -> None:
    records = [_record("DS-MVTec/bottle/image/good/000.png", "B", "A", "A", blend="B")]
    result = ToolsVersusDirect().compute(_graded(records))
    assert result is not None
    assert result.cell("blend accuracy").value == 100.0  # type: ignore[union-attr]
    assert result.cell("blend − direct").value == 100.0  # type: ignore[union-attr]


def test_tool_use_per_tool_and_per_subtask() -> None:
    records = [
        _record("DS-MVTec/bottle/image/good/000.png", "B", "B", "B", calls=("zoom", "reference", "bad")),
        _record("DS-MVTec/bottle/image/good/001.png", "B", "B", "B", calls=("zoom",)),
        _record("DS-MVTec/bottle/image/good/002.png", "C", "C", "C", qtype="Defect Classification", calls=()),
    ]
    result = ToolUse().compute(_graded(records))
    assert result is not None
    assert result.cell("calls/question").value == pytest.approx(4 / 3)  # type: ignore[union-attr]
    assert result.cell("zoom/question").value == pytest.approx(2 / 3)  # type: ignore[union-attr]
    assert result.cell("calls/question AD").value == pytest.approx(2.0)  # type: ignore[union-attr]
    assert result.cell("calls/question DC").value == 0.0  # type: ignore[union-attr]
    assert result.cell("questions without a call").value == pytest.approx(100 / 3)  # type: ignore[union-attr]
    assert result.cell("calls refused").value == pytest.approx(25.0)  # type: ignore[union-attr]
    assert result.cell("turn limit reached").value == pytest.approx(100 / 3)  # type: ignore[union-attr]


def test_a_run_without_tools_shows_neither() -> None:
    plain = Record(
        question_id="x#0", image="x", question_type="Anomaly Detection", correct_answer="A", status=Status.ANSWERED
    )
    names = {r.metric for r in compute_metrics(_graded([plain]), [ToolsVersusDirect(), ToolUse()])}
    assert names == set()
    assert {"tools", "tool-use"} <= {m.name for m in registered_metrics()}
