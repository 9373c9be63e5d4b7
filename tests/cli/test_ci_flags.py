"""--samples or --seed without --ci is one usage error in every command that takes them, naming its own help."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmad.cli import main


@pytest.mark.parametrize("command", ["score", "report", "leaderboard", "sweep"])
@pytest.mark.parametrize("flag", [["--samples", "500"], ["--seed", "3"]])
def test_samples_or_seed_without_ci_is_the_same_usage_error_everywhere(
    command: str, flag: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    # the flags are checked before the path is read: no run is needed to meet the error
    assert main([command, str(tmp_path / "missing"), *flag]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "error: Invalid value for --samples/--seed: they set the --ci bootstrap, which runs only with --ci; "
        f"add --ci (see 'mmad {command} --help')"
    )
