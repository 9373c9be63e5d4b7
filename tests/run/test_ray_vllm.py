"""``vllm-local`` on the Ray engine: Ray Data LLM's processor, with its vLLM stage played by a stand-in.

vLLM cannot be installed here (CUDA-only), so the stage that would run it is `EngineStandIn`: it
takes the rows Ray Data LLM's vLLM stage takes (OpenAI-style ``messages``, ``sampling_params``)
and emits the columns that stage emits in Ray 2.60 (``vLLMOutputData`` plus ``request_id``,
``time_taken_llm``, ``params``, ``__inference_error__``: ray/llm/_internal/batch/stages/
vllm_engine_stage.py). Everything else is real: Ray's own ``vLLMEngineProcessorConfig`` validates
the arguments mmad builds, Ray's ``Processor`` wraps mmad's pre- and postprocess steps around the
stage, and Ray Data runs it on a local Ray.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from mmad.errors import ConfigError
from mmad.records.record import Status, read_records
from mmad.run.config import RunConfig
from mmad.run.finish import finish
from mmad.run.prepare import prepare
from mmad.run.ray_runner import ActorModel
from mmad.run.ray_vllm import (
    VLLMDataEngine,
    completion_from_row,
    first_step_letters,
    postprocess_row,
    processor_arguments,
)
from mmad.run.runner import engine_settings, execute

pytestmark = pytest.mark.ray

MODEL = "vllm-local:Qwen/Qwen2.5-VL-7B-Instruct"


def _engine_stand_in_class() -> type:
    from ray.llm._internal.batch.stages.base import StatefulStageUDF

    class EngineStandIn(StatefulStageUDF):
        """Answers "A." where the last user turn poses options; fails rows whose text says FAIL."""

        async def udf(self, batch: list[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
            for number, row in enumerate(batch):
                messages = row["messages"]
                last = messages[-1]["content"]
                text = "".join(p["text"] for p in last if p["type"] == "text")
                images = [p["image_url"]["url"] for m in messages for p in m["content"] if p["type"] == "image_url"]
                assert images and all(u.startswith("data:image/") for u in images)
                params = row["sampling_params"]
                base = {"request_id": number, self.IDX_IN_BATCH_COLUMN: row[self.IDX_IN_BATCH_COLUMN]}
                if "FAIL" in text:
                    yield {**base, "__inference_error__": "ValueError: the stand-in refuses", "request_id": -1}
                    continue
                letter = "A" if "\nA. " in text else "?"
                logprobs = None
                if params.get("logprobs"):
                    logprobs = [
                        {
                            10: {"logprob": -0.1, "rank": 1, "decoded_token": letter},
                            11: {"logprob": -2.5, "rank": 2, "decoded_token": " B"},
                        }
                    ]
                yield {
                    **base,
                    "prompt": "",
                    "prompt_token_ids": list(range(50)),
                    "num_input_tokens": 50 + len(images),
                    "generated_tokens": [10, 13],
                    "generated_text": f"{letter}.",
                    "num_generated_tokens": 2,
                    "embeddings": None,
                    "metrics": None,
                    "logprobs": logprobs,
                    "prompt_logprobs": None,
                    "batch_uuid": "0" * 32,
                    "time_taken_llm": 0.01,
                    "params": str(params),
                    "__inference_error__": "",
                }

    return EngineStandIn


def stand_in_builder(seen: list[dict[str, Any]]) -> Callable[..., Any]:
    def build(arguments: dict[str, Any], preprocess: Any, postprocess: Any) -> Any:
        import ray
        from ray.data.llm import vLLMEngineProcessorConfig
        from ray.llm._internal.batch.processor.base import Processor
        from ray.llm._internal.batch.stages.base import StatefulStage

        config = vLLMEngineProcessorConfig(**arguments)  # Ray's own validation of what mmad builds
        seen.append(arguments)
        stage = StatefulStage(
            fn=_engine_stand_in_class(),
            map_batches_kwargs={"compute": ray.data.ActorPoolStrategy(size=1), "num_cpus": 0.5},
        )
        return Processor(config, [stage], preprocess=preprocess, postprocess=postprocess)

    return build


def test_processor_arguments_follow_the_run_config(mmad_json: Path) -> None:
    from ray.data.llm import vLLMEngineProcessorConfig

    config = RunConfig.from_flat(
        MODEL,
        str(mmad_json),
        engine="ray",
        ray_actors=4,
        batch_size=64,
        dtype="bf16",
        model_args={
            "tensor_parallel_size": 2,
            "pipeline_parallel_size": 1,
            "max_model_len": 8192,
            "accelerator_type": "H100",
            "processor_kwargs": {"max_pixels": 1280 * 28 * 28},
        },
    )
    arguments = processor_arguments(config)
    processor = vLLMEngineProcessorConfig(**arguments)
    assert processor.model_source == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert processor.concurrency == 4 and processor.batch_size == 64 and processor.accelerator_type == "H100"
    engine = processor.engine_kwargs
    assert engine["tensor_parallel_size"] == 2 and engine["dtype"] == "bfloat16" and engine["max_model_len"] == 8192
    assert engine["mm_processor_kwargs"] == {"max_pixels": 1280 * 28 * 28}
    assert "accelerator_type" not in engine and engine["limit_mm_per_prompt"] == {"image": 8}
    assert processor.should_continue_on_error is True
    assert processor.prepare_multimodal_stage["enabled"] is True


def test_letters_are_read_from_every_shape_of_the_logprobs_column() -> None:
    step = {
        1: {"logprob": -0.2, "rank": 1, "decoded_token": " A"},
        2: {"logprob": -1.5, "rank": 2, "decoded_token": "B."},
    }
    assert first_step_letters([step]) == {"A": -0.2, "B": -1.5}
    assert first_step_letters([list(step.items())]) == {"A": -0.2, "B": -1.5}  # an Arrow map's (key, value) pairs
    assert first_step_letters([{"1": step[1]}]) == {"A": -0.2}  # string keys
    assert first_step_letters(None) is None and first_step_letters([]) is None
    row = {
        "mmad_index": 3,
        "generated_text": "A",
        "num_input_tokens": 77,
        "num_generated_tokens": 1,
        "logprobs": [step],
        "time_taken_llm": 0.5,
    }
    reduced = postprocess_row(row)
    completion = completion_from_row(reduced)
    assert reduced["mmad_index"] == 3 and completion.text == "A"
    assert (completion.prompt_tokens, completion.completion_tokens) == (77, 1)
    assert completion.letter_logprobs == {"A": -0.2, "B": -1.5}


@pytest.mark.slow
def test_a_run_through_ray_data_llm_records_every_question(
    fresh_mmad_json: Path, tmp_path: Path, ray_cluster: str
) -> None:
    # One image's prompts fail in the stand-in (its file name marks it), as a bad row fails in vLLM.
    data = json.loads(fresh_mmad_json.read_text())
    failing = next(k for k in data if "/good/" in k)
    data[failing]["conversation"][0]["Question"] += " FAIL"
    fresh_mmad_json.write_text(json.dumps(data))
    config = RunConfig.from_flat(
        MODEL, str(fresh_mmad_json), engine="ray", answer_from="likelihood", ray_actors=1, cache=False
    )
    seen: list[dict[str, Any]] = []

    async def run() -> Any:
        prepared = prepare(config, out=tmp_path / "run", model=ActorModel(config))
        engine = VLLMDataEngine(prepared, engine_settings(prepared), build=stand_in_builder(seen))
        engine.wanted = prepared.wanted
        stats = await execute(prepared, engine)
        return await finish(prepared, stats)

    result = asyncio.run(run())
    records = read_records(tmp_path / "run" / "records.jsonl")
    assert seen and len(records) == result.completeness.asked == sum(len(i["conversation"]) for i in data.values())
    failed = [r for r in records if r.status is Status.ERROR]
    assert failed and all(r.image == failing and r.error_class == "inference_error" for r in failed)
    answered = [r for r in records if r.status is Status.ANSWERED]
    assert len(answered) == len(records) - len(failed)
    assert all(r.answer == "A" and r.parse_method == "likelihood" and r.scores["A"] == -0.1 for r in answered)
    assert all(r.prompt_tokens and r.prompt_tokens > 50 for r in answered)
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["model"]["engine"] == "vllm (Ray Data LLM)" and meta["status"] == "partial"


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"strategies": ["cot"]}, "--strategies cot"),
        ({"strategies": ["tools"]}, "--strategies tools"),
        ({"solver": "cot"}, "--solver cot"),
    ],
)
def test_ray_data_llm_refuses_what_needs_more_than_one_pass(
    mmad_json: Path, monkeypatch: pytest.MonkeyPatch, settings: dict[str, Any], named: str
) -> None:
    pytest.importorskip("ray")
    from mmad.run import ray_runner

    real = ray_runner.importlib.util.find_spec
    monkeypatch.setattr(
        ray_runner.importlib.util, "find_spec", lambda name, *a: object() if name == "vllm" else real(name, *a)
    )
    config = RunConfig.from_flat(MODEL, str(mmad_json), engine="ray", **settings)
    with pytest.raises(ConfigError, match=rf"{named} .*Ray Data LLM's one-pass batches cannot do"):
        ray_runner.check_ray_config(config)
