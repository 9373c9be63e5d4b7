"""A solver defined and registered in this file alone is chosen by `mmad eval --solver`, asks through the
run's model caller, and its records are scored by `mmad score`."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from mmad.cli import main
from mmad.data.schema import Subtask
from mmad.errors import ConfigError
from mmad.protocol.messages import Prompt
from mmad.records.record import Record, Status, read_records
from mmad.solvers import SOLVERS, ModelCaller, Solver, question_record, register_solver, unregister_solver


@pytest.fixture
def toy_solver() -> Iterator[type[Solver]]:
    @register_solver("toy")
    class LastOption(Solver):
        """Asks the model, keeps its reply, and answers every question with its last option."""

        async def solve(self, prompt: Prompt, call: ModelCaller) -> list[Record]:
            reply = await call(prompt)
            return [
                question_record(
                    q,
                    status=Status.ANSWERED,
                    answer=list(q.options)[-1],
                    parse_method="toy",
                    raw_reply=reply.completion.text,
                    extra={"toy": True},
                )
                for q in prompt.questions
            ]

    yield LastOption
    unregister_solver("toy")


def test_a_solver_registered_in_a_test_file_runs_mmad_eval_and_is_scored(
    toy_solver: type[Solver], mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert (
        main(["eval", "-m", "random:7", "-d", str(mmad_json), "--out", str(out), "--no-cache", "--solver", "toy"]) == 0
    )
    records = read_records(out / "records.jsonl")
    assert records and all(r.parse_method == "toy" and r.extra == {"toy": True} for r in records)
    assert all(r.answer == list(r.options)[-1] and r.raw_reply for r in records)  # the model was asked
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["config"]["answers"]["solver"] == "toy"
    capsys.readouterr()
    assert main(["score", str(out), "--json", "-o", str(tmp_path / "score")]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["n_counted"] == len(records)
    # The MMAD table's cells are the toy's letters graded: dataset/subtask accuracy from the records (Anomaly
    # Discrimination left out: the official scorer counts it by its own rule, tested in tests/score).
    groups: dict[str, list[bool]] = defaultdict(list)
    for r in records:
        if Subtask.parse(r.question_type) is Subtask.ANOMALY_DISCRIMINATION:
            continue
        groups[f"{r.image.split('/')[0]}/{Subtask.parse(r.question_type).value}"].append(r.answer == r.correct_answer)
    cells = {c["name"]: c["value"] for c in scored["metrics"]["mmad"]["cells"]}
    assert {name: cells[name] for name in groups} == pytest.approx(
        {name: 100.0 * sum(right) / len(right) for name, right in groups.items()}
    )
    assert 0 < sum(r.answer == r.correct_answer for r in records) < len(records)


def test_an_unknown_solver_is_refused_before_the_run_folder_is_made(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    code = main(["eval", "-m", "random:7", "-d", str(mmad_json), "--out", str(out), "--no-cache", "--solver", "nope"])
    assert code == 2
    error = capsys.readouterr().err
    assert "--solver nope" in error and "plain" in error and "cot" in error
    assert not out.exists()


def test_a_name_taken_by_another_solver_is_refused(toy_solver: type[Solver]) -> None:
    with pytest.raises(ConfigError, match="registered already"):

        @register_solver("toy")
        class Another(Solver):
            pass

    assert SOLVERS["toy"] is toy_solver


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--solver", "judge", "--judge", "random"], "--solver judge: the judge solver wraps the one that answers"),
        (["--solver", "agent-render"], "added by --strategies agent"),
        (["--solver", "tools"], "added by --strategies tools"),
        (["--solver", "plain", "--strategy", "cot"], "--solver plain cannot ask the cot strategy"),
        (["--solver", "cot"], "--solver cot asks the cot strategy's chain-of-thought turn: add --strategies cot"),
        # the gpt4o recipe's cumulative protocol has no cot turn: "add --strategies cot" alone led to its error
        (
            ["--solver", "cot", "--recipe", "gpt4o"],
            "which --protocol cumulative does not have: add --strategies cot with --protocol per-question",
        ),
    ],
)
def test_a_solver_the_run_cannot_use_is_refused_before_the_run_folder_is_made(
    flags: list[str], said: str, mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Each of these made a run folder (a wrapper failed to build after it; plain failed every cot question,
    # and cot without the strategy ran as plain under another card).
    out = tmp_path / "run"
    code = main(["eval", "-m", "random:7", "-d", str(mmad_json), "--out", str(out), "--no-cache", *flags])
    assert code == 2
    assert said in capsys.readouterr().err
    assert not out.exists()


def test_a_solver_that_raises_fails_its_prompts_questions_and_the_run_goes_on(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The contract says a solver turns failures into records; one that lets an exception out (the docs'
    # example lets a ModelCallError out) ended the whole run with it.
    failing: set[str] = set()

    @register_solver("toy-raises")
    class Raises(Solver):
        async def solve(self, prompt: Prompt, call: ModelCaller) -> list[Record]:
            if not failing or prompt.image in failing:
                failing.add(prompt.image)
                msg = "a plugin's bug"
                raise RuntimeError(msg)
            reply = await call(prompt)
            return [
                question_record(q, status=Status.ANSWERED, answer="A", raw_reply=reply.completion.text)
                for q in prompt.questions
            ]

    out = tmp_path / "run"
    try:
        args = ["eval", "-m", "random:7", "-d", str(mmad_json), "--out", str(out), "--no-cache", "-c", "1"]
        code = main([*args, "--solver", "toy-raises"])
    finally:
        unregister_solver("toy-raises")
    assert code == 1, capsys.readouterr().err  # partial: its failed questions are asked again by --resume
    records = read_records(out / "records.jsonl")
    failed = [r for r in records if r.status is Status.ERROR]
    assert failed and {r.image for r in failed} == failing
    assert all(r.error_class == "RuntimeError" and r.error_message == "a plugin's bug" for r in failed)
    assert len(records) > len(failed) and all(r.status is Status.ANSWERED for r in records if r not in failed)
    assert json.loads((out / "run.json").read_text())["status"] == "partial"
