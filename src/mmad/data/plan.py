"""Which repository files to fetch for a download, and whether the disk can take them."""

from __future__ import annotations

import fnmatch
import shutil
from dataclasses import dataclass
from pathlib import Path

from mmad.data.known import ALL_DATA_ARCHIVE, DATASETS, DEFAULT_REVISION, JSON_FILES, TEMPLATE_DATASET, archive_name
from mmad.data.sources import RemoteFile
from mmad.errors import ConfigError, DownloadError

STATE_DIR = ".mmad-download"  # partial files, verified archives and staged json, inside the data root


@dataclass
class Plan:
    """Which repository files to fetch."""

    archives: list[str]
    jsons: list[str]
    loose: list[str]
    datasets: list[str]
    notes: list[str]


def normalize_datasets(names: list[str] | tuple[str, ...]) -> list[str]:
    """Dataset names as the repository spells them (accepts any case, with or without .zip, comma lists)."""
    by_lower = {name.lower(): name for name in DATASETS}
    chosen: list[str] = []
    for raw in names:
        for piece in raw.split(","):
            wanted = piece.strip().removesuffix(".zip").lower()
            if not wanted:
                continue
            if wanted not in by_lower:
                msg = f"unknown dataset {piece.strip()!r}; choose among {', '.join(DATASETS)}"
                raise ConfigError(msg)
            if by_lower[wanted] not in chosen:
                chosen.append(by_lower[wanted])
    return chosen


def plan_download(
    available: dict[str, RemoteFile],
    *,
    where: str,
    datasets: list[str] | None = None,
    include: tuple[str, ...] | None = None,
    unpacked: set[str] | None = None,
    local: bool = False,
) -> Plan:
    """Choose the files to fetch from what the revision (or, ``local``, a --source folder) holds."""
    jsons = [name for name in JSON_FILES if name in available]
    notes: list[str] = []
    listing = ", ".join(sorted(p for p in available if "/" not in p)[:20]) or "nothing at its top"
    if include:
        chosen = [path for path in available if any(fnmatch.fnmatch(path, p) for p in include)]
        if not chosen:
            msg = f"none of {list(include)} is in {where}; it has: {listing}"
            raise DownloadError(msg)
        archives = [p for p in chosen if p.endswith(".zip")]
        loose = [p for p in chosen if not p.endswith(".zip") and p not in JSON_FILES]
        return Plan(archives, jsons, loose, [], notes)
    if datasets:
        wanted = list(datasets)
        for dataset in list(wanted):
            needs = TEMPLATE_DATASET.get(dataset)
            if needs and needs not in wanted and needs not in (unpacked or set()):
                wanted.append(needs)
                notes.append(
                    f"{dataset} questions use {needs} train/good images as templates, so {archive_name(needs)} "
                    f"is fetched too"
                )
        missing = [archive_name(d) for d in wanted if archive_name(d) not in available]
        if missing:
            alternative = (
                f"it has {ALL_DATA_ARCHIVE}: drop --datasets to fetch everything, or"
                if ALL_DATA_ARCHIVE in available
                else "choose"
            )
            # a --source folder has no revisions (--revision beside it is refused): it must hold the zips
            way = (
                f"put {', '.join(missing)} in it, or give the folder that holds {'them' if len(missing) > 1 else 'it'}"
                if local
                else f"{alternative} --revision {DEFAULT_REVISION} which has one zip per dataset"
            )
            msg = f"{where} has no {', '.join(missing)} (its files: {listing}); {way}"
            raise DownloadError(msg)
        return Plan([archive_name(d) for d in wanted], jsons, [], wanted, notes)
    if all(archive_name(d) in available for d in DATASETS):
        return Plan([archive_name(d) for d in DATASETS], jsons, [], list(DATASETS), notes)
    if ALL_DATA_ARCHIVE in available:
        return Plan([ALL_DATA_ARCHIVE], jsons, [], list(DATASETS), notes)
    msg = (
        f"{where} has neither the per-dataset zips ({', '.join(archive_name(d) for d in DATASETS)}) nor "
        f"{ALL_DATA_ARCHIVE}; its top-level files: {listing}. "
        + (
            f"Give the folder that holds the Hub's files (the zips or {ALL_DATA_ARCHIVE}), "
            "or copy loose files with --include 'VisA/**'"
            if local
            else f"Choose --revision {DEFAULT_REVISION} (one zip per dataset) or refs/pr/1 ({ALL_DATA_ARCHIVE}), "
            "or fetch loose files with --include 'VisA/**'"
        )
    )
    raise DownloadError(msg)


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


def space_needed(plan: Plan, available: dict[str, RemoteFile], state: Path, keep: bool, extract: bool) -> int:
    # Images are already compressed, so an archive unpacks to about its own size. Archives are
    # unpacked and deleted one at a time, so the peak is everything unpacked plus the largest zip.
    sizes = [available[a].size or 0 for a in plan.archives]
    held = sum(_part_size(state, a) for a in plan.archives)
    loose = sum(available[p].size or 0 for p in plan.loose + plan.jsons)
    if not extract:
        return sum(sizes) - held + loose
    peak = 2 * sum(sizes) if keep else sum(sizes) + max(sizes, default=0)
    return max(peak - held, 0) + loose


def _part_size(state: Path, name: str) -> int:
    for candidate in (state / name, state / f"{name}.part"):
        if candidate.is_file():
            return candidate.stat().st_size
    return 0
