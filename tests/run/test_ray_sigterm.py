"""SIGTERM on a run of the Ray engine takes the documented path (exit 130, run.json interrupted by
SIGTERM, the resume command). ``ray.init`` installs its own SIGTERM handler in the driver
(``sys.exit(15)``) and never puts mmad's back, so a scheduler's stop used to end the run as a
plain exit 15, unmarked."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from tests.helpers.processes import never_left_running, process_env
from tests.helpers.runs import wait_for_records
from tests.helpers.serving import running_server
from tests.run.test_ray_engine import _driver

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.subprocess]


def test_sigterm_on_the_ray_engine_is_an_interrupt(mmad_json: Path, tmp_path: Path, ray_cluster: str) -> None:
    out = tmp_path / "run"
    with running_server(latency_s=0.3) as server:  # seconds of asking: the signal lands mid-run
        driver = subprocess.Popen(
            _driver(mmad_json, out, server.base_url, ray_cluster, resume=False),
            env=process_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        with never_left_running(driver):
            wait_for_records(out, 8, 120, alive=lambda: driver.poll() is None)
            driver.send_signal(signal.SIGTERM)
            _, stderr = driver.communicate(timeout=60)
    assert driver.returncode == 130, stderr[-2000:]
    assert f"mmad eval --resume {out}" in stderr
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "interrupted" and meta["stopped_reason"] == "interrupted (SIGTERM)"
