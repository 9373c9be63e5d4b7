"""Unpack MMAD's zip archives into the layout ``mmad.json`` expects, resumably.

The published archives differ: ``ALL_DATA.zip`` wraps everything in ``ALL_DATA/`` and also holds
``mmad.json`` and ``domain_knowledge.json``; the per-dataset zips were made on a Mac and carry
``__MACOSX/`` AppleDouble sidecars (``._name``) and ``.DS_Store`` files. Here sidecars are never
written out, wrapper folders above the dataset folders are dropped (however many there are),
loose files at the top (the json files, a README) go to a staging folder for the caller to check,
and a member already on disk with the right size and CRC is not written again, so an interrupted
unpack resumes where it stopped.
"""

from __future__ import annotations

import logging
import shutil
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from mmad.data.known import DATASETS
from mmad.errors import DownloadError

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
"""Receives (what, done, total) as members are unpacked."""

_SIDECAR_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini"}


def is_sidecar(name: str) -> bool:
    """Whether an archive member is operating-system clutter rather than data."""
    parts = PurePosixPath(name).parts
    if not parts:
        return True
    return "__MACOSX" in parts or parts[-1] in _SIDECAR_NAMES or parts[-1].startswith("._")


def _safe_parts(name: str, archive: Path) -> tuple[str, ...]:
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or (pure.parts and ":" in pure.parts[0]):
        msg = f"archive member {name!r} of {archive.name} would be written outside the data root; the archive is unsafe"
        raise DownloadError(msg)
    return tuple(part for part in pure.parts if part not in {"", "."})


def wrapper_depth(members: list[tuple[str, ...]]) -> int:
    """How many leading folders wrap the content: single folders above the dataset folders, dropped."""
    depth = 0
    while True:
        files_here = any(len(parts) == depth + 1 for parts in members)
        folders = {parts[depth] for parts in members if len(parts) > depth + 1}
        if files_here or len(folders) != 1:
            return depth
        if next(iter(folders)) in DATASETS:
            return depth
        depth += 1


def _crc32(path: Path) -> int:
    crc = 0
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            crc = zlib.crc32(block, crc)
    return crc & 0xFFFFFFFF


@dataclass
class Unpacked:
    """What one archive put where."""

    written: int = 0
    kept: int = 0  # members already on disk with the right size and CRC
    sidecars: int = 0  # members not written: __MACOSX/, .DS_Store, ._*
    staged: list[str] = field(default_factory=list)  # top-level loose files, put in the staging folder
    folders: list[str] = field(default_factory=list)  # top-level folders written under the data root


def extract_archive(
    archive: Path,
    out: Path,
    *,
    staging: Path | None = None,
    dataset: str | None = None,
    progress: Progress | None = None,
) -> Unpacked:
    """Unpack ``archive`` into ``out``; loose top-level files go to ``staging`` (default: ``out``).

    Args:
        archive: the zip file.
        out: the data root.
        staging: where top-level loose files (``mmad.json``, ``domain_knowledge.json``, a README) go.
        dataset: the dataset the archive holds (``VisA`` for ``VisA.zip``); content that does not sit
            under a folder of that name is put under one.
        progress: called with ("unpacking <archive name>", members done, members in all).
    """
    result = Unpacked()
    try:
        bundle = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as exc:
        msg = f"{archive} is not a readable zip ({exc}); delete it and run the download again"
        raise DownloadError(msg) from exc
    with bundle:
        members = []
        for info in bundle.infolist():
            if info.is_dir():
                continue
            if is_sidecar(info.filename):
                result.sidecars += 1
                continue
            members.append((info, _safe_parts(info.filename, archive)))
        depth = wrapper_depth([parts for _, parts in members])
        stripped = [(info, parts[depth:]) for info, parts in members]
        tops = {parts[0] for _, parts in stripped if len(parts) > 1}
        prefix: tuple[str, ...] = (dataset,) if dataset and dataset not in tops else ()
        if prefix:
            logger.info("%s has no %s/ folder at its top; putting its content under one", archive.name, dataset)
        result.folders = sorted({(*prefix, *parts)[0] for _, parts in stripped if len(prefix) + len(parts) > 1})
        for done, (info, parts) in enumerate(stripped, start=1):
            if len(parts) == 1 and not prefix:
                target = (staging or out) / parts[0]
                result.staged.append(parts[0])
            else:
                target = out.joinpath(*prefix, *parts)
            if target.is_file() and target.stat().st_size == info.file_size and _crc32(target) == info.CRC:
                result.kept += 1
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                partial = target.with_name(target.name + ".part")
                try:
                    with bundle.open(info) as reader, partial.open("wb") as writer:
                        shutil.copyfileobj(reader, writer, 1 << 20)
                except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
                    partial.unlink(missing_ok=True)
                    msg = (
                        f"{archive.name}: member {info.filename} is corrupt ({exc}); "
                        "delete the archive and download it again"
                    )
                    raise DownloadError(msg) from exc
                partial.replace(target)
                result.written += 1
            if progress is not None:
                progress(f"unpacking {archive.name}", done, len(stripped))
    logger.info(
        "%s: %d written, %d already there, %d sidecars skipped",
        archive.name,
        result.written,
        result.kept,
        result.sidecars,
    )
    return result
