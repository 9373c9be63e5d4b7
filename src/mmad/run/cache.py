"""A response cache keyed by the hash of the request, so a re-run costs nothing."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

from mmad._io import atomic_write_text
from mmad.models.base import Completion


def default_cache_dir() -> Path:
    """$MMAD_CACHE_DIR, else $XDG_CACHE_HOME/mmad, else ~/.cache/mmad."""
    if os.environ.get("MMAD_CACHE_DIR"):
        return Path(os.environ["MMAD_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mmad" / "responses"


def cache_key(model: dict[str, object], prompt_digest: str, settings: dict[str, object]) -> str:
    """The hash of everything that decides a reply."""
    payload = json.dumps({"model": model, "prompt": prompt_digest, "settings": settings}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


class ResponseCache:
    """Completions stored one file per request hash."""

    def __init__(self, folder: str | os.PathLike[str] | None = None) -> None:
        self.folder = Path(folder) if folder else default_cache_dir()
        self.hits = 0

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> Completion | None:
        """The stored completion, or None."""
        path = self._path(key)
        try:
            data = json.loads(path.read_text())
            completion = Completion(**data)
        except (OSError, ValueError, TypeError):
            return None
        self.hits += 1
        return completion

    def put(self, key: str, completion: Completion) -> None:
        """Store a completion."""
        atomic_write_text(self._path(key), json.dumps(asdict(completion)))
