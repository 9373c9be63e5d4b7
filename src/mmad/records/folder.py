"""A run folder's files and records, at the bottom of mmad.

A run folder holds ``run.json`` (the settings, the protocol card and what became of the run: its
typed manifest, `mmad.run.manifest`, which needs the run's config and so lives in `run/`) and
``records.jsonl`` (one line per finished question). Readers open a whole run with
`mmad.run.folder.open_run`; `run_records` serves the layers below `run/` that need only its records.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from mmad.errors import RunError
from mmad.records.record import Record, latest_records, read_records

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


def check_run_folder(path: str | os.PathLike[str]) -> Path:
    """The folder, if it holds a run (its run.json); else a RunError that names it and what it is."""
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
    if not (folder / RUN_FILE).is_file():
        what = "a sweep's folder, not a run" if sweep == folder else f"not a run directory (no {RUN_FILE})"
        msg = f"{folder} is {what}; give a folder made by `mmad eval`{cells if sweep else ''}"
        raise RunError(msg)
    return folder


class RunRecords:
    """A run folder's records (records.jsonl): what the layers below `run/` read of a run. Its manifest
    (run.json) needs the run's config, so `mmad.run.folder.RunFolder` adds it."""

    def __init__(self, path: Path) -> None:
        self.path = path

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


def open_records(path: str | os.PathLike[str]) -> RunRecords:
    """A run folder's records, once the folder is checked to hold a run (a RunError says what it is if not)."""
    return RunRecords(check_run_folder(path))


def run_records(path: str | os.PathLike[str]) -> list[Record]:
    """Every record of a run folder, in file order."""
    return open_records(path).records
