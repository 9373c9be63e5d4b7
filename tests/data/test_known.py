"""The table of known MMAD files, the checks against it, and the provenance file."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest

from mmad.data.known import (
    DEFAULT_REVISION,
    KNOWN_FILES,
    ChecksumMismatch,
    Declared,
    KnownFile,
    check_file,
    file_digests,
)
from mmad.data.provenance import PROVENANCE_FILE, Provenance, read_provenance, write_provenance

# ../shared/reference next to the checkout (the main checkout, or a worktree one level further down).
REFERENCE_DK = next(
    (
        candidate
        for parent in Path(__file__).resolve().parents[3:5]
        if (candidate := parent / "shared/reference/official/domain_knowledge.json").is_file()
    ),
    Path("shared/reference/official/domain_knowledge.json"),
)


def test_digests_give_the_sha256_and_the_git_blob_id(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"hello\n")
    digests = file_digests(path)
    assert digests.sha256 == hashlib.sha256(b"hello\n").hexdigest()
    assert digests.git_sha1 == "ce013625030ba8dba906f756967f9e9ca394464a"  # `git hash-object` of "hello\n"
    assert file_digests(path, git=False).git_sha1 == ""


def test_the_table_pins_every_archive_and_the_json_of_the_default_commit() -> None:
    pinned = {k.name for k in KNOWN_FILES if DEFAULT_REVISION in k.commits}
    assert pinned == {"mmad.json", "DS-MVTec.zip", "GoodsAD.zip", "MVTec-AD.zip", "MVTec-LOCO.zip", "VisA.zip"}
    for entry in KNOWN_FILES:
        assert entry.sha256 is None or len(entry.sha256) == 64
        assert entry.git_sha1 is None or len(entry.git_sha1) == 40
    mmad = next(k for k in KNOWN_FILES if k.name == "mmad.json" and k.commits)
    assert mmad.sha256 is not None and mmad.sha256.startswith("639343b4") and "39,670" in mmad.where


def test_the_known_domain_knowledge_matches_the_reference_copy() -> None:
    if not REFERENCE_DK.is_file():
        pytest.skip(f"the shared reference copy {REFERENCE_DK} is absent")
    digests = file_digests(REFERENCE_DK)
    assert check_file("domain_knowledge.json", digests).status == "known"


def test_check_file_outcomes(tmp_path: Path) -> None:
    path = tmp_path / "mmad.json"
    path.write_bytes(b"{}")
    digests = file_digests(path)
    table = (KnownFile("mmad.json", "a release", sha256=digests.sha256),)
    assert check_file("mmad.json", digests, known=table).status == "known"
    assert check_file("mmad.json", digests, declared=Declared(sha256=digests.sha256), known=()).status == "source"
    assert check_file("mmad.json", digests, known=()).status == "unverified"
    with pytest.raises(ChecksumMismatch, match="declared by the source"):
        check_file("mmad.json", digests, declared=Declared(sha256="0" * 64), known=table)
    with pytest.raises(ChecksumMismatch, match="size"):
        check_file("mmad.json", digests, declared=Declared(size=3), known=table)
    pin = (KnownFile("mmad.json", "the pin", sha256="1" * 64, commits=("c" * 40,)),)
    with pytest.raises(ChecksumMismatch, match="mmad's record for the pin"):
        check_file("mmad.json", digests, commit="c" * 40, known=pin)
    assert check_file("mmad.json", digests, commit="d" * 40, known=pin).status == "unverified"


def test_read_provenance(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert read_provenance(tmp_path) is None
    write_provenance(tmp_path, Provenance(repo="jiang-cc/MMAD", revision="main", commit="c" * 40, source="x"))
    (tmp_path / "mmad.json").write_text("{}")
    for where in (tmp_path, tmp_path / "mmad.json", tmp_path / PROVENANCE_FILE):
        found = read_provenance(where)
        assert found is not None and found["commit"] == "c" * 40 and found["repo"] == "jiang-cc/MMAD"
    (tmp_path / PROVENANCE_FILE).write_text("{broken")
    with caplog.at_level(logging.WARNING):
        assert read_provenance(tmp_path) is None
    assert PROVENANCE_FILE in caplog.text
