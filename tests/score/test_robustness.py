"""Robustness pairs: a perturbed run's clean twin is a run of the same model, and of several twins the one
sharing the most answered questions (an interrupted copy never hides the whole run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmad.cli import main
from mmad.score.answers import GradedAnswer
from mmad.score.robustness import RunForRobustness, robustness_pairs

CARD = {"protocol": "per-question", "shots": 1, "hash": "aaaa"}
DARK = {**CARD, "perturb": "dark=0.5", "hash": "bbbb"}


def _answers(images: int, *, right: bool) -> list[GradedAnswer]:
    answers = []
    for i in range(images):
        image = f"DS-MVTec/bottle/test/{'good' if i % 2 else 'broken'}/{i}.png"
        answers.append(GradedAnswer(image, "Defect Classification", "A", "A" if right else "B"))
    return answers


def test_the_clean_twin_asks_the_same_model() -> None:
    other_model = RunForRobustness("other", CARD, _answers(20, right=True), "openai:gpt-4o")
    same_model = RunForRobustness("clean", CARD, _answers(20, right=False), "openai:gpt-4o-mini")
    dark = RunForRobustness("dark", DARK, _answers(20, right=False), "openai:gpt-4o-mini")
    (pair,) = robustness_pairs([other_model, same_model, dark], samples=100)
    assert (pair.clean, pair.perturbed, pair.candidates) == ("clean", "dark", 1)
    assert pair.differences[-1].delta == 0.0  # the same model, as wrong in the dark as in the light
    # a perturbed run whose model has no clean run is paired with nothing
    assert robustness_pairs([other_model, dark], samples=100) == []


def test_a_partial_twin_does_not_hide_the_whole_one() -> None:
    partial = RunForRobustness("partial", CARD, _answers(4, right=True), "m")
    whole = RunForRobustness("whole", CARD, _answers(30, right=True), "m")
    dark = RunForRobustness("dark", DARK, _answers(30, right=True), "m")
    for order in ([partial, whole, dark], [whole, partial, dark]):
        (pair,) = robustness_pairs(order, samples=100)
        assert (pair.clean, pair.candidates) == ("whole", 2)
        assert pair.differences[-1].n == 30


@pytest.mark.slow
def test_compare_and_report_pair_no_two_models(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["eval", "-d", str(mmad_json), "--no-cache", "--subtask", "Anomaly Detection"]
    assert main([*args, "-m", "random:3", "--out", str(tmp_path / "clean")]) == 0
    assert main([*args, "-m", "random:4", "--out", str(tmp_path / "dark"), "--perturb", "dark=0.5"]) == 0
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "clean"), str(tmp_path / "dark"), "--json", "--samples", "200"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["robustness"] is None
    page = tmp_path / "report.html"
    assert main(["report", str(tmp_path / "clean"), str(tmp_path / "dark"), "--no-published", "--out", str(page)]) == 0
    assert "(perturb dark=0.5) against" not in page.read_text()
