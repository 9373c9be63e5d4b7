"""A run closes the response cache it opened: a sweep runs its cells in one process, and a cache
left open keeps its writer thread, its SQLite connection and up to PRELOAD_BYTES of preloaded
replies alive per cell."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from mmad.cli import main
from tests.helpers.serving import running_server


def _writers() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "mmad-cache-writer" and t.is_alive()}


def test_a_finished_run_leaves_no_cache_writer_behind(
    mmad_json: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MMAD_CACHE_DIR", str(tmp_path / "responses"))
    before = _writers()
    with running_server() as server:
        command = ["eval", "-m", "mmad:random", "-d", str(mmad_json), "--base-url", server.base_url, "--limit", "6"]
        assert main([*command, "--out", str(tmp_path / "run")]) == 0
        assert server.stats.requests > 0  # replies were put, so the writer thread was started
    assert _writers() <= before
