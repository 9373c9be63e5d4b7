"""What mmad knows about the published MMAD files: where they live, and their known checksums.

Sources of the values (recorded here so anyone can re-check them):

- ``DEFAULT_REVISION`` and the per-dataset archive sizes and SHA-256s: the Hub commit
  ``c4ed190dcb530f2f673ab293e575ad32054bb3cf`` of ``jiang-cc/MMAD``, as pinned by third-party
  download scripts that verify every byte against these values (size probes with ``Range`` on the
  ``resolve/<commit>/`` URLs, then SHA-256 of the whole file).
- ``mmad.json`` at that commit: SHA-256 ``639343b4…1c1e``, 8,366 images and 39,670 questions,
  pinned by the same third parties (one of them fetched it from ``resolve/main/`` with that hash).
- The GitHub files of ``jam-cc/MMAD``: git blob ids read from the repository's history.
  ``dataset/MMAD/mmad.json`` is blob ``a8c97a39…`` in every commit since the first release
  (e30a94b, 2024-10-08); its SHA-256 was not available, so the git blob id is the check.
  ``dataset/MMAD/domain_knowledge.json`` is blob ``13c5fe6c…`` since 7fb005e (2024-12-16); a copy
  with that blob id has the SHA-256 recorded below.

Nothing here is fetched at run time; a file that matches none of these values is recorded with
its observed hash and reported as unverified, never silently passed as checked.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

REPO_ID = "jiang-cc/MMAD"
REPO_TYPE = "dataset"

# A commit, not the branch "refs/pr/1" the official README downloads ALL_DATA.zip from: a commit
# never moves, and for this one the SHA-256 of mmad.json and of every archive is known.
DEFAULT_REVISION = "c4ed190dcb530f2f673ab293e575ad32054bb3cf"
README_REVISION = "refs/pr/1"

# The five image archives, in the order they are fetched (the Hub's listing order).
DATASETS: tuple[str, ...] = ("DS-MVTec", "GoodsAD", "MVTec-AD", "MVTec-LOCO", "VisA")
ALL_DATA_ARCHIVE = "ALL_DATA.zip"
JSON_FILES: tuple[str, ...] = ("mmad.json", "domain_knowledge.json")
# DS-MVTec's questions use MVTec-AD train/good images as their templates (jam-cc/MMAD issue #6).
TEMPLATE_DATASET = {"DS-MVTec": "MVTec-AD"}

GITHUB_BASE = "https://raw.githubusercontent.com"
GITHUB_REPO = "jam-cc/MMAD"
GITHUB_REF = "bad03b44c30fdb4d0e1774e07e0f245fbaae3b6c"  # "fix readme", 2025-07-14: the newest read
GITHUB_PATHS = {"mmad.json": "dataset/MMAD/mmad.json", "domain_knowledge.json": "dataset/MMAD/domain_knowledge.json"}


def archive_name(dataset: str) -> str:
    """The Hub file holding one dataset's images."""
    return f"{dataset}.zip"


@dataclass(frozen=True)
class KnownFile:
    """One published version of a file, identified by its SHA-256 and/or its git blob id."""

    name: str
    where: str
    sha256: str | None = None
    git_sha1: str | None = None
    size: int | None = None
    commits: tuple[str, ...] = ()  # Hub commits at which this is *the* file: anything else there is an error


_C4ED190 = (DEFAULT_REVISION,)

KNOWN_FILES: tuple[KnownFile, ...] = (
    KnownFile(
        "mmad.json",
        "Hub jiang-cc/MMAD at c4ed190 (8,366 images, 39,670 questions)",
        sha256="639343b491bc67b2abb3c5d719f221ce27f83b2ed97948f4e88055aaa31f1c1e",
        commits=_C4ED190,
    ),
    KnownFile(
        "mmad.json",
        "GitHub jam-cc/MMAD dataset/MMAD/mmad.json, unchanged since e30a94b (2024-10-08)",
        git_sha1="a8c97a396fd738efa5e2a8ba9e07580c00c886b3",
    ),
    KnownFile(
        "domain_knowledge.json",
        "GitHub jam-cc/MMAD dataset/MMAD/domain_knowledge.json, since 7fb005e (2024-12-16)",
        sha256="f9e24f815f72b93929757e14a23b3dd1550615e8f96ec5103e916c5610ee3176",
        git_sha1="13c5fe6cb04577a45ded3f181a18d5af963ec7ad",
        size=144_260,
    ),
    KnownFile(
        "DS-MVTec.zip",
        "Hub jiang-cc/MMAD at c4ed190",
        sha256="1b0ff7b548021e977a755b02167c069dc03e701718d4436e635071f7e1f899f3",
        size=1_663_225_174,
        commits=_C4ED190,
    ),
    KnownFile(
        "GoodsAD.zip",
        "Hub jiang-cc/MMAD at c4ed190",
        sha256="d80d03b2f4c9d8ab8f54322d0bcd48ef407e27bca8199c4abdd3a4e3112c29ef",
        size=13_338_776_535,
        commits=_C4ED190,
    ),
    KnownFile(
        "MVTec-AD.zip",
        "Hub jiang-cc/MMAD at c4ed190",
        sha256="0a4ff072fafcfc4bccce68c0657b5d3890cb3c01737c66ab36259f806438faf2",
        size=5_273_925_193,
        commits=_C4ED190,
    ),
    KnownFile(
        "MVTec-LOCO.zip",
        "Hub jiang-cc/MMAD at c4ed190",
        sha256="e2bbcb234fcb7478199dde32a861642eadade7c10ea762958bc7d762f3cd82e9",
        size=6_131_998_488,
        commits=_C4ED190,
    ),
    KnownFile(
        "VisA.zip",
        "Hub jiang-cc/MMAD at c4ed190",
        sha256="f8a0511b7c2231fbfc16d59f1e00fc20c6eafcaff262b3f64805273e404a2e24",
        size=1_916_719_940,
        commits=_C4ED190,
    ),
)


@dataclass(frozen=True)
class Digests:
    """A file's size, SHA-256 and git blob id."""

    size: int
    sha256: str
    git_sha1: str


def file_digests(path: Path, *, git: bool = True) -> Digests:
    """Hash a file once for its SHA-256 and (unless git is False) its git blob id, ``sha1("blob <n>\\0" + bytes)``."""
    size = path.stat().st_size
    sha256 = hashlib.sha256()
    blob = hashlib.sha1(f"blob {size}\0".encode(), usedforsecurity=False) if git else None
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha256.update(block)
            if blob is not None:
                blob.update(block)
    return Digests(size=size, sha256=sha256.hexdigest(), git_sha1=blob.hexdigest() if blob is not None else "")


@dataclass(frozen=True)
class Declared:
    """What the source itself says a file's checksum is (the Hub's LFS SHA-256 or git blob id)."""

    sha256: str | None = None
    git_sha1: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class Check:
    """How a file's content was checked: against a version mmad knows, only the source's word, or not at all."""

    status: str  # "known", "source" or "unverified"
    detail: str


class ChecksumMismatch(Exception):
    """A file's content differs from what it must be (the caller turns it into a DownloadError naming the revision)."""

    def __init__(self, expected: str, got: str, by: str) -> None:
        message = f"its {by} should be {expected} but is {got}"
        super().__init__(message)
        self.expected = expected
        self.got = got
        self.by = by


def check_file(
    name: str,
    digests: Digests,
    *,
    declared: Declared | None = None,
    commit: str | None = None,
    known: tuple[KnownFile, ...] = KNOWN_FILES,
) -> Check:
    """Check a file against the source's declared checksum and mmad's table of known versions.

    Raises ChecksumMismatch when the content contradicts the source (a corrupt transfer) or the
    version mmad knows for this very commit; otherwise says how far the content was checked.
    """
    if declared is not None:
        if declared.size is not None and declared.size != digests.size:
            expected, got = f"{declared.size} bytes", f"{digests.size} bytes"
            raise ChecksumMismatch(expected, got, "size")
        if declared.sha256 and declared.sha256 != digests.sha256:
            raise ChecksumMismatch(declared.sha256, digests.sha256, "SHA-256 (declared by the source)")
        if declared.git_sha1 and declared.git_sha1 != digests.git_sha1:
            raise ChecksumMismatch(declared.git_sha1, digests.git_sha1, "git blob id (declared by the source)")
    candidates = [entry for entry in known if entry.name == name]
    for entry in candidates:
        if (entry.sha256 and entry.sha256 == digests.sha256) or (entry.git_sha1 and entry.git_sha1 == digests.git_sha1):
            return Check("known", f"matches the known {name} of {entry.where}")
    pinned = [entry for entry in candidates if commit is not None and commit in entry.commits]
    if pinned and pinned[0].sha256:
        raise ChecksumMismatch(pinned[0].sha256, digests.sha256, f"SHA-256 (mmad's record for {pinned[0].where})")
    if declared is not None and (declared.sha256 or declared.git_sha1):
        return Check("source", f"matches the checksum the source declares; not a version of {name} that mmad knows")
    return Check("unverified", f"not a version of {name} that mmad knows; recorded with its observed SHA-256")
