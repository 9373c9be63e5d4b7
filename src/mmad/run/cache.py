"""A response cache keyed by the hash of the request, so a re-run costs nothing.

One SQLite database per cache folder (``responses.sqlite3``, WAL, one connection per open cache).
A request must not pay for the cache: the keys are read into memory when the cache opens (and
the replies too, up to PRELOAD_BYTES), so a miss is a set lookup that touches neither the file
system nor the database, and replies are queued in memory and written in batches by a
background thread, off the event loop. Several
processes may share a folder (a sweep's cells, two runs at once): SQLite serialises their
writes, and each process picks up the others' keys when it writes its own batch.

The database is kept under a size limit (``$MMAD_CACHE_MAX_MB``, default 512 MB of replies) by
dropping the oldest replies first. Caches of mmad 0.x (one ``<hash[:2]>/<hash>.json`` file per
reply) are read into the database once, the first time it is created in that folder; the files
are left where they are (``mmad cache clear`` removes them).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import logging
import math
import os
import re
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from mmad.errors import CacheError
from mmad.models.base import Completion

logger = logging.getLogger(__name__)

DATABASE = "responses.sqlite3"
DEFAULT_MAX_MB = 512
BATCH = 256
"""Replies queued before the writer thread writes them without waiting for WRITE_INTERVAL_S."""
WRITE_INTERVAL_S = 0.5
PRELOAD_BYTES = 64_000_000
"""A cache holding at most this many bytes of replies is read whole into memory when it opens."""
BUSY_TIMEOUT_MS = 30_000
_LEGACY_NAME = re.compile(r"^[0-9a-f]{64}\.json$")
_INSERT = "INSERT OR IGNORE INTO responses (key, value, size, stored) VALUES (?, ?, ?, ?)"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    value TEXT NOT NULL,
    size INTEGER NOT NULL,
    stored REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (name, value) VALUES ('bytes', 0), ('hits', 0);
CREATE TRIGGER IF NOT EXISTS responses_added AFTER INSERT ON responses
    BEGIN UPDATE meta SET value = value + new.size WHERE name = 'bytes'; END;
CREATE TRIGGER IF NOT EXISTS responses_removed AFTER DELETE ON responses
    BEGIN UPDATE meta SET value = value - old.size WHERE name = 'bytes'; END;
"""


def default_cache_dir() -> Path:
    """$MMAD_CACHE_DIR, else $XDG_CACHE_HOME/mmad, else ~/.cache/mmad."""
    if os.environ.get("MMAD_CACHE_DIR"):
        return Path(os.environ["MMAD_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mmad" / "responses"


def check_cache_folder(folder: str | os.PathLike[str] | None) -> None:
    """Refuse, before anything is written, a cache folder that cannot become one: it, or a folder
    above it, is a regular file. The message names where the path came from (MMAD_CACHE_DIR, the
    cache_dir setting or XDG_CACHE_HOME), since that is what has to change."""
    path = Path(folder) if folder else default_cache_dir()
    blocker = next((p for p in (path, *path.parents) if p.is_file()), None)
    if blocker is None:
        return
    if folder:
        origin, fix = f"cache_dir {path}", "give --cache-dir (or cache_dir) a folder"
    elif os.environ.get("MMAD_CACHE_DIR"):
        origin, fix = f"MMAD_CACHE_DIR={path}", "point MMAD_CACHE_DIR at a folder"
    else:
        origin, fix = f"the default response cache folder {path}", "set MMAD_CACHE_DIR (or XDG_CACHE_HOME) to a folder"
    where = "is a file" if blocker == path else f"is under {blocker}, which is a file"
    msg = f"{origin}: the response cache folder {where}, not a folder; {fix}, or pass --no-cache"
    raise CacheError(msg)


def default_max_bytes() -> int:
    """$MMAD_CACHE_MAX_MB megabytes of replies, else DEFAULT_MAX_MB."""
    raw = os.environ.get("MMAD_CACHE_MAX_MB")
    if not raw:
        return DEFAULT_MAX_MB * 1_000_000
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value <= 0:  # float() takes 'nan' and 'inf', which int() then refuses
        msg = f"MMAD_CACHE_MAX_MB={raw!r} is not a positive number of megabytes; set e.g. MMAD_CACHE_MAX_MB=512"
        raise CacheError(msg)
    return int(value * 1_000_000)


def cache_key(model: dict[str, object], prompt_digest: str, settings: dict[str, object]) -> str:
    """The hash of everything that decides a reply."""
    payload = json.dumps({"model": model, "prompt": prompt_digest, "settings": settings}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def _short(key: str) -> int:
    """The index's form of a key: its first 60 bits (a collision only costs one database query)."""
    return int(key[:15], 16)


def legacy_files(folder: Path) -> list[Path]:
    """The one-file-per-reply cache files of mmad 0.x in a folder."""
    found: list[Path] = []
    if not folder.is_dir():
        return found
    for sub in folder.iterdir():
        if len(sub.name) == 2 and sub.is_dir():
            found.extend(p for p in sub.iterdir() if _LEGACY_NAME.match(p.name))
    return found


@dataclass(frozen=True)
class CacheInfo:
    """What `mmad cache info` shows."""

    path: Path
    entries: int
    reply_bytes: int
    file_bytes: int
    hits: int
    max_bytes: int
    legacy_files: int


class ResponseCache:
    """Completions in one SQLite database per folder, looked up in memory, written in batches."""

    def __init__(
        self, folder: str | os.PathLike[str] | None = None, *, max_bytes: int | None = None, preload: bool = True
    ) -> None:
        self.folder = Path(folder) if folder else default_cache_dir()
        self.path = self.folder / DATABASE
        self.max_bytes = default_max_bytes() if max_bytes is None else max_bytes
        self.hits = 0
        self._unsaved_hits = 0
        self._keys: set[int] = set()
        self._values: dict[str, str] = {}  # the stored replies' json, where they fit in PRELOAD_BYTES
        self._pending: dict[str, Completion] = {}
        self._last_id = 0
        self._db_lock = threading.Lock()  # one connection, used by the event loop (hits) and the writer
        self._write_lock = threading.Lock()  # one batch at a time
        self._wake = threading.Condition()
        self._closing = False
        self._writer: threading.Thread | None = None
        self._write_error: BaseException | None = None
        self._pid = os.getpid()
        self._db = self._connect()
        self._load_keys(preload)
        _OPEN.add(self)

    # -- opening ---------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            new = not self.path.exists()
            db = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False, isolation_level=None
            )
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._set_wal(db)
            db.execute("PRAGMA synchronous = NORMAL")  # WAL: a crash may lose the last batch, never corrupt
            db.executescript("BEGIN IMMEDIATE;" + _SCHEMA + "COMMIT;")
        except sqlite3.DatabaseError as exc:
            raise self._error(exc) from exc
        except OSError as exc:
            why = exc.strerror or str(exc)
            if isinstance(exc, FileExistsError | NotADirectoryError):  # strerror alone read "(File exists)"
                why = "it is a file, not a folder" if self.folder.is_file() else "part of that path is a file"
            msg = f"the response cache folder {self.folder} cannot be used ({why}); "
            raise CacheError(
                msg + "set MMAD_CACHE_DIR (or cache_dir) to a writable folder, or pass --no-cache"
            ) from exc
        if new:
            self._import_legacy(db)
        return db

    @staticmethod
    def _set_wal(db: sqlite3.Connection) -> None:
        # Switching to WAL needs a moment alone with the file; a second process opening it at the
        # same instant gets SQLITE_BUSY at once (the busy handler is not used for this), so retry.
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                db.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _error(self, exc: BaseException) -> CacheError:
        if isinstance(exc, sqlite3.OperationalError):
            # not damaged, so `mmad cache clear` would fail the same way: a read-only folder or
            # file, a full disk, or a lock another process holds past BUSY_TIMEOUT_MS
            fix = f"make {self.folder} writable, set MMAD_CACHE_DIR (or cache_dir) to a writable folder"
            if "locked" in str(exc):
                fix = "wait for the other mmad using it to finish, set MMAD_CACHE_DIR to another folder"
        else:
            fix = "run `mmad cache clear` to start it afresh"
        msg = f"the response cache {self.path} cannot be read or written ({exc}); {fix}, or pass --no-cache"
        return CacheError(msg)

    def _import_legacy(self, db: sqlite3.Connection) -> None:
        files = legacy_files(self.folder)
        if not files:
            return
        rows = []
        for path in files:
            try:
                value = json.dumps(asdict(Completion(**json.loads(path.read_text()))))
            except (OSError, ValueError, TypeError):
                continue  # a half-written or foreign file: the request is asked again
            key = path.name.removesuffix(".json")
            rows.append((key, value, len(key) + len(value), path.stat().st_mtime))
        with _transaction(db):
            db.executemany(_INSERT, rows)
        logger.info("read %d replies of an older mmad's cache in %s into %s", len(rows), self.folder, DATABASE)

    def _load_keys(self, preload: bool) -> None:
        """The index, and the replies themselves when they are few enough to hold (PRELOAD_BYTES) and a run will
        ask for them (``mmad cache info`` and ``clear`` do not).

        A hit then costs no query either: on the event loop, a query gives up the GIL, and getting
        it back behind the image-prefetch thread cost milliseconds per hit on a busy machine.
        """
        with self._db_lock:
            try:
                total = _reply_bytes(self._db)
                if preload and total <= PRELOAD_BYTES:
                    for row_id, key, value in self._db.execute("SELECT id, key, value FROM responses"):
                        self._keys.add(_short(key))
                        self._values[key] = value
                        self._last_id = max(self._last_id, row_id)
                self._refresh_keys()
            except sqlite3.DatabaseError as exc:
                raise self._error(exc) from exc

    def _refresh_keys(self) -> None:
        """Add the keys written since the last look (by this process or another)."""
        rows = self._db.execute("SELECT id, key FROM responses WHERE id > ?", (self._last_id,)).fetchall()
        for row_id, key in rows:
            self._keys.add(_short(key))
            self._last_id = max(self._last_id, row_id)

    # -- asking ----------------------------------------------------------------------------------

    def get(self, key: str) -> Completion | None:
        """The stored completion, or None. A key the cache has never seen costs no I/O."""
        if _short(key) not in self._keys:
            return None
        completion = self._pending.get(key)
        if completion is None:
            value = self._values.get(key)
            completion = self._read(key) if value is None else _completion(value)
            if completion is None:
                return None
        self.hits += 1
        self._unsaved_hits += 1
        return completion

    def _read(self, key: str) -> Completion | None:
        with self._db_lock:
            try:
                row = self._db.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
            except sqlite3.DatabaseError as exc:
                logger.warning("the response cache %s could not be read: %s", self.path, exc)
                return None
        if row is None:  # evicted, cleared, or another key with the same first 60 bits
            return None
        return _completion(row[0])

    def put(self, key: str, completion: Completion) -> None:
        """Queue a completion; the writer thread stores it within WRITE_INTERVAL_S."""
        if self._write_error is not None:
            return  # already reported once; the run goes on without storing
        with self._wake:
            self._pending[key] = completion
            self._keys.add(_short(key))
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_often, name="mmad-cache-writer", daemon=True)
                self._writer.start()
            if len(self._pending) >= BATCH:
                self._wake.notify()

    # -- writing ---------------------------------------------------------------------------------

    def _write_often(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._closing or len(self._pending) >= BATCH, timeout=WRITE_INTERVAL_S)
                closing = self._closing
            self.flush()
            if closing:
                return

    def flush(self) -> None:
        """Write what is queued (and the hit count) now; returns once it is in the database."""
        if os.getpid() != self._pid:
            return  # a forked child: the connection is its parent's (SQLite forbids using it here)
        with self._write_lock:
            batch = dict(self._pending)
            hits, self._unsaved_hits = self._unsaved_hits, 0
            if not batch and not hits:
                return
            rows = []
            now = time.time()
            for key, completion in batch.items():
                try:
                    value = json.dumps(asdict(completion))
                except (TypeError, ValueError) as exc:  # a backend's extra that JSON cannot hold
                    logger.warning("a reply was not cached: %s", exc)
                    continue
                rows.append((key, value, len(key) + len(value), now))
            try:
                with self._db_lock, _transaction(self._db):
                    self._db.executemany(_INSERT, rows)
                    if hits:
                        self._db.execute("UPDATE meta SET value = value + ? WHERE name = 'hits'", (hits,))
                    self._evict()
                with self._db_lock:
                    self._refresh_keys()
            except sqlite3.DatabaseError as exc:
                if self._write_error is None:
                    logger.warning("%s; replies are no longer stored in this run", self._error(exc))
                self._write_error = exc
            with self._wake:
                for key in batch:
                    if self._pending.get(key) is batch[key]:
                        del self._pending[key]

    def _evict(self) -> None:
        """Drop the oldest replies until the cache is back under 90% of its limit (inside a transaction)."""
        total = _reply_bytes(self._db)
        if total <= self.max_bytes:
            return
        excess = total - int(self.max_bytes * 0.9)
        freed, last = 0, None
        for row_id, size in self._db.execute("SELECT id, size FROM responses ORDER BY id"):
            freed += size
            last = row_id
            if freed >= excess:
                break
        if last is not None:
            for (key,) in self._db.execute("SELECT key FROM responses WHERE id <= ?", (last,)).fetchall():
                self._values.pop(key, None)  # else this process would go on answering what the cache dropped
            self._db.execute("DELETE FROM responses WHERE id <= ?", (last,))
            logger.info("the response cache passed %d bytes: dropped its oldest %d bytes", self.max_bytes, freed)

    def close(self) -> None:
        """Write what is queued, stop the writer and close the database."""
        if self._closing or os.getpid() != self._pid:
            return
        with self._wake:
            self._closing = True
            self._wake.notify()
        if self._writer is not None:
            self._writer.join()
        self.flush()
        with self._db_lock:
            self._db.close()
        _OPEN.discard(self)

    # -- looking after ---------------------------------------------------------------------------

    def info(self) -> CacheInfo:
        """Entries, sizes and hits of the whole folder (every process's)."""
        self.flush()
        with self._db_lock:
            entries = self._db.execute("SELECT count(*) FROM responses").fetchone()[0]
            values = dict(self._db.execute("SELECT name, value FROM meta").fetchall())
        file_bytes = sum(p.stat().st_size for p in self.folder.glob(DATABASE + "*") if p.is_file())
        return CacheInfo(
            path=self.path,
            entries=int(entries),
            reply_bytes=int(values.get("bytes", 0)),
            file_bytes=file_bytes,
            hits=int(values.get("hits", 0)),
            max_bytes=self.max_bytes,
            legacy_files=len(legacy_files(self.folder)),
        )

    def clear(self) -> int:
        """Remove every reply (and an older mmad's files); returns how many replies there were."""
        self.flush()
        with self._db_lock:
            entries = int(self._db.execute("SELECT count(*) FROM responses").fetchone()[0])
            with _transaction(self._db):
                self._db.execute("DELETE FROM responses")
                self._db.execute("UPDATE meta SET value = 0")
            self._db.execute("VACUUM")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # else the freed pages linger in the WAL file
            self._keys.clear()
            self._values.clear()
        for path in legacy_files(self.folder):
            entries += 1
            path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                path.parent.rmdir()  # only once empty
        return entries


def damaged(exc: CacheError) -> bool:
    """Whether the cache failed to open because its file is not a sound database (not locked, not unwritable)."""
    cause = exc.__cause__
    # OperationalError covers "locked", "unable to open" and I/O errors: a live or unreachable file
    return isinstance(cause, sqlite3.DatabaseError) and not isinstance(cause, sqlite3.OperationalError)


def _reply_bytes(db: sqlite3.Connection) -> int:
    """The bytes of replies stored, as the triggers keep count."""
    return int(db.execute("SELECT value FROM meta WHERE name = 'bytes'").fetchone()[0])


def _completion(value: str) -> Completion | None:
    try:
        return Completion(**json.loads(value))
    except (ValueError, TypeError):
        return None  # written by a newer mmad with other fields: asked again


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT (or ROLLBACK), so a writer waits for the lock at the start, not mid-way."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


_OPEN: weakref.WeakSet[ResponseCache] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    """Write what every open cache still holds in memory before the process ends."""
    for cache in list(_OPEN):
        with contextlib.suppress(Exception):
            cache.close()
