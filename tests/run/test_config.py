"""One validated config: flat settings, run files and recipes map onto the same sections."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import mmad
from mmad.errors import ConfigError
from mmad.run.config import FLAT_NAMES, SECTIONS, RunConfig


def test_flat_names_reach_every_field_of_every_section() -> None:
    targets = set(FLAT_NAMES.values())
    for section, cls in SECTIONS.items():
        for field in cls.model_fields:
            assert (section, field) in targets, f"{section}.{field} has no flat name"


def test_a_recipe_sits_under_explicit_settings_and_the_run_says_which_were_overridden() -> None:
    config = RunConfig.from_flat("openai:gpt-4o", "data", recipe="gpt4o", max_tokens=64)
    assert config.prompt.protocol.value == "cumulative"
    assert config.decoding.max_tokens == 64 and config.decoding.temperature is None  # left out, as gpt4o.py
    assert config.images.resize == "official" and config.answers.parser == "upstream"
    assert config.overridden == ["decoding.max_tokens"]
    plain = RunConfig.from_flat("openai:gpt-4o", "data", recipe="gpt4o")
    assert plain.overridden == []
    with pytest.raises(ConfigError, match="unknown recipe 'gpt5'; known recipes: gpt4o, gpt4o-mini"):
        RunConfig.from_flat("openai:gpt-4o", "data", recipe="gpt5")


def test_run_files_in_toml_and_json_and_a_runs_own_run_json(tmp_path: Path) -> None:
    toml = tmp_path / "run.toml"
    toml.write_text(
        'model = "random"\ndata = "bench"\nrecipe = "gemini"\n'
        "[prompt]\nshots = 0\n[execution]\nconcurrency = 4\nmax_errors = 0\n"
    )
    config = RunConfig.from_file(toml, concurrency=8)  # a flag on top of the file
    assert config.prompt.shots == 0 and config.execution.concurrency == 8 and config.execution.max_errors == 0
    assert config.prompt.protocol.value == "gemini" and "prompt.shots" in config.overridden
    as_json = tmp_path / "run.json"
    as_json.write_text(json.dumps({"mmad_version": "0", "config": config.model_dump(mode="json")}))
    assert RunConfig.from_file(as_json) == config  # the exact config a run folder recorded runs again
    broken = tmp_path / "broken.toml"
    broken.write_text('model = "random"\ndata = "bench"\n[prompt\nshots = 1\n')
    with pytest.raises(ConfigError, match=r"broken.toml is not valid TOML"):
        RunConfig.from_file(broken)
    missing = tmp_path / "nodata.toml"
    missing.write_text('model = "random"\n')
    with pytest.raises(ConfigError, match="does not say data; add it to the file or give --data"):
        RunConfig.from_file(missing)


def test_the_api_rejects_unknown_settings_by_name() -> None:
    with pytest.raises(ConfigError, match="unknown setting 'shot'; known settings: "):
        mmad.evaluate("random", "data", shot=1)


def test_cot_is_refused_where_the_protocol_has_no_cot_turn() -> None:
    with pytest.raises(ConfigError, match="--strategy cot is not defined for --protocol cumulative"):
        RunConfig.from_flat("random", "data", protocol="cumulative", strategies=["cot"])
