"""The judge's name: a provider with no address of its own (compat:) and no --judge-base-url is refused with a
line that says why --base-url does not help; a blank --judge or --solver is refused, not run without one; and
before anything is written (test_judge_base_url.py: the judge at its own address)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmad.cli import main
from mmad.run.manifest import read_manifest
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


@pytest.mark.parametrize("flag", ["--judge=", "--judge= openai:gpt-4o-mini", "--solver="])
def test_a_blank_judge_or_solver_is_refused_not_run_without_it(
    flag: str, mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # --judge "$JUDGE" with JUDGE unset ran without a judge, and its card (judge "") ranked it apart
    command = ["eval", "-m", "random", "-d", str(mmad_json), "--limit", "3", "--no-cache"]
    assert main([*command, flag, "--out", str(tmp_path / "run")]) == 2
    name = flag.split("=")[0]
    assert f"({name}): must name" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_run_that_recorded_a_blank_judge_stays_readable(mmad_json: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main(["eval", "-m", "random", "-d", str(mmad_json), "--limit", "3", "--no-cache", "--out", str(run)]) == 0
    raw = json.loads((run / "run.json").read_text())
    raw["config"]["answers"].update(judge="", solver="")  # as an older mmad recorded --judge ""
    (run / "run.json").write_text(json.dumps(raw))
    answers = read_manifest(run).config.answers
    assert (answers.judge, answers.solver) == (None, None)  # it ran without either
    assert main(["score", str(run), "--no-plot"]) == 0


def test_a_judge_named_without_a_provider_is_refused_saying_it_is_the_judge(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same error as -m gpt-4o-mini gets, but about the judge: the model's own name was right."""
    import mmad
    from mmad.errors import ConfigError

    out = tmp_path / "run"
    args = ["eval", "-m", "random", "-d", str(mmad_json), "--judge", "gpt-4o-mini", "--out", str(out)]
    assert main(args) == 2
    assert "--judge gpt-4o-mini: unknown model provider 'gpt-4o-mini'" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(ConfigError, match=r"^judge gpt-4o-mini: unknown model provider") as caught:
        mmad.evaluate("random", mmad_json, judge="gpt-4o-mini", out=out, limit=2)
    assert "--judge" not in str(caught.value)
