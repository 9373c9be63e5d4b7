"""A run folder, read: every reader of a run directory (score, compare, report, leaderboard) opens it here.

A run folder holds ``run.json`` (the settings, the protocol card and what became of the run) and
``records.jsonl`` (one line per finished question). The run itself writes them through
`mmad.run.store.RunStore`; this module only reads.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from mmad.errors import RunError
from mmad.records.record import Record, Status, latest_records, read_records

RUN_FILE = "run.json"
RECORDS_FILE = "records.jsonl"
LOCK_FILE = ".lock"
CONFIG_FILE = "config.json"


@dataclass(frozen=True)
class Completeness:
    """How much of its selection a run asked and answered (plain posings only)."""

    selected: int
    in_benchmark: int
    asked: int
    answered: int
    failed: int

    @property
    def missing(self) -> int:
        """Selected questions with no record at all."""
        return max(0, self.selected - self.asked)

    @property
    def complete(self) -> bool:
        """Every selected question was asked and none of the requests failed."""
        return self.missing == 0 and self.failed == 0

    @property
    def subset(self) -> bool:
        """The run selected only part of its benchmark (--limit, --subtask, --category, --dataset)."""
        return self.selected < self.in_benchmark

    def describe(self) -> str:
        """One line: 'asked 48 of 555 selected (of 555 in the benchmark), answered 47'."""
        whole = f" (of {self.in_benchmark} in the benchmark)" if self.subset else ""
        return f"asked {self.asked} of {self.selected} selected{whole}, answered {self.answered}"


class RunFolder:
    """A run directory opened for reading."""

    def __init__(self, path: Path, meta: dict[str, Any]) -> None:
        self.path = path
        self.meta = meta

    @property
    def records_file(self) -> Path:
        """records.jsonl."""
        return self.path / RECORDS_FILE

    @cached_property
    def records(self) -> list[Record]:
        """Every record written, in file order (read once)."""
        return read_records(self.records_file) if self.records_file.exists() else []

    @cached_property
    def latest(self) -> dict[tuple[str, str], Record]:
        """The last record of each (question, variant)."""
        return latest_records(self.records)

    @property
    def plain(self) -> list[Record]:
        """The latest record of each question as posed unrotated: what the MMAD table scores."""
        return [r for r in self.latest.values() if r.plain]

    @property
    def recorded_status(self) -> str:
        """running, complete, partial, interrupted or failed, as run.json says."""
        return str(self.meta.get("status", "unknown"))

    @property
    def torn(self) -> bool:
        """Whether records.jsonl ends in a line without its newline (a write a crash cut short)."""
        try:
            with self.records_file.open("rb") as handle:
                if handle.seek(0, os.SEEK_END) == 0:
                    return False
                handle.seek(-1, os.SEEK_END)
                return handle.read(1) != b"\n"
        except OSError:
            return False

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
        config = self.meta.get("config") or {}
        legacy = self.meta.get("model")
        legacy_name = legacy.get("name") if isinstance(legacy, dict) else legacy
        return str(config.get("model") or legacy_name or self.path.name)

    def setting(self, name: str, default: Any = None) -> Any:
        """A run setting by its flat name (``shots``, ``similar_templates``, ``limit``...), from the nested
        config of current runs or the flat config of runs made before it had sections."""
        config = self.meta.get("config") or {}
        if name in config and not isinstance(config[name], dict):
            return config[name]
        for section in config.values():
            if isinstance(section, dict) and name in section:
                return section[name]
        return default

    @property
    def benchmark_sha256(self) -> str | None:
        """The SHA-256 of the benchmark json the run asked."""
        value = (self.meta.get("dataset") or {}).get("sha256")
        return str(value) if value else None

    @property
    def card(self) -> dict[str, Any]:
        """The run's protocol card ({} for runs made before cards existed)."""
        card = self.meta.get("card")
        return dict(card) if isinstance(card, dict) else {}

    @property
    def completeness(self) -> Completeness:
        """Asked and answered of the questions the run selected (plain posings)."""
        plain = self.plain
        dataset = self.meta.get("dataset") or {}
        selected = int(dataset.get("questions_selected") or 0)
        in_benchmark = int(dataset.get("questions_in_benchmark") or 0)
        return Completeness(
            selected=max(selected, len(plain)),
            in_benchmark=max(in_benchmark, selected, len(plain)),
            asked=len(plain),
            answered=sum(r.status is Status.ANSWERED for r in plain),
            failed=sum(r.status is Status.ERROR for r in plain),
        )


def lock_is_held(path: Path) -> bool:
    """Whether a process holds the flock of a run's lock file (a lock dies with its process)."""
    try:
        handle = path.open("rb")
    except OSError:
        return False
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return False


def is_run_folder(path: str | os.PathLike[str]) -> bool:
    """Whether a path is a folder holding a run.json."""
    return (Path(path) / RUN_FILE).is_file()


def open_run(path: str | os.PathLike[str]) -> RunFolder:
    """Open a run directory for reading; a RunError names the folder and what is wrong."""
    folder = Path(path)
    if not folder.exists():
        msg = f"{folder} does not exist; give a run directory made by `mmad eval` (it holds run.json)"
        raise RunError(msg)
    # A sweep's folder holds its cells (runs) beside sweep.json and its tables: `mmad leaderboard SWEEP/*`
    # reaches those files, `mmad leaderboard SWEEP` the folder itself.
    sweep = next((p for p in (folder, folder.parent) if (p / "sweep.json").is_file()), None)
    cells = f"; a sweep's runs are its cells: give them as {sweep}/*/ (the trailing / leaves its files out)"
    if not folder.is_dir():
        msg = f"{folder} is a file, not a run directory; give the folder that holds run.json{cells if sweep else ''}"
        raise RunError(msg)
    run_file = folder / RUN_FILE
    if not run_file.is_file():
        what = "a sweep's folder, not a run" if sweep == folder else f"not a run directory (no {RUN_FILE})"
        msg = f"{folder} is {what}; give a folder made by `mmad eval`{cells if sweep else ''}"
        raise RunError(msg)
    try:
        meta = json.loads(run_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        msg = f"{run_file} cannot be read ({exc}); the run folder is damaged"
        raise RunError(msg) from exc
    if not isinstance(meta, dict):
        msg = f"{run_file} is not a json object; the run folder is damaged"
        raise RunError(msg)
    return RunFolder(folder, meta)
