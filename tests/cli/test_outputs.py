"""What the commands tell a user beyond the table: replies that could not be read, shown as text."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmad.cli import main
from mmad.models.base import Completion, Model, Request
from tests.helpers.serving import running_server

REPLY = "Hard to say; <b>it</b> could be [red]several[/] things."


class Rambler(Model):
    async def generate(self, request: Request) -> Completion:
        return Completion(text=REPLY)


def test_unreadable_replies_are_counted_and_shown_literally(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    with running_server(Rambler()) as server:
        args = ["eval", "-m", "compat:x", "--base-url", server.base_url, "-d", str(mmad_json), "--out", str(out)]
        code = main([*args, "--no-cache", "--limit", "10"])
    captured = capsys.readouterr()
    assert code == 0  # every question has a reply: unparsed is an outcome, not a failure
    assert "10 replies had no readable letter" in captured.err and "--judge" in captured.err
    assert repr(REPLY) in captured.err  # rich markup in model text is printed, not applied
    assert main(["score", str(out)]) == 0
    captured = capsys.readouterr()
    assert "10 replies had no readable letter" in captured.err and repr(REPLY) in captured.err


@pytest.mark.parametrize("width", [80, 100, 200])
def test_the_progress_line_keeps_the_count_and_time_left_on_a_narrow_terminal(width: int) -> None:
    import io

    from rich.console import Console

    from mmad.cli.common import add_run_task, progress_bar

    buffer = io.StringIO()
    terminal = Console(file=buffer, width=width, force_terminal=True, color_system=None)
    bar = progress_bar(terminal)
    task = add_run_task(bar, "openai-gpt-4o_1shot_per-question_rag+cot")
    bar.update(task, total=538, completed=120, rate=12.3, failed=2, tokens=12345, cost=0.1234, conc=16)
    terminal.print(bar.make_tasks_table(bar.tasks))
    line = buffer.getvalue().rstrip("\n")
    assert "\n" not in line and len(line) <= width
    assert "120/538" in line and "12.3 q/s" in line and "failed 2" in line and ":" in line.split("q/s")[1]


def _eval(mmad_json: Path, out: Path, *extra: str) -> int:
    return main(["eval", "-m", "random", "-d", str(mmad_json), "--out", str(out), "--no-cache", *extra])


def test_runs_calls_a_complete_run_whose_last_record_is_torn_incomplete(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    run = tmp_path / "runs" / "r"
    assert _eval(mmad_json, run, "--limit", "6") == 0
    records = run / "records.jsonl"
    text = records.read_text(encoding="utf-8")
    records.write_text(text[: len(text) - 40], encoding="utf-8")  # the last line cut short by a crash
    capsys.readouterr()
    assert main(["runs", str(tmp_path / "runs"), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert json.loads((run / "run.json").read_text())["status"] == "complete"
    assert row["status"] == "incomplete" and row["asked"] == 5 and row["selected"] == 6


def test_runs_without_a_runs_folder_says_there_are_none_yet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    monkeypatch.chdir(tmp_path)
    assert main(["runs"]) == 0
    assert "no runs yet" in capsys.readouterr().out
    assert main(["runs", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["runs", str(tmp_path / "elsewhere")]) == 2  # a folder named and absent is still a usage error


def test_score_json_of_a_run_without_answers_prints_json(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    out = tmp_path / "run"
    with running_server(fault_rate=1.0) as server:
        args = ["eval", "-m", "compat:x", "--base-url", server.base_url, "-d", str(mmad_json), "--out", str(out)]
        assert main([*args, "--no-cache", "--limit", "3", "--max-retries", "0", "--max-errors", "0"]) == 1
    capsys.readouterr()
    assert main(["score", str(out), "--json"]) == 1
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert data["scored"] is False and data["answers"] == 3 and data["run"]["failed"] == 3
    assert "nothing to score" in captured.err


class _Refuser(Model):
    async def generate(self, request: Request) -> Completion:
        return Completion(text="a caption" if request.messages[-1].images else "{not json")


def test_assist_that_adds_nothing_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mmad.builder import build_benchmark, make_synthetic_dataset

    source = make_synthetic_dataset(tmp_path / "src", categories=["washer"], n_train=2, n_test_good=1, n_per_defect=1)
    build_benchmark(source.root, tmp_path / "bench", name="SynthAD", knowledge=source.knowledge)
    with running_server(_Refuser()) as server:
        code = main(["assist", str(tmp_path / "bench"), "-m", "compat:x", "--base-url", server.base_url])
    out = capsys.readouterr().out
    assert code == 0
    assert "added no questions" in out and "rejected" in out
    assert not any(line.rstrip().endswith("added") for line in out.splitlines())


def test_a_key_in_an_error_or_a_log_message_is_scrubbed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import logging

    secret = "s3cret-value-4f9a2b7c"
    monkeypatch.setenv("MMAD_TEST_API_KEY", secret)
    assert main(["eval", "-m", "random", "-d", str(tmp_path / secret)]) == 2
    err = capsys.readouterr().err
    assert secret not in err and "***" in err
    # The handler the CLI installed scrubs what any logger sends it.
    assert main(["runs", str(tmp_path)]) == 0
    logging.getLogger("mmad.models.openai_api").warning("request failed: Authorization: Bearer %s", secret)
    logging.getLogger("mmad.models.openai_api").warning("key sk-abcdefghijklmnopqrstuv rejected")
    err = capsys.readouterr().err
    assert secret not in err and "sk-abcdefghijklmnop" not in err and err.count("***") == 2
