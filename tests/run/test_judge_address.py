"""--judge is built from its name alone: a provider with no address of its own (compat:) is refused with a
line that says why --base-url does not help, before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmad.cli import main
from tests.helpers.serving import running_server


def test_a_judge_whose_provider_has_no_address_is_refused_naming_the_fix(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with running_server() as server:
        command = ["eval", "-m", "compat:random", "--base-url", server.base_url, "-d", str(mmad_json), "--limit", "3"]
        code = main([*command, "--judge", "compat:judge", "--out", str(tmp_path / "run"), "--no-cache"])
        assert server.stats.requests == 0
    err = capsys.readouterr().err
    assert code == 2
    # --base-url was given (the model's): the line must not send the user back to it
    assert "--judge compat:judge" in err and "not the judge's" in err and "pass --base-url" not in err
    assert "vllm:" in err and "mmad:" in err  # providers the judge can be named by
    assert not (tmp_path / "run" / "run.json").exists()
