"""SIGTERM stops `mmad eval`, `mmad sweep` and `mmad serve` the documented way, even when started
with `&` from a non-interactive shell (which starts them with SIGINT ignored, as schedulers and CI
scripts do)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mmad.records.record import read_records
from tests.helpers.runs import wait_for_records
from tests.helpers.serving import running_server

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]

ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}


def _in_background(command: list[str], log: Path) -> tuple[subprocess.Popen[str], int]:
    """Start `command` with `&` from `bash -c` (no job control: the child inherits SIGINT ignored);
    returns the shell and the command's pid. The shell exits with the command's exit status."""
    quoted = " ".join("'" + part.replace("'", "'\\''") + "'" for part in command)
    shell = subprocess.Popen(
        ["bash", "-c", f"{quoted} 2>'{log}' & echo $!; wait $!"],
        env=ENV,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert shell.stdout is not None
    pid = int(shell.stdout.readline())
    shell.stdout.close()  # nothing more comes: the command's own output goes to the log
    return shell, pid


def _sigint_is_ignored(pid: int) -> bool:
    """What /proc says of the process's SIGINT disposition (the premise of these tests)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)))
    return False


def _text(path: Path) -> str:
    """A log the background shell is still to create (its `2>` redirection races the test) reads as empty."""
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def _wait_until(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def _eval_command(mmad_json: Path, out: Path, base_url: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "mmad",
        "eval",
        "-m",
        "mmad:random",
        "-d",
        str(mmad_json),
        "--out",
        str(out),
        "--base-url",
        base_url,
        "--concurrency",
        "2",
        "--no-cache",
        "--protocol",
        "per-question",
    ]


def test_sigterm_stops_a_backgrounded_eval_which_then_resumes(mmad_json: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    log = tmp_path / "eval.log"
    with running_server(latency_s=0.05) as server:
        shell, pid = _in_background(_eval_command(mmad_json, out, server.base_url), log)
        try:
            wait_for_records(out, 4, 60, alive=lambda: shell.poll() is None)
            assert _sigint_is_ignored(pid), "the premise: a background child of bash -c ignores SIGINT"
            os.kill(pid, signal.SIGTERM)
            code = shell.wait(15)
        finally:
            if shell.poll() is None:
                os.kill(pid, signal.SIGKILL)
                shell.wait(10)
        assert code == 130, log.read_text()
        assert "resume with: mmad eval --resume" in log.read_text()
        meta = json.loads((out / "run.json").read_text())
        assert meta["status"] == "interrupted"
        assert meta["stopped_reason"] == "interrupted (SIGTERM)"  # not "(Ctrl-C)": nobody pressed it
        kept = read_records(out / "records.jsonl")
        assert len(kept) >= 4
        resumed = subprocess.run(
            [sys.executable, "-m", "mmad", "eval", "--resume", str(out)],
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
        shell, pid = _in_background([sys.executable, "-m", "mmad", "sweep", str(grid), "--out", str(folder)], log)
        try:
            first = folder / "http_per-question_0shot_random_plain"
            wait_for_records(first, 4, 60, alive=lambda: shell.poll() is None)
            assert _sigint_is_ignored(pid)
            os.kill(pid, signal.SIGTERM)
            code = shell.wait(15)
        finally:
            if shell.poll() is None:
                os.kill(pid, signal.SIGKILL)
                shell.wait(10)
        assert code == 130, log.read_text()
        assert "mmad sweep --resume" in log.read_text()
        manifest = json.loads((folder / "sweep.json").read_text())
        assert manifest["status"] == "interrupted", manifest
        assert json.loads((first / "run.json").read_text())["status"] == "interrupted"
        resumed = subprocess.run(
            [sys.executable, "-m", "mmad", "sweep", "--resume", str(folder)],
            env=ENV,
            capture_output=True,
            text=True,
            timeout=180,
        )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads((folder / "sweep.json").read_text())["status"] == "complete"


def test_sigterm_stops_a_backgrounded_server(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    shell, pid = _in_background([sys.executable, "-m", "mmad", "serve", "--port", "0"], log)
    try:
        assert _wait_until(lambda: "serving" in _text(log) or shell.poll() is not None, 60), _text(log)
        assert _sigint_is_ignored(pid)
        os.kill(pid, signal.SIGTERM)
        code = shell.wait(15)
    finally:
        if shell.poll() is None:
            os.kill(pid, signal.SIGKILL)
            shell.wait(10)
    assert code == 0, log.read_text()
    assert "stopped" in log.read_text()
