"""A run folder, read: every reader of a run directory (score, compare, report, leaderboard, sweep) opens
it here, as its typed manifest (run.json, `mmad.run.manifest`) and its records (records.jsonl).

The run itself writes them (`write_manifest`, `mmad.run.store.RunStore`); this module only reads.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mmad.records.folder import LOCK_FILE, Completeness, RunRecords, check_run_folder, lock_is_held
from mmad.records.record import Status
from mmad.run.config import RunConfig
from mmad.run.manifest import Manifest, read_manifest


class RunFolder(RunRecords):
    """A run directory opened for reading: its records and its manifest."""

    def __init__(self, path: Path, manifest: Manifest) -> None:
        super().__init__(path)
        self.manifest = manifest

    @property
    def config(self) -> RunConfig:
        """The settings the run was made with (as its latest session recorded them)."""
        return self.manifest.config

    @property
    def recorded_status(self) -> str:
        """running, complete, partial, interrupted or failed, as run.json says."""
        return self.manifest.status

    @property
    def status(self) -> str:
        """What run.json says, except that a run it calls complete whose records lack questions, hold
        failures or end in a torn line is 'incomplete': run.json is written before records can be lost."""
        status = self.recorded_status
        if status == "complete" and (self.torn or not self.completeness.complete):
            return "incomplete"
        return status

    @property
    def stale(self) -> bool:
        """run.json says ``running`` but no process holds the run's lock: the process that ran it
        died without finishing (SIGKILL, a lost machine). Its records stand; ``--resume`` goes on."""
        return self.recorded_status == "running" and not lock_is_held(self.path / LOCK_FILE)

    @property
    def lock_pid(self) -> int | None:
        """The pid of the process that last locked the run (None for runs made before it was written)."""
        try:
            text = (self.path / LOCK_FILE).read_text(encoding="utf-8").strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    @property
    def model(self) -> str:
        """The model name the run was made with."""
        return self.manifest.config.model

    @property
    def benchmark_sha256(self) -> str | None:
        """The SHA-256 of the benchmark json the run asked."""
        return self.manifest.dataset.sha256

    @property
    def card(self) -> dict[str, Any]:
        """The run's protocol card ({} for runs made before cards existed)."""
        return dict(self.manifest.card or {})

    @property
    def card_hash(self) -> str | None:
        """The protocol card's hash (None for runs made before cards existed)."""
        return self.manifest.card_hash

    @property
    def completeness(self) -> Completeness:
        """Asked and answered of the questions the run selected (plain posings)."""
        plain = self.plain
        dataset = self.manifest.dataset
        selected = dataset.questions_selected
        in_benchmark = dataset.questions_in_benchmark or 0
        return Completeness(
            selected=max(selected, len(plain)),
            in_benchmark=max(in_benchmark, selected, len(plain)),
            asked=len(plain),
            answered=sum(r.status is Status.ANSWERED for r in plain),
            failed=sum(r.status is Status.ERROR for r in plain),
        )


def open_run(path: str | os.PathLike[str]) -> RunFolder:
    """Open a run directory for reading; a RunError names the folder and what is wrong."""
    folder = check_run_folder(path)
    return RunFolder(folder, read_manifest(folder))
