"""Paired comparison of two runs: differences, intervals, and subtasks one run never answers."""

from __future__ import annotations

from mmad.score.answers import GradedAnswer
from mmad.score.compare import compare_runs, declined_subtasks

IMAGES = [f"MVTec-AD/bottle/test/{'good' if i % 2 else 'broken'}/{i:03d}.png" for i in range(20)]


def _run(ad_right: bool, dc: str | None) -> list[GradedAnswer]:
    answers = []
    for image in IMAGES:
        gold_ad = "B" if "good" in image else "A"
        answers.append(GradedAnswer(image, "Anomaly Detection", gold_ad, gold_ad if ad_right else "C", None, "ok?"))
        failure = "abstained" if dc is None else None
        answers.append(GradedAnswer(image, "Defect Classification", "A", dc, failure, "type?"))
    return answers


def test_a_better_run_shows_a_positive_difference_with_its_interval() -> None:
    worse, better = _run(ad_right=False, dc="A"), _run(ad_right=True, dc="A")
    by_group = {d.group: d for d in compare_runs(worse, better, samples=200)}
    ad = by_group["Anomaly Discrimination"]
    assert (ad.a, ad.b, ad.delta) == (0.0, 100.0, 100.0) and ad.low > 0
    assert by_group["Defect Classification"].delta == 0.0


def test_a_subtask_one_run_declines_is_left_out_of_both() -> None:
    model, expert = _run(ad_right=False, dc="A"), _run(ad_right=True, dc=None)
    assert [s.value for s in declined_subtasks(model, expert)] == ["Defect Classification"]
    by_group = {d.group: d for d in compare_runs(model, expert, samples=200)}
    assert "Defect Classification" not in by_group
    assert by_group["Average"].b == 100.0, "the average covers only what both runs answer"
