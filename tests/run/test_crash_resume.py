"""Kill `mmad eval` with SIGKILL at random moments, resume, and compare with an uninterrupted run."""

import json
import os
import random
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from mmad import evaluate
from mmad.cli import main
from mmad.records.record import read_records
from mmad.run.store import RunStore
from tests.helpers.processes import eval_args, mmad_command, process_env
from tests.helpers.runs import wait_for_records
from tests.helpers.serving import running_server


def _args(mmad_json: Path, out: Path, base_url: str, resume: bool) -> list[str]:
    """`mmad eval`'s arguments for the run, or for its resume."""
    if resume:
        return ["eval", "--resume", str(out), "--concurrency", "4"]
    return eval_args(mmad_json, out, base_url, concurrency=4)


def _lines(path: Path) -> int:
    """Lines written to a records file so far (0 before it exists)."""
    return path.read_text().count("\n") if path.exists() else 0


def _outcome(path: Path) -> dict[str, tuple[str, str | None]]:
    records = read_records(path)
    keys = [r.question_id for r in records]
    assert len(keys) == len(set(keys)), "duplicate records"
    return {r.question_id: (r.status.value, r.answer) for r in records}


@pytest.mark.slow
@pytest.mark.subprocess
def test_sigkill_at_random_moments_then_resume(mmad_json: Path, tmp_path: Path) -> None:
    rng = random.Random(11)
    env = process_env(120)
    with running_server(latency_s=0.03) as server:
        reference = evaluate(
            "mmad:random", mmad_json, out=tmp_path / "reference", base_url=server.base_url, cache=False, concurrency=4
        )
        assert reference.complete
        out = tmp_path / "killed"
        kills = 0
        for _ in range(4):
            started = RunStore(out).exists()
            written = _lines(out / "records.jsonl")
            process = subprocess.Popen(
                mmad_command(_args(mmad_json, out, server.base_url, resume=started)),
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            # The kill lands at a random point of the asking: once 1 to 25 more records are written.
            target = written + rng.randint(1, 25)
            wait_for_records(out, target, 60, alive=lambda process=process: process.poll() is None)
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                kills += 1
            process.wait(30)
            if (out / "records.jsonl").exists():
                read_records(out / "records.jsonl")  # readable after every kill
        # The resume that finishes the run needs no process of its own: the CLI in this one.
        assert main(_args(mmad_json, out, server.base_url, resume=RunStore(out).exists())) == 0
    assert kills >= 1
    assert _outcome(out / "records.jsonl") == _outcome(tmp_path / "reference" / "records.jsonl")


def _answered(question_id: str, answer: str):
    from mmad.records.record import Record, Status

    return Record(
        question_id=question_id,
        image="k",
        question_type="Anomaly Detection",
        correct_answer="A",
        status=Status.ANSWERED,
        answer=answer,
    )


def test_torn_last_line_is_cut_on_reopen(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    store.open()
    store.append([_answered("k#0", "A")])
    store.close()
    with (tmp_path / "records.jsonl").open("a") as handle:
        handle.write('{"question_id": "k#1", "ima')  # the write a kill interrupted
    assert [r.question_id for r in read_records(tmp_path / "records.jsonl")] == ["k#0"]
    store.open()
    store.append([_answered("k#1", "B")])
    store.close()
    assert [r.answer for r in read_records(tmp_path / "records.jsonl")] == ["A", "B"]


def test_compaction_keeps_the_latest_record_in_plan_order(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    store.open()
    store.append([_answered("k#1", "A"), _answered("k#0", "A"), _answered("k#1", "B"), _answered("x#9", "C")])
    store.compact([("k#0", ""), ("k#1", "")])
    store.close()
    records = read_records(tmp_path / "records.jsonl")
    assert [(r.question_id, r.answer) for r in records] == [("k#0", "A"), ("k#1", "B"), ("x#9", "C")]


def test_compaction_keeps_variants_apart_drops_a_torn_line_and_the_store_appends_after(tmp_path: Path) -> None:
    rotated = _answered("k#0", "C").model_copy(update={"variant": "rot1"})
    store = RunStore(tmp_path)
    store.open()
    store.append([_answered("k#0", "A"), rotated, _answered("k#0", "B")])
    store.close()
    with (tmp_path / "records.jsonl").open("a") as handle:
        handle.write('{"question_id": "k#2", "ima')  # the write a kill interrupted
    store = RunStore(tmp_path)
    store.open()
    store.compact([("k#0", "rot1"), ("k#0", "")])
    store.append([_answered("k#3", "D")])
    store.close()
    records = read_records(tmp_path / "records.jsonl")
    assert [(r.question_id, r.variant, r.answer) for r in records] == [
        ("k#0", "rot1", "C"),
        ("k#0", "", "B"),
        ("k#3", "", "D"),
    ]


def test_a_second_writer_is_refused(tmp_path: Path) -> None:
    first = RunStore(tmp_path)
    first.open()
    try:
        with pytest.raises(Exception, match="another mmad process"):
            RunStore(tmp_path).open()
    finally:
        first.close()


@pytest.mark.subprocess
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_saves_marks_and_says_how_to_resume(mmad_json: Path, tmp_path: Path, stop: signal.Signals) -> None:
    env = process_env()
    out = tmp_path / "run"
    with running_server(latency_s=0.3) as server:  # about 7 s of asking: the signal lands mid-run
        process = subprocess.Popen(
            mmad_command(_args(mmad_json, out, server.base_url, resume=False)),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for_records(out, 8, 60)
        process.send_signal(stop)
        _, err = process.communicate(timeout=60)
        assert process.returncode == 130, err
        assert "Traceback" not in err
        assert f"resume with: mmad eval --resume {out}" in err and "saved in" in err
        meta = __import__("json").loads((out / "run.json").read_text())
        cause = "Ctrl-C" if stop == signal.SIGINT else "SIGTERM"
        assert meta["status"] == "interrupted" and meta["stopped_reason"] == f"interrupted ({cause})"
        saved = len(read_records(out / "records.jsonl"))
        assert 8 <= saved < 92
        server.latency_s = 0.0  # the latency only had to hold the run open for the signal
        assert main(_args(mmad_json, out, server.base_url, resume=True)) == 0
    assert len(_outcome(out / "records.jsonl")) == 92


def test_a_run_made_with_a_relative_path_resumes_from_any_folder(
    mmad_json: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.helpers.runs import edit_records

    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    shutil.copytree(mmad_json.parent, work / "data")
    elsewhere.mkdir()
    monkeypatch.chdir(work)
    evaluate("random", "data", out=work / "run", cache=False)
    recorded = json.loads((work / "run" / "run.json").read_text())["config"]["data"]
    assert recorded == str((work / "data").resolve())
    edit_records(work / "run", lambda i, r: r if i < 10 else None)
    monkeypatch.chdir(elsewhere)
    assert main(["eval", "--resume", str(work / "run")]) == 0
    assert main(["eval", "--resume", str(work / "run"), "-d", str(work / "data" / "mmad.json")]) == 0


def _runs_json(folder: Path, env: dict[str, str]) -> dict[str, dict[str, object]]:
    listed = subprocess.run(
        mmad_command(["runs", str(folder), "--json"]),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    return {row["run"]: row for row in json.loads(listed.stdout)}


@pytest.mark.slow
@pytest.mark.subprocess
def test_a_sigkilled_run_is_listed_as_stale_with_its_resume_command(mmad_json: Path, tmp_path: Path) -> None:
    env = process_env(250)
    out = tmp_path / "runs" / "killed"
    with running_server(latency_s=0.3) as server:
        process = subprocess.Popen(
            mmad_command(_args(mmad_json, out, server.base_url, resume=False)),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_records(out, 4, 60, alive=lambda: process.poll() is None)
            alive = _runs_json(tmp_path / "runs", env)[str(out)]
            assert alive["status"] == "running" and alive["stale"] is False
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(30)
    row = _runs_json(tmp_path / "runs", env)[str(out)]
    assert row["stale"] is True
    assert row["resume"] == f"mmad eval --resume {out}"
    assert f"pid {process.pid} is gone" in str(row["status"])
    table = subprocess.run(mmad_command(["runs", str(tmp_path / "runs")]), env=env, capture_output=True, text=True)
    assert "stale" in table.stdout and "mmad eval --resume" in table.stdout


@pytest.mark.slow
@pytest.mark.subprocess
def test_a_run_folder_deleted_mid_run_stops_the_run_and_says_so(mmad_json: Path, tmp_path: Path) -> None:
    env = process_env()
    out = tmp_path / "run"
    with running_server(latency_s=0.1) as server:
        process = subprocess.Popen(
            mmad_command(_args(mmad_json, out, server.base_url, resume=False)),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for_records(out, 4, 60, alive=lambda: process.poll() is None)
        shutil.rmtree(out)
        stdout, stderr = process.communicate(timeout=60)
    assert process.returncode != 0
    assert f"the run folder {out} was deleted" in stderr, stderr
    assert "this session" not in stdout and "Traceback" not in stderr
    assert not (out / "run.json").exists(), "no run.json may claim answers that are gone"


def test_the_lock_names_the_process_that_holds_it(tmp_path: Path) -> None:
    first = RunStore(tmp_path)
    first.open()
    try:
        with pytest.raises(Exception, match=rf"another mmad process \(pid {os.getpid()}\)"):
            RunStore(tmp_path).open()
    finally:
        first.close()
