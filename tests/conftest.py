"""Shared fixtures. The Makefile sets HF_HUB_OFFLINE before Python starts; this is the safety net."""

from __future__ import annotations

import os

for _name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_name, "1")
os.environ["COLUMNS"] = "200"  # rich wraps tables at 80 columns otherwise

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from tests.helpers.mmad_tree import make_mmad_tree  # noqa: E402

# The reference material beside the repository (../shared/reference), or where MMAD_REFERENCE_DIR says.
# It is not part of the project: tests that compare with it skip, with the reason, where it is absent.
REFERENCE = Path(os.environ.get("MMAD_REFERENCE_DIR") or Path(__file__).resolve().parents[2] / "shared" / "reference")


@pytest.fixture(scope="session")
def mmad_json(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small MMAD-format data root, generated once per session; do not modify it."""
    return make_mmad_tree(tmp_path_factory.mktemp("mmad"))


@pytest.fixture
def fresh_mmad_json(tmp_path: Path) -> Path:
    """A small MMAD-format data root that a test may change."""
    return make_mmad_tree(tmp_path / "mmad")


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """../shared/reference, which tests may read (the package never does); skips the test when absent."""
    if not REFERENCE.is_dir():
        pytest.skip(
            f"the reference folder {REFERENCE} is absent (it sits beside the repository, or set "
            "MMAD_REFERENCE_DIR); this test compares with it, and everything else runs without it"
        )
    return REFERENCE
