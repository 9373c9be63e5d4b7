"""The run's lock: `mmad runs` holds it shared for an instant to tell a stale run from a live one,
and a run started in that instant must not be refused as if another mmad were writing."""

from __future__ import annotations

import fcntl
import threading
from pathlib import Path

from mmad.records.folder import LOCK_FILE
from mmad.run.store import RunStore


def test_a_run_opened_while_runs_looks_at_its_lock_waits_for_it(tmp_path: Path) -> None:
    tmp_path.joinpath(LOCK_FILE).touch()
    with tmp_path.joinpath(LOCK_FILE).open("rb") as look:  # what lock_is_held does, held a little longer
        fcntl.flock(look.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        release = threading.Timer(0.05, fcntl.flock, (look.fileno(), fcntl.LOCK_UN))
        release.start()
        store = RunStore(tmp_path)
        try:
            store.open()
        finally:
            release.join()
            store.close()
