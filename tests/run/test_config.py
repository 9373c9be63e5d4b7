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
    with pytest.raises(ConfigError, match=r"unknown setting 'shot'; did you mean 'shots'\? known settings: "):
        mmad.evaluate("random", "data", shot=1)


def test_cot_is_refused_where_the_protocol_has_no_cot_turn() -> None:
    with pytest.raises(ConfigError, match="--strategies cot is not defined for --protocol cumulative"):
        RunConfig.from_flat("random", "data", protocol="cumulative", strategies=["cot"])


@pytest.mark.parametrize(
    ("model", "settings", "message"),
    [
        ("random", {"ray_actors": 3}, r"--ray-actors applies to the Ray engine only"),
        ("openai:gpt-4o", {"device": "cuda"}, r"--device applies to in-process models .* openai:gpt-4o is asked over"),
        ("fixed:A", {"model_args": {"x": 1}}, r"--model-args applies to in-process models"),
        ("hf:some/model", {"base_url": "http://127.0.0.1:9/v1"}, r"--base-url applies to models behind an HTTP API"),
        ("expert", {"extra_body": {"top_k": 1}}, r"--extra-body applies to models behind an HTTP API"),
        ("vllm-local:some/model", {"device": "cuda:1"}, r"--device would be ignored: vllm-local: reads only"),
        ("expert", {"dtype": "float16"}, r"--dtype would be ignored: expert: reads only device, model_args"),
        # the expert writes no text: decoding settings and letter log-probabilities did nothing, unnoticed
        ("expert", {"max_tokens": 64}, r"--max-tokens would be ignored: expert: reads only device, model_args"),
        ("expert", {"temperature": 0.7}, r"--temperature would be ignored: expert: reads only"),
        ("expert:category", {"likelihood": True}, r"--likelihood would be ignored: expert: reads only"),
        ("random", {"knowledge": "k.json", "strategies": ["cot"]}, r"--knowledge is the domain-knowledge file"),
        ("random", {"similar_templates": True, "shots": 0}, r"--similar-templates chooses which template images"),
    ],
)
def test_the_api_refuses_settings_the_run_would_ignore(model: str, settings: dict[str, object], message: str) -> None:
    flag = message.split(" ", 1)[0]
    # mmad.evaluate names its keywords, not the flags (the settings a message lists too)
    keyword = "^" + flag.removeprefix("--").replace("-", "_")
    with pytest.raises(ConfigError, match=keyword + message.removeprefix(flag)):
        mmad.evaluate(model, "no-such-data", **settings)  # refused before the data is looked at


def test_settings_that_apply_or_are_not_the_users_are_accepted() -> None:
    assert RunConfig.from_flat("hf:org/model", "d", engine="ray", ray_actors=3, ray_gpus=1).execution.ray_actors == 3
    assert RunConfig.from_flat("hf:m", "d", device="cuda", dtype="bfloat16", batch_size=4).connection.device == "cuda"
    assert RunConfig.from_flat("vllm-local:m", "d", model_args={"tensor_parallel_size": 2}).connection.model_args
    assert RunConfig.from_flat("vllm:m", "d", base_url="http://127.0.0.1:9/v1", text_only=True).connection.text_only
    assert RunConfig.from_flat("random", "d", knowledge="k.json", strategies=["rag"]).prompt.knowledge == "k.json"
    # a baseline stands in for any model, and a model that writes text reads the decoding settings
    assert RunConfig.from_flat("random", "d", max_tokens=64, temperature=0.7, likelihood=True).answers.likelihood
    assert RunConfig.from_flat("hf:m", "d", max_tokens=64, likelihood=True).decoding.max_tokens == 64
    # the default value changes nothing, so nothing is ignored
    assert RunConfig.from_flat("random", "d", ray_actors=2, similar_templates=False, shots=0, text_only=False)
    # a recipe's value is not the user's: internvl's processor preset on an API model is no error
    assert RunConfig.from_flat("openai:gpt-4o", "d", recipe="internvl").connection.model_args
    # plugin providers may read any option
    assert RunConfig.from_flat("myplugin:m", "d", device="cuda", base_url="http://127.0.0.1:9/v1")


def test_a_config_file_takes_flat_names_at_the_top_level_and_says_where_a_misplaced_key_belongs(
    tmp_path: Path,
) -> None:
    flat = tmp_path / "flat.toml"
    flat.write_text(
        'model = "vllm:m"\ndata = "bench"\nlimit = 10\nbase_url = "http://127.0.0.1:9/v1"\nimage_size = 256\n'
        "[prompt]\nshots = 0\n"
    )
    config = RunConfig.from_file(flat)
    assert config.selection.limit == 10 and config.connection.base_url == "http://127.0.0.1:9/v1"
    assert config.images.image_size == 256 and config.prompt.shots == 0
    misplaced = tmp_path / "misplaced.toml"
    misplaced.write_text('model = "vllm:m"\ndata = "bench"\n[execution]\nbase_url = "http://127.0.0.1:9/v1"\n')
    with pytest.raises(ConfigError, match=r"execution\.base_url: belongs in \[connection\]; or write it at the top"):
        RunConfig.from_file(misplaced)
    twice = tmp_path / "twice.toml"
    twice.write_text('model = "random"\ndata = "bench"\nlimit = 5\n[selection]\nlimit = 10\n')
    with pytest.raises(ConfigError, match=r"limit is given twice, as limit at the top level and in \[selection\]"):
        RunConfig.from_file(twice)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('model = "random"\ndata = "bench"\nlimt = 5\n')
    with pytest.raises(
        ConfigError, match=r"unknown.toml: 'limt' is not a setting; did you mean 'limit'\? the top level holds model"
    ):
        RunConfig.from_file(unknown)
    ignored = tmp_path / "ignored.json"
    ignored.write_text(json.dumps({"model": "random", "data": "bench", "execution": {"ray_actors": 4}}))
    with pytest.raises(
        ConfigError, match=r"ignored.json: ray_actors applies to the Ray engine only.*or leave ray_actors out"
    ):
        RunConfig.from_file(ignored)


def test_relative_paths_in_a_config_file_are_relative_to_its_folder(tmp_path: Path) -> None:
    folder = tmp_path / "configs"
    folder.mkdir()
    toml = folder / "run.toml"
    toml.write_text(
        'model = "random"\ndata = "../data/MMAD"\nknowledge = "k.json"\nstrategies = ["rag"]\n'
        '[execution]\nprices = "/abs/prices.json"\ncache_dir = "cache"\n'
    )
    config = RunConfig.from_file(toml)
    assert Path(config.data) == folder / "../data/MMAD" and Path(config.prompt.knowledge or "") == folder / "k.json"
    assert config.execution.prices == "/abs/prices.json" and Path(config.execution.cache_dir or "") == folder / "cache"
    # a flag is the user's own path: relative to where they are, as every flag
    assert RunConfig.from_file(toml, data="here").data == "here"
    # a run.json runs again with the paths it recorded
    recorded = RunConfig.from_flat("random", "rel/data")
    run_json = folder / "run.json"
    run_json.write_text(json.dumps({"mmad_version": "0", "config": recorded.model_dump(mode="json")}))
    assert RunConfig.from_file(run_json).data == "rel/data"


def test_a_runs_recorded_settings_are_not_checked_again_but_new_flags_are(tmp_path: Path) -> None:
    # a run recorded before the check (ray_actors on the local engine) still resumes and runs again
    old = RunConfig.from_flat("random", "d", engine="ray", ray_actors=4).model_dump(mode="json")
    old["execution"]["engine"] = "local"
    run_json = tmp_path / "run.json"
    run_json.write_text(json.dumps({"mmad_version": "0", "config": old}))
    assert RunConfig.from_file(run_json).execution.ray_actors == 4
    with pytest.raises(ConfigError, match=r"--device applies to in-process models"):
        RunConfig.from_file(run_json, device="cuda")


def test_the_quickstarts_config_example_is_a_valid_config(tmp_path: Path) -> None:
    text = (Path(__file__).parents[2] / "docs" / "quickstart.md").read_text(encoding="utf-8")
    example = text.split("```toml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "run.toml").write_text(example)
    config = RunConfig.from_file(tmp_path / "run.toml")
    assert config.selection.limit == 500 and config.prompt.strategies == ["rag"]
    assert Path(config.data) == tmp_path / "../data/MMAD"


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("flag.toml", "no_cache = true\n", r"'no_cache' is the flag --no-cache; in a run file write cache = false"),
        ("out.toml", 'out = "runs/x"\n', r"out is not a setting of a run file .*give --out DIR"),
        ("run.yaml", "limit: 3\n", r"a run file is TOML \(.toml\) or JSON .* not .yaml"),
        ("typo.toml", "concurency = 4\n", r"'concurency' is not a setting; did you mean 'concurrency'\?"),
        (
            "section.toml",
            "[prompt]\nshot = 1\n",
            r"prompt.shot: is not a setting of \[prompt\]: did you mean 'shots'\?",
        ),
    ],
)
def test_run_file_mistakes_say_what_to_write(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text('model = "random"\ndata = "data"\n' + text if name.endswith(".toml") else text)
    with pytest.raises(ConfigError, match=message):
        RunConfig.from_file(path)


def test_a_run_file_spells_none_and_a_single_strategy_as_the_flags_do(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text(
        'model = "random"\ndata = "data"\nmax_tokens = "none"\ntemperature = "None"\nstrategies = "rag+cot"\n'
    )
    config = RunConfig.from_file(path)
    assert config.decoding.max_tokens is None and config.decoding.temperature is None
    assert config.prompt.strategies == ["rag", "cot"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("shots = true", r"shots: must be a valid integer \(got True\)"),
        ("[prompt]\nshots = true", r"shots: must be a valid integer \(got True\)"),
        ('limit = "10"', r"limit: must be a valid integer \(got '10'\)"),
        ("concurrency = 2.5", r"concurrency: must be a valid integer \(got 2.5\)"),
        ('circular = "yes"', r"circular: must be a valid boolean \(got 'yes'\)"),
        ("cache = 0", r"cache: must be a valid boolean \(got 0\)"),
        ("temperature = true", r"temperature: must be a valid number \(got True\)"),
    ],
)
def test_a_run_file_value_of_the_wrong_type_is_named_not_converted(tmp_path: Path, text: str, message: str) -> None:
    run_file = tmp_path / "run.toml"
    run_file.write_text(f'model = "random"\ndata = "d"\n{text}\n')
    with pytest.raises(ConfigError, match=rf"run.toml: {message}"):  # the file's key, not a flag it has no part in
        RunConfig.from_file(run_file)


def test_whole_numbers_still_fill_number_settings(tmp_path: Path) -> None:
    run_file = tmp_path / "run.toml"
    run_file.write_text('model = "random"\ndata = "d"\ntimeout_s = 30\ntemperature = 1\nmax_tokens = "none"\n')
    config = RunConfig.from_file(run_file)
    assert config.execution.timeout_s == 30.0 and config.decoding.temperature == 1.0
    assert config.decoding.max_tokens is None


def test_numpy_numbers_from_the_python_api_are_numbers_not_mistakes() -> None:
    """Strict types refuse ``True`` and ``"10"``, but an ``np.int64`` taken from an array is a number."""
    import numpy as np

    config = RunConfig.from_flat(model="random", data="d", shots=np.int64(2), limit=np.int32(5), timeout_s=np.int64(30))
    assert config.prompt.shots == 2 and type(config.prompt.shots) is int
    assert config.execution.timeout_s == 30.0
    with pytest.raises(ConfigError, match="shots"):
        RunConfig.from_flat(model="random", data="d", shots=np.bool_(True))
    with pytest.raises(ConfigError, match="shots"):
        RunConfig.from_flat(model="random", data="d", shots=True)
