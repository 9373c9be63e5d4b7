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
    # a priced run's line, as show_stats sets it (the tokens/cost fields it once passed are shown no more)
    bar.update(
        task,
        total=538,
        completed=120,
        rate=12.3,
        failed=2,
        spent="$0.12",
        spent_wide="12345 tok · $0.1234",
        conc=16,
    )
    terminal.print(bar.make_tasks_table(bar.tasks))
    line = buffer.getvalue().rstrip("\n")
    assert "\n" not in line and len(line) <= width
    assert "120/538" in line and "12.3 q/s" in line and "failed 2" in line and ":" in line.split("q/s")[1]


def test_a_step_that_sends_no_requests_shows_no_rate_or_cost_on_its_bar() -> None:
    # mmad demo's 'generating images 172/172 0.0 q/s ... failed 0 · $0.00' at 80 columns
    import io

    from rich.console import Console

    from mmad.cli.common import add_run_task, progress_bar

    buffer = io.StringIO()
    terminal = Console(file=buffer, width=80, force_terminal=True, color_system=None)
    bar = progress_bar(terminal)
    step = add_run_task(bar, "generating images", step=True)
    bar.update(step, total=172, completed=172)
    run = add_run_task(bar, "random")
    bar.update(run, total=538, completed=20, rate=12.3)
    terminal.print(bar.make_tasks_table(bar.tasks))
    step_line, run_line = buffer.getvalue().rstrip("\n").split("\n")
    assert "172/172" in step_line and "q/s" not in step_line and "$" not in step_line and "failed" not in step_line
    assert "12.3 q/s" in run_line and "failed 0" in run_line


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
    try:
        raise RuntimeError(f"401 for key {secret}")
    except RuntimeError:
        logging.getLogger("mmad.run.engine").exception("the request failed")
    err = capsys.readouterr().err
    assert secret not in err and "sk-abcdefghijklmnop" not in err and err.count("***") == 3
    assert "RuntimeError: 401 for key ***" in err  # the traceback is printed, scrubbed


def _numbers(run: Path) -> set[str]:
    """Every figure of a run's MMAD table as the terminal prints it: cells, averages, Overkill and Miss."""
    from mmad.report.tables import fmt, table_rows
    from mmad.score.load import load_answers
    from mmad.score.table import score_answers

    table = score_answers(load_answers(run), "strict")
    found = {fmt(v) for _, cells, average in table_rows(table) for v in (*cells, average) if v is not None}
    for metrics in [*(r.detection_metrics() for r in table.rows), table.average_detection]:
        found |= {fmt(metrics[k]) for k in ("Overkill", "Miss") if metrics[k] is not None}
    return found


@pytest.mark.parametrize("command", ["eval", "score"])
def test_at_80_columns_every_number_and_dataset_name_is_printed_whole(
    mmad_json: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    run = tmp_path / "run"
    assert _eval(mmad_json, run) == 0
    capsys.readouterr()
    monkeypatch.setenv("COLUMNS", "80")
    assert (main(["eval", "--resume", str(run)]) if command == "eval" else main(["score", str(run), "--no-plot"])) == 0
    out = capsys.readouterr().out
    table = out.split("policy strict")[0]
    assert "…" not in out
    assert all(len(line) <= 80 for line in table.splitlines())
    tokens = set(table.split())
    assert {"DS-MVTec", "MVTec-LOCO", "VisA", "GoodsAD", "Average", "Overkill", "Miss"} <= tokens
    numbers = _numbers(run)
    assert len(numbers) > 10 and numbers <= tokens
    assert "AD = Anomaly Discrimination" in out  # the short column names are explained


def test_piped_progress_is_a_plain_line_on_stderr_every_few_seconds() -> None:
    import io

    from rich.console import Console

    from mmad.cli.common import CliProgress, simple_progress

    now = [0.0]
    log = io.StringIO()
    piped = Console(file=log, width=80)  # not a terminal: a bar could not redraw
    with CliProgress(*simple_progress().columns, console=piped, every_s=5.0, clock=lambda: now[0]) as bar:
        task = bar.add_task("building", total=100)
        for step in range(1, 101):
            now[0] = step * 0.5  # 50 s in all
            bar.update(task, completed=step)
    lines = log.getvalue().splitlines()
    assert lines[0].startswith("building: 1/100 (1%)")
    assert lines[-1].startswith("building: 100/100 (100%)") and "done in" in lines[-1]
    assert 9 <= len(lines) <= 12  # one every 5 s of the 50, not one per update
    assert all("\x1b" not in line and "━" not in line for line in lines)  # plain text, no bar frames
    log.truncate(0)
    with CliProgress(*simple_progress().columns, console=piped) as bar:
        bar.update(bar.add_task("compat:x [b]", total=2), completed=2)
    assert log.getvalue().strip("\x00").splitlines() == ["compat:x [b]: 2/2 (100%), done in 0:00:00"]  # no emoji


def test_eval_without_a_terminal_prints_progress_lines_to_stderr(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _eval(mmad_json, tmp_path / "run", "--limit", "12") == 0
    captured = capsys.readouterr()
    progress = [line for line in captured.err.splitlines() if line.startswith("random: ")]
    assert progress and progress[-1].startswith("random: 12/12 (100%)")
    assert "random: " not in captured.out  # stdout holds only the results


@pytest.mark.expert
def test_the_backbones_loading_message_is_logged_not_printed_to_stdout(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    pytest.importorskip("efficientnet_lite_pytorch")
    from mmad.expert.patchcore import PatchCoreExpert

    monkeypatch.setattr(PatchCoreExpert, "_shared", {})  # load the backbone afresh, as a new process does
    with caplog.at_level(logging.INFO, logger="mmad.expert"):
        PatchCoreExpert()
    assert "Loaded pretrained" not in capfd.readouterr().out  # stdout holds only results
    assert "Loaded pretrained weights for efficientnet-lite0" in caplog.text


def test_serve_on_every_interface_warns_that_anyone_may_use_it(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as busy:  # the port is taken, so the command ends right after its warning
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        assert main(["serve", "--host", "0.0.0.0", "--port", port]) == 2
        err = " ".join(capsys.readouterr().err.split())
        assert "--host 0.0.0.0 lets other machines reach this server" in err and "no authentication" in err
        assert main(["serve", "--host", "127.0.0.1", "--port", port]) == 2  # busy on every interface
        assert "warning" not in capsys.readouterr().err


def test_runs_says_what_an_average_over_declined_subtasks_covers(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run that declines five subtasks (as the visual expert does) has an average over two: `mmad runs` says so."""
    import json

    from mmad.records.record import Record, Status
    from tests.helpers.runs import edit_records

    run = tmp_path / "runs" / "r"
    assert _eval(mmad_json, run) == 0
    kept = {"Anomaly Detection", "Defect Localization"}

    def decline(_: int, record: Record) -> Record:
        if record.question_type in kept:
            return record
        return record.model_copy(update={"status": Status.ABSTAINED, "answer": None, "raw_reply": None})

    edit_records(run, decline)
    capsys.readouterr()
    assert main(["runs", str(tmp_path / "runs"), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["covers"] == ["Anomaly Discrimination", "Defect Localization"]
    assert main(["runs", str(tmp_path / "runs")]) == 0
    assert "the average covers AD, DL (2 of 7 subtasks)" in " ".join(capsys.readouterr().out.split())


def test_runs_at_80_columns_cuts_no_model_card_or_resume_command(
    mmad_json: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    runs = tmp_path / "runs"
    killed = runs / "openai-gpt-4o_1shot_per-question_killed"
    assert _eval(mmad_json, runs / "done", "--limit", "4") == 0
    assert _eval(mmad_json, killed, "--limit", "4") == 0
    meta = json.loads((killed / "run.json").read_text(encoding="utf-8"))
    meta["status"] = "running"  # what a SIGKILL leaves: nobody holds its lock
    (killed / "run.json").write_text(json.dumps(meta), encoding="utf-8")
    (runs / "damaged").mkdir()
    (runs / "damaged" / "run.json").write_text('{"status": ', encoding="utf-8")
    capsys.readouterr()
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["runs", str(runs)]) == 0
    out = capsys.readouterr().out
    details = (f"{killed}: stale (", f"{runs / 'damaged'}: unreadable: ")
    below = "\n".join(line for line in out.splitlines() if line.startswith(details))
    table = "\n".join(line for line in out.splitlines() if not line.startswith(details))
    assert "…" not in out and all(len(line) <= 80 for line in table.splitlines())
    assert str(meta["card_hash"]) in table and {"complete", "stale", "unreadable"} <= set(table.split())
    assert f"mmad eval --resume {killed}" in below  # whole, on one line, ready to copy
    assert f"{runs / 'damaged'}: unreadable: " in below and "cannot be read" in below


def test_a_key_pasted_as_the_model_name_is_refused_before_it_is_written(
    mmad_json: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "sk-proj-4f9a2b7c1d0e5f6a7b8c"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    out = tmp_path / "run"
    with running_server() as server:
        args = ["eval", "-m", f"openai:{secret}", "--base-url", server.base_url, "-d", str(mmad_json)]
        assert main([*args, "--out", str(out), "--limit", "2", "--no-cache"]) == 2
    err = capsys.readouterr().err
    assert secret not in err and "holds an API key, not a model name" in err
    assert not out.exists()  # run.json would have kept it (and the progress line printed it)


def test_piped_progress_says_a_task_is_done_once() -> None:
    import io

    from rich.console import Console

    from mmad.cli.common import CliProgress, add_run_task, progress_bar

    now = [0.0]
    log = io.StringIO()
    piped = Console(file=log, width=80)
    with CliProgress(*progress_bar(piped).columns, console=piped, every_s=5.0, clock=lambda: now[0]) as bar:
        task = add_run_task(bar, "random")
        bar.update(task, total=60, completed=0, rate=0.0)
        now[0] = 4.0
        bar.update(task, completed=60, rate=15.4)
        now[0] = 4.1
        bar.update(task, rate=15.3)  # the engine's last rate, after the last question
    done = [line for line in log.getvalue().splitlines() if "60/60" in line]
    assert len(done) == 1, log.getvalue()


def test_a_key_a_server_echoes_in_its_error_stays_out_of_records_and_logs(
    mmad_json: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import http.server
    import json
    import threading

    class EchoesTheKey(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # what some gateways answer: the rejected key, quoted back
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            key = self.headers.get("Authorization", "").split()[-1]
            body = json.dumps({"error": {"message": f"Incorrect API key provided: {key}", "type": "bad"}}).encode()
            self.send_response(400)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    secret = "zz-custom-9f8e7d6c5b4a3210"  # no known key shape, in a variable whose name says nothing
    monkeypatch.setenv("GATEWAY", secret)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), EchoesTheKey)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    out = tmp_path / "run"
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/v1"
        args = ["eval", "-m", "compat:x", "--base-url", base, "--key-env", "GATEWAY", "-d", str(mmad_json)]
        assert main([*args, "--out", str(out), "--limit", "2", "--no-cache", "--max-retries", "0"]) == 1
    finally:
        server.shutdown()
        server.server_close()
    err = capsys.readouterr().err
    assert "Incorrect API key provided: ***" in err and secret not in err
    for written in out.iterdir():
        assert secret not in written.read_text(encoding="utf-8", errors="replace"), written.name


@pytest.mark.subprocess
def test_piped_stdout_takes_the_width_of_the_terminal_stderr_is_on(mmad_json: Path, tmp_path: Path) -> None:
    """`mmad score RUN | tee log` in an 80-column terminal: the table is read there, so it is 80 wide, not 140."""
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import sys
    import termios

    run = tmp_path / "run"
    assert _eval(mmad_json, run, "--limit", "40") == 0
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 80, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in {"COLUMNS", "LINES"}}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "mmad", "score", str(run), "--no-plot"],
            stdout=subprocess.PIPE,
            stderr=follower,
            env=env,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(follower)
        os.close(leader)
    assert done.returncode == 0
    table = done.stdout.split("policy strict")[0]
    assert "Overkill" in table and all(len(line) <= 80 for line in table.splitlines()), table


def test_models_at_80_columns_shows_urls_and_file_names_whole(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from mmad.models.providers import PROVIDERS
    from mmad.run.recipes import recipe_catalogue

    monkeypatch.setenv("COLUMNS", "80")
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "…" not in out and all(len(line) <= 80 for line in out.splitlines())
    # in four table columns a URL, a script path or a CSV name was folded mid-word over two to five lines
    lines = out.splitlines()
    for provider in PROVIDERS.values():
        if provider.base_url:
            assert any(provider.base_url in line for line in lines), provider.base_url
    for recipe in recipe_catalogue():
        assert any(recipe["source"].split()[0] in line for line in lines)
        for name in recipe["published"]:
            assert any(name in line for line in lines), name


def test_resuming_a_run_whose_benchmark_moved_says_it_moved(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    bench = tmp_path / "bench"
    shutil.copytree(mmad_json.parent, bench)
    run = tmp_path / "run"
    assert _eval(bench / mmad_json.name, run, "--limit", "3") == 0
    bench.rename(tmp_path / "moved")
    capsys.readouterr()
    assert main(["eval", "--resume", str(run)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "is not there any more (moved or deleted?); give the benchmark's path with -d" in err
    assert "relative" not in err  # the run recorded an absolute path


def test_a_benchmark_path_given_to_a_resume_is_recorded_absolute(
    mmad_json: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json
    import shutil

    shutil.copytree(mmad_json.parent, tmp_path / "bench")
    run = tmp_path / "run"
    assert _eval(tmp_path / "bench" / mmad_json.name, run, "--limit", "3") == 0
    (tmp_path / "bench").rename(tmp_path / "moved")
    monkeypatch.chdir(tmp_path)
    assert main(["eval", "--resume", str(run), "-d", "moved"]) == 0
    recorded = json.loads((run / "run.json").read_text(encoding="utf-8"))["config"]["data"]
    assert recorded == str(tmp_path / "moved")  # so the next resume works from any folder


def test_runs_at_80_columns_keeps_a_model_name_on_one_line(
    mmad_json: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    run = tmp_path / "runs" / "compat-qwen2.5-vl-7b-instruct_1shot_per-question_with_rag_and_a_long_name"
    assert _eval(mmad_json, run, "--limit", "2") == 0
    meta = json.loads((run / "run.json").read_text(encoding="utf-8"))
    meta["config"]["model"] = "compat:qwen-vl-7b"  # a served model: the name is all the row says of it
    (run / "run.json").write_text(json.dumps(meta), encoding="utf-8")
    capsys.readouterr()
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["runs", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    assert any("compat:qwen-vl-7b" in line for line in out.splitlines()), out
    assert all(len(line) <= 80 for line in out.splitlines())
