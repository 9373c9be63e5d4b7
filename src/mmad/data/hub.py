"""Download MMAD from the Hugging Face Hub (dataset ``jiang-cc/MMAD``), resumably.

The Hub repository holds ``mmad.json``, the image archives (``ALL_DATA.zip``, about 28 GB, and
per-dataset zips) and ``domain_knowledge.json``. We fetch the json and the chosen archives with
``huggingface_hub`` (which resumes partial files), check the free disk space first, then unpack
each archive member by member: a member already unpacked with the right size is skipped, so an
interrupted extraction resumes, and a marker file records each finished archive.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Protocol

from mmad.errors import DownloadError, MissingExtraError

logger = logging.getLogger(__name__)

REPO_ID = "jiang-cc/MMAD"
DEFAULT_PATTERNS = ("mmad.json", "domain_knowledge.json", "ALL_DATA.zip")
Progress = Callable[[str, int, int], None]
"""Receives (what, done, total) as files are fetched and members unpacked."""


class HubSource(Protocol):
    """Where dataset files come from."""

    description: str

    def list_files(self) -> dict[str, int | None]:
        """Each file's repository path and size in bytes (None when unknown)."""

    def fetch(self, path: str, dest: Path) -> Path:
        """Put the file at ``dest / path`` (resuming a partial one) and return that path."""


def hub_unreachable(detail: str) -> DownloadError:
    """The error for a Hub that cannot be reached."""
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}
    hint = (
        "HF_HUB_OFFLINE is set, so the Hub is not contacted: unset it to download, or pass --source DIR "
        "pointing at a folder with the dataset files"
        if offline
        else "check the network and proxy settings, or pass --source DIR with the files copied from elsewhere"
    )
    return DownloadError(f"cannot reach the Hugging Face Hub ({detail}); {hint}")


class HuggingFaceSource:
    """The dataset repository on the Hugging Face Hub."""

    def __init__(self, repo_id: str = REPO_ID, revision: str | None = None, token: str | None = None) -> None:
        self.repo_id = repo_id
        self.revision = revision
        self._token = token
        self.description = f"hf://datasets/{repo_id}@{revision or 'main'}"

    def list_files(self) -> dict[str, int | None]:
        """List the repository's files with their sizes."""
        try:
            from huggingface_hub import HfApi
        except ImportError as exc:  # pragma: no cover - a core dependency
            feature = "mmad download"
            raise MissingExtraError(feature, "hf", "huggingface_hub") from exc
        if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}:
            detail = "offline mode"
            raise hub_unreachable(detail)
        try:
            entries = HfApi(token=self._token).list_repo_tree(
                self.repo_id, repo_type="dataset", revision=self.revision, recursive=True
            )
            return {e.path: getattr(e, "size", None) for e in entries if hasattr(e, "size")}
        except Exception as exc:  # the Hub client raises many transport-specific types
            detail = f"{type(exc).__name__}: {exc}"
            raise hub_unreachable(detail) from exc

    def fetch(self, path: str, dest: Path) -> Path:
        """Download one file into dest (the Hub client resumes partial downloads)."""
        from huggingface_hub import hf_hub_download

        try:
            local = hf_hub_download(
                self.repo_id,
                path,
                repo_type="dataset",
                revision=self.revision,
                local_dir=dest,
                token=self._token,
            )
        except Exception as exc:
            detail = f"{type(exc).__name__}: {exc}"
            raise hub_unreachable(detail) from exc
        return Path(local)


class LocalFolderSource:
    """A folder holding the dataset files (a mirror, a copy from another machine, or a test stand-in)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            msg = f"source folder {self.root} does not exist"
            raise DownloadError(msg)
        self.description = str(self.root)

    def list_files(self) -> dict[str, int | None]:
        """Every file under the folder."""
        return {
            p.relative_to(self.root).as_posix(): p.stat().st_size for p in sorted(self.root.rglob("*")) if p.is_file()
        }

    def fetch(self, path: str, dest: Path) -> Path:
        """Copy one file, continuing a partial copy left by an interrupted run."""
        source = self.root / path
        target = dest / path
        partial = target.with_name(target.name + ".part")
        target.parent.mkdir(parents=True, exist_ok=True)
        done = partial.stat().st_size if partial.exists() else 0
        with source.open("rb") as reader, partial.open("ab") as writer:
            reader.seek(done)
            shutil.copyfileobj(reader, writer, 1 << 20)
        partial.replace(target)
        return target


@dataclass
class DownloadResult:
    """What a download left on disk."""

    out: Path
    fetched: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    extracted: list[str] = field(default_factory=list)


def select_files(available: dict[str, int | None], patterns: tuple[str, ...]) -> list[str]:
    """The available files that match any pattern; at least the benchmark json must be there."""
    chosen = [path for path in available if any(fnmatch.fnmatch(path, p) for p in patterns)]
    if "mmad.json" not in chosen and "mmad.json" in available:
        chosen.insert(0, "mmad.json")
    if not chosen:
        msg = f"none of {list(patterns)} is in the source; it has: {sorted(available)[:20]}"
        raise DownloadError(msg)
    return chosen


def check_disk_space(out: Path, needed: int) -> None:
    """Refuse to start when the free space under out is smaller than needed."""
    probe = out
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if needed > free:
        msg = (
            f"not enough disk space in {out}: the download and extraction need about {needed / 1e9:.1f} GB, "
            f"{free / 1e9:.1f} GB are free; free some space or choose another --out"
        )
        raise DownloadError(msg)


def _member_target(out: Path, name: str, strip: str | None) -> Path | None:
    pure = PurePosixPath(name)
    if pure.is_absolute() or ".." in pure.parts:
        msg = f"archive member {name!r} would be written outside {out}; the archive is unsafe"
        raise DownloadError(msg)
    parts = pure.parts[1:] if strip and pure.parts and pure.parts[0] == strip else pure.parts
    return out.joinpath(*parts) if parts else None


def _common_top_level(names: list[str]) -> str | None:
    tops = {PurePosixPath(n).parts[0] for n in names if PurePosixPath(n).parts}
    if len(tops) != 1:
        return None
    top = next(iter(tops))
    # An archive whose single top folder is a dataset keeps it; a wrapper folder is dropped.
    return None if top in {"DS-MVTec", "MVTec-LOCO", "VisA", "GoodsAD", "MVTec-AD"} else top


def extract_archive(archive: Path, out: Path, progress: Progress | None = None) -> int:
    """Unpack a zip into out, member by member; returns how many members were written."""
    marker = out / f".mmad-extracted-{archive.name}"
    if marker.exists():
        return 0
    written = 0
    with zipfile.ZipFile(archive) as bundle:
        members = [m for m in bundle.infolist() if not m.is_dir()]
        strip = _common_top_level([m.filename for m in members])
        for done, member in enumerate(members, start=1):
            target = _member_target(out, member.filename, strip)
            if target is None:
                continue
            if target.exists() and target.stat().st_size == member.file_size:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".part")
            with bundle.open(member) as reader, partial.open("wb") as writer:
                shutil.copyfileobj(reader, writer, 1 << 20)
            partial.replace(target)
            written += 1
            if progress is not None:
                progress(archive.name, done, len(members))
    marker.write_text("done\n")
    return written


def download(
    out: str | os.PathLike[str],
    *,
    source: HubSource | None = None,
    patterns: tuple[str, ...] = DEFAULT_PATTERNS,
    extract: bool = True,
    keep_archives: bool = False,
    progress: Progress | None = None,
) -> DownloadResult:
    """Fetch the benchmark json and image archives into out and unpack them.

    Args:
        out: the data root to create or complete.
        source: where the files come from; the Hugging Face Hub by default.
        patterns: which repository files to fetch (glob patterns).
        extract: whether to unpack the zip archives.
        keep_archives: keep the zips after unpacking (they are deleted by default to save space).
        progress: called as files are fetched and members unpacked.
    """
    target = Path(out)
    hub = source or HuggingFaceSource()
    available = hub.list_files()
    chosen = select_files(available, patterns)
    result = DownloadResult(out=target)

    def already_there(path: str) -> bool:
        local = target / path
        expected = available.get(path)
        if (target / f".mmad-extracted-{PurePosixPath(path).name}").exists():
            return True
        return local.exists() and (expected is None or local.stat().st_size == expected)

    needed = sum(
        (available.get(path) or 0) * (2 if extract and path.endswith(".zip") else 1)
        for path in chosen
        if not already_there(path)
    )
    check_disk_space(target, needed)
    for number, path in enumerate(chosen, start=1):
        local = target / path
        marker = target / f".mmad-extracted-{PurePosixPath(path).name}"
        if already_there(path):
            result.skipped.append(path)
        else:
            logger.info("fetching %s from %s", path, hub.description)
            hub.fetch(path, target)
            result.fetched.append(path)
        if progress is not None:
            progress("files", number, len(chosen))
        if extract and path.endswith(".zip") and not marker.exists():
            extract_archive(local, target, progress)
            result.extracted.append(path)
            if not keep_archives:
                local.unlink(missing_ok=True)
    return result
