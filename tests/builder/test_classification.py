"""Defect Classification never sets a broader term against the names it covers."""

from pathlib import Path

import numpy as np
import pytest

from mmad.builder import build_benchmark
from mmad.builder.questions import LetterBalancer, Skip, classification_question
from tests.helpers.ad_trees import make_loco, make_raw_visa, make_tree

# Written out by hand (not taken from vocab) so that the generator is checked against an independent list.
BROAD = {"A defect.", "An anomaly.", "A structural defect.", "A logical error in the contents.", "Surface damage."}
SURFACE = {"A scratch.", "A stain.", "Discoloration.", "Contamination."}
STRUCTURAL = SURFACE | {"A crack.", "A hole.", "A dent.", "A bent part."}


def _questions(defect: str, siblings: list[str], n: int = 40) -> list[dict[str, object] | Skip]:
    rng = np.random.default_rng(0)
    balancer = LetterBalancer(rng)
    return [classification_question(defect, siblings, balancer, rng) for _ in range(n)]


@pytest.mark.parametrize(
    ("defect", "siblings"),
    [
        ("bad", ["bad"]),  # VisA
        ("structural_anomalies", ["logical_anomalies", "structural_anomalies"]),  # MVTec LOCO
        ("logical_anomalies", ["logical_anomalies", "structural_anomalies"]),
        ("defective", ["defective"]),  # MVTec's toothbrush
    ],
)
def test_a_broad_answer_without_enough_disjoint_names_is_skipped(defect: str, siblings: list[str]) -> None:
    made = _questions(defect, siblings)
    assert all(isinstance(q, Skip) and "broad term" in q.reason for q in made)


def test_options_never_cover_each_other() -> None:
    food_box = ["surface_damage", "deformation", "opened"]  # GoodsAD
    for question in _questions("surface_damage", food_box):
        assert isinstance(question, dict)
        options = set(question["Options"].values())  # type: ignore[union-attr]
        assert question["Options"][question["Answer"]] == "Surface damage."  # type: ignore[index]
        assert not options & SURFACE, options
    for question in _questions("scratch", ["scratch", "bad", "crack"]):
        assert isinstance(question, dict)
        assert "A defect." not in question["Options"].values()  # type: ignore[union-attr]
    assert all(isinstance(q, Skip) for q in _questions("bad", ["scratch", "bad", "crack"]))
    for question in _questions("crack", ["crack", "structural_anomalies", "missing_part"]):
        assert isinstance(question, dict)
        assert "A structural defect." not in question["Options"].values()  # type: ignore[union-attr]


def test_specific_names_keep_their_question() -> None:
    for question in _questions("hole", ["hole", "scratch"]):
        assert isinstance(question, dict)
        assert len(question["Options"]) == 4  # type: ignore[arg-type]
        assert question["Options"][question["Answer"]] == "A hole."  # type: ignore[index]


def test_no_built_question_has_a_broad_answer_over_its_distractors(tmp_path: Path) -> None:
    sources = {
        "visa": make_raw_visa(tmp_path / "visa"),
        "loco": make_loco(tmp_path / "loco", categories=("pushpins",), n_train=3, n_validation=1),
        "goodsad": make_tree(tmp_path / "goodsad", "goodsad"),
        "mvtec": make_tree(tmp_path / "mvtec", "mvtec"),
    }
    asked = 0
    for layout, source in sources.items():
        bench, report = build_benchmark(source, tmp_path / f"out-{layout}")
        for question in bench.questions():
            if question.type != "Defect Classification":
                continue
            asked += 1
            answer = question.options[question.answer]
            distractors = {t for k, t in question.options.items() if k != question.answer}
            assert answer not in BROAD or not distractors & STRUCTURAL, (layout, question.options)
            assert not distractors & BROAD, (layout, question.options)
        if layout in {"visa", "loco"}:
            assert sum(n for r, n in report.skipped.items() if r.startswith("Defect Classification")) > 0
    assert asked > 0


@pytest.mark.parametrize(("category", "lookalike"), [("bolt", "A screw."), ("wire", "A cable."), ("jar", "A bottle.")])
def test_object_classification_never_offers_a_lookalike_of_the_product(category: str, lookalike: str) -> None:
    from mmad.builder.questions import object_question

    rng = np.random.default_rng(0)
    balancer = LetterBalancer(rng)
    for _ in range(200):
        qa = object_question(category, [category, "widget"], balancer, rng)
        assert qa is not None
        wrong = [text for letter, text in qa["Options"].items() if letter != qa["Answer"]]
        assert lookalike not in wrong
