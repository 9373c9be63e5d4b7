"""Image preprocessing, a recorded setting of every run, and a per-run cache so each image is
read and encoded once.

The default is what the official API scripts do: scale so the longest side is 512 px (small
images are scaled up too), re-encode as JPEG, send with ``detail: low``. The official code uses
OpenCV's INTER_AREA and default JPEG quality (95); we use Pillow's box filter to shrink (area
averaging, like INTER_AREA), bilinear to enlarge, quality 95, so the bytes differ from OpenCV's.
``max_side=None`` keeps the size; ``original=True`` sends the file's bytes.

Two settings exist for the recipes that reproduce an official script:

- ``resize="official"``: the scripts' size arithmetic, ``scale = min(512 / w, 512 / h)`` and
  ``int(w * scale), int(h * scale)``: ``int()`` truncates, so a 1,700 px side becomes 511
  (``1700 * (512 / 1700) == 511.99999999999994``), where mmad's default rounds to 512.
- ``mime="extension"``: the data URL's MIME type named after the file's extension, as
  ``GPT4/gpt4o.py`` and ``Gemini/gemini_query.py`` do (JPEG bytes of a .png file are labelled
  ``image/png``); ``"content"`` (default) names what the bytes are.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import io
import logging
import multiprocessing
import os
import re
import sys
import threading
import types
from collections import OrderedDict, deque
from collections.abc import Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import wait as futures_wait
from pathlib import Path

from PIL import Image

from mmad.errors import DataError
from mmad.protocol.encoding import (
    EncodedImage,
    ImageSettings,
    decode_data_url,
    encode_image,
    encode_in_worker,
    quiet_worker,
)
from mmad.protocol.messages import ImagePart
from mmad.protocol.perturb import Perturbation, parse_perturb

logger = logging.getLogger(__name__)


def load_image(part: ImagePart) -> Image.Image:
    """An image part's pixels, as RGB (from its file or its data URL)."""
    if part.path is not None:
        with Image.open(part.path) as image:
            return image.convert("RGB")
    if part.data_url is None:
        msg = "an image part has neither a path nor a data URL"
        raise DataError(msg)
    with Image.open(io.BytesIO(decode_data_url(part.data_url))) as image:
        return image.convert("RGB")


PERTURBED = "\x00perturbed"
"""Appended to a query image's path where the encoder holds its perturbed form."""


def _as_part(path: str | ImagePart) -> ImagePart:
    return path if isinstance(path, ImagePart) else ImagePart(path=path)


def _slot_part(slot: str) -> ImagePart:
    """The image part a slot stands for (a perturbed query's, or a plain path's, as a template)."""
    if slot.endswith(PERTURBED):
        return ImagePart(path=slot.removesuffix(PERTURBED), role="query")
    return ImagePart(path=slot, role="template")


DEFAULT_CACHE_BYTES = 64 * 1024 * 1024
DEFAULT_AHEAD = 128
POOL_MIN_IMAGES = 200
"""A prefetch of fewer distinct images than this stays in a thread: starting a worker process
(about 0.3 s of CPU) would cost a short run more than it saves."""


def pool_workers() -> int:
    """Encoding processes for a prefetch: one per core, at most four (past that the requests, not
    the images, are the limit). On 2 cores, two workers finished issue #22's run in 26-31 s where
    one took 34-41 s: requests that wait for their images leave the event loop idle, so the
    workers may have its core then."""
    return max(1, min(4, os.cpu_count() or 2))


_MAIN_GUARD = re.compile(r"^if\s+__name__\s*==\s*[\"']__main__[\"']\s*:", re.MULTILINE)


def spawn_is_safe() -> bool:
    """Whether a spawned worker may start: it imports the program's main module, so a script that
    calls mmad at its top level, outside an ``if __name__ == "__main__":`` guard, would run again in
    it (asking every question again). ``python -m`` programs, console scripts (``mmad``, ``pytest``)
    and notebooks are safe; for a script, the line its main thread is running now must be inside
    its guard (a guard further down, around other code, protects nothing the run started from)."""
    main = sys.modules.get("__main__")
    if main is None or str(getattr(main.__spec__, "name", "")).endswith("__main__"):
        return True  # multiprocessing does not import a package's __main__ in the child
    path = getattr(main, "__file__", None)
    if not path:
        return True  # an interactive session or a notebook: nothing is imported
    try:
        source = Path(path).read_text(errors="replace")
    except OSError:
        return False
    line = _main_module_line(main)
    if line is None:  # the script's own code has finished (a thread of it runs on): a guard is all there is
        return bool(_MAIN_GUARD.search(source))
    return _inside_main_guard(source, line)


def _main_module_line(main: types.ModuleType) -> int | None:
    """The line of the main module's top-level code that the main thread is running, if it is."""
    frame = sys._current_frames().get(threading.main_thread().ident or -1)
    line = None
    while frame is not None:
        if frame.f_code.co_name == "<module>" and frame.f_globals is vars(main):
            line = frame.f_lineno
        frame = frame.f_back
    return line


def _inside_main_guard(source: str, line: int) -> bool:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return False
    for statement in tree.body:
        if not statement.lineno <= line <= (statement.end_lineno or statement.lineno):
            continue
        if not isinstance(statement, ast.If) or not _is_main_test(statement.test):
            return False
        body_end = statement.body[-1].end_lineno or statement.body[-1].lineno
        return statement.body[0].lineno <= line <= body_end  # not its `else:`
    return False


def _is_main_test(test: ast.expr) -> bool:
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s.id for s in sides if isinstance(s, ast.Name)]
    texts = [s.value for s in sides if isinstance(s, ast.Constant)]
    return names == ["__name__"] and texts == ["__main__"]


class ImageEncoder:
    """Encodes each image once per run; thread-safe.

    Memory is bounded by bytes, not by the number of questions: the encoded images kept for reuse
    (templates shown with many queries, an image asked about several times) are evicted, least
    recently used first, past ``max_bytes``; a prefetch stays at most ``ahead`` images in
    front of the requests being built.

    A prefetch of many images encodes them in worker processes (``pool_workers()``): in a thread
    of the run's own process, Pillow's work between its GIL-free stretches took the GIL from the
    event loop often enough to cost every request's socket calls about a millisecond (2,548
    images of 3 ms each, issue #22's profile).

    With ``settings.perturb``, query images (``role="query"``) are perturbed before they are
    prepared; templates never are. An image is held under its path, and a perturbed query under
    its path and ``PERTURBED`` (a file that is a query and a template somewhere keeps both forms).
    """

    def __init__(self, settings: ImageSettings, max_bytes: int | None = None) -> None:
        self.settings = settings
        self._perturb = parse_perturb(settings.perturb) if settings.perturb else None
        self._cache: OrderedDict[str, EncodedImage] = OrderedDict()
        self._lock = threading.Lock()
        self._max_bytes = DEFAULT_CACHE_BYTES if max_bytes is None else max_bytes
        self._bytes = 0
        self._order: dict[str, int] = {}  # prefetch order of each path, as the prefetcher reaches it
        self._position = -1  # the furthest path (in prefetch order) a request has asked for
        self._stop = threading.Event()
        self._pending: dict[str, Future[EncodedImage]] = {}  # sent to the worker processes, not back yet
        self._sources: dict[str, str] = {}  # slot -> source digest (see `digests`)
        self._pool: ProcessPoolExecutor | None = None
        self._pool_decided = threading.Event()  # whether a prefetch uses the pool is known
        self._pool_decided.set()
        self.encoded = 0
        self.workers = 0
        """Worker processes of the last prefetch (0: it ran in a thread)."""

    @property
    def perturbation(self) -> Perturbation | None:
        """The query images' perturbation, parsed once from ``settings.perturb`` (None: none)."""
        return self._perturb

    def encode(self, part: ImagePart, *, asked: bool = True) -> EncodedImage:
        """The prepared form of an image part."""
        if part.data_url is not None:
            data = decode_data_url(part.data_url)
            mime = part.data_url[5 : part.data_url.index(";")]
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
            return EncodedImage(data, mime, width, height, hashlib.sha256(data).hexdigest())
        if part.path is None:
            msg = "an image part has neither a path nor a data URL"
            raise DataError(msg)
        slot = self._slot(part)
        with self._lock:
            if asked:
                self._position = max(self._position, self._order.get(slot, -1))
            hit = self._cache.get(slot)
            if hit is not None:
                self._cache.move_to_end(slot)
                return hit
            pending = self._pending.get(slot)
        self._pool_decided.wait()  # a prefetch is listing its images: they may be the workers' to encode
        with self._lock:
            pool = self._pool
        if pending is None and pool is not None:
            # Asked before the prefetch reached it: still the workers' job, as encoding it here
            # would take the GIL from the event loop again.
            with contextlib.suppress(RuntimeError):  # the pool is shut down: encoded here
                pending = self._submit(pool, slot)
        if pending is not None:
            with contextlib.suppress(Exception):  # a failed one is encoded here, which says why
                return self._store(slot, pending.result())
        perturb = self._perturb if slot.endswith(PERTURBED) else None
        return self._store(slot, encode_image(Path(part.path), self.settings, perturb))

    def _slot(self, part: ImagePart) -> str:
        """Where an image part's prepared form is held: its path, and PERTURBED for a perturbed query."""
        assert part.path is not None
        return part.path + PERTURBED if self._perturb is not None and part.role == "query" else part.path

    def _store(self, path: str, encoded: EncodedImage) -> EncodedImage:
        with self._lock:
            self._pending.pop(path, None)
            if path in self._cache:
                return self._cache[path]
            self.encoded += 1
            self._cache[path] = encoded
            # Counted with the data URL it will get when a request is built from it.
            self._bytes += encoded.size_in_memory
            while self._bytes > self._max_bytes and len(self._cache) > 1:
                _, evicted = self._cache.popitem(last=False)
                self._bytes -= evicted.size_in_memory
        return encoded

    def prefetch(self, paths: Iterable[str | ImagePart], *, ahead: int = DEFAULT_AHEAD) -> threading.Thread:
        """Encode images in the background, in the order they will be needed.

        One thread hashes every file for the cache keys (`digests`); another walks the paths and
        waits whenever it is `ahead` images in front of the furthest image a request has asked to
        send (a cache hit sends nothing, so a run answered from the cache prepares few images).
        It encodes them itself when they are few (under POOL_MIN_IMAGES), else hands them to
        ``pool_workers()`` processes, a few at a time, and each comes back into the cache as soon
        as it is done; a request that needs one still on its way waits for it rather than encoding
        it again. A path alone is a query image; give templates as
        ``ImagePart(path=..., role="template")`` so that --perturb leaves them clean.
        """

        def hash_all(ordered: list[str]) -> None:
            # every request needs its images' digests (the cache key), hits included: all of them, ahead
            for slot in ordered:
                if self._stop.is_set():
                    return
                with contextlib.suppress(DataError, OSError):  # the request that needs it reports the error
                    self._source_digest(slot)

        def work() -> None:
            try:
                ordered = list(dict.fromkeys(self._slot(_as_part(p)) for p in paths))
                with self._lock:
                    self._order = {path: index for index, path in enumerate(ordered)}
                pool = self._start_pool(len(ordered))
            finally:
                self._pool_decided.set()
            hashing = threading.Thread(target=hash_all, args=(ordered,), name="mmad-image-hash", daemon=True)
            hashing.start()
            in_flight: deque[Future[EncodedImage]] = deque()
            try:
                for index, path in enumerate(ordered):
                    while self._too_far_ahead(index, ahead) and not self._stop.is_set():
                        with self._lock:  # the requests may have caught up with it meanwhile
                            if path in self._cache or path in self._pending:
                                break
                        self._stop.wait(0.01)
                    if self._stop.is_set():
                        return
                    with self._lock:
                        if path in self._cache or path in self._pending:
                            continue
                    if pool is None:
                        with contextlib.suppress(DataError):  # the request that needs it reports the error
                            self.encode(_slot_part(path), asked=False)
                        continue
                    while len(in_flight) > 4 * self.workers:
                        futures_wait([in_flight.popleft()])
                    in_flight.append(self._submit(pool, path))
            except RuntimeError:  # stop() shut the pool down under a submit
                return
            finally:
                if pool is not None and self._stop.is_set():
                    pool.shutdown(wait=False, cancel_futures=True)

        self._pool_decided.clear()
        thread = threading.Thread(target=work, name="mmad-image-prefetch", daemon=True)
        thread.start()
        return thread

    def _start_pool(self, images: int) -> ProcessPoolExecutor | None:
        if images < POOL_MIN_IMAGES or self._stop.is_set():
            return None
        if not spawn_is_safe():
            logger.info("images are prepared in a thread: %s runs mmad outside a __main__ guard", sys.argv[0])
            return None
        try:
            # spawn, not fork: the run's process has threads (the cache writer, the SDK's) by now
            context = multiprocessing.get_context("spawn")
            pool = ProcessPoolExecutor(
                pool_workers(), mp_context=context, initializer=quiet_worker, initargs=(os.getpid(),)
            )
        except (OSError, ImportError, NotImplementedError) as exc:  # no semaphores (some sandboxes)
            logger.info("images are prepared in a thread: no worker processes (%s)", exc)
            return None
        self._pool = pool
        self.workers = pool_workers()
        return pool

    def _submit(self, pool: ProcessPoolExecutor, path: str) -> Future[EncodedImage]:
        """Send one slot's image to the workers; `path` is a slot (see `_slot`)."""
        perturbed = path.endswith(PERTURBED)
        future = pool.submit(encode_in_worker, path.removesuffix(PERTURBED), self.settings, perturbed)
        with self._lock:
            self._pending[path] = future

        def done(finished: Future[EncodedImage]) -> None:
            if finished.cancelled() or finished.exception() is not None:
                with self._lock:  # asked for, it is encoded in the asking thread, which reports the error
                    if self._pending.get(path) is finished:
                        del self._pending[path]
                return
            self._store(path, finished.result())

        future.add_done_callback(done)
        return future

    def _too_far_ahead(self, index: int, ahead: int) -> bool:
        waiting = index - self._position
        if waiting > ahead:
            return True
        # Large images (original bytes): never prefetch more than half the budget, or the cache
        # would evict prefetched images before their requests use them.
        average = self._bytes / len(self._cache) if self._cache else 0
        return waiting > 1 and waiting * average > self._max_bytes / 2

    def stop(self) -> None:
        """End a prefetch (its thread, and its worker processes once their image is done)."""
        self._stop.set()
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def digests(self, parts: list[ImagePart]) -> dict[str, str]:
        """Digests of path-based image parts for the response cache's key, from their files' bytes.

        A source digest (``source:`` and the SHA-256 of the file, and the perturbation of a
        perturbed query), not the prepared image's: with the preparation settings in the key
        beside it, it decides the bytes sent, and a run whose replies are all in the cache
        never prepares an image (issue #22). Reading and hashing a file costs a fraction of
        preparing it, and gives up the GIL while it works.
        """
        return {p.path: self._source_digest(self._slot(p)) for p in parts if p.path is not None}

    def digests_if_known(self, parts: list[ImagePart]) -> dict[str, str] | None:
        """`digests`, when every one is known already (a prefetch hashes ahead): no I/O, no thread needed."""
        found: dict[str, str] = {}
        with self._lock:
            for part in parts:
                if part.path is None:
                    continue
                known = self._sources.get(self._slot(part))
                if known is None:
                    return None
                found[part.path] = known
        return found

    def encoded_all(self, parts: list[ImagePart]) -> bool:
        """Whether every path-based part is prepared already (no I/O); each counts as asked for, so
        a prefetch keeps encoding ahead of the requests that send images, not of cache hits."""
        ready = True
        with self._lock:
            for part in parts:
                if part.path is None:
                    continue
                slot = self._slot(part)
                self._position = max(self._position, self._order.get(slot, -1))
                ready = ready and slot in self._cache
        return ready

    def encode_all(self, parts: list[ImagePart]) -> None:
        """Prepare every path-based part now (blocking: from a thread); a failure raises its DataError."""
        for part in parts:
            if part.path is not None:
                self.encode(part)

    def _source_digest(self, slot: str) -> str:
        with self._lock:
            known = self._sources.get(slot)
        if known is not None:
            return known
        path = slot.removesuffix(PERTURBED)
        try:
            raw = Path(path).read_bytes()
        except OSError:
            self.encode(_slot_part(slot))  # raises the DataError that names the file and the fix
            raise
        digest = "source:" + hashlib.sha256(raw).hexdigest()
        if slot.endswith(PERTURBED) and self._perturb is not None:
            digest += "+" + self._perturb.label
        with self._lock:
            self._sources[slot] = digest
        return digest
