"""Edit real run folders in tests: plant replies, cut a run short, add a protocol card."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmad.records import RECORDS_FILE, RUN_FILE, Record, read_records


def edit_records(run_dir: Path, change: Callable[[int, Record], Record | None]) -> None:
    """Rewrite records.jsonl: each record through ``change(index, record)``; None drops it."""
    path = run_dir / RECORDS_FILE
    kept = []
    for index, record in enumerate(read_records(path)):
        changed = change(index, record)
        if changed is not None:
            kept.append(changed.model_dump_json())
    path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


def edit_meta(run_dir: Path, **updates: Any) -> None:
    """Set top-level fields of run.json."""
    path = run_dir / RUN_FILE
    meta = json.loads(path.read_text(encoding="utf-8"))
    meta.update(updates)
    path.write_text(json.dumps(meta, indent=2), encoding="utf-8")


def copy_run(source: Path, target: Path) -> Path:
    """A copy of a run folder to change."""
    shutil.copytree(source, target)
    return target


def answer_right(record: Record) -> Record:
    """The record answered with its gold letter."""
    return record.model_copy(update={"answer": record.correct_answer, "raw_reply": f"Answer: {record.correct_answer}"})


def wait_for_records(run_dir: Path, count: int, timeout_s: float, *, alive: Callable[[], bool] = lambda: True) -> None:
    """Return once a run being written holds ``count`` records (or ``alive()`` turns false, or time runs out):
    a signal sent then lands in the middle of the run."""
    import time

    deadline = time.monotonic() + timeout_s
    records = run_dir / RECORDS_FILE
    while time.monotonic() < deadline and alive():
        if records.exists() and records.read_text().count("\n") >= count:
            return
        time.sleep(0.02)
