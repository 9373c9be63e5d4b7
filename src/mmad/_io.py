"""Small file and hashing helpers shared by every layer (nothing in mmad is imported here)."""

from __future__ import annotations

import contextlib
import errno
import gc
import hashlib
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


def _default_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _default_mode()


@contextlib.contextmanager
def atomic_writer(path: Path, *, make_folder: bool = True) -> Iterator[BinaryIO]:
    """A binary file handle whose content replaces path only when the block ends without an error,
    so a crash never leaves half a file; for files written piece by piece. ``make_folder=False``: a
    missing folder is a FileNotFoundError, not made again."""
    if path.is_dir():  # else the error would name the temporary file, not the path the caller gave
        raise IsADirectoryError(errno.EISDIR, "Is a directory", str(path))
    if make_folder:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
        Path(tmp).chmod(_FILE_MODE)  # mkstemp makes 0600 files; a written file gets the usual mode
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes, *, make_folder: bool = True) -> None:
    """Write bytes to path through a temporary file, so a crash never leaves half a file."""
    with atomic_writer(path, make_folder=make_folder) as handle:
        handle.write(data)


def atomic_write_text(path: Path, text: str, *, make_folder: bool = True) -> None:
    """Write text (UTF-8) to path through a temporary file, so a crash never leaves half a file."""
    atomic_write_bytes(path, text.encode("utf-8"), make_folder=make_folder)


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_text(text: str) -> str:
    """The SHA-256 of a text's UTF-8 bytes, hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_bytes(data: bytes) -> str:
    """The SHA-256 of bytes, hex."""
    return hashlib.sha256(data).hexdigest()


@contextlib.contextmanager
def collector_frozen() -> Iterator[None]:
    """Leave the objects alive now (the benchmark's ~50,000 models, the modules) out of the cycle
    collector's passes until the block ends, then hand them back to it.

    A run makes many short-lived objects, so the collector's full passes come round during it, and
    each walked every question of the benchmark again (issue #22: freezing them took about 0.5 s off
    a 2,944-question run on the 2-core box). Only what the collector examines changes; what the
    block frees is freed as before. Blocks nest (a run inside `evaluate`, two runs on one event
    loop): the objects go back to the collector when the last block ends.

    A process that froze objects itself (a server that calls ``gc.freeze()`` before it forks, as
    Python's docs advise) is left as it was: ``gc.unfreeze()`` cannot tell its objects from the run's,
    and would hand them all back to the collector.
    """
    global _frozen_blocks, _frozen_by_caller
    with _frozen_lock:
        if not _frozen_blocks:
            _frozen_by_caller = gc.get_freeze_count() > 0
        _frozen_blocks += 1
        if not _frozen_by_caller:
            gc.freeze()  # again in a nested block: what its enclosing blocks made since is frozen too
    try:
        yield
    finally:
        with _frozen_lock:
            _frozen_blocks -= 1
            if not _frozen_blocks and not _frozen_by_caller:  # the outermost block hands everything back
                gc.unfreeze()


_frozen_blocks = 0
_frozen_by_caller = False
_frozen_lock = threading.Lock()


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cycle collector while a bulk read makes many small acyclic objects.

    Reading 39,672 answers made the collector run hundreds of times over an ever larger heap, 40%
    of the read's time; nothing read here forms a cycle, so reference counting frees it all anyway.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
