"""A run killed with SIGKILL (no finish stage) keeps what it spent: its resume adds to it, for the run's
usage and for --max-cost."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import time
from pathlib import Path

import pytest

from mmad.cli import main
from mmad.records.record import read_records
from tests.helpers.processes import eval_args, mmad_command, process_env
from tests.helpers.runs import wait_for_records
from tests.helpers.serving import running_server


def _usage(out: Path) -> dict[str, float] | None:
    usage = json.loads((out / "run.json").read_text())["usage"]
    return usage if isinstance(usage, dict) else None


@pytest.mark.slow
@pytest.mark.subprocess
def test_a_sigkilled_runs_spending_is_in_run_json_and_its_resume_adds_to_it(mmad_json: Path, tmp_path: Path) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"random": [100.0, 100.0]}))
    out = tmp_path / "run"
    with running_server(latency_s=0.2) as server:  # about 10 s of asking: the kill lands mid-run
        args = [*eval_args(mmad_json, out, server.base_url, concurrency=2), "--prices", str(prices)]
        process = subprocess.Popen(
            mmad_command(args), env=process_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_for_records(out, 6, 60, alive=lambda: process.poll() is None)
            deadline = time.monotonic() + 30
            while not (_usage(out) or {}).get("cost_usd"):  # the spending so far reaches run.json mid-run
                assert process.poll() is None and time.monotonic() < deadline, "run.json never held the spending"
                time.sleep(0.05)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(30)
        assert json.loads((out / "run.json").read_text())["status"] == "running"
        killed = _usage(out)
        assert killed is not None and killed["cost_usd"] > 0
        before = {r.key for r in read_records(out / "records.jsonl")}
        server.latency_s = 0.0
        assert main(["eval", "--resume", str(out), "--prices", str(prices)]) == 0
    resumed = [r for r in read_records(out / "records.jsonl") if r.key not in before]
    assert resumed
    usage = _usage(out)
    assert usage is not None
    # The run's usage is what the killed session had saved (up to its last second) plus the resume's.
    assert usage["cost_usd"] == pytest.approx(killed["cost_usd"] + sum(r.cost_usd or 0.0 for r in resumed), abs=1e-5)
    assert usage["prompt_tokens"] > killed["prompt_tokens"] > 0


@pytest.mark.slow
def test_a_run_json_that_cannot_be_written_mid_run_is_a_warning_and_the_run_goes_on(
    mmad_json: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from mmad import evaluate
    from mmad.run import ledger

    calls: list[float] = []

    def disk_full(*_: object, **__: object) -> None:
        calls.append(time.monotonic())
        raise OSError(28, "No space left on device")

    caplog.set_level(logging.WARNING, logger="mmad.run.ledger")
    monkeypatch.setattr(ledger, "write_manifest", disk_full)  # only the mid-run saves: prepare and finish write
    with running_server(latency_s=0.03) as server:  # about 1.5 s of asking: at least one save is due
        result = evaluate(
            "compat:random", mmad_json, out=tmp_path / "run", base_url=server.base_url, cache=False, concurrency=2
        )
    assert result.complete
    assert calls, f"no save was due in {result.stats.elapsed_s:.2f} s"
    assert "run.json could not be given the spending so far: [Errno 28] No space left on device" in caplog.text
