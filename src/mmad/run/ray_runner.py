"""The Ray engine's first stage and its choice of asker: an actor pool, or Ray Data LLM for vllm-local.

The driver prepares the run as a local run does (same selection, plan, checks and run folder),
except that an in-process model (``hf:``, ``vllm-local:``, ``expert``) is never loaded on the
driver: a stand-in describes it, and the actors (or Ray Data LLM's replicas) load the real one
on the GPUs Ray gives them.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmad.errors import ConfigError, MissingExtraError, PermanentError
from mmad.models.base import Completion, Model, Request
from mmad.models.providers import PROVIDERS
from mmad.run.config import RunConfig
from mmad.run.ledger import EngineStats, Scheduler
from mmad.run.prepare import PreparedRun, prepare
from mmad.run.ray_session import check_ray_address, import_ray

IN_PROCESS = frozenset(name for name, info in PROVIDERS.items() if info.in_process)
"""Providers whose model lives in the asking process: built on the actors, never on the driver."""


class ActorModel(Model):
    """The driver's stand-in for a model that only the Ray actors load."""

    def __init__(self, config: RunConfig) -> None:
        self.name = config.model
        self.endpoint = "ray"

    async def generate(self, request: Request) -> Completion:
        """Never called: the actors ask."""
        msg = f"{self.name} runs on the Ray actors, not on the driver"
        raise PermanentError(msg, error_class="internal")

    def describe(self) -> dict[str, Any]:
        """Until an actor has built the model: its name and where it runs."""
        return {"name": self.name, "endpoint": "ray actors"}


def provider_of(config: RunConfig) -> str:
    """The provider part of ``provider:model``."""
    return config.model.partition(":")[0]


def check_ray_config(config: RunConfig) -> None:
    """What the Ray engine cannot do with this config, said before anything is written."""
    import_ray()
    if provider_of(config) != "vllm-local":
        return
    if importlib.util.find_spec("vllm") is None:
        feature = "vllm-local on the Ray engine (Ray Data LLM)"
        raise MissingExtraError(feature, "ray-llm", "ray[llm] (vLLM and transformers, CUDA GPUs)")
    if "cot" in config.prompt.strategies:
        msg = (
            "--strategies cot asks a chain-of-thought turn before each question, which Ray Data LLM's one-pass "
            "batches cannot do; run it with `vllm serve` and -m vllm:MODEL --engine ray instead"
        )
        raise ConfigError(msg)
    if "tools" in config.prompt.strategies or config.answers.solver not in {None, "plain"}:
        what = "--strategies tools" if "tools" in config.prompt.strategies else f"--solver {config.answers.solver}"
        msg = (
            f"{what} may ask several turns per question, which Ray Data LLM's one-pass batches cannot do; "
            "run it with `vllm serve` and -m vllm:MODEL --engine ray instead"
        )
        raise ConfigError(msg)


def prepare_on_ray(
    config: RunConfig,
    *,
    out: str | Path | None = None,
    resume: bool = False,
    model: Model | None = None,
    judge: Model | None = None,
) -> PreparedRun:
    """Stage one for the Ray engine: `prepare`, with a stand-in for models that only actors load."""
    check_ray_config(config)
    if not import_ray().is_initialized():  # a dead address is named before the run folder is made
        check_ray_address(config.execution.ray_address or os.environ.get("RAY_ADDRESS"))
    if model is None and provider_of(config) in IN_PROCESS:
        model = ActorModel(config)
    return prepare(config, out=out, resume=resume, model=model, judge=judge)


def make_ray_engine(
    prepared: PreparedRun,
    on_progress: Callable[[EngineStats], None] | None = None,
    *,
    model: Model | None = None,
    judge: Model | None = None,
) -> Scheduler:
    """The asker of a prepared Ray run; `model` and `judge` are objects the caller gave (sent to the actors)."""
    from mmad.run.runner import engine_settings

    config = prepared.config
    execution = config.execution
    if provider_of(config) == "vllm-local" and model is None:
        from mmad.run.ray_vllm import VLLMDataEngine

        engine: Scheduler = VLLMDataEngine(prepared, engine_settings(prepared), on_progress=on_progress)
    else:
        from mmad.run.ray_engine import RayEngine

        engine = RayEngine(
            prepared,
            engine_settings(prepared),
            actors=execution.ray_actors,
            gpus=execution.ray_gpus,
            address=execution.ray_address,
            model=model,
            judge=judge,
            describe_from_actors=isinstance(prepared.model, ActorModel),
            on_progress=on_progress,
        )
    engine.wanted = prepared.wanted
    return engine
