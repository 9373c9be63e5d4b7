"""The run directory's records: ``records.jsonl`` (one line per finished question) and the run's lock.
``run.json`` beside it is the run's manifest, written only by `mmad.run.manifest`.

Lines are appended as requests finish and handed to the operating system within a tenth of a
second, so killing the process loses only the requests in flight and the answers of that moment.
A torn last line (a write cut short) is cut off when the run is reopened. A lock file keeps two
processes from writing one run.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from mmad._io import atomic_writer
from mmad.errors import AnswersFormatError, RunError
from mmad.records.folder import LOCK_FILE, RECORDS_FILE, is_run_folder
from mmad.records.record import Record, Status, read_records

LOCK_WAIT_S = 0.5
"""How long a run waits for its lock: `mmad runs` holds it shared for an instant to see whether a
process still holds it (a stale run), and that instant must not refuse a run being started."""


def _lock_soon(handle: IO[str]) -> None:
    """flock the run's lock file, exclusively, within LOCK_WAIT_S (BlockingIOError: a writer holds it)."""
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


class RunStore:
    """Reads and appends one run directory."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self._handle: IO[str] | None = None
        self._lock: IO[str] | None = None

    @property
    def records_file(self) -> Path:
        """records.jsonl."""
        return self.folder / RECORDS_FILE

    def exists(self) -> bool:
        """Whether the folder holds a run (its run.json, read and written by `mmad.run.manifest`)."""
        return is_run_folder(self.folder)

    def load(self) -> list[Record]:
        """Every record written so far."""
        return read_records(self.records_file) if self.records_file.exists() else []

    def statuses(self) -> dict[tuple[str, str], Status]:
        """The latest status of each (question, variant) recorded so far, read line by line.

        Resuming a run of 39,672 questions needs only this, not every record held in memory.
        A torn last line (a crash mid-write) is skipped; it is cut off when the store opens.
        """
        latest: dict[tuple[str, str], Status] = {}
        if not self.records_file.exists():
            return latest
        with self.records_file.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                    latest[(data["question_id"], data.get("variant", ""))] = Status(data["status"])
                except (ValueError, KeyError, TypeError) as exc:
                    if not line.endswith(b"\n"):
                        break  # the write a crash cut short
                    msg = f"{self.records_file}, line {number}: not a valid record ({exc}); remove or fix that line"
                    raise AnswersFormatError(msg) from exc
        return latest

    def open(self) -> None:
        """Lock the run and open records.jsonl for appending, cutting off a torn last line."""
        self.folder.mkdir(parents=True, exist_ok=True)
        # Opened without truncating: the pid in it belongs to whoever holds the lock until we have it.
        self._lock = (self.folder / LOCK_FILE).open("a+", encoding="utf-8")
        try:
            _lock_soon(self._lock)
        except BlockingIOError as exc:
            self._lock.seek(0)
            holder = self._lock.read().strip()
            self._lock.close()
            self._lock = None
            who = f" (pid {holder})" if holder.isdigit() else ""
            msg = f"another mmad process{who} is writing {self.folder}; wait for it, or write to another folder (--out)"
            raise RunError(msg) from exc
        # The pid lets `mmad runs` name the process of a run whose lock nobody holds any more (a SIGKILL).
        self._lock.seek(0)
        self._lock.truncate()
        self._lock.write(f"{os.getpid()}\n")
        self._lock.flush()
        self._repair_tail()
        self._handle = self.records_file.open("a", encoding="utf-8")

    def lost(self) -> bool:
        """Whether the records.jsonl being appended was deleted or replaced under the run (the run
        folder removed mid-run): what is written from then on, and what was written, is gone."""
        if self._handle is None:
            return False
        try:
            on_disk = self.records_file.stat()
        except OSError:
            return True
        mine = os.fstat(self._handle.fileno())
        return (on_disk.st_dev, on_disk.st_ino) != (mine.st_dev, mine.st_ino)

    def _repair_tail(self) -> None:
        if not self.records_file.exists():
            return
        with self.records_file.open("rb+") as handle:
            data = handle.read()
            if data and not data.endswith(b"\n"):
                handle.truncate(data.rfind(b"\n") + 1)

    def append(self, records: Iterable[Record], *, flush: bool = True) -> None:
        """Append records; with ``flush`` hand them to the operating system at once (safe against a
        killed process). The engine appends without it and calls `flush` a few times a second:
        a system call per answer costs more than the answer's own bookkeeping."""
        if self._handle is None:
            msg = "the run store is not open"
            raise RunError(msg)
        self._handle.write("".join(record.model_dump_json() + "\n" for record in records))
        if flush:
            self._handle.flush()

    def flush(self) -> None:
        """Hand appended records to the operating system."""
        if self._handle is not None:
            self._handle.flush()

    def sync(self) -> None:
        """Push appended records to the disk itself (Python's buffer first)."""
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())

    def compact(self, order: list[tuple[str, str]] | None = None) -> None:
        """Rewrite records.jsonl with the latest record per question (in `order` when given).

        Works on the raw lines: the records are not parsed into objects, so compacting a run of
        any size holds its text once and nothing more.
        """
        self.flush()  # records still in Python's buffer are read, not left behind
        if not self.records_file.exists():
            return
        # Where each question's latest line starts, not the lines: a run of 39,672 questions has
        # ~60 MB of them, and holding them (twice, joined) made compacting the peak of a whole run.
        latest: dict[str, int] = {}
        with self.records_file.open("rb") as handle:
            offset = 0
            for line in handle:
                if line.endswith(b"\n") and line.strip():  # a torn last line is dropped, as on opening
                    data = json.loads(line)
                    latest[_line_key(data["question_id"], data.get("variant", ""))] = offset
                offset += len(line)
        if order:
            in_order = [_line_key(*k) for k in order]
            wanted = set(in_order)
            keys = [k for k in in_order if k in latest] + [k for k in latest if k not in wanted]
        else:
            keys = list(latest)
        if self._handle is not None:
            self._handle.close()
        with self.records_file.open("rb") as source, atomic_writer(self.records_file) as target:
            for key in keys:
                source.seek(latest[key])
                target.write(source.readline())
        if self._handle is not None:
            self._handle = self.records_file.open("a", encoding="utf-8")

    def close(self) -> None:
        """Sync, close and unlock."""
        if self._handle is not None:
            self.sync()
            self._handle.close()
            self._handle = None
        if self._lock is not None:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None


def _line_key(question_id: str, variant: str) -> str:
    """One string per posing (a question id holds no NUL), smaller than a tuple of two."""
    return f"{question_id}\0{variant}"
