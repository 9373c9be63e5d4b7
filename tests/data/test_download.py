"""`mmad download` against a local folder standing in for the Hub, and the real Hub path offline."""

import json
import zipfile
from pathlib import Path

import pytest

from mmad.data.hub import HuggingFaceSource, LocalFolderSource, download, extract_archive
from mmad.errors import DownloadError


def _hub(tmp_path: Path) -> Path:
    hub = tmp_path / "hub"
    hub.mkdir()
    (hub / "mmad.json").write_text(json.dumps({"VisA/candle/test/good/000.JPG": {"conversation": []}}))
    (hub / "domain_knowledge.json").write_text("{}")
    with zipfile.ZipFile(hub / "ALL_DATA.zip", "w") as bundle:
        for i in range(5):
            bundle.writestr(f"MMAD/VisA/candle/test/good/{i:03d}.JPG", b"x" * (1000 + i))
        bundle.writestr("MMAD/MVTec-AD/bottle/train/good/000.png", b"y" * 10)
    (hub / "unrelated.bin").write_bytes(b"z")
    return hub


def test_fetches_unpacks_and_resumes(tmp_path: Path) -> None:
    hub = _hub(tmp_path)
    out = tmp_path / "data"
    result = download(out, source=LocalFolderSource(hub))
    assert sorted(result.fetched) == ["ALL_DATA.zip", "domain_knowledge.json", "mmad.json"]
    assert (out / "VisA/candle/test/good/004.JPG").read_bytes() == b"x" * 1004  # wrapper folder stripped
    assert (out / "MVTec-AD/bottle/train/good/000.png").exists()
    assert not (out / "ALL_DATA.zip").exists() and not (out / "unrelated.bin").exists()
    again = download(out, source=LocalFolderSource(hub))
    assert again.fetched == [] and sorted(again.skipped) == sorted(result.fetched)


def test_interrupted_copy_and_extraction_resume(tmp_path: Path) -> None:
    hub = _hub(tmp_path)
    out = tmp_path / "data"
    out.mkdir()
    archive = (hub / "ALL_DATA.zip").read_bytes()
    (out / "ALL_DATA.zip.part").write_bytes(archive[:100])  # a copy cut off after 100 bytes
    (out / "VisA/candle/test/good").mkdir(parents=True)
    (out / "VisA/candle/test/good/000.JPG").write_bytes(b"x" * 1000)  # already unpacked
    download(out, source=LocalFolderSource(hub), keep_archives=True)
    assert (out / "ALL_DATA.zip").read_bytes() == archive
    assert (out / ".mmad-extracted-ALL_DATA.zip").exists()
    assert extract_archive(out / "ALL_DATA.zip", out) == 0  # marker: nothing to do


def test_disk_space_is_checked_before_anything_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mmad.data.hub as module

    hub = _hub(tmp_path)
    out = tmp_path / "data"

    class Usage:
        free = 10

    monkeypatch.setattr(module.shutil, "disk_usage", lambda _: Usage())
    with pytest.raises(DownloadError, match="not enough disk space"):
        download(out, source=LocalFolderSource(hub))
    assert not out.exists()


def test_unsafe_archive_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("../escape.txt", b"x")
    with pytest.raises(DownloadError, match="outside"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()


def test_offline_hub_gives_a_clear_message(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DownloadError, match="HF_HUB_OFFLINE is set"):
        download(tmp_path, source=HuggingFaceSource(revision="abc123"))


@pytest.mark.slow
def test_unreachable_hub_gives_a_clear_message(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The real huggingface_hub call path, pointed at a closed local port."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    with pytest.raises(DownloadError, match="cannot reach the Hugging Face Hub"):
        download(tmp_path, source=HuggingFaceSource())
