"""Checks made before a run or a sweep cell starts: a setting that could only give nothing is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmad.cli import main
from mmad.run.sweep import SweepSpec, preflight_cells


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--shots", "0"], "-m expert with --shots 0: the visual expert compares the query with template images"),
        (["--blind"], "-m expert with --blind: the visual expert looks only at the images"),
    ],
)
def test_the_expert_without_templates_is_refused_before_it_declines_everything(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    """It would decline every question and the run would end "complete", exit 0, with a table of dashes."""
    out = tmp_path / "run"
    for dry in ([], ["--dry-run"]):
        code = main(["eval", "-m", "expert", "-d", str(mmad_json), "--out", str(out), "--no-cache", *flags, *dry])
        err = " ".join(capsys.readouterr().err.split())
        assert code == 2 and message in err and "Traceback" not in err, err
        assert not out.exists()


def test_a_sweep_skips_the_expert_cell_without_templates_and_names_why(mmad_json: Path) -> None:
    spec = SweepSpec.parse({"data": str(mmad_json), "models": ["random", "expert"], "shots": [0, 1]})
    skipped = preflight_cells(spec.cells())
    assert list(skipped) == ["expert_per-question_0shot_random_plain"]
    assert "use --shots 1 or more" in skipped["expert_per-question_0shot_random_plain"]


@pytest.mark.parametrize("strategy", ["agent:expert:bbox", "agent:gt:contour", "rag+agent:expert:heatmap"])
def test_blind_with_the_agent_strategy_is_refused_naming_both_flags(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], strategy: str
) -> None:
    """Blind, the agent's expert picture is never sent: the run would be labelled Agent for a text-only prompt."""
    out = tmp_path / "run"
    for dry in ([], ["--dry-run"]):
        args = ["eval", "-m", "random:1", "-d", str(mmad_json), "--out", str(out), "--no-cache", "--blind"]
        code = main([*args, "--strategies", strategy, *dry])
        err = " ".join(capsys.readouterr().err.split())
        assert code == 2 and "Traceback" not in err, err
        assert "--blind with --strategies agent:" in err and "leave --blind out, or drop the agent strategy" in err
        assert not out.exists()
