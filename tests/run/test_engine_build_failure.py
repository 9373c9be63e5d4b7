"""A run whose engine cannot be built (a solver that raises while being made) says so in run.json and in
`mmad runs`: status ``failed`` with the reason, not a bare ``partial`` that reads as a run cut short."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from mmad import evaluate
from mmad.cli import main
from mmad.protocol.messages import Prompt
from mmad.records.record import Record
from mmad.solvers import ModelCaller, Solver, SolverSetup, register_solver, unregister_solver

REASON = "the inspection tool server at 127.0.0.1 refused the connection"


@pytest.fixture
def broken_solver() -> Iterator[str]:
    @register_solver("broken-at-build")
    class BrokenAtBuild(Solver):
        def __init__(self, setup: SolverSetup) -> None:
            raise RuntimeError(REASON)

        async def solve(self, prompt: Prompt, call: ModelCaller) -> list[Record]:  # pragma: no cover - never built
            return []

    yield "broken-at-build"
    unregister_solver("broken-at-build")


def test_a_run_whose_engine_fails_to_build_records_why(
    broken_solver: str, mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "runs" / "broken"
    with pytest.raises(RuntimeError, match=REASON):
        evaluate("random:7", mmad_json, out=out, cache=False, solver=broken_solver, limit=4)
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["status"] == "failed"
    assert manifest["stopped_reason"] == f"the engine could not be built: RuntimeError: {REASON}"

    capsys.readouterr()
    assert main(["runs", str(tmp_path / "runs"), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["status"] == "failed" and row["stopped_reason"] == manifest["stopped_reason"]
    assert main(["runs", str(tmp_path / "runs")]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert f"failed: the engine could not be built: RuntimeError: {REASON}" in shown


def test_the_reason_never_carries_a_key(mmad_json: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "not-a-real-key-0123456789"
    monkeypatch.setenv("INSPECTION_API_KEY", secret)

    @register_solver("leaks-at-build")
    class LeaksAtBuild(Solver):
        def __init__(self, setup: SolverSetup) -> None:
            raise RuntimeError(f"login with {secret} refused")

    try:
        with pytest.raises(RuntimeError):
            evaluate("random:7", mmad_json, out=tmp_path / "run", cache=False, solver="leaks-at-build", limit=2)
    finally:
        unregister_solver("leaks-at-build")
    text = (tmp_path / "run" / "run.json").read_text()
    assert secret not in text and "login with *** refused" in text


def test_a_run_that_raises_while_asking_stays_partial_and_says_why(
    mmad_json: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error no solver turned into records (the engine's own) ends the run: partial, with the reason."""
    from mmad.run import runner

    async def crashes(*_args: object) -> None:
        msg = "the actor pool lost its last worker"
        raise RuntimeError(msg)

    monkeypatch.setattr(runner, "execute", crashes)
    with pytest.raises(RuntimeError, match="lost its last worker"):
        evaluate("random:7", mmad_json, out=tmp_path / "run", cache=False, limit=2)
    manifest = json.loads((tmp_path / "run" / "run.json").read_text())
    assert manifest["status"] == "partial"
    assert (
        manifest["stopped_reason"] == "the run failed while asking: RuntimeError: the actor pool lost its last worker"
    )
