"""``mmad download``: fetch MMAD from the Hugging Face Hub (``jiang-cc/MMAD``) into a data root, resumably.

What the repository holds depends on the revision. The default commit (see :mod:`mmad.data.known`)
has ``mmad.json``, ``domain_knowledge.json``, ``metadata.csv`` and one zip per dataset; the
official README's ``refs/pr/1`` has ``ALL_DATA.zip`` (everything, in an ``ALL_DATA/`` wrapper,
json included); early revisions hold loose folders. The plan takes the per-dataset zips when the
revision has them (all, or those named with ``datasets``), else ``ALL_DATA.zip``.

Every step resumes: a file being fetched stays in ``.mmad-download/<name>.part`` and the next run
asks for the rest; a verified archive is kept until it is unpacked; unpacking skips members
already on disk (size and CRC); json files are checked before they replace anything. Each file is
checked against the checksum the Hub declares and mmad's table of known versions, and the whole
story goes to ``mmad-provenance.json`` (:mod:`mmad.data.provenance`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from mmad.data.known import (
    DATASETS,
    DEFAULT_REVISION,
    JSON_FILES,
    KNOWN_FILES,
    REPO_ID,
    ChecksumMismatch,
    Declared,
    KnownFile,
    check_file,
    file_digests,
)
from mmad.data.plan import STATE_DIR, check_disk_space, normalize_datasets, plan_download, space_needed
from mmad.data.provenance import FileRecord, Provenance, load_provenance, now, provenance_path, write_provenance
from mmad.data.sources import (
    GitHubFileSource,
    HuggingFaceSource,
    LocalFolderSource,
    RemoteFile,
    Source,
    hub_unreachable,
)
from mmad.data.transfer import discard_part, finish_part
from mmad.data.unpack import extract_archive
from mmad.errors import ConfigError, DownloadError

logger = logging.getLogger(__name__)

__all__ = [
    "DownloadResult",
    "GitHubFileSource",
    "HuggingFaceSource",
    "LocalFolderSource",
    "check_disk_space",
    "check_download_request",
    "download",
    "hub_unreachable",
    "plan_download",
]

Progress = Callable[[str, int, int], None]
"""Receives (what, done, total): bytes of a file being fetched, or members of an archive being unpacked."""


@dataclass
class DownloadResult:
    """What a download left on disk."""

    out: Path
    revision: str = ""
    commit: str = ""
    fetched: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    extracted: list[str] = field(default_factory=list)
    json_origins: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def provenance(self) -> Path:
        """The provenance file written into the data root."""
        return provenance_path(self.out)


def _needs_git(name: str, declared: Declared | None, known: tuple[KnownFile, ...]) -> bool:
    return bool(declared and declared.git_sha1) or any(k.git_sha1 for k in known if k.name == name)


class _Downloader:
    """One download: the source, the data root, the provenance being written."""

    def __init__(
        self,
        out: Path,
        source: Source,
        *,
        github: GitHubFileSource | None,
        known: tuple[KnownFile, ...],
        keep_archives: bool,
        progress: Progress | None,
    ) -> None:
        self.out = out
        self.state = out / STATE_DIR
        self.source = source
        self.github = github
        self.known = known
        self.keep_archives = keep_archives
        self.progress = progress
        self.result = DownloadResult(out=out)
        self.commit = ""
        self.where = source.description
        self.provenance: Provenance | None = None

    # -- bookkeeping ---------------------------------------------------------------------------

    def start(self, revision: str, commit: str) -> Provenance:
        from mmad._version import __version__

        previous = load_provenance(self.out)
        endpoint = getattr(self.source, "endpoint", None)
        fresh = Provenance(
            repo=getattr(self.source, "repo_id", REPO_ID),
            endpoint=endpoint if isinstance(endpoint, str) else None,
            revision=revision,
            commit=commit,
            source=self.where,
            mmad_version=__version__,
        )
        if previous is not None:
            fresh.files = previous.files
            fresh.datasets = previous.datasets
            if previous.commit != commit:
                fresh.notes.append(
                    f"this data root held files of commit {previous.commit}; files fetched now come from {commit}"
                )
        self.provenance = fresh
        self.save()
        return fresh

    def save(self) -> None:
        if self.provenance is not None:
            self.out.mkdir(parents=True, exist_ok=True)
            write_provenance(self.out, self.provenance)

    def note(self, text: str) -> None:
        logger.warning("%s", text)
        self.result.notes.append(text)
        if self.provenance is not None and text not in self.provenance.notes:
            self.provenance.notes.append(text)

    def record(self, name: str, record: FileRecord) -> None:
        assert self.provenance is not None
        self.provenance.files[name] = record
        self.save()

    def _bytes(self, name: str) -> Callable[[int, int | None], None] | None:
        if self.progress is None:
            return None
        progress = self.progress
        return lambda done, total: progress(name, done, total or done)

    # -- checking --------------------------------------------------------------------------------

    def verify(self, name: str, path: Path, declared: Declared | None, origin: str) -> FileRecord:
        """Check a fetched file; on a mismatch the file is deleted and nothing in the data root is touched."""
        digests = file_digests(path, git=_needs_git(name, declared, self.known))
        try:
            check = check_file(name, digests, declared=declared, commit=self.commit, known=self.known)
        except ChecksumMismatch as exc:
            discard_part(path)
            then = (
                "run the command again to fetch it afresh"
                if "declared by the source" in exc.by or exc.by == "size"
                else "the file differs from the version mmad knows for this commit: choose another --revision, "
                "or report it"
            )
            msg = (
                f"{name} from {origin} ({self.where}) is not the expected file: {exc}. The copy was deleted and "
                f"nothing already in {self.out} was changed; {then}"
            )
            raise DownloadError(msg) from exc
        if check.status == "unverified":
            self.note(f"{name} from {origin}: {check.detail} ({digests.sha256})")
        return FileRecord(
            origin=origin,
            commit=self.commit or None,
            size=digests.size,
            sha256=digests.sha256,
            check=check.status,
            check_detail=check.detail,
        )

    # -- files -------------------------------------------------------------------------------------

    def fetch(self, remote: RemoteFile) -> Path:
        """Bring one repository file into the state folder, resuming a partial one; returns the part."""
        part = self.state / f"{remote.path}.part"
        logger.info("fetching %s from %s", remote.path, self.where)
        self.source.fetch(remote.path, part, self._bytes(remote.path))
        self.result.fetched.append(remote.path)
        return part

    def place(self, name: str, candidate: Path, record: FileRecord) -> None:
        """Put a checked file at the data root, keeping a differing file that mmad did not put there."""
        target = self.out / name
        if target.is_file():
            old = file_digests(target, git=False).sha256
            recorded = self.provenance.files.get(name) if self.provenance else None
            if old != record.sha256 and (recorded is None or recorded.sha256 != old):
                backup = target.with_name(f"{name}.replaced-{old[:12]}")
                target.replace(backup)
                self.note(f"{target} differed from the downloaded {name} and was kept as {backup.name}")
        finish_part(candidate, target)
        self.record(name, record)

    def json_from_hub(self, name: str, remote: RemoteFile) -> None:
        target = self.out / name
        recorded = self.provenance.files.get(name) if self.provenance else None
        origin = self.source.origin
        unchanged = (
            target.is_file()
            and recorded is not None
            and (recorded.origin, recorded.commit) == (origin, self.commit)
            and file_digests(target, git=False).sha256 == recorded.sha256
        )
        if unchanged:
            self.result.skipped.append(name)
            self.result.json_origins[name] = origin
            return
        part = self.fetch(remote)
        record = self.verify(name, part, remote.declared, self.source.origin)
        self.place(name, part, record)
        self.result.json_origins[name] = origin

    def archive(self, remote: RemoteFile, extract: bool) -> None:
        name = remote.path
        recorded = self.provenance.files.get(name) if self.provenance else None
        folders_there = recorded is not None and all((self.out / f).is_dir() for f in recorded.folders or [])
        same = recorded is not None and (remote.sha256 is None or recorded.sha256 == remote.sha256)
        if recorded is not None and recorded.unpacked and same and folders_there:
            self.result.skipped.append(name)
            return
        local = self.state / name
        if local.is_file() and recorded is not None and same and recorded.size == local.stat().st_size:
            self.result.skipped.append(name)
            record = recorded
        else:
            part = self.fetch(remote)
            record = self.verify(name, part, remote.declared, self.source.origin)
            finish_part(part, local)
            self.record(name, record)
        if not extract:
            return
        dataset = name.removesuffix(".zip") if name.removesuffix(".zip") in DATASETS else None
        unpacked = extract_archive(
            local, self.out, staging=self.state / f"from-{name}", dataset=dataset, progress=self.progress
        )
        self.result.extracted.append(name)
        self.record(name, record.model_copy(update={"unpacked": True, "folders": unpacked.folders}))
        if not self.keep_archives:
            local.unlink()

    def loose(self, remote: RemoteFile) -> None:
        target = self.out / remote.path
        if target.is_file() and remote.size is not None and target.stat().st_size == remote.size:
            self.result.skipped.append(remote.path)
            return
        part = self.fetch(remote)
        record = self.verify(PurePosixPath(remote.path).name, part, remote.declared, self.source.origin)
        finish_part(part, target)
        if "/" not in remote.path:
            self.record(remote.path, record)

    def json_fallback(self, name: str, archives: list[str]) -> str | None:
        """Take a json file from an unpacked archive, else from GitHub; returns where it was sought if missing."""
        for archive in archives:
            staged = self.state / f"from-{archive}" / name
            if staged.is_file():
                work = staged.with_name(f"{name}.checking")
                shutil.copyfile(staged, work)
                record = self.verify(name, work, None, f"archive:{archive}")
                self.place(name, work, record)
                self.result.json_origins[name] = f"archive:{archive}"
                return None
        recorded = self.provenance.files.get(name) if self.provenance else None
        target = self.out / name
        if (
            recorded is not None
            and recorded.commit == self.commit
            and target.is_file()
            and file_digests(target, git=False).sha256 == recorded.sha256
        ):
            self.result.skipped.append(name)
            self.result.json_origins[name] = recorded.origin
            return None
        sought = f"{self.where} (not a file there" + (f", not in {', '.join(archives)})" if archives else ")")
        if self.github is None:
            return sought + "; the GitHub fallback is off"
        url = self.github.url(name)
        part = self.state / "github" / f"{name}.part"
        logger.info("%s is not at %s; fetching %s", name, self.where, url)
        if not self.github.fetch(name, part):
            discard_part(part)
            return f"{sought}; {url} answered 404"
        record = self.verify(name, part, None, f"github:{url}")
        self.place(name, part, record)
        self.result.json_origins[name] = f"github:{url}"
        self.note(f"{name} came from GitHub ({url}), not from {self.where}")
        return None

    def count(self) -> None:
        """Record how many images and questions the placed mmad.json holds."""
        path = self.out / "mmad.json"
        if not path.is_file() or self.provenance is None or "mmad.json" not in self.provenance.files:
            return
        try:
            raw = json.loads(path.read_bytes())
        except ValueError as exc:
            msg = f"{path} is not valid json ({exc}); delete it and run the download again"
            raise DownloadError(msg) from exc
        if isinstance(raw, dict):
            questions = sum(
                len(next((v for k, v in record.items() if k.startswith("conversation")), []) or [])
                for record in raw.values()
                if isinstance(record, dict)
            )
            self.provenance.files["mmad.json"] = self.provenance.files["mmad.json"].model_copy(
                update={"images": len(raw), "questions": questions}
            )


def check_download_request(
    out: str | os.PathLike[str],
    *,
    local: bool = False,
    revision: str | None = None,
    datasets: list[str] | tuple[str, ...] | None = None,
    patterns: tuple[str, ...] | None = None,
) -> list[str] | None:
    """Refuse a request that would fetch something else than asked, before any connection; returns the
    datasets as the repository spells them (None for the usual plan).

    An empty --revision or --datasets would fetch the default commit or all 28 GB; a --revision with a
    local --source, or --datasets with --include, would be ignored.
    """
    target = Path(out)
    if target.exists() and not target.is_dir():
        msg = f"--out {target} is a file; give the data root folder to fill (it may not exist yet)"
        raise ConfigError(msg)
    if revision is not None and not revision.strip():
        msg = f"--revision is empty; give a commit, branch or ref, or leave --revision out for {DEFAULT_REVISION}"
        raise ConfigError(msg)
    if local and revision is not None:
        msg = (
            f"--revision {revision} chooses a Hub commit, but --source copies a local folder, which has no "
            "revisions; leave --revision out, or --source out to fetch from the Hub"
        )
        raise ConfigError(msg)
    if datasets is None:
        return None
    chosen = normalize_datasets(list(datasets))  # a misspelt name fails before the network
    if not chosen:
        msg = f"--datasets names no dataset; give one or more of {', '.join(DATASETS)}, or leave --datasets out "
        msg += "to fetch all of them"
        raise ConfigError(msg)
    if patterns:
        msg = (
            "--include fetches exactly the files its globs match, so --datasets would be ignored; give one of them "
            "(e.g. --include 'VisA.zip' or --datasets VisA)"
        )
        raise ConfigError(msg)
    return chosen


def download(
    out: str | os.PathLike[str],
    *,
    source: Source | None = None,
    revision: str | None = None,
    datasets: list[str] | tuple[str, ...] | None = None,
    patterns: tuple[str, ...] | None = None,
    extract: bool = True,
    keep_archives: bool = False,
    github: GitHubFileSource | bool | None = True,
    known: tuple[KnownFile, ...] = KNOWN_FILES,
    progress: Progress | None = None,
) -> DownloadResult:
    """Fetch MMAD's json files and image archives into ``out``, check them, unpack them, record where they came from.

    Args:
        out: the data root to create or complete.
        source: where the files come from; the Hub at ``revision`` by default.
        revision: the Hub revision (commit, branch or ref) when ``source`` is not given; default
            :data:`mmad.data.known.DEFAULT_REVISION`.
        datasets: fetch only these datasets' zips (DS-MVTec also brings MVTec-AD, its templates).
        patterns: fetch exactly the repository files matching these globs instead of the usual plan.
        extract: unpack the archives.
        keep_archives: keep the zips (in ``out/.mmad-download``) after unpacking.
        github: where to take ``mmad.json``/``domain_knowledge.json`` when neither the revision nor
            its archives have them; True for the GitHub repository, False or None for nowhere
            (a folder ``source`` never falls back unless a GitHubFileSource is passed).
        known: the table of known file versions to check against.
        progress: called as bytes arrive and archive members are unpacked.
    """
    target = Path(out)
    local = source is not None and not isinstance(source, HuggingFaceSource)
    chosen = check_download_request(
        target, local=local, revision=revision, datasets=datasets or None, patterns=patterns
    )
    hub = source or HuggingFaceSource(revision=revision)
    fallback: GitHubFileSource | None
    if isinstance(github, GitHubFileSource):
        fallback = github
    else:
        fallback = GitHubFileSource() if github and isinstance(hub, HuggingFaceSource) else None
    commit = hub.resolve()
    available = hub.list_files()
    loader = _Downloader(target, hub, github=fallback, known=known, keep_archives=keep_archives, progress=progress)
    loader.commit = commit
    loader.where = hub.description
    requested = getattr(hub, "revision", None) or commit
    previous = load_provenance(target)
    unpacked = {f.removesuffix(".zip") for f, r in (previous.files if previous else {}).items() if r.unpacked}
    plan = plan_download(
        available,
        where=loader.where,
        datasets=chosen,
        include=patterns,
        unpacked=unpacked,
        local=local,
    )
    check_disk_space(target, space_needed(plan, available, target / STATE_DIR, keep_archives, extract))
    provenance = loader.start(requested, commit)
    provenance.datasets = sorted(set(provenance.datasets) | set(plan.datasets))
    result = loader.result
    result.revision, result.commit = requested, commit
    for text in plan.notes:
        loader.note(text)
    for name in plan.jsons:
        loader.json_from_hub(name, available[name])
    for name in plan.archives:
        loader.archive(available[name], extract)
    for path in plan.loose:
        loader.loose(available[path])
    missing: dict[str, str] = {}
    for name in JSON_FILES:
        if name in plan.jsons:
            continue
        if extract or not plan.archives:
            sought = loader.json_fallback(name, plan.archives)
            if sought is not None:
                missing[name] = sought
        elif not (target / name).is_file():
            loader.note(f"{name} is not a file at {loader.where}; it may be inside the archives left packed")
    loader.count()
    if "domain_knowledge.json" in missing:
        loader.note(
            f"domain_knowledge.json is missing: {missing.pop('domain_knowledge.json')}; only the RAG strategy needs it"
        )
    if missing:
        loader.save()
        msg = (
            f"mmad.json is missing from revision {requested} of {REPO_ID}: {missing['mmad.json']}. The images "
            f"already unpacked in {target} stay. Choose a revision that has it (--revision {DEFAULT_REVISION}), "
            f"or put mmad.json into {target} yourself and run `mmad validate {target}`"
        )
        raise DownloadError(msg)
    provenance.finished = now()
    loader.save()
    _tidy(target / STATE_DIR, plan.archives)
    return result


def _tidy(state: Path, archives: list[str]) -> None:
    """Drop the staging folders of a finished download, and the state folder once nothing is left in it."""
    for name in archives:
        shutil.rmtree(state / f"from-{name}", ignore_errors=True)
    shutil.rmtree(state / "github", ignore_errors=True)
    if state.is_dir() and not any(state.iterdir()):
        state.rmdir()
