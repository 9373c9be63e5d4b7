"""Shared fixtures. The Makefile sets HF_HUB_OFFLINE before Python starts; this is the safety net."""

from __future__ import annotations

import os

for _name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_name, "1")
os.environ["COLUMNS"] = "200"  # rich wraps tables at 80 columns otherwise

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from tests.helpers.mmad_tree import make_mmad_tree  # noqa: E402

# ../shared/reference next to the checkout (/work/main), or next to the worktrees' folder (/work/wt/NAME).
REFERENCE = next(
    (
        folder / "shared" / "reference"
        for folder in Path(__file__).resolve().parents[2:4]
        if (folder / "shared" / "reference").is_dir()
    ),
    Path(__file__).resolve().parents[2] / "shared" / "reference",
)


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
    """../shared/reference, which tests may read (the package never does)."""
    if not REFERENCE.is_dir():
        pytest.fail(f"the shared reference folder is missing at {REFERENCE}")
    return REFERENCE
