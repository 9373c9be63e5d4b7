"""Providers are described once: the registry, prices, presets, unused-setting checks and `mmad models` read it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmad.cli import main
from mmad.errors import UnknownModelError
from mmad.models.presets import PRESETS
from mmad.models.prices import price_for
from mmad.models.providers import BACKEND_SETTINGS, PROVIDERS, plugin_info, provider_info
from mmad.models.registry import BUILTIN


def test_every_registered_provider_has_exactly_one_description() -> None:
    assert list(BUILTIN) == list(PROVIDERS)
    assert set(PRESETS) == {name for name, info in PROVIDERS.items() if info.transport == "http"}
    for name, info in PROVIDERS.items():
        assert info.name == name and info.description
        assert info.reads is not None and info.reads <= set(BACKEND_SETTINGS), name
        # free means free: the price table's answer for an unlisted model of it follows the description
        assert (price_for(f"{name}:some-unlisted-model", {}) == (0.0, 0.0)) is info.free, name


def test_mmad_models_lists_exactly_the_described_providers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert list(payload["providers"]) == list(PROVIDERS)
    assert [*payload["api"], *payload["in_process"]] == list(PROVIDERS)
    assert payload["providers"]["hf"] == {
        "transport": "transformers",
        "in_process": True,
        "free": True,
        "reads": sorted(PROVIDERS["hf"].reads or ()),
        "extra": "hf",
        "description": PROVIDERS["hf"].description,
    }
    assert main(["models"]) == 0
    table = capsys.readouterr().out
    shown = {line.split("│")[1].strip() for line in table.splitlines() if line.count("│") >= 3}
    assert set(PROVIDERS) <= shown


@pytest.mark.parametrize(
    ("model", "setting", "honoured"),
    [
        ("openai:gpt-4o", "image_size", True),
        ("openai:gpt-4o", "images.image_size", True),
        ("openai:gpt-4o", "device", False),
        ("hf:Qwen/Qwen2-VL-2B-Instruct", "image_size", False),  # the processor sizes the file it loads
        ("hf:Qwen/Qwen2-VL-2B-Instruct", "detail", False),
        ("hf:Qwen/Qwen2-VL-2B-Instruct", "device", True),
        ("vllm-local:Qwen/Qwen2-VL-2B-Instruct", "images.size", False),
        ("vllm-local:Qwen/Qwen2-VL-2B-Instruct", "device", False),
        ("vllm-local:Qwen/Qwen2-VL-2B-Instruct", "temperature", True),
        ("expert", "model_args", True),
        ("expert", "temperature", False),
        ("random", "base_url", False),
        ("random", "prompt.shots", True),  # the engine's, for every backend
    ],
)
def test_a_provider_says_which_settings_it_honours(model: str, setting: str, honoured: bool) -> None:
    assert provider_info(model).honours(setting) is honoured


def test_a_plugin_may_read_anything_and_an_unknown_provider_is_named() -> None:
    assert plugin_info("mine").honours("image_size") and not plugin_info("mine").free
    with pytest.raises(UnknownModelError, match=r"unknown model provider 'nosuch' in 'nosuch:x'; known providers: "):
        provider_info("nosuch:x")


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("randon", "did you mean 'random'?"),
        ("opnai:gpt-4o", "did you mean 'openai:gpt-4o'?"),
        ("Expert:category", "did you mean 'expert:category'?"),
        ("gpt-4o", "a model is named PROVIDER:MODEL, e.g. openai:gpt-4o or vllm:gpt-4o"),
    ],
)
def test_a_mistyped_provider_is_answered_with_the_name_meant(name: str, hint: str) -> None:
    from mmad.models.registry import check_model_name

    # both places that refuse an unknown provider (the settings check and the registry) say the same
    for check in (provider_info, check_model_name):
        with pytest.raises(UnknownModelError) as refused:
            check(name)
        assert str(refused.value).startswith(f"unknown model provider {name.partition(':')[0]!r} in {name!r}; known")
        assert str(refused.value).endswith(hint)


def test_the_docs_in_process_commands_pass_the_settings_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # docs/local-models.md opened with `-m hf:... --image-size 0 --detail none`, which the unused-setting check
    # refuses (hf: reads the image files itself): a new user's first command failed
    import shlex

    from tests.helpers.mmad_tree import make_mmad_tree

    tree = make_mmad_tree(tmp_path / "mmad", per_group=1)
    text = (Path(__file__).parents[2] / "docs" / "local-models.md").read_text(encoding="utf-8").replace("\\\n", " ")
    commands = [line for line in text.splitlines() if line.startswith(("mmad eval -m hf:", "mmad eval -m vllm-local:"))]
    assert commands
    for line in commands:
        args = shlex.split(line)[1:]
        args[args.index("-d") + 1] = str(tree)
        assert main([*args, "--dry-run", "-o", str(tmp_path / "run")]) == 0, (line, capsys.readouterr().err)
