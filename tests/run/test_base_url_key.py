"""A key pasted into --base-url is refused before anything is written (run.json, the model's description and
the cache key would keep it); a run.json an older mmad wrote with one still reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmad.cli import main
from mmad.errors import ConfigError
from mmad.run.config import RunConfig
from mmad.run.folder import open_run

SECRET = "sk-proj-4f9a2b7c1d0e5f6a7b8c9d0e"


@pytest.mark.parametrize("url", [f"http://127.0.0.1:9/v1?api_key={SECRET}", f"https://{SECRET}@example.com/v1"])
def test_a_key_in_the_base_url_is_refused_without_showing_it(
    url: str, mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    code = main(["eval", "-m", "compat:m", "--base-url", url, "-d", str(mmad_json), "--out", str(out), "--limit", "2"])
    said = capsys.readouterr()
    assert code == 2 and "holds an API key" in said.err
    assert SECRET not in said.err + said.out and not out.exists()
    with pytest.raises(ConfigError, match="holds an API key") as caught:
        RunConfig.from_flat("compat:m", str(mmad_json), base_url=url, by_name=True)
    assert SECRET not in str(caught.value)


def test_a_recorded_run_with_a_key_in_its_url_still_reads(mmad_json: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["eval", "-m", "random", "-d", str(mmad_json), "--out", str(out), "--limit", "2", "--no-cache"]) == 0
    meta = json.loads((out / "run.json").read_text())
    meta["config"]["connection"]["base_url"] = f"http://127.0.0.1:9/v1?api_key={SECRET}"  # an older mmad's
    (out / "run.json").write_text(json.dumps(meta))
    run = open_run(out)
    assert run.config.connection.base_url is not None and run.completeness.complete
