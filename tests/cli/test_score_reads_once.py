"""`mmad score RUN` and `mmad compare A B` parse each run's records.jsonl once (a large run's records
take seconds to read; the run's completeness and its answers come from the same reading)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import mmad.records.folder
import mmad.score.load
from mmad.cli import main
from mmad.records.record import read_records


def test_a_run_s_records_are_read_once_per_command(
    mmad_json: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert main(["eval", "-m", "random", "-d", str(mmad_json), "--out", str(run), "--no-cache", "--limit", "20"]) == 0
    reads: list[Path] = []

    def counted(path: Any, *args: Any, **kwargs: Any) -> Any:
        reads.append(Path(path))
        return read_records(path, *args, **kwargs)

    monkeypatch.setattr(mmad.records.folder, "read_records", counted)
    monkeypatch.setattr(mmad.score.load, "read_records", counted)
    capsys.readouterr()
    assert main(["score", str(run), "--no-plot", "--json"]) == 0
    assert reads == [run / "records.jsonl"]
    reads.clear()
    assert main(["compare", str(run), str(run), "--samples", "100", "--json"]) == 0
    assert reads == [run / "records.jsonl"] * 2
