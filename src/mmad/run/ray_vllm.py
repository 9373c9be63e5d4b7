"""``-m vllm-local:MODEL --engine ray``: vLLM replicas across a Ray cluster through Ray Data LLM.

The driver turns the plan into a Ray Dataset of prompts (each row a prompt's JSON: image paths,
not pixels) and runs it through ``ray.data.llm.build_processor`` with a
``vLLMEngineProcessorConfig`` (Ray 2.60). The preprocess step, on Ray's workers, reads the images
(original bytes, as the in-process backend sends them) into an OpenAI-style conversation and the
sampling parameters; Ray Data LLM's stages parse the images (``prepare_multimodal_stage``), apply
the chat template, tokenize, generate on vLLM replicas and detokenize; the postprocess step keeps
the reply, the token counts and the first step's letter log-probabilities. Rows stream back to
the driver, which parses them with the local engine's code and appends records as they arrive.

Settings: ``--ray-actors`` is the number of vLLM replicas (Ray Data's ``concurrency``), each on
``tensor_parallel_size × pipeline_parallel_size`` GPUs (from ``--model-args``), ``--batch-size``
the rows per batch. ``--model-args`` keys of the processor rather than the engine
(``accelerator_type``, ``max_concurrent_batches``, ``max_pending_requests``,
``chat_template_content_format``) are moved to it.

The output row fields read here are those of Ray 2.60's ``vLLMOutputData`` and the vLLM stage
(``generated_text``, ``num_input_tokens``, ``num_generated_tokens``, ``logprobs`` as a list of
``{token_id: {"logprob", "rank", "decoded_token"}}``, ``time_taken_llm``, ``__inference_error__``).
Not done here: the response cache, and the chain-of-thought strategy (two turns per image).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

from mmad.errors import RunError
from mmad.models.base import Completion, Request
from mmad.models.openai_convert import letters_from_tokens
from mmad.protocol.images import ImageEncoder
from mmad.protocol.messages import Prompt
from mmad.records.record import Status
from mmad.run.caller import add_usage, note_answer
from mmad.run.config import RunConfig
from mmad.run.ledger import (
    EngineSettings,
    EngineStats,
    Ledger,
    PlanFailure,
    Scheduler,
    Work,
    aiter_of,
    plan_failure_records,
)
from mmad.run.prepare import PreparedRun
from mmad.run.ray_session import ray_session
from mmad.run.secrets import redact
from mmad.run.solving import JudgeBooks, make_solver
from mmad.solvers import Reply, Solver, question_record

logger = logging.getLogger(__name__)

TOP_LOGPROBS = 20
PROCESSOR_KEYS = ("accelerator_type", "max_concurrent_batches", "max_pending_requests")
"""--model-args keys that configure Ray Data LLM's processor, not the vLLM engine."""

ProcessorBuilder = Callable[[dict[str, Any], Callable[..., Any], Callable[..., Any]], Callable[[Any], Any]]
"""(vLLMEngineProcessorConfig's arguments, preprocess, postprocess) -> a processor (Dataset -> Dataset)."""


def model_id_of(config: RunConfig) -> str:
    """The model repo or path of ``vllm-local:MODEL``."""
    return config.model.partition(":")[2]


def processor_arguments(config: RunConfig) -> dict[str, Any]:
    """The keyword arguments of ``ray.data.llm.vLLMEngineProcessorConfig`` for a run."""
    from mmad.models.hf import dtype_name

    engine = dict(config.connection.model_args)
    processor = {key: engine.pop(key) for key in PROCESSOR_KEYS if key in engine}
    content_format = engine.pop("chat_template_content_format", "string")
    image_preset = engine.pop("processor_kwargs", None)
    if image_preset:  # a recipe's image preset, in vLLM's name for it (as the in-process backend does)
        engine.setdefault("mm_processor_kwargs", image_preset)
    if config.connection.dtype:
        engine.setdefault("dtype", dtype_name(config.connection.dtype))
    engine.setdefault("limit_mm_per_prompt", {"image": 8})
    model_config = {"limit_mm_per_prompt": engine["limit_mm_per_prompt"]}
    if engine.get("trust_remote_code"):
        model_config["trust_remote_code"] = True
    return {
        "model_source": model_id_of(config),
        "engine_kwargs": engine,
        "concurrency": config.execution.ray_actors,
        "batch_size": config.connection.batch_size or 32,
        "should_continue_on_error": True,  # a bad row becomes an error record, not the end of the run
        "prepare_multimodal_stage": {
            "enabled": True,
            "model_config_kwargs": model_config,
            "chat_template_content_format": content_format,
        },
        "chat_template_stage": True,
        "tokenize_stage": True,
        "detokenize_stage": True,
        **processor,
    }


def preprocess_row(
    row: dict[str, Any], *, temperature: float | None, want_logprobs: bool, mm_processor_kwargs: dict[str, Any]
) -> dict[str, Any]:
    """A dataset row (a prompt's JSON) as Ray Data LLM's input: messages, sampling parameters (on a worker)."""
    from mmad.models.vllm_local import ORIGINAL_IMAGES, sampling_arguments, to_vllm_conversation

    prompt = Prompt.model_validate_json(row["mmad_prompt"])
    request = Request(
        messages=prompt.messages,
        max_tokens=prompt.max_tokens,
        temperature=temperature,
        want_logprobs=want_logprobs,
    )
    out: dict[str, Any] = {
        "messages": to_vllm_conversation(request, ImageEncoder(ORIGINAL_IMAGES)),
        "sampling_params": sampling_arguments(request, top_logprobs=TOP_LOGPROBS),
    }
    if mm_processor_kwargs:
        out["mm_processor_kwargs"] = mm_processor_kwargs
    return out


def _plain(value: Any) -> Any:
    """A column value as Python lists and dicts (Ray Data may hand over numpy arrays or Arrow map pairs)."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    return value


def _step_entries(step: Any) -> Iterable[Any]:
    step = _plain(step)
    if isinstance(step, dict):
        return list(step.values())
    if isinstance(step, list):  # an Arrow map comes back as (key, value) pairs
        return [entry[1] if isinstance(entry, (tuple, list)) and len(entry) == 2 else entry for entry in step]
    return []


def first_step_letters(logprobs: Any) -> dict[str, float] | None:
    """Letter log-probabilities among the first generated position's alternatives of an output row."""
    steps = _plain(logprobs)
    if not steps:
        return None
    pairs = []
    for entry in _step_entries(steps[0]):
        entry = _plain(entry)
        if isinstance(entry, dict):
            value = entry.get("logprob")
            pairs.append((str(entry.get("decoded_token") or ""), -math.inf if value is None else float(value)))
    return letters_from_tokens(pairs)


def postprocess_row(row: dict[str, Any]) -> dict[str, Any]:
    """Ray Data LLM's output row reduced to what the driver needs (on a worker)."""
    letters = first_step_letters(row.get("logprobs"))
    return {
        "mmad_index": int(row["mmad_index"]),
        "generated_text": str(row.get("generated_text") or ""),
        "num_input_tokens": int(row.get("num_input_tokens") or 0),
        "num_generated_tokens": int(row.get("num_generated_tokens") or 0),
        "letter_logprobs": json.dumps(letters) if letters else "",
        "time_taken_llm": float(row.get("time_taken_llm") or 0.0),
    }


def completion_from_row(row: dict[str, Any]) -> Completion:
    """A postprocessed row as a Completion."""
    letters = row.get("letter_logprobs")
    return Completion(
        text=str(row.get("generated_text") or ""),
        prompt_tokens=int(row.get("num_input_tokens") or 0) or None,
        completion_tokens=int(row.get("num_generated_tokens") or 0),
        letter_logprobs=json.loads(letters) if letters else None,
    )


def build_with_ray_data_llm(
    arguments: dict[str, Any], preprocess: Callable[..., Any], postprocess: Callable[..., Any]
) -> Callable[[Any], Any]:
    """The real processor: ``build_processor(vLLMEngineProcessorConfig(...))``."""
    from ray.data.llm import build_processor, vLLMEngineProcessorConfig

    processor: Callable[[Any], Any] = build_processor(
        vLLMEngineProcessorConfig(**arguments), preprocess=preprocess, postprocess=postprocess
    )
    return processor


class _RowReply:
    """The model caller of a row that came back: its completion, counted as the run's usage."""

    def __init__(self, completion: Completion, stats: EngineStats, settings: EngineSettings) -> None:
        self.completion = completion
        self.stats = stats
        self.settings = settings

    async def __call__(self, prompt: Prompt, *, answer: bool = True) -> Reply:
        completion = self.completion
        cost = add_usage(self.stats, completion, self.settings.price)
        note_answer(self.stats, completion, self.settings, answer=answer)
        return Reply(completion, attempts=1, cached=False, cost_usd=cost)


class VLLMDataEngine(Scheduler):
    """Stage two through Ray Data LLM: one streaming dataset of every wanted prompt.

    The run's solver reads each row's reply (the parser, the judge fallback) as it reads a reply locally;
    the agent strategy's drawings are made here, before the rows leave.
    """

    def __init__(
        self,
        prepared: PreparedRun,
        settings: EngineSettings,
        *,
        build: ProcessorBuilder = build_with_ray_data_llm,
        on_progress: Callable[[EngineStats], None] | None = None,
    ) -> None:
        self.images = ImageEncoder(prepared.config.image_settings())
        # once: Ray Data may produce a row twice (a retried block).
        self.ledger = Ledger(
            prepared.store, settings, self.images, on_progress=on_progress, once=True, manifest_holder=prepared
        )
        self.settings = settings
        self.prepared = prepared
        self.build = build
        self.solver: Solver = make_solver(
            prepared.config,
            settings,
            judge=prepared.judge,
            judge_books=JudgeBooks(self.ledger.stats, self.images, budget=self.ledger),
            agent=prepared.planner.agent,
            benchmark=prepared.benchmark,
            run_dir=prepared.store.folder,
        )

    def describe(self) -> dict[str, Any]:
        """What run.json records about the model on this path."""
        arguments = processor_arguments(self.prepared.config)
        return {
            "name": self.prepared.config.model,
            "engine": "vllm (Ray Data LLM)",
            "processor": arguments,
            "images": "original bytes",
            "decoding": "greedy",
        }

    async def run(self, work: AsyncIterator[Work] | Iterable[Work], total_questions: int) -> EngineStats:
        """Ask every prompt through Ray Data LLM; records are appended as rows stream back."""
        ledger = self.ledger
        ledger.begin(total_questions)
        ledger.describe_model(self.describe())
        prompts: list[Prompt] = []
        watcher = asyncio.create_task(ledger.flush_often())  # a deleted run folder stops the run
        try:
            async for item in aiter_of(work):
                if isinstance(item, PlanFailure):
                    ledger.write(plan_failure_records(item))
                elif ledger.wants(item):
                    await self.solver.prepare(item)
                    prompts.append(item)
            if prompts and not ledger.should_stop():
                with ray_session(self.prepared.config.execution.ray_address) as ray:
                    await self._stream(ray, prompts)
        finally:
            watcher.cancel()
            self.solver.close()
            ledger.close()
        return self.stats

    def _processor(self) -> Callable[[Any], Any]:
        from mmad.models.hf import preset_for

        config = self.prepared.config
        preprocess = functools.partial(
            preprocess_row,
            temperature=self.settings.temperature,
            want_logprobs=self.settings.likelihood,
            mm_processor_kwargs=preset_for(model_id_of(config)),
        )
        return self.build(processor_arguments(config), preprocess, postprocess_row)

    async def _stream(self, ray: Any, prompts: list[Prompt]) -> None:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the run's own progress bar says how far it is
        rows = [{"mmad_index": i, "mmad_prompt": p.model_dump_json()} for i, p in enumerate(prompts)]
        dataset = self._processor()(ray.data.from_items(rows))
        pending = dict(enumerate(prompts))
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        stop = threading.Event()
        loop = asyncio.get_running_loop()
        pump = threading.Thread(
            target=_pump, args=(iter(dataset.iter_rows()), loop, queue, stop), name="mmad-ray-rows", daemon=True
        )
        pump.start()
        try:
            while pending and not self.ledger.should_stop():
                kind, value = await queue.get()
                if kind == "end":
                    break
                if kind == "error":
                    msg = f"Ray Data LLM stopped: {type(value).__name__}: {redact(str(value))[-2000:]}"
                    raise RunError(msg) from value
                prompt = pending.pop(int(value["mmad_index"]), None)
                if prompt is not None:  # a row Ray Data produced twice (a retried block) is written once
                    await self._record_row(prompt, value)
        finally:
            stop.set()
        if pending and self.stats.stopped_reason is None:
            logger.warning("%d prompts came back without a row; resume the run to ask them", len(pending))

    async def _record_row(self, prompt: Prompt, row: dict[str, Any]) -> None:
        error = str(row.get("__inference_error__") or "")
        if error:
            message = redact(error)[-2000:]
            self.ledger.write(
                [
                    question_record(q, status=Status.ERROR, error_class="inference_error", error_message=message)
                    for q in prompt.questions
                ]
            )
            return
        took = float(row.get("time_taken_llm") or 0.0)
        answer = await self.solver.answer(prompt, _RowReply(completion_from_row(row), self.stats, self.settings))
        answer.started = time.monotonic() - max(0.0, took)
        self.ledger.write(answer.records())


def _pump(rows: Iterator[Any], loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Any], stop: Any) -> None:
    """Hand the dataset's rows to the event loop (iterating a Ray Dataset blocks)."""
    try:
        for row in rows:
            if stop.is_set():
                return
            loop.call_soon_threadsafe(queue.put_nowait, ("row", dict(row)))
        loop.call_soon_threadsafe(queue.put_nowait, ("end", None))
    except BaseException as exc:
        if not stop.is_set():
            loop.call_soon_threadsafe(queue.put_nowait, ("error", exc))
