"""Shared fixtures. The Makefile sets HF_HUB_OFFLINE before Python starts; this is the safety net."""

from __future__ import annotations

import os

for _name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_name, "1")
os.environ["COLUMNS"] = "200"  # rich wraps tables at 80 columns otherwise
# Under xdist each worker gets its share of the cores for torch's (OpenMP) threads, set before torch is
# imported: two workers of two threads each on two cores spent their time waiting on one another.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    _share = (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, _share)))

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from tests.helpers.mmad_tree import make_mmad_tree  # noqa: E402

# The reference material beside the repository (../shared/reference), or where MMAD_REFERENCE_DIR says.
# It is not part of the project: tests that compare with it skip, with the reason, where it is absent.
REFERENCE = Path(os.environ.get("MMAD_REFERENCE_DIR") or Path(__file__).resolve().parents[2] / "shared" / "reference")


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects and xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that share one costly thing run on one xdist worker (`--dist loadgroup`), which makes it once:
    every test on Ray (by its marker or the ``ray_cluster`` fixture) one local Ray for the session, and
    the browser tests and the tiny Hugging Face models their module's Chromium and models."""
    for item in items:
        if item.get_closest_marker("ray") or "ray_cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.ray)
            _group(config, item, "ray")
        else:
            for shared in ("browser", "hf"):
                if item.get_closest_marker(shared):
                    _group(config, item, shared)
                    break


def _group(config: pytest.Config, item: pytest.Item, name: str) -> None:
    item.add_marker(pytest.mark.xdist_group(name))
    # xdist tells its scheduler a test's group by renaming it "<id>@<group>"; xdist 3.8 sets the name
    # through `_nodeid`, which pytest 9 no longer reads, so no test was grouped. The same rename here,
    # through the attribute pytest 9 reads (a later xdist that renames again keeps the group: the
    # scheduler reads the part after the last "@").
    node_id = getattr(item, "_id", None)
    if getattr(config.option, "loadgroup", False) and node_id is not None:
        item._id = type(node_id).parse(f"{item.nodeid}@{name}")


@pytest.fixture(scope="session", autouse=True)
def _private_response_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Runs that keep the response cache on (the default) write it here, one folder per test process:
    never the user's ~/.cache/mmad, which would carry replies from one session into the next, and never
    a folder another xdist worker writes at the same time. Child processes inherit it."""
    os.environ["MMAD_CACHE_DIR"] = str(tmp_path_factory.mktemp("response-cache"))


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
