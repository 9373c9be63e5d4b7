"""Fixtures for the download tests: the published files built once, and the Hub client let online for 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.mmad_release import Release, build_release


@pytest.fixture(scope="session")
def release(tmp_path_factory: pytest.TempPathFactory) -> Release:
    """MMAD's published files in their real shapes, built from a small generated tree; do not modify."""
    return build_release(tmp_path_factory.mktemp("release"))


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the huggingface_hub client make requests (tests point it at 127.0.0.1 only).

    tests/conftest.py sets HF_HUB_OFFLINE=1 before huggingface_hub is imported, and the client reads
    it once, into ``huggingface_hub.constants.HF_HUB_OFFLINE``: both are undone for this test only.
    """
    import huggingface_hub.constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)


def tree_files(root: Path) -> list[str]:
    """Every file under root, relative, sorted (the state folder and provenance left out)."""
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and ".mmad-download" not in p.parts and p.name != "mmad-provenance.json"
    )
