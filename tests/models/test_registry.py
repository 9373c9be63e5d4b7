from pathlib import Path

import pytest

from mmad.errors import UnknownModelError
from mmad.models import registry
from mmad.models.baselines import FixedModel, RandomModel
from mmad.models.openai_api import OpenAICompatibleModel


def test_builtin_names() -> None:
    assert isinstance(registry.create_model("random:7"), RandomModel)
    assert isinstance(registry.create_model("fixed:C"), FixedModel)
    model = registry.create_model("gemini:gemini-1.5-pro")
    assert isinstance(model, OpenAICompatibleModel)
    assert model.base_url.startswith("https://generativelanguage.googleapis.com") and model.key_env == "GEMINI_API_KEY"
    local = registry.create_model("vllm:Qwen/Qwen2.5-VL-7B-Instruct")
    assert local.base_url == "http://127.0.0.1:8000/v1" and local.is_local


def test_unknown_names_list_the_providers() -> None:
    with pytest.raises(UnknownModelError, match=r"unknown model provider 'nope'.*openai.*random"):
        registry.create_model("nope:x")
    with pytest.raises(UnknownModelError, match="names no model"):
        registry.create_model("openai")


def test_plugins_come_from_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    class Plugin:
        name = "myorg"

        @staticmethod
        def load():
            return lambda model_id, options: FixedModel(model_id)

    class Broken:
        name = "broken"

        @staticmethod
        def load():
            raise ImportError("missing dependency")

    monkeypatch.setattr(registry, "entry_points", lambda group: [Plugin(), Broken()] if group == "mmad.models" else [])
    model = registry.create_model("myorg:D")
    assert isinstance(model, FixedModel) and model.letter == "D"
    assert "broken" not in registry.providers()  # a failing plugin is logged and left out


@pytest.mark.parametrize("name", ["random:abc", "random:²", "random:-1", "random:1.5"])
def test_a_random_seed_that_is_not_a_whole_number_is_refused_by_name(name: str) -> None:
    with pytest.raises(UnknownModelError, match=r"random takes a whole-number seed"):
        registry.create_model(name)
    assert isinstance(registry.create_model("random:12"), RandomModel)


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://localhost:8000/v1", True),  # how vLLM's and llama.cpp's docs name it
        ("http://127.0.0.1:8000/v1", True),
        ("http://[::1]:8000/v1", True),
        ("http://gpu-box:8000/v1", False),
        ("https://api.example.com/v1?via=127.0.0.1", False),
        ("http://localhost:8000/v1,http://127.0.0.1:8001/v1", True),
        ("http://localhost:8000/v1,http://gpu-box:8001/v1", False),
    ],
)
def test_a_server_on_this_machine_needs_no_key(url: str, local: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmad.errors import ConfigError

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    model = registry.create_model("compat:x", registry.ModelOptions(base_url=url))
    if local:
        model.check()
    else:
        with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
            model.check()


@pytest.mark.parametrize(
    ("name", "message"),
    [("expert:bogus", "unknown expert mode 'bogus'"), ("hf:", "names no model"), ("vllm-local: ", "names no model")],
)
def test_in_process_names_the_dry_run_accepted_are_refused_by_name(name: str, message: str) -> None:
    with pytest.raises(UnknownModelError, match=message):
        registry.check_model_name(name)  # what --dry-run checks: it builds nothing


@pytest.mark.parametrize(
    ("args", "message"), [('{"size": 448}', "not size"), ('{"image_size": 300}', "multiple of 16")]
)
def test_the_dry_run_refuses_expert_model_args_the_run_would(
    args: str, message: str, mmad_json: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mmad.cli import main

    assert main(["eval", "-m", "expert", "-d", str(mmad_json), "--model-args", args, "--dry-run"]) == 2
    assert message in capsys.readouterr().err
