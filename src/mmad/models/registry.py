"""Model names of the form ``provider:model``, resolved to backends.

Built in: the OpenAI-compatible presets (``openai:gpt-4o``, ``gemini:gemini-1.5-pro``,
``anthropic:claude-3-5-sonnet-20241022``, ``openrouter:...``, ``vllm:...``, ``sglang:...``,
``ollama:...``, ``lmstudio:...``, ``mmad:...``, ``compat:...`` with a base URL), ``random[:seed]``,
``fixed:<letter>``, ``expert`` / ``expert:category`` (the visual expert), ``hf:<repo or path>`` (transformers) and
``vllm-local:<repo or path>`` (vLLM's in-process engine).
Other packages add providers through the ``mmad.models`` entry-point group; each entry point is a
callable ``(model_id: str, options: ModelOptions) -> Model``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from mmad.errors import UnknownModelError
from mmad.models.base import Model
from mmad.models.presets import PRESETS
from mmad.models.providers import PROVIDERS, unknown_provider

logger = logging.getLogger(__name__)


@dataclass
class ModelOptions:
    """Settings a backend may use; each backend reads the ones that concern it."""

    base_url: str | None = None
    key_env: str | None = None
    detail: str | None = "low"
    extra_body: dict[str, Any] = field(default_factory=dict)
    timeout_s: float = 120.0
    max_connections: int = 64
    text_only: bool = False
    latency_s: float = 0.0
    device: str | None = None
    dtype: str | None = None
    batch_size: int | None = None
    model_args: dict[str, Any] = field(default_factory=dict)


Factory = Callable[[str, ModelOptions], Model]


def _openai_compatible(provider: str) -> Factory:
    def make(model_id: str, options: ModelOptions) -> Model:
        from mmad.models.openai_api import OpenAICompatibleModel

        preset = PRESETS[provider]
        return OpenAICompatibleModel(
            model_id,
            base_url=options.base_url or preset.base_url,
            key_env=options.key_env if options.key_env is not None else preset.key_env,
            key_required=options.key_env is not None,
            provider=provider,
            detail=options.detail,
            extra_body=options.extra_body,
            timeout_s=options.timeout_s,
            max_connections=options.max_connections,
            text_only=options.text_only,
            is_local=preset.is_local or _is_loopback(options.base_url),
        )

    return make


def _is_loopback(url: str | None) -> bool:
    """Whether a base URL points at this machine (a local server needs no key): 127.x, localhost or ::1."""
    from urllib.parse import urlsplit

    def loopback(one: str) -> bool:
        try:
            host = (urlsplit(one.strip()).hostname or "").lower()
        except ValueError:
            return False
        return host == "localhost" or host.endswith(".localhost") or host.startswith("127.") or host == "::1"

    # several replicas are comma-separated: every one of them must be here
    return bool(url) and all(loopback(one) for one in (url or "").split(","))


def _random(model_id: str, options: ModelOptions) -> Model:
    from mmad.models.baselines import RandomModel

    return RandomModel(seed=int(model_id or 0), latency_s=options.latency_s)


def _fixed(model_id: str, options: ModelOptions) -> Model:
    from mmad.models.baselines import FixedModel

    return FixedModel(letter=model_id or "A", latency_s=options.latency_s)


def _expert(model_id: str, options: ModelOptions) -> Model:
    from mmad.models.expert_model import ExpertModel

    model: Model = ExpertModel.from_name(model_id, device=options.device, options=options.model_args)
    return model


def _hf(model_id: str, options: ModelOptions) -> Model:
    from mmad.models.hf import TransformersModel

    model: Model = TransformersModel(
        model_id,
        device=options.device,
        dtype=options.dtype,
        batch_size=options.batch_size or 8,
        processor_kwargs=options.model_args.get("processor_kwargs"),
        model_kwargs={k: v for k, v in options.model_args.items() if k != "processor_kwargs"},
    )
    return model


def _vllm_local(model_id: str, options: ModelOptions) -> Model:
    from mmad.models.hf import dtype_name
    from mmad.models.vllm_local import VLLMModel

    arguments = dict(options.model_args)
    processor = arguments.pop("processor_kwargs", None)
    if processor:  # a recipe's image preset, in vLLM's name for it
        arguments.setdefault("mm_processor_kwargs", processor)
    if options.dtype:
        arguments.setdefault("dtype", dtype_name(options.dtype))
    model: Model = VLLMModel(model_id, batch_size=options.batch_size or 256, **arguments)
    return model


_IN_PROCESS: dict[str, Factory] = {
    "random": _random,
    "fixed": _fixed,
    "expert": _expert,
    "hf": _hf,
    "vllm-local": _vllm_local,
}
# One factory per described provider, in the description's order (`mmad models` lists them so).
BUILTIN: dict[str, Factory] = {
    name: _openai_compatible(name) if info.transport == "http" else _IN_PROCESS[name]
    for name, info in PROVIDERS.items()
}


def providers() -> dict[str, Factory]:
    """Every provider: built-in ones and those other packages register as entry points."""
    found = dict(BUILTIN)
    for entry in entry_points(group="mmad.models"):
        try:
            found[entry.name] = entry.load()
        except Exception:
            logger.warning("the model plugin %r could not be loaded", entry.name, exc_info=True)
    return found


def check_model_name(name: str) -> tuple[Factory, str]:
    """The factory and model id of a ``provider:model`` name; UnknownModelError when the provider is
    unknown or a preset's model is missing. Builds nothing (the dry run checks names with it)."""
    provider, _, model_id = name.partition(":")
    table = providers()
    if provider not in table:
        raise unknown_provider(name, table)
    if provider in PRESETS and not model_id:
        msg = f"{name!r} names no model: write it as {provider}:<model>, e.g. openai:gpt-4o"
        raise UnknownModelError(msg)
    if table[provider] is BUILTIN.get(provider):
        _check_baseline(provider, model_id, name)
    return table[provider], model_id


def _check_baseline(provider: str, model_id: str, name: str) -> None:
    """The baselines' ids are a seed and a letter: anything else would run as their default, unnoticed."""
    from mmad.data.schema import LETTERS

    if provider == "random" and model_id and not (model_id.isascii() and model_id.isdigit()):  # int() refuses '²'
        msg = f"{name!r}: random takes a whole-number seed, e.g. random or random:1 (not {model_id!r})"
        raise UnknownModelError(msg)
    if provider == "fixed" and model_id and (len(model_id) != 1 or model_id.upper() not in LETTERS):
        choices = ", ".join(f"fixed:{letter}" for letter in LETTERS)
        msg = f"{name!r}: fixed answers one option letter, {choices} (not {model_id!r})"
        raise UnknownModelError(msg)
    # the dry run checks names only: these failed at the real run's start, after the dry run said yes
    if provider == "expert" and model_id not in {"", "templates", "category"}:
        msg = (
            f"{name!r}: unknown expert mode {model_id!r}: use expert (fit on each query's templates) or expert:category"
        )
        raise UnknownModelError(msg)
    if provider in {"hf", "vllm-local"} and not model_id.strip():
        example = f"{provider}:Qwen/Qwen2-VL-2B-Instruct"
        msg = f"{name!r} names no model: write {provider}:<Hub id or local folder>, e.g. {example}"
        raise UnknownModelError(msg)


def create_model(name: str, options: ModelOptions | None = None) -> Model:
    """The backend for a ``provider:model`` name."""
    factory, model_id = check_model_name(name)
    return factory(model_id, options or ModelOptions())
