"""Where a data root's files came from: ``mmad-provenance.json``, written by ``mmad download``.

It names the repository, the revision asked for and the commit it resolved to, and for every file
its origin (the Hub, an archive, the GitHub file), size, SHA-256 and how it was checked. It is
rewritten after every step, so an interrupted download still says what it had done; ``finished``
is set only when the whole download succeeded. Runs copy it into their card (:func:`read_provenance`).
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from mmad._io import atomic_write_text

logger = logging.getLogger(__name__)

PROVENANCE_FILE = "mmad-provenance.json"
FORMAT = "mmad-provenance/1"


def now() -> str:
    """The current time, UTC, ISO 8601."""
    return datetime.now(UTC).isoformat(timespec="seconds")


class FileRecord(BaseModel):
    """One file of the data root (or one archive unpacked into it)."""

    origin: str = Field(description="'hub', 'archive:<name>', 'github:<url>' or 'local:<folder>'")
    commit: str | None = None
    size: int
    sha256: str
    check: str = Field(description="'known' (a version mmad knows), 'source' (the source's checksum), 'unverified'")
    check_detail: str = ""
    unpacked: bool | None = None
    folders: list[str] | None = Field(default=None, description="the top-level folders an archive filled")
    images: int | None = None
    questions: int | None = None


class Provenance(BaseModel):
    """Where the files of one data root came from."""

    format: str = FORMAT
    repo: str
    repo_type: str = "dataset"
    endpoint: str | None = None
    revision: str
    commit: str
    source: str
    datasets: list[str] = Field(default_factory=list)
    files: dict[str, FileRecord] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)
    started: str = Field(default_factory=now)
    finished: str | None = None
    mmad_version: str = ""


def provenance_path(root: str | os.PathLike[str]) -> Path:
    """The provenance file of a data root (``root`` may also be the root's mmad.json)."""
    path = Path(root)
    if path.name == PROVENANCE_FILE:
        return path
    return (path.parent if path.is_file() else path) / PROVENANCE_FILE


def write_provenance(root: Path, provenance: Provenance) -> None:
    """Write the provenance file atomically."""
    atomic_write_text(provenance_path(root), provenance.model_dump_json(indent=2, exclude_none=True) + "\n")


def load_provenance(root: Path) -> Provenance | None:
    """The provenance of a data root as a model, or None when absent or unreadable."""
    raw = read_provenance(root)
    if raw is None:
        return None
    try:
        return Provenance.model_validate(raw)
    except ValueError as exc:
        logger.warning("%s is not in the expected shape (%s); a new one will be written", provenance_path(root), exc)
        return None


def read_provenance(root: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The provenance of a data root, as written by ``mmad download``; None when there is none.

    ``root`` is the data root (or its mmad.json). A file that cannot be read is logged and taken
    as absent: a run goes on without it rather than failing over bookkeeping.
    """
    path = provenance_path(root)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        logger.warning("cannot read %s (%s); the data's provenance is unknown", path, exc)
        return None
    if not isinstance(data, dict):
        logger.warning("%s is not a json object; the data's provenance is unknown", path)
        return None
    return data
