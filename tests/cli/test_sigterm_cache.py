"""A SIGTERM keeps the replies the response cache still held in memory: the cache writes in
batches every half second, and the interrupted run writes the rest before it exits, so a rerun
asks nothing that was answered."""

from __future__ import annotations

import os
import signal
import sqlite3
from pathlib import Path

import pytest

from mmad.records.record import Status, read_records
from mmad.run.cache import DATABASE
from tests.helpers.processes import eval_args, in_background, mmad_command, never_left_running
from tests.helpers.runs import wait_for_records
from tests.helpers.serving import running_server

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]


def test_a_sigterm_keeps_every_answered_reply_in_the_cache(mmad_json: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    folder = tmp_path / "responses"
    with running_server(latency_s=0.05) as server:
        eval_command = [
            part for part in eval_args(mmad_json, out, server.base_url, concurrency=2) if part != "--no-cache"
        ]
        command = ["env", f"MMAD_CACHE_DIR={folder}", *mmad_command(eval_command)]  # env execs mmad: the same pid
        shell, pid = in_background(command, tmp_path / "eval.log")
        with never_left_running(shell, pid):
            wait_for_records(out, 8, 60, alive=lambda: shell.poll() is None)
            os.kill(pid, signal.SIGTERM)
            code = shell.wait(15)
    assert code == 130
    answered = [r for r in read_records(out / "records.jsonl") if r.status is not Status.ERROR]
    with sqlite3.connect(folder / DATABASE) as db:
        stored = db.execute("SELECT count(*) FROM responses").fetchone()[0]
    assert stored >= len(answered) > 0
