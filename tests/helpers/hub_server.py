"""A stand-in for the Hugging Face Hub on 127.0.0.1 that answers what `huggingface_hub` really asks.

Endpoints (as huggingface_hub 2.x calls them):

- ``GET /api/datasets/<repo>/revision/<rev>``: repo info with ``sha`` (``HfApi.dataset_info``).
- ``GET /api/datasets/<repo>/tree/<rev>?recursive=..``: the listing with ``oid``, ``size`` and, for
  LFS files, ``lfs: {oid: <sha256>, size, pointerSize}`` (``HfApi.list_repo_tree``).
- ``HEAD|GET /datasets/<repo>/resolve/<rev>/<path>``: for an LFS file a 302 to the "CDN" (a second
  server on another port, so another origin) carrying ``X-Repo-Commit``, ``X-Linked-Etag`` and
  ``X-Linked-Size``, as the real Hub does; for a small file the bytes, with ``ETag`` (git blob id)
  and ``X-Repo-Commit``. Unknown revisions and files answer 404 with ``X-Error-Code``.
- The CDN serves ``/blob/<sha256>`` with ``Range`` support (206 + ``Content-Range``).

Faults: ``hub.faults[path] = ["drop:100", "503"]`` makes the next body requests of that file send
100 bytes and cut the connection, then answer 503; ``hub.corrupt.add(path)`` serves altered bytes
under the original checksums. Every request is logged in ``hub.requests``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

LFS_THRESHOLD = 64 * 1024


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def is_lfs(path: str, data: bytes) -> bool:
    return path.endswith(".zip") or len(data) > LFS_THRESHOLD


@dataclass
class Request:
    server: str
    method: str
    path: str
    range: str | None


@dataclass
class FakeHub:
    """The repository's content: commits of files, refs naming commits, and the request log."""

    repo: str = "jiang-cc/MMAD"
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)
    faults: dict[str, list[str]] = field(default_factory=dict)
    corrupt: set[str] = field(default_factory=set)
    requests: list[Request] = field(default_factory=list)
    endpoint: str = ""
    cdn: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, commit: str, files: dict[str, bytes], *refs: str) -> None:
        self.commits[commit] = dict(files)
        for ref in refs:
            self.refs[ref] = commit

    def commit_of(self, revision: str) -> str | None:
        if revision in self.refs:
            return self.refs[revision]
        return revision if revision in self.commits else None

    def blob(self, sha: str) -> tuple[str, bytes] | None:
        for files in self.commits.values():
            for path, data in files.items():
                if hashlib.sha256(data).hexdigest() == sha:
                    return path, data
        return None

    def served_bytes(self, path: str, data: bytes) -> bytes:
        if path not in self.corrupt:
            return data
        middle = len(data) // 2
        return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]

    def next_fault(self, path: str) -> str | None:
        with self._lock:
            queue = self.faults.get(path)
            return queue.pop(0) if queue else None

    def body_gets(self, path: str) -> list[Request]:
        """The GET requests that carried the bytes of one repository file (on the Hub or the CDN)."""
        data = next(files[path] for files in self.commits.values() if path in files)
        if is_lfs(path, data):
            blob = f"/blob/{hashlib.sha256(data).hexdigest()}"
            return [r for r in self.requests if r.server == "cdn" and r.method == "GET" and r.path == blob]
        return [
            r
            for r in self.requests
            if r.server == "hub" and r.method == "GET" and "/resolve/" in r.path and r.path.endswith(f"/{path}")
        ]


def _send_range(handler: BaseHTTPRequestHandler, data: bytes, head: bool, extra: dict[str, str], fault: str | None):
    if fault == "503":
        handler.send_response(503)
        handler.send_header("Content-Length", "0")
        handler.end_headers()
        return
    start = 0
    wanted = handler.headers.get("Range")
    status = 200
    if wanted and wanted.startswith("bytes="):
        first = wanted[len("bytes=") :].split("-", 1)[0]
        start = int(first)
        if start >= len(data):
            handler.send_response(416)
            handler.send_header("Content-Range", f"bytes */{len(data)}")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        status = 206
    body = data[start:]
    handler.send_response(status)
    for key, value in extra.items():
        handler.send_header(key, value)
    handler.send_header("Accept-Ranges", "bytes")
    handler.send_header("Content-Length", str(len(body)))
    if status == 206:
        handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
    handler.end_headers()
    if head:
        return
    if fault and fault.startswith("drop:"):
        handler.wfile.write(body[: int(fault.split(":")[1])])
        handler.wfile.flush()
        handler.close_connection = True
        with contextlib.suppress(OSError):
            handler.connection.shutdown(2)  # cut the connection mid-file
        return
    handler.wfile.write(body)


def _handler(hub: FakeHub, role: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _json(self, value: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
            body = json.dumps(value).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for key, item in (headers or {}).items():
                self.send_header(key, item)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _error(self, code: str, message: str) -> None:
            self._json({"error": message}, 404, {"X-Error-Code": code, "X-Error-Message": message})

        def do_HEAD(self) -> None:
            self._serve(head=True)

        def do_GET(self) -> None:
            self._serve(head=False)

        def _serve(self, head: bool) -> None:
            url = urlsplit(self.path)
            hub.requests.append(Request(role, self.command, unquote(url.path), self.headers.get("Range")))
            segments = [unquote(s) for s in url.path.split("/")[1:]]
            if role == "cdn":
                found = hub.blob(segments[-1]) if segments[:1] == ["blob"] else None
                if found is None:
                    self._json({"error": "no such blob"}, 404)
                    return
                path, data = found
                fault = None if head else hub.next_fault(path)
                _send_range(self, hub.served_bytes(path, data), head, {"ETag": f'"{segments[-1]}"'}, fault)
                return
            owner, name = hub.repo.split("/")
            if segments[:4] == ["api", "datasets", owner, name] and len(segments) >= 6:
                self._api(segments[4], segments[5], "/".join(segments[6:]), parse_qs(url.query))
                return
            if segments[:4] == ["datasets", owner, name, "resolve"] and len(segments) >= 6:
                self._resolve(segments[4], "/".join(segments[5:]), head)
                return
            self._json({"error": "not found"}, 404, {"X-Error-Code": "RepoNotFound"})

        def _api(self, kind: str, revision: str, sub: str, query: dict[str, list[str]]) -> None:
            commit = hub.commit_of(revision)
            if commit is None:
                self._error("RevisionNotFound", f"Invalid rev id: {revision}")
                return
            files = hub.commits[commit]
            if kind == "revision":
                self._json(
                    {"id": hub.repo, "sha": commit, "private": False, "siblings": [{"rfilename": p} for p in files]}
                )
                return
            recursive = query.get("recursive", ["false"])[0].lower() == "true"
            entries: list[dict[str, Any]] = []
            folders: set[str] = set()
            for path, data in sorted(files.items()):
                if sub and not path.startswith(sub + "/"):
                    continue
                parts = path.split("/")
                for depth in range(1, len(parts)):
                    folders.add("/".join(parts[:depth]))
                if not recursive and path.count("/") > (sub.count("/") + 1 if sub else 0):
                    continue
                entry: dict[str, Any] = {"type": "file", "oid": git_blob_id(data), "size": len(data), "path": path}
                if is_lfs(path, data):
                    entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
                entries.append(entry)
            for folder in sorted(folders):
                if recursive or "/" not in folder:
                    entries.append({"type": "directory", "oid": "0" * 40, "size": 0, "path": folder})
            self._json(entries)

        def _resolve(self, revision: str, path: str, head: bool) -> None:
            commit = hub.commit_of(revision)
            if commit is None:
                self._error("RevisionNotFound", f"Invalid rev id: {revision}")
                return
            data = hub.commits[commit].get(path)
            if data is None:
                self._json(
                    {"error": "Entry not found"}, 404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit}
                )
                return
            if is_lfs(path, data):
                sha = hashlib.sha256(data).hexdigest()
                self.send_response(302)
                self.send_header("Location", f"{hub.cdn}/blob/{sha}?name={path.rsplit('/', 1)[-1]}")
                self.send_header("X-Repo-Commit", commit)
                self.send_header("X-Linked-Etag", f'"{sha}"')
                self.send_header("X-Linked-Size", str(len(data)))
                self.send_header("ETag", f'"{git_blob_id(data)}"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            fault = None if head else hub.next_fault(path)
            headers = {"ETag": f'"{git_blob_id(data)}"', "X-Repo-Commit": commit}
            _send_range(self, hub.served_bytes(path, data), head, headers, fault)

    return Handler


@dataclass
class StaticFiles:
    """A plain file server (a stand-in for raw.githubusercontent.com)."""

    files: dict[str, bytes] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    base: str = ""
    ignore_range: bool = False  # answer every request with the whole file, as some proxies do


def _static_handler(site: StaticFiles) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            path = unquote(urlsplit(self.path).path)
            site.requests.append(Request("static", "GET", path, self.headers.get("Range")))
            data = site.files.get(path.lstrip("/"))
            if data is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if site.ignore_range and "Range" in self.headers:
                del self.headers["Range"]
            _send_range(self, data, False, {}, None)

    return Handler


@contextlib.contextmanager
def _serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def running_hub(hub: FakeHub) -> Iterator[FakeHub]:
    """Serve the Hub and its CDN on two local ports."""
    with _serve(_handler(hub, "hub")) as endpoint, _serve(_handler(hub, "cdn")) as cdn:
        hub.endpoint, hub.cdn = endpoint, cdn
        yield hub


@contextlib.contextmanager
def running_static(site: StaticFiles) -> Iterator[StaticFiles]:
    """Serve plain files on a local port."""
    with _serve(_static_handler(site)) as base:
        site.base = base
        yield site
