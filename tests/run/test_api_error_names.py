"""A bad value is named as the caller wrote it: a keyword of mmad.evaluate or a sweep's key alone, a flag on the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

import mmad
from mmad.errors import ConfigError
from mmad.run.sweep import SweepSpec


def test_evaluate_names_the_keyword_not_a_flag(tmp_path: Path) -> None:
    """mmad.evaluate(shots="x") said 'shots (--shots)': a script has no flag to look for."""
    with pytest.raises(ConfigError, match=r"^shots: must be a valid integer \(got 'x'\)$"):
        mmad.evaluate("random", tmp_path, shots="x")  # type: ignore[arg-type]
    # a check across settings says the keywords too; it named --perturb and --original-images, and --images
    with pytest.raises(ConfigError) as refused:
        mmad.evaluate("random", tmp_path, perturb="blur=2", original_images=True)
    assert str(refused.value) == (
        "[images]: perturb changes the query images' pixels, so their files' own bytes cannot be sent; "
        "leave original_images out (or perturb)"
    )
    with pytest.raises(ConfigError) as refused:
        mmad.evaluate("random", tmp_path, answer_from="likelihood", protocol="cumulative")
    assert "--" not in str(refused.value) and "answer_from likelihood needs the per-question protocol" in str(
        refused.value
    )


def test_a_sweep_cell_names_its_key_not_a_flag() -> None:
    grid = {"data": "d", "models": ["random"], "settings": {"limit": "x"}}
    with pytest.raises(ConfigError, match=r"sweep cell random_per-question_1shot_random_plain: limit: must be a valid"):
        SweepSpec.parse(grid).cells()


def test_the_cli_keeps_the_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mmad.cli import main

    capsys.readouterr()
    assert main(["eval", "-m", "random", "-d", str(tmp_path), "--perturb", "blur=2", "--original-images"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "[images]: --perturb changes the query images' pixels" in err and "leave --original-images out" in err
