"""Circular evaluation exposes a letter-biased model; likelihood scoring picks letters without parsing."""

import json
from pathlib import Path

import pytest

from mmad import evaluate
from mmad.models.base import Completion, Model, Request
from mmad.models.baselines import FixedModel
from mmad.records.record import read_records
from mmad.score.auroc import detection_auroc
from mmad.score.circular import circular_report
from tests.helpers.serving import running_server


def test_circular_evaluation_shows_a_fixed_letter_bias(mmad_json: Path, tmp_path: Path) -> None:
    with running_server(FixedModel("A")) as server:
        result = evaluate(
            "mmad:fixed", mmad_json, out=tmp_path / "run", base_url=server.base_url, cache=False, circular=True
        )
    records = read_records(tmp_path / "run" / "records.jsonl")
    plain = [r for r in records if r.variant == "rot0"]
    assert {r.variant for r in records} >= {"rot0", "rot1", "rot3"}
    assert result.table.n_answers == len(plain)  # the main table scores the unrotated posing once per question
    report = circular_report(records)
    overall = report.rows[-1]
    assert overall.group == "All"
    assert overall.plain == pytest.approx(100 * sum(r.correct_answer == "A" for r in plain) / len(plain))
    assert overall.plain > 20 and overall.circular == 0.0  # right by letter, never by content
    assert report.answered_letters == {"A": len(records)}
    saved = json.loads((tmp_path / "run" / "circular.json").read_text())
    assert saved["rows"][-1]["circular"] == 0.0


class LikelihoodModel(Model):
    """Replies with text no parser reads, and letter log-probabilities that prefer the right option
    for defect images' Yes/No question and "B" elsewhere."""

    name = "likelihood"

    async def generate(self, request: Request) -> Completion:
        letters = request.choices[0]
        text = request.messages[-1].text
        defective = any("good" not in (p.path or "") for p in request.messages[0].images if p.role == "query")
        lines = {line[0]: line[3:] for line in text.splitlines() if len(line) > 3 and line[1:3] == ". "}
        if set(lines.values()) == {"Yes.", "No."}:
            wanted = next(k for k, v in lines.items() if v == ("Yes." if defective else "No."))
        else:
            wanted = "B"
        logprobs = {letter: (-0.1 if letter == wanted else -3.0) for letter in letters}
        return Completion(text="Hmm, hard to say.", letter_logprobs=logprobs)


def test_likelihood_answers_and_auroc(mmad_json: Path, tmp_path: Path) -> None:
    import asyncio

    from mmad import RunConfig
    from mmad.api import evaluate_async

    config = RunConfig.from_flat("likelihood", str(mmad_json), answer_from="likelihood", cache=False)
    run = asyncio.run(evaluate_async(config, out=tmp_path / "run", model=LikelihoodModel()))
    records = read_records(tmp_path / "run" / "records.jsonl")
    assert all(r.parse_method == "likelihood" for r in records)
    assert all(set(r.scores) <= set("ABCDE") and r.scores for r in records)
    from mmad.data.schema import Subtask

    assert run.table.average_cells[Subtask.ANOMALY_DISCRIMINATION] == 100.0
    assert detection_auroc(records)["all"] == 1.0


def test_logprobs_travel_over_http(mmad_json: Path, tmp_path: Path) -> None:
    with running_server(LikelihoodModel()) as server:
        run = evaluate(
            "mmad:likelihood",
            mmad_json,
            out=tmp_path / "run",
            base_url=server.base_url,
            cache=False,
            answer_from="likelihood",
            subtasks=["Defect Analysis"],
        )
    records = read_records(tmp_path / "run" / "records.jsonl")
    assert {r.answer for r in records} == {"B"} and {r.parse_method for r in records} == {"likelihood"}
    assert run.table.n_unanswered == 0


def test_replies_without_the_asked_logprobs_are_counted(mmad_json: Path, tmp_path: Path) -> None:
    import asyncio

    from mmad import RunConfig
    from mmad.api import evaluate_async

    config = RunConfig.from_flat(
        "fixed", str(mmad_json), answer_from="likelihood", cache=False, subtasks=["Defect Analysis"]
    )
    run = asyncio.run(evaluate_async(config, out=tmp_path / "run", model=FixedModel("A")))
    records = read_records(tmp_path / "run" / "records.jsonl")
    assert records and run.stats.without_logprobs == len(records)  # one request per question, none with them
