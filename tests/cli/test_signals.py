"""SIGTERM stops `mmad eval`, `mmad sweep` and `mmad serve` the documented way, even when started
with `&` from a non-interactive shell (which starts them with SIGINT ignored, as schedulers and CI
scripts do)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from mmad.records.record import read_records
from tests.helpers.processes import (
    eval_args,
    in_background,
    log_text,
    mmad_command,
    never_left_running,
    process_env,
    sigint_is_ignored,
    wait_until,
)
from tests.helpers.runs import wait_for_records
from tests.helpers.serving import running_server

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]

ENV = process_env()


def test_sigterm_stops_a_backgrounded_eval_which_then_resumes(mmad_json: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    log = tmp_path / "eval.log"
    with running_server(latency_s=0.05) as server:
        shell, pid = in_background(mmad_command(eval_args(mmad_json, out, server.base_url, concurrency=2)), log)
        with never_left_running(shell, pid):
            wait_for_records(out, 4, 60, alive=lambda: shell.poll() is None)
            assert sigint_is_ignored(pid), "the premise: a background child of bash -c ignores SIGINT"
            os.kill(pid, signal.SIGTERM)
            code = shell.wait(15)
        assert code == 130, log.read_text()
        assert "resume with: mmad eval --resume" in log.read_text()
        meta = json.loads((out / "run.json").read_text())
        assert meta["status"] == "interrupted"
        assert meta["stopped_reason"] == "interrupted (SIGTERM)"  # not "(Ctrl-C)": nobody pressed it
        kept = read_records(out / "records.jsonl")
        assert len(kept) >= 4
        resumed = subprocess.run(
            mmad_command(["eval", "--resume", str(out)]),
            env=ENV,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads((out / "run.json").read_text())["status"] == "complete"
    records = read_records(out / "records.jsonl")
    assert len({r.question_id for r in records}) == len(records) > len(kept)


def test_sigterm_stops_a_backgrounded_sweep(mmad_json: Path, tmp_path: Path) -> None:
    folder = tmp_path / "sweep"
    log = tmp_path / "sweep.log"
    with running_server(latency_s=0.05) as server:
        grid = tmp_path / "grid.toml"
        grid.write_text(
            "\n".join(
                [
                    "[sweep]",
                    f'data = "{mmad_json}"',
                    f'models = [{{ name = "mmad:random", base_url = "{server.base_url}", label = "http" }}]',
                    "shots = [0, 1]",
                    "[sweep.settings]",
                    "concurrency = 2",
                    "cache = false",
                ]
            )
            + "\n"
        )
        shell, pid = in_background(mmad_command(["sweep", str(grid), "--out", str(folder)]), log)
        with never_left_running(shell, pid):
            first = folder / "http_per-question_0shot_random_plain"
            wait_for_records(first, 4, 60, alive=lambda: shell.poll() is None)
            assert sigint_is_ignored(pid)
            os.kill(pid, signal.SIGTERM)
            code = shell.wait(15)
        assert code == 130, log.read_text()
        assert "mmad sweep --resume" in log.read_text()
        manifest = json.loads((folder / "sweep.json").read_text())
        assert manifest["status"] == "interrupted", manifest
        assert json.loads((first / "run.json").read_text())["status"] == "interrupted"
        resumed = subprocess.run(
            mmad_command(["sweep", "--resume", str(folder)]),
            env=ENV,
            capture_output=True,
            text=True,
            timeout=180,
        )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads((folder / "sweep.json").read_text())["status"] == "complete"


def test_sigterm_stops_a_backgrounded_server(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    shell, pid = in_background(mmad_command(["serve", "--port", "0"]), log)
    with never_left_running(shell, pid):
        assert wait_until(lambda: "serving" in log_text(log) or shell.poll() is not None, 60), log_text(log)
        assert sigint_is_ignored(pid)
        os.kill(pid, signal.SIGTERM)
        code = shell.wait(15)
    assert code == 0, log.read_text()
    assert "stopped" in log.read_text()


def test_sigterm_stops_mmad_demo_saying_what_was_interrupted_and_what_is_kept(tmp_path: Path) -> None:
    """It exited 130 and said nothing (typer turns a KeyboardInterrupt into a silent exit 130)."""
    out = tmp_path / "demo"
    log = tmp_path / "demo.log"
    with log.open("w") as err:
        demo = subprocess.Popen(
            mmad_command(["demo", "--out", str(out)]), stdout=subprocess.DEVNULL, stderr=err, env=ENV
        )
    with never_left_running(demo):
        assert wait_until(lambda: "generating images" in log_text(log), 60), log_text(log)
        demo.send_signal(signal.SIGTERM)
        assert demo.wait(60) == 130
    said = " ".join(log_text(log).split())
    assert f"interrupted (SIGTERM) while generating images: {out} keeps the files made so far" in said, said
    assert f"mmad demo --out {out} --force" in said and "Traceback" not in said
