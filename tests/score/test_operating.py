"""Operating points from constructed answers whose figures are known in closed form."""

from __future__ import annotations

import math

import pytest

from mmad.score.answers import GradedAnswer
from mmad.score.operating import COARSE_DISTINCT, average_precision, operating_report, score_operating


def _ad(
    i: int,
    defective: bool,
    score: float | None,
    kind: str = "likelihood",
    *,
    dataset: str = "VisA",
    category: str = "pcb",
    letter: str | None = None,
) -> GradedAnswer:
    folder = "crack" if defective else "good"
    gold = "A" if defective else "B"  # A. Yes / B. No
    answer = letter if letter is not None else gold
    return GradedAnswer(
        f"{dataset}/{category}/test/{folder}/{i:03d}.png",
        "Anomaly Detection",
        gold,
        answer,
        score=score,
        score_kind=kind,
    )


def test_a_perfect_ranker_has_auroc_100_and_misses_nothing() -> None:
    answers = [_ad(i, i % 2 == 1, float(i) if i % 2 else -float(i)) for i in range(200)]
    result = score_operating(answers)
    assert result is not None
    assert result.auroc == 100.0 and result.auprc == 100.0
    for target in (1.0, 5.0):
        assert result.miss_at_overkill[target].value == 0.0
        assert result.miss_at_overkill[target].reached == 0.0
        assert result.overkill_at_miss[target].value == 0.0
    assert not result.coarse


def test_a_constant_score_has_auroc_50_and_a_coarse_operating_point() -> None:
    answers = [_ad(i, i < 30, 0.0) for i in range(100)]
    result = score_operating(answers)
    assert result is not None
    assert result.auroc == 50.0
    assert result.auprc == pytest.approx(30.0)  # average precision of a constant score is the defect share
    # the only thresholds call everything defective (overkill 100) or nothing (miss 100)
    assert result.miss_at_overkill[1.0].value == 100.0 and result.miss_at_overkill[1.0].reached == 0.0
    assert result.overkill_at_miss[5.0].value == 100.0
    assert result.distinct == 1 < COARSE_DISTINCT and result.coarse
    report = operating_report(answers)
    assert any("coarse operating point" in note for note in report.notes)


def test_a_known_expected_calibration_error() -> None:
    # every image gets p(defect) = 0.8 while 60% are defective: one bin, |0.6 - 0.8| = 20 points
    logit = math.log(0.8 / 0.2)
    answers = [_ad(i, i < 60, logit) for i in range(100)]
    result = score_operating(answers)
    assert result is not None and result.ece == pytest.approx(20.0)
    assert [(b.n, round(b.mean_probability, 6), b.defect_rate) for b in result.reliability] == [(100, 0.8, 0.6)]
    # two bins, each calibrated: ECE 0
    calibrated = [_ad(i, i % 10 < 1, 0.1, "model") for i in range(50)] + [
        _ad(50 + i, i % 10 < 9, 0.9, "model") for i in range(50)
    ]
    result = score_operating(calibrated)
    assert result is not None and result.ece == pytest.approx(0.0, abs=1e-9)


def test_a_known_operating_point_and_average_precision() -> None:
    # 100 normals scored 0..99, 100 defects scored 95..194: the 5 highest normals overlap the 5 lowest defects
    answers = [_ad(i, False, float(i)) for i in range(100)] + [_ad(100 + i, True, 95.0 + i + 0.5) for i in range(100)]
    result = score_operating(answers)
    assert result is not None
    # overkill <= 1% flags one normal (99): the threshold is 98.5, under which lie 3 defects (95.5, 96.5, 97.5)
    assert result.miss_at_overkill[1.0].value == pytest.approx(3.0)
    assert result.miss_at_overkill[5.0].value == 0.0
    # miss <= 1% lets one defect (95.5) through: the threshold is 96.5, above which lie 3 normals (97, 98, 99)
    assert result.overkill_at_miss[1.0].value == pytest.approx(3.0)
    assert average_precision([1, 0], [False, True]) == pytest.approx(0.5)
    assert average_precision([0.0], [False]) is None


def test_a_model_score_outside_0_1_has_no_calibration_and_says_so() -> None:
    answers = [_ad(i, i % 2 == 1, 3.0 * i, "model") for i in range(40)]
    report = operating_report(answers)
    overall = report.by_score["overall"][0]
    assert overall.source == "model" and overall.ece is None and overall.auroc is not None
    assert any("not a probability" in note for note in report.notes)


def test_groups_and_letters_only_runs() -> None:
    answers = [
        _ad(i, i % 2 == 1, float(i % 2) + i / 1000, dataset=d, category=c)
        for i, (d, c) in enumerate([("VisA", "pcb"), ("VisA", "fryum"), ("GoodsAD", "cookies")] * 20)
    ]
    report = operating_report(answers)
    assert [r.group for r in report.by_score["dataset"]] == ["GoodsAD", "VisA"]
    assert [r.group for r in report.by_score["category"]] == ["GoodsAD/cookies", "VisA/fryum", "VisA/pcb"]
    # letters only: one operating point per category and defect type, from the answers
    letters = [_ad(i, i < 10, None, letter="A") for i in range(20)]  # always "Yes": every normal rejected
    report = operating_report(letters)
    assert not report.has_scores and report.by_score["overall"] == []
    assert any("letters only" in note for note in report.notes)
    (category,) = report.by_letter["category"]
    assert category.cells() == {"Overkill": 100.0, "Miss": 0.0}
    by_type = {r.group: r.cells() for r in report.by_letter["defect_type"]}
    assert by_type == {
        "VisA/pcb/crack": {"Overkill": None, "Miss": 0.0},
        "VisA/pcb/good": {"Overkill": 100.0, "Miss": None},
    }


def test_a_declined_subtask_is_a_missing_cell() -> None:
    declined = [
        GradedAnswer(
            f"VisA/pcb/test/{'good' if i % 2 else 'crack'}/{i}.png", "Anomaly Detection", "A", None, "abstained"
        )
        for i in range(10)
    ]
    report = operating_report(declined)
    assert report.by_score["overall"] == []
    assert all(r.overkill is None and r.miss is None for r in report.by_letter["category"])
