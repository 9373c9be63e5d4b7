"""Fetch one URL into a partial file that survives interruptions: the next attempt or run resumes it.

The Hugging Face client resumes a dropped connection within one call but deletes its partial file
when the call fails, so a 13 GB archive cut off at 90% starts again from zero on the next run.
Here the bytes stay in ``<file>.part`` with a small sidecar naming the URL and the file's ETag;
a later attempt asks for the rest with ``Range: bytes=<have>-``, and starts over only when the
server sends a different file (another ETag) or ignores the range.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from http.client import HTTPException
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from mmad.errors import DownloadError

logger = logging.getLogger(__name__)

BytesProgress = Callable[[int, int | None], None]
"""Receives (bytes held, total bytes or None) as a file arrives."""

_BLOCK = 1 << 20
_NOT_RETRIED = {400, 401, 403, 404, 410}


class _SameHostRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects, but never send the Authorization header to another host (a CDN)."""

    def redirect_request(
        self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str, headers: Any, newurl: str
    ) -> urllib.request.Request | None:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and urlsplit(newurl).netloc != urlsplit(req.full_url).netloc:
            new.remove_header("Authorization")
        return new


_OPENER = urllib.request.build_opener(_SameHostRedirects())


def _sidecar(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def _held(part: Path, url: str, identity: str) -> int:
    """How many bytes of this very file the partial file already holds (0 after a mismatch)."""
    if not part.exists():
        return 0
    try:
        state = json.loads(_sidecar(part).read_text())
    except (OSError, ValueError):
        state = {}
    if identity and state.get("identity") not in {identity, None}:
        logger.info("%s holds part of another version of %s; starting over", part, url)
        part.unlink()
        return 0
    return part.stat().st_size


def _write_sidecar(part: Path, url: str, identity: str, size: int | None) -> None:
    _sidecar(part).write_text(json.dumps({"url": url, "identity": identity, "size": size}))


def _content_range_start(value: str | None) -> int | None:
    # "bytes 100-999/1000" -> 100
    if not value or not value.startswith("bytes "):
        return None
    first = value[len("bytes ") :].split("-", 1)[0]
    return int(first) if first.isdigit() else None


def _one_attempt(
    url: str, part: Path, headers: dict[str, str], done: int, timeout: float, progress: BytesProgress | None
) -> tuple[int, int | None]:
    """Ask for the bytes after ``done`` and append them; returns (bytes held, total size if said)."""
    request_headers = {**headers, "Accept-Encoding": "identity"}
    if done:
        request_headers["Range"] = f"bytes={done}-"
    request = urllib.request.Request(url, headers=request_headers)
    try:
        response = _OPENER.open(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and done:
            # The range starts at or past the end: the partial file is complete, or longer than the file.
            size = exc.headers.get("Content-Range", "").rpartition("/")[2]
            if size.isdigit() and int(size) == done:
                return done, done
            part.unlink()
            return 0, None
        raise
    with response:
        if done and response.status == 200:
            logger.info("the server ignored the range request for %s; fetching it whole", url)
            done = 0
            part.write_bytes(b"")
        elif done and _content_range_start(response.headers.get("Content-Range")) != done:
            part.write_bytes(b"")
            msg = f"the server answered a range request for {url} with {response.headers.get('Content-Range')!r}"
            raise HTTPException(msg)
        declared = response.headers.get("Content-Length")
        total = done + int(declared) if declared and declared.isdigit() else None
        with part.open("ab") as writer:
            while block := response.read(_BLOCK):
                writer.write(block)
                writer.flush()
                done += len(block)
                if progress is not None:
                    progress(done, total)
    if total is not None and done < total:
        msg = f"the connection closed after {done} of {total} bytes"
        raise HTTPException(msg)
    return done, total


def fetch_url(
    url: str,
    part: Path,
    *,
    headers: dict[str, str] | None = None,
    expected_size: int | None = None,
    identity: str = "",
    retries: int = 3,
    backoff: float = 1.0,
    timeout: float = 60.0,
    missing_ok: bool = False,
    progress: BytesProgress | None = None,
) -> bool:
    """Complete ``part`` with the bytes at ``url``, resuming what it holds; False if the URL is 404 and missing_ok.

    Args:
        url: where the file is; redirects are followed (the Authorization header stays on the first host).
        part: the partial file; kept on failure so the next call resumes it.
        headers: request headers (authentication).
        expected_size: the file's size when known; a shorter result is resumed, a longer one restarted.
        identity: the file's ETag or checksum; a partial file of another identity is discarded.
        retries: how many more attempts after a dropped connection or a 5xx/408/429 answer.
        backoff: seconds before the first retry, doubled each time.
        timeout: seconds to wait for the server on each read.
        missing_ok: answer False instead of raising when the server says 404.
        progress: called with (bytes held, total) as blocks arrive.
    """
    part.parent.mkdir(parents=True, exist_ok=True)
    done = _held(part, url, identity)
    _write_sidecar(part, url, identity, expected_size)
    if expected_size is not None and done > expected_size:
        part.unlink()
        done = 0
    for attempt in range(retries + 1):
        if expected_size is not None and done == expected_size:
            return True
        try:
            done, total = _one_attempt(url, part, headers or {}, done, timeout, progress)
        except urllib.error.HTTPError as exc:
            if exc.code == 404 and missing_ok:
                return False
            if exc.code in _NOT_RETRIED or attempt == retries:
                msg = f"{url} answered HTTP {exc.code} {exc.reason}"
                if exc.code not in _NOT_RETRIED:
                    msg += f"; {part.name} keeps the {done} bytes received: run again to resume"
                raise DownloadError(msg) from exc
            reason = f"HTTP {exc.code}"
        except (urllib.error.URLError, HTTPException, OSError) as exc:
            done = part.stat().st_size if part.exists() else 0
            if attempt == retries:
                msg = (
                    f"the transfer of {url} stopped after {done} bytes ({type(exc).__name__}: {exc}); "
                    f"{part} keeps them: run the same command again to resume"
                )
                raise DownloadError(msg) from exc
            reason = f"{type(exc).__name__}: {exc}"
        else:
            if (expected_size is None or done == expected_size) and (total is None or done == total):
                return True
            reason = f"{done} of {expected_size if expected_size is not None else total} bytes"
        wait = backoff * 2**attempt
        logger.warning("fetching %s: %s; resuming from byte %d in %.0f s", url, reason, done, wait)
        time.sleep(wait)
    msg = f"{url}: the file is still incomplete after {retries + 1} attempts; run again to resume"
    raise DownloadError(msg)


def finish_part(part: Path, target: Path) -> None:
    """Move a completed partial file to its place and drop its sidecar."""
    target.parent.mkdir(parents=True, exist_ok=True)
    part.replace(target)
    _sidecar(part).unlink(missing_ok=True)


def discard_part(part: Path) -> None:
    """Remove a partial file and its sidecar."""
    part.unlink(missing_ok=True)
    _sidecar(part).unlink(missing_ok=True)
