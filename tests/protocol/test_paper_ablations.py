"""docs/sweeps/paper-ablations.toml: what it is, its cells, and that it runs where a cell cannot be asked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmad.cli import main
from mmad.run.sweep import SweepSpec

SWEEP = Path(__file__).parents[2] / "docs" / "sweeps" / "paper-ablations.toml"


def test_the_grid_says_what_it_is_and_holds_the_oracle_agent_in_four_drawings() -> None:
    """internvl_query.py's --agent_model GT with --agent_notation bbox, contour, highlight or mask."""
    text = " ".join(line.lstrip("# ") for line in SWEEP.read_text().splitlines())
    assert "the paper's analyses" not in text and "not a copy of the paper's ablation tables" in text
    spec = SweepSpec.from_file(SWEEP)
    strategies = {"+".join(s) for s in spec.strategies}
    assert {f"agent:gt:{n}" for n in ("bbox", "contour", "highlight", "mask")} <= strategies
    cells = spec.cells()
    assert len(cells) == 110 and len(spec.skipped) == 2  # the 0-shot expert agent, per model
    assert any(c.name.endswith("0shot_random_agent-gt-mask") for c in cells)  # the oracle needs no template


def test_cells_the_benchmark_cannot_fill_are_skipped_and_named(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The demo's records list 3 templates, so its 4-shot cells cannot be asked: the sweep runs the
    others and names those, instead of refusing the whole grid."""
    out = tmp_path / "sweep"
    args = ["sweep", str(SWEEP), "-d", str(mmad_json), "-m", "random", "--shots", "1", "--shots", "9"]
    args += ["--strategies", "none", "--strategies", "agent:gt:contour", "--similar-templates", "no"]
    assert main([*args, "--set", "limit=6", "--out", str(out), "--no-html"]) == 0
    manifest = json.loads((out / "sweep.json").read_text())
    assert set(manifest["cells"]) == {
        "random_per-question_1shot_random_plain",
        "random_per-question_1shot_random_agent-gt-contour",
    }
    assert set(manifest["skipped"]) == {
        "random_per-question_9shot_random_plain",
        "random_per-question_9shot_random_agent-gt-contour",
    }
    assert all("fewer than 9" in why for why in manifest["skipped"].values())
    assert "skipped random_per-question_9shot_random_plain: --shots 9" in capsys.readouterr().err
