"""A bad value is named as the caller wrote it: a keyword of mmad.evaluate or a sweep's key alone, a flag on the CLI."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

import mmad
from mmad.errors import ConfigError
from mmad.run.sweep import SweepSpec
from tests.helpers.mmad_tree import make_mmad_tree


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


# A check across settings, as mmad.evaluate and as the CLI say it: the keywords, and the same words with flags.
# Some are refused as the config is made (settings the run would ignore), the others as the run starts.
CROSS_SETTING = [
    pytest.param(
        "random",
        {"ray_actors": 3},
        ["--ray-actors", "3"],
        "add engine ray, or leave ray_actors out",
        "add --engine ray, or leave --ray-actors out",
        id="unused-ray",
    ),
    pytest.param(
        "random",
        {"seed": 5},
        ["--seed", "5"],
        "this run has no limit (it asks every selected question), so it would be ignored; add limit N",
        "this run has no --limit (it asks every selected question), so it would be ignored; add --limit N",
        id="unused-seed",
    ),
    pytest.param(
        "random",
        {"similar_templates": True, "shots": 0},
        ["--similar-templates", "--shots", "0"],
        "but shots is 0, so no template is shown and it would be ignored; give shots 1 (or more)",
        "but --shots is 0, so no template is shown and it would be ignored; give --shots 1 (or more)",
        id="unused-templates",
    ),
    pytest.param(
        "random",
        {"text_only": True},
        ["--text-only"],
        "leave text_only out, or serve the model and use e.g. model vllm:NAME base_url URL",
        "leave --text-only out, or serve the model and use e.g. -m vllm:NAME --base-url URL",
        id="unused-api-setting",
    ),
    pytest.param(
        "vllm-local:m",
        {"device": "cuda:1"},
        ["--device", "cuda:1"],
        "reads only dtype, batch_size, model_args (vLLM places the model itself: choose GPUs with "
        "CUDA_VISIBLE_DEVICES or model_args '{\"tensor_parallel_size\": N}'); leave device out",
        "reads only --dtype, --batch-size, --model-args (vLLM places the model itself: choose GPUs with "
        "CUDA_VISIBLE_DEVICES or --model-args '{\"tensor_parallel_size\": N}'); leave --device out",
        id="unused-device",
    ),
    pytest.param(
        "random",
        {"knowledge": "k.json"},
        ["--knowledge", "k.json"],
        "but this run has neither, so it would be ignored; add strategies rag, or leave knowledge out",
        "but this run has neither, so it would be ignored; add --strategies rag, or leave --knowledge out",
        id="unused-knowledge",
    ),
    pytest.param(
        "random",
        {"max_turns": 3},
        ["--max-turns", "3"],
        "so it would be ignored; add strategies tools, or leave max_turns out",
        "so it would be ignored; add --strategies tools, or leave --max-turns out",
        id="unused-tools-setting",
    ),
    pytest.param(
        "expert",
        {"max_tokens": 64},
        ["--max-tokens", "64"],
        "max_tokens would be ignored: expert: reads only device, model_args (it writes no text); leave max_tokens out",
        "--max-tokens would be ignored: expert: reads only --device, --model-args (it writes no text); "
        "leave --max-tokens out",
        id="unused-decoding",
    ),
    pytest.param(
        "random",
        {"recipe": "gpt4o", "solver": "cot"},
        ["--recipe", "gpt4o", "--solver", "cot"],
        "solver cot asks the cot strategy's chain-of-thought turn, which protocol cumulative does not have: "
        "add strategies cot with protocol per-question or per-image, or leave solver out",
        "--solver cot asks the cot strategy's chain-of-thought turn, which --protocol cumulative does not have: "
        "add --strategies cot with --protocol per-question or per-image, or leave --solver out",
        id="solver",
    ),
    pytest.param(
        "random",
        {"strategies": ["tools"], "protocol": "per-image"},
        ["--strategies", "tools", "--protocol", "per-image"],
        "strategies tools asks one question per request: use another protocol than per-image",
        "--strategies tools asks one question per request: use another --protocol than per-image",
        id="tools-protocol",
    ),
    pytest.param(
        "random",
        {"perturb": "blur=2", "strategies": ["tools"]},
        ["--perturb", "blur=2", "--strategies", "tools"],
        "perturb with strategies tools: its images are made from the clean query file",
        "--perturb with --strategies tools: its images are made from the clean query file",
        id="perturb",
    ),
    pytest.param(
        "expert",
        {"blind": True},
        ["--blind"],
        "model expert with blind: the visual expert looks only at the images, so it would decline every "
        "question; leave blind out",
        "-m expert with --blind: the visual expert looks only at the images, so it would decline every "
        "question; leave --blind out",
        id="expert-blind",
    ),
    pytest.param(
        "random",
        {"shots": 9},
        ["--shots", "9"],
        "the most any of them has is 3); choose shots 3 or fewer",
        "the most any of them has is 3); choose --shots 3 or fewer",
        id="shots",
    ),
    pytest.param(
        "random",
        {"datasets": ["Nowhere"]},
        ["--datasets", "Nowhere"],
        "datasets Nowhere is not in this benchmark",
        "--datasets Nowhere is not in this benchmark",
        id="datasets",
    ),
    pytest.param(
        "random",
        {"subset": "official-debug"},
        ["--subset", "official-debug"],
        # the official scripts' own --debug is theirs, not a setting of mmad's: it stays
        "subset official-debug samples 1,600 images as the official scripts' --debug does; "
        "this benchmark has 20 (the scripts would stop with ValueError); use limit instead",
        "--subset official-debug samples 1,600 images as the official scripts' --debug does; "
        "this benchmark has 20 (the scripts would stop with ValueError); use --limit instead",
        id="subset",
    ),
]


def _flags_in(message: str) -> list[str]:
    """The mmad flags a message names (the official scripts' --debug is not one)."""
    return [f for f in re.findall(r"(?<![\w-])(-m|--[a-z][\w-]*)(?![\w-])", message) if f != "--debug"]


@pytest.mark.parametrize(("model", "settings", "flags", "said", "said_by_flags"), CROSS_SETTING)
def test_evaluate_says_a_check_across_settings_in_keywords(
    tmp_path: Path, model: str, settings: dict[str, Any], flags: list[str], said: str, said_by_flags: str
) -> None:
    """A cross-setting mistake named the flags (--perturb, add --engine ray) to a script, which has none."""
    data = make_mmad_tree(tmp_path / "data")
    with pytest.raises(ConfigError) as refused:
        mmad.evaluate(model, data, out=tmp_path / "run", cache=False, **settings)
    message = str(refused.value)
    assert said in message and _flags_in(message) == [], message


@pytest.mark.parametrize(("model", "settings", "flags", "said", "said_by_flags"), CROSS_SETTING)
def test_the_cli_says_the_same_check_with_its_flags(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    model: str,
    settings: dict[str, Any],
    flags: list[str],
    said: str,
    said_by_flags: str,
) -> None:
    from mmad.cli import main

    data = make_mmad_tree(tmp_path / "data")
    capsys.readouterr()
    argv = ["eval", "-m", model, "-d", str(data), "--out", str(tmp_path / "run"), "--no-cache", *flags]
    assert main(argv) == 2
    assert said_by_flags in " ".join(capsys.readouterr().err.split())


def test_a_run_file_says_its_keys_and_a_flag_beside_it_keeps_its_flag(tmp_path: Path) -> None:
    """A run file's setting is refused in its keys, the fix too; one typed as a flag on top keeps the flag."""
    from mmad.run.config import RunConfig

    run_file = tmp_path / "run.toml"
    run_file.write_text('model = "random"\ndata = "bench"\nsimilar_templates = true\nshots = 0\n')
    with pytest.raises(ConfigError) as refused:
        RunConfig.from_file(run_file)
    assert str(refused.value).endswith(
        "but shots is 0, so no template is shown and it would be ignored; "
        "give shots 1 (or more), or leave similar_templates out"
    )
    run_file.write_text('model = "random"\ndata = "bench"\nsimilar_templates = true\n')
    with pytest.raises(ConfigError) as refused:
        RunConfig.from_file(run_file, shots=0)  # --shots 0 on the command line, beside the file
    assert "but --shots is 0" in str(refused.value) and "give --shots 1 (or more), or leave similar_templates out" in (
        str(refused.value)
    )


def test_evaluate_names_out_as_its_keyword(tmp_path: Path) -> None:
    from mmad.errors import RunError

    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    with pytest.raises(RunError, match=r"is not an empty folder or a run; choose another folder$"):
        mmad.evaluate("random", make_mmad_tree(tmp_path / "data"), out=taken, cache=False)


def test_mmad_eval_with_a_run_file_says_its_keys_as_the_run_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A check the run makes as it starts (not as the config is made) said --perturb for a run file's key."""
    from mmad.cli import main

    data = make_mmad_tree(tmp_path / "data")
    run_file = tmp_path / "run.toml"
    run_file.write_text(f'model = "random"\ndata = "{data.as_posix()}"\nperturb = "blur=2"\nstrategies = ["tools"]\n')
    capsys.readouterr()
    assert main(["eval", "--config", str(run_file), "--out", str(tmp_path / "a"), "--no-cache"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "perturb with strategies tools: its images are made from the clean query file" in err
    assert "run perturb without it" in err and _flags_in(err.replace("--no-cache", "")) == [], err
    # a setting typed as a flag beside the file keeps its flag
    run_file.write_text(f'model = "random"\ndata = "{data.as_posix()}"\nperturb = "blur=2"\n')
    argv = ["eval", "--config", str(run_file), "--strategies", "tools", "--out", str(tmp_path / "b"), "--no-cache"]
    assert main(argv) == 2
    assert "perturb with --strategies tools: its images" in " ".join(capsys.readouterr().err.split())
