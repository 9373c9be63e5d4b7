"""`mmad compare` of a run against a partial run of the same model: failed requests are left out, not wrong.

Both runs are real runs of the seeded random model behind `mmad serve`'s server, one of them with
injected server errors and no retries, so the same questions get the same answers wherever both
got a reply.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmad.cli import main
from mmad.models.baselines import RandomModel
from mmad.records import read_records
from mmad.records.record import Status
from mmad.serve.server import ChatServer, FaultPlan, serve_in_thread
from tests.helpers.runs import copy_run, edit_records


def _run(data: Path, out: Path, fault_rate: float) -> Path:
    plan = FaultPlan(rate=fault_rate, kinds=("500", "503"), seed=7)
    server = ChatServer(RandomModel(seed=3), faults=plan, model_name="random")
    with serve_in_thread(server) as running:
        args = ["eval", "-m", "compat:random", "--base-url", running.base_url, "-d", str(data), "--out", str(out)]
        main([*args, "--no-cache", "--max-retries", "0", "--max-errors", "100000"])
    return out


@pytest.fixture(scope="module")
def runs(mmad_json: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("compare")
    return {
        "full": _run(mmad_json, folder / "full", 0.0),
        "partial": _run(mmad_json, folder / "partial", 0.4),
        "failed": _run(mmad_json, folder / "failed", 1.0),
    }


def test_a_partial_run_is_compared_on_what_both_answered(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    records = read_records(runs["partial"] / "records.jsonl")
    failed = sum(r.status is Status.ERROR for r in records)
    assert 0 < failed < len(records), "the fault rate gives a partial run"
    capsys.readouterr()
    assert main(["compare", str(runs["full"]), str(runs["partial"]), "--samples", "200"]) == 0
    captured = capsys.readouterr()
    out, err = " ".join(captured.out.split()), " ".join(captured.err.split())
    # The same model answers the same questions alike: a partial run is no worse, only smaller.
    average = next(line for line in captured.out.splitlines() if "Average" in line)
    assert "+0.0" in average and "-" not in average.split("│")[4], average
    assert f"{len(records) - failed} questions answered by both runs" in out
    assert f"left out {failed} questions" in out and f"A none; B error {failed}" in out
    assert "warning: B" in err and "is a partial run" in err and f"{failed} of {len(records)} requests failed" in err

    capsys.readouterr()
    assert main(["compare", str(runs["full"]), str(runs["partial"]), "--samples", "200", "--json"]) == 0
    captured = capsys.readouterr()
    payload = json.loads(captured.out)
    assert payload["partial"] is True
    assert payload["runs"]["a"]["partial"] is False and payload["runs"]["b"]["partial"] is True
    assert payload["runs"]["b"]["failed"] == failed
    assert payload["paired"] == len(records) - failed
    assert payload["left_out"] == {"total": failed, "a": {}, "b": {"error": failed}}
    by_group = {d["group"]: d for d in payload["differences"]}
    assert all(d["delta"] == 0.0 for d in by_group.values())
    assert "is a partial run" in captured.err, "the warning goes to stderr, beside the json"


def test_two_complete_runs_are_not_partial(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["compare", str(runs["full"]), str(runs["full"]), "--samples", "100", "--json"]) == 0
    captured = capsys.readouterr()
    payload = json.loads(captured.out)
    assert payload["partial"] is False and payload["left_out"]["total"] == 0
    assert "partial run" not in captured.err


def test_a_run_without_any_reply_is_not_compared(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    code = main(["compare", str(runs["full"]), str(runs["failed"]), "--samples", "100"])
    captured = capsys.readouterr()
    text = " ".join((captured.out + captured.err).split())
    assert code == 1 and "Traceback" not in text
    assert "nothing to compare" in text and "no question was answered by both" in text and "B error" in text
    assert "Average" not in captured.out, "no table of differences against a run that never answered"


def test_an_interrupted_run_is_partial_and_its_unasked_questions_are_left_out(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cut = copy_run(runs["full"], tmp_path / "cut")
    edit_records(cut, lambda i, r: r if i < 48 else None)
    missing = len(read_records(runs["full"] / "records.jsonl")) - 48
    capsys.readouterr()
    assert main(["compare", str(runs["full"]), str(cut), "--samples", "100", "--json"]) == 0
    captured = capsys.readouterr()
    payload = json.loads(captured.out)
    assert payload["partial"] is True and payload["runs"]["b"]["missing"] == missing
    assert payload["left_out"]["b"] == {"no record": missing} and payload["paired"] == 48
    assert f"{missing} of its {48 + missing} selected questions were never asked" in " ".join(captured.err.split())


def test_json_of_runs_with_nothing_to_compare_is_still_json(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """A script reading `compare --json` gets a payload it can parse, saying nothing was compared and why."""
    capsys.readouterr()
    code = main(["compare", str(runs["full"]), str(runs["failed"]), "--samples", "100", "--json"])
    captured = capsys.readouterr()
    payload = json.loads(captured.out)
    n = len(read_records(runs["failed"] / "records.jsonl"))
    assert code == 1 and payload["compared"] is False and payload["paired"] == 0 and payload["differences"] == []
    assert payload["partial"] is True and payload["left_out"]["b"] == {"error": n}
    assert "nothing to compare" in captured.err


def test_the_official_answers_file_of_a_partial_run_says_its_failures_count_as_wrong(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """gpt_answer cannot say "failed": scoring or comparing the run's answers json names the run folder that can."""
    (answers,) = runs["partial"].glob("answers_*.json")
    failed = sum(r.status is Status.ERROR for r in read_records(runs["partial"] / "records.jsonl"))
    capsys.readouterr()
    assert main(["score", str(answers), "--out", str(tmp_path), "--no-plot"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert f"its run's {failed} failed questions count as wrong here; `mmad score {runs['partial']}`" in err, err
    assert main(["compare", str(runs["full"]), str(answers), "--samples", "100", "--json"]) == 0
    assert "is an official answers file" in capsys.readouterr().err
    assert main(["score", str(runs["partial"]), "--out", str(tmp_path / "dir"), "--no-plot"]) == 0
    assert "official answers file" not in capsys.readouterr().err


def test_a_run_compared_with_itself_is_warned_about(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mmad compare runs/x runs/x` (a typo in a script) shows +0.0 everywhere: say why, in text and json."""
    capsys.readouterr()
    assert main(["compare", str(runs["full"]), str(runs["full"] / "records.jsonl"), "--samples", "100"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "are the same run: every difference is 0 by construction" in err
    monkeypatch.chdir(runs["full"].parent)
    assert main(["compare", runs["full"].name, str(runs["full"]), "--samples", "100", "--json"]) == 0
    assert any("same run" in note for note in json.loads(capsys.readouterr().out)["notes"])
    assert main(["compare", str(runs["full"]), str(runs["partial"]), "--samples", "100"]) == 0
    assert "same run" not in capsys.readouterr().err
