"""Unpacking the archives the way they are published: wrappers, Mac sidecars, loose json, resumes."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from mmad.data.unpack import extract_archive, is_sidecar, wrapper_depth
from mmad.errors import DownloadError
from tests.helpers.mmad_release import mac_zip


def _zip(path: Path, files: dict[str, bytes]) -> Path:
    path.write_bytes(mac_zip(files))
    return path


def test_sidecars_are_recognised() -> None:
    assert is_sidecar("__MACOSX/VisA/candle/._000.JPG")
    assert is_sidecar("VisA/.DS_Store") and is_sidecar("VisA/candle/._000.JPG")
    assert not is_sidecar("VisA/candle/test/good/000.JPG")


@pytest.mark.parametrize(
    ("names", "depth"),
    [
        ([("ALL_DATA", "VisA", "a.JPG"), ("ALL_DATA", "mmad.json")], 1),
        ([("MMAD", "ALL_DATA", "VisA", "a.JPG"), ("MMAD", "ALL_DATA", "GoodsAD", "b.jpg")], 2),
        ([("VisA", "candle", "a.JPG")], 0),  # a dataset folder is never a wrapper
        ([("VisA", "a.JPG"), ("mmad.json",)], 0),
    ],
)
def test_wrapper_depth(names: list[tuple[str, ...]], depth: int) -> None:
    assert wrapper_depth(names) == depth


def test_wrappers_and_sidecars_go_and_loose_files_are_staged(tmp_path: Path) -> None:
    archive = _zip(
        tmp_path / "ALL_DATA.zip",
        {
            "MMAD/ALL_DATA/VisA/candle/test/good/000.JPG": b"image",
            "MMAD/ALL_DATA/MVTec-AD/bottle/train/good/000.png": b"template",
            "MMAD/ALL_DATA/mmad.json": b"{}",
        },
    )
    out, staging = tmp_path / "out", tmp_path / "staging"
    result = extract_archive(archive, out, staging=staging)
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == ["MVTec-AD/bottle/train/good/000.png", "VisA/candle/test/good/000.JPG"]
    assert (staging / "mmad.json").read_bytes() == b"{}" and result.staged == ["mmad.json"]
    assert result.folders == ["MVTec-AD", "VisA"] and result.sidecars > 0


def test_an_archive_without_its_dataset_folder_is_put_under_one(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "VisA.zip", {"candle/test/good/000.JPG": b"a", "capsules/test/good/000.JPG": b"b"})
    result = extract_archive(archive, tmp_path / "out", dataset="VisA")
    assert (tmp_path / "out/VisA/candle/test/good/000.JPG").read_bytes() == b"a"
    assert result.folders == ["VisA"]


def test_a_resumed_unpack_keeps_intact_members_and_rewrites_damaged_ones(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "VisA.zip", {"VisA/a.JPG": b"a" * 100, "VisA/b.JPG": b"b" * 100})
    out = tmp_path / "out"
    (out / "VisA").mkdir(parents=True)
    (out / "VisA/a.JPG").write_bytes(b"a" * 100)
    (out / "VisA/b.JPG").write_bytes(b"x" * 100)  # same size, other bytes: a half-written member
    result = extract_archive(archive, out)
    assert (result.kept, result.written) == (1, 1)
    assert (out / "VisA/b.JPG").read_bytes() == b"b" * 100


def test_unsafe_and_corrupt_archives_are_refused(tmp_path: Path) -> None:
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as bundle:
        bundle.writestr("../escape.txt", b"x")
    with pytest.raises(DownloadError, match="outside the data root"):
        extract_archive(evil, tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()

    data = bytearray(mac_zip({"VisA/a.JPG": b"a" * 5000}))
    offset = data.index(b"VisA/a.JPG") + len("VisA/a.JPG") + 10  # inside the first member's data
    data[offset] ^= 0xFF
    broken = tmp_path / "broken.zip"
    broken.write_bytes(bytes(data))
    with pytest.raises(DownloadError, match=r"member VisA/a\.JPG is corrupt"):
        extract_archive(broken, tmp_path / "out2")
    assert not (tmp_path / "out2/VisA/a.JPG").exists()
    (tmp_path / "notazip.zip").write_bytes(b"nope")
    with pytest.raises(DownloadError, match="not a readable zip"):
        extract_archive(tmp_path / "notazip.zip", tmp_path / "out3")
