"""A Ray address where nothing listens is named in seconds, before a run folder is made."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.subprocess
def test_eval_on_a_dead_ray_address_fails_fast_naming_it(mmad_json: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="needs the [ray] extra")
    address = f"127.0.0.1:{_closed_port()}"
    out = tmp_path / "run"
    # A driver process of its own: a Ray this test process may hold (another test's) would be used instead.
    started = time.monotonic()
    command = [sys.executable, "-m", "mmad", "eval", "-m", "random", "-d", str(mmad_json), "--out", str(out)]
    done = subprocess.run(
        [*command, "--engine", "ray", "--ray-address", address, "--no-cache"],
        env={**os.environ, "COLUMNS": "250"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    took = time.monotonic() - started
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"cannot reach the Ray cluster at {address}" in done.stderr and "ray start --head" in done.stderr
    assert took < 15, f"{took:.0f} s before the error (it hung past 120 s before)"
    assert not out.exists()


def test_check_ray_address_reads_the_forms_ray_takes() -> None:
    from mmad.errors import RunError
    from mmad.run.ray_session import check_ray_address

    check_ray_address(None)
    check_ray_address("auto")  # Ray resolves these itself
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        check_ray_address(f"127.0.0.1:{port}")
        check_ray_address(f"ray://127.0.0.1:{port}")
    dead = _closed_port()
    with pytest.raises(RunError, match=rf"ray://127.0.0.1:{dead} \(127.0.0.1:{dead}: "):
        check_ray_address(f"ray://127.0.0.1:{dead}")
    with pytest.raises(RunError, match=r"the port 'x' is not a number"):
        check_ray_address("127.0.0.1:x")
