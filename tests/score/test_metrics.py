"""Metrics as a list: a metric added in this file alone shows in `mmad score` (terminal and --json) on a run
made by `mmad eval`; the built-in metrics' figures on constructed answers are known in closed form."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mmad.cli import main
from mmad.errors import ConfigError
from mmad.records.record import Record, Status
from mmad.run.scoring import score_run
from mmad.score.answers import GradedAnswer, graded_from_record
from mmad.score.metrics import (
    Bootstrap,
    Cell,
    Graded,
    Metric,
    MetricResult,
    compute_metrics,
    register_metric,
    registered_metrics,
    unregister_metric,
)


class LetterAShare(Metric):
    """A toy metric: the share of answers that are the letter A, and how many questions it saw."""

    name = "toy-letter-a"
    title = "Toy: answers that are A"

    def compute(self, graded: Graded) -> MetricResult | None:
        answers = list(graded.answers)
        share = 100.0 * sum(a.answer == "A" for a in answers) / len(answers) if answers else None
        return self.result([Cell("A share", share), Cell("questions", float(len(answers)), unit="")])


@pytest.fixture
def toy_metric() -> Iterator[LetterAShare]:
    metric = LetterAShare()
    register_metric(metric)
    yield metric
    unregister_metric(metric.name)


@pytest.fixture(scope="module")
def random_run(tmp_path_factory: pytest.TempPathFactory, mmad_json: Path) -> Path:
    out = tmp_path_factory.mktemp("metrics") / "run"
    assert main(["eval", "-m", "random:7", "-d", str(mmad_json), "--out", str(out), "--no-cache"]) == 0
    return out


def test_a_metric_registered_in_a_test_file_is_shown_by_mmad_score(
    toy_metric: LetterAShare, random_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = [json.loads(line) for line in (random_run / "records.jsonl").read_text().splitlines() if line]
    expected = 100.0 * sum(r["answer"] == "A" for r in records) / len(records)
    capsys.readouterr()
    assert main(["score", str(random_run), "--json", "-o", str(tmp_path)]) == 0
    metrics = json.loads(capsys.readouterr().out)["metrics"]
    toy = metrics["toy-letter-a"]
    assert toy["title"] == "Toy: answers that are A"
    assert toy["cells"][0] == {"name": "A share", "value": pytest.approx(expected), "unit": "%"}
    assert toy["cells"][1]["value"] == len(records)
    assert list(metrics)[:2] == ["mmad", "detection"]  # the built-in ones first, in the registry's order
    assert main(["score", str(random_run), "-o", str(tmp_path), "--no-plot"]) == 0
    text = capsys.readouterr().out
    assert "Toy: answers that are A" in text and f"{expected:.1f}" in text
    unregister_metric(toy_metric.name)
    assert main(["score", str(random_run), "--json", "-o", str(tmp_path)]) == 0
    assert "toy-letter-a" not in json.loads(capsys.readouterr().out)["metrics"]


def test_a_second_metric_of_the_same_name_is_refused(toy_metric: LetterAShare) -> None:
    with pytest.raises(ConfigError, match="registered already"):
        register_metric(LetterAShare())
    register_metric(LetterAShare(), replace=True)
    assert [m.name for m in registered_metrics()].count(toy_metric.name) == 1


def _record(
    i: int, *, right: bool, tokens: tuple[int, int] | None, cost: float | None, latency: float | None
) -> Record:
    return Record(
        question_id=f"q{i}",
        image=f"MVTec-AD/bottle/test/broken_large/{i:03d}.png",
        question_type="Defect Classification",
        correct_answer="A",
        status=Status.ANSWERED,
        answer="A" if right else "B",
        prompt_tokens=None if tokens is None else tokens[0],
        completion_tokens=None if tokens is None else tokens[1],
        cost_usd=cost,
        latency_s=latency,
    )


def test_cost_per_question_and_tokens_per_correct_answer_in_closed_form() -> None:
    # 4 questions, 3 right; 400 + 40 tokens each; $0.01 each; 0.5 s each
    records = [_record(i, right=i < 3, tokens=(400, 40), cost=0.01, latency=0.5) for i in range(4)]
    graded = Graded([graded_from_record(r) for r in records], records)
    (cost,) = compute_metrics(graded, [m for m in registered_metrics() if m.name == "cost"])
    values = {c.name: c.value for c in cost.cells}
    assert values == {
        "tokens/question": 440.0,
        "$/question": pytest.approx(0.01),
        "s/question": 0.5,
        "tokens/correct": pytest.approx(4 * 440 / 3),
    }
    # a free model records no dollars: the figure is missing, not 0; no correct answer: no tokens per correct
    free = [_record(i, right=False, tokens=(10, 0), cost=None, latency=None) for i in range(2)]
    (cost,) = compute_metrics(
        Graded([graded_from_record(r) for r in free], free), [m for m in registered_metrics() if m.name == "cost"]
    )
    values = {c.name: c.value for c in cost.cells}
    assert values == {"tokens/question": 10.0, "$/question": None, "s/question": None, "tokens/correct": None}
    assert any("no correct answer" in note for note in cost.notes)


def test_a_request_that_posed_several_questions_shares_its_seconds_among_them() -> None:
    """--protocol per-image: one request of 0.9 s answers three questions, and each record holds the 0.9 s; its
    tokens and dollars are split, so are its seconds. A question asked again in its own request (same prompt,
    another time) is not mistaken for a share of the first."""
    shared = [_record(i, right=True, tokens=(100, 10), cost=0.003, latency=0.9) for i in range(3)]
    alone = [_record(i, right=True, tokens=(300, 30), cost=0.009, latency=0.3) for i in range(3, 5)]
    records = [r.model_copy(update={"prompt_hash": "image-0"}) for r in shared]
    records += [r.model_copy(update={"prompt_hash": "same-prompt"}) for r in alone]  # two requests: 0.3 s each
    records[-1] = records[-1].model_copy(update={"latency_s": 0.5})
    (cost,) = compute_metrics(
        Graded([graded_from_record(r) for r in records], records),
        [m for m in registered_metrics() if m.name == "cost"],
    )
    values = {c.name: c.value for c in cost.cells}
    assert values["s/question"] == pytest.approx((0.9 + 0.3 + 0.5) / 5)


def test_a_record_without_dollars_or_tokens_is_not_a_free_one() -> None:
    # 4 questions at $0.01 and 440 tokens each, then 4 whose records carry neither (a server without usage)
    records = [_record(i, right=True, tokens=(400, 40), cost=0.01, latency=0.5) for i in range(4)]
    records += [_record(i, right=i == 4, tokens=None, cost=None, latency=0.5) for i in range(4, 8)]
    (cost,) = compute_metrics(
        Graded([graded_from_record(r) for r in records], records),
        [m for m in registered_metrics() if m.name == "cost"],
    )
    values = {c.name: c.value for c in cost.cells}
    # what a question cost where it was measured, not $0.04 spread over 8 questions
    assert values == {
        "tokens/question": 440.0,
        "$/question": pytest.approx(0.01),
        "s/question": 0.5,
        "tokens/correct": pytest.approx(440.0),
    }
    assert any("4 of 8 questions" in note for note in cost.notes)


def test_the_partial_cost_note_does_not_blame_replies_from_the_cache() -> None:
    # replies from the cache carry their tokens and dollars (at the run's price): the 4 questions without
    # them are the failed ones, and the note must not send the user looking at the cache
    records = [_record(i, right=True, tokens=(400, 40), cost=0.01, latency=0.5) for i in range(4)]
    records = [r.model_copy(update={"cached": True, "asked_latency_s": 0.5}) for r in records]
    failed = [_record(i, right=False, tokens=None, cost=None, latency=0.5) for i in range(4, 8)]
    records += [r.model_copy(update={"status": Status.ERROR, "answer": None}) for r in failed]
    (cost,) = compute_metrics(
        Graded([graded_from_record(r) for r in records], records),
        [m for m in registered_metrics() if m.name == "cost"],
    )
    assert cost.cell("$/question").value == pytest.approx(0.01)  # type: ignore[union-attr]
    (partial,) = [note for note in cost.notes if note.startswith("dollars per question over the 4 of 8")]
    assert "a failure" in partial and "a cached reply," not in partial
    assert "recorded by mmad before it priced them" in partial  # the only cached replies that carry none


def test_metrics_that_do_not_apply_are_left_out() -> None:
    # an official answers file: no records, so no cost; no rotation, so no circular figure; no score
    answers = [GradedAnswer(f"VisA/pcb1/test/good/{i}.png", "Anomaly Detection", "B", "B") for i in range(4)]
    names = [m.metric for m in compute_metrics(Graded(answers))]
    assert names[:2] == ["mmad", "detection"] and not {"cost", "circular", "operating"} & set(names)


def test_the_mmad_metric_carries_the_tables_intervals_under_a_bootstrap(random_run: Path) -> None:
    scored = score_run(random_run, bootstrap=Bootstrap(samples=200, seed=1))
    mmad = scored.metric("mmad")
    assert mmad is not None
    average = mmad.cell("Average")
    assert average is not None and average.value == pytest.approx(scored.strict.average)
    assert average.value is not None and average.low is not None and average.high is not None
    assert average.low <= average.value <= average.high
    assert scored.intervals is not None and average.low == scored.intervals.average.low  # type: ignore[union-attr]
    plain = score_run(random_run).metric("mmad")
    assert plain is not None and not any(c.has_interval for c in plain.cells)


def test_the_auroc_interval_of_a_perfect_a_constant_and_a_resampled_ranker() -> None:
    from mmad.score.auroc import auroc
    from mmad.score.intervals import auroc_interval

    images = [f"i{i}" for i in range(40)]
    labels = [i % 2 == 1 for i in range(40)]
    assert auroc_interval([float(i % 2) for i in range(40)], labels, images, samples=200) == (100.0, 100.0)
    assert auroc_interval([1.0] * 40, labels, images, samples=200) == (50.0, 50.0)  # every pair tied: one half
    assert auroc_interval([1.0] * 40, [True] * 40, images) is None  # one class: no AUROC
    # one resample is one reweighting: the AUROC of the answers that draw duplicates, image by image
    rng = np.random.default_rng(3)
    scores = np.round(rng.normal(np.asarray(labels) * 0.8, 1.0), 1).tolist()
    picks = np.random.default_rng(7).integers(0, 40, size=(1, 40))[0]
    drawn = auroc([scores[i] for i in picks], [labels[i] for i in picks])
    low, high = auroc_interval(scores, labels, images, samples=1, seed=7)  # type: ignore[misc]
    assert drawn is not None and low == high == pytest.approx(100 * drawn)
    # an image's answers move together: two answers of one image are drawn (or not) as one
    twice = auroc_interval(scores * 2, labels * 2, images * 2, samples=1, seed=7)
    assert twice == pytest.approx((low, high))


def test_the_operating_metric_carries_the_aurocs_interval_under_a_bootstrap() -> None:
    answers = [
        GradedAnswer(
            f"VisA/pcb/test/{'crack' if i % 2 else 'good'}/{i:03d}.png",
            "Anomaly Detection",
            "A" if i % 2 else "B",
            "A",
            score=float(i % 2) + (i % 7) / 10,
            score_kind="model",
        )
        for i in range(60)
    ]
    (operating,) = [m for m in compute_metrics(Graded(answers, bootstrap=Bootstrap(200, 0))) if m.metric == "operating"]
    auroc = operating.cell("AUROC")
    assert auroc is not None and auroc.value is not None and auroc.has_interval
    assert auroc.low <= auroc.value <= auroc.high  # type: ignore[operator]
    assert operating.cell("VisA/AUROC").has_interval  # type: ignore[union-attr]
    assert not operating.cell("AUPRC").has_interval  # type: ignore[union-attr]
