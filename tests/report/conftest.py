"""Real run folders for the report and leaderboard tests, made by the real runner on the test tree."""

from __future__ import annotations

from pathlib import Path

import pytest

import mmad


@pytest.fixture(scope="session")
def random_run(mmad_json: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete run of the seeded random model over the generated MMAD tree (do not modify it)."""
    out = tmp_path_factory.mktemp("runs") / "random"
    result = mmad.evaluate("random", mmad_json, out=out, cache=False)
    assert result.complete
    return result.run_dir
