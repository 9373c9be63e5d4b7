"""The in-process vLLM backend's translation and batching, and its missing-extra error.

vLLM cannot run on this project's machines (its wheel is CUDA-only and pins its own torch, too
large to carry to the lent GPU machine), so `LLM.chat` is played by `ChatEngine` below, which
takes the arguments vLLM's offline API takes and answers with objects of vLLM's output shape
(`RequestOutput`, `CompletionOutput`, `Logprob`: the fields of vllm/outputs.py and logprobs.py).
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mmad import RunConfig, evaluate
from mmad.api import evaluate_async
from mmad.data.official import load_benchmark
from mmad.errors import MissingExtraError
from mmad.models.base import Request
from mmad.models.registry import ModelOptions, create_model
from mmad.models.vllm_local import (
    ORIGINAL_IMAGES,
    VLLMModel,
    first_step_letters,
    from_vllm_output,
    sampling_arguments,
    to_vllm_conversation,
)
from mmad.protocol.images import ImageEncoder
from mmad.protocol.prompts import PromptSettings, build_prompts
from mmad.records.record import read_records


@dataclass
class Logprob:
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None
    logprobs: list[dict[int, Logprob]] | None
    finish_reason: str | None = None


@dataclass
class RequestOutput:
    request_id: str
    prompt: str | None
    prompt_token_ids: list[int] | None
    outputs: list[CompletionOutput]
    finished: bool = True


@dataclass
class SamplingParams:
    max_tokens: int | None = 16
    temperature: float = 1.0
    logprobs: int | None = None


@dataclass
class ChatEngine:
    """Answers "A." to every conversation that poses options, with letter logprobs when asked; records calls."""

    calls: list[dict[str, Any]] = field(default_factory=list)

    def chat(self, messages: list[list[dict[str, Any]]], sampling_params: list[SamplingParams], **kwargs: Any) -> list:
        self.calls.append({"conversations": messages, "params": sampling_params, **kwargs})
        outputs = []
        for conversation, params in zip(messages, sampling_params, strict=True):
            text = "".join(p["text"] for p in conversation[-1]["content"] if p["type"] == "text")
            letter = "A" if "\nA. " in text else "?"
            steps = None
            if params.logprobs:
                steps = [{10: Logprob(-0.1, 1, letter), 11: Logprob(-2.5, 2, " B"), 12: Logprob(-4.0, 3, "(C")}]
            outputs.append(
                RequestOutput(
                    request_id=str(len(outputs)),
                    prompt=None,
                    prompt_token_ids=list(range(100 + len(text))),
                    outputs=[CompletionOutput(0, f"{letter}.", [10, 13], None, steps, "stop")],
                )
            )
        return outputs


def _requests(mmad_json: Path, n: int, want_logprobs: bool = False) -> list[Request]:
    bench = load_benchmark(mmad_json)
    prompts = [p for item in bench.items[:4] for p in build_prompts(bench, item, PromptSettings())][:n]
    return [Request(messages=p.messages, max_tokens=8, want_logprobs=want_logprobs) for p in prompts]


def test_conversations_carry_the_original_image_bytes(mmad_json: Path) -> None:
    (request,) = _requests(mmad_json, 1)
    conversation = to_vllm_conversation(request, ImageEncoder(ORIGINAL_IMAGES))
    images = [
        p for m in conversation for p in m["content"] if isinstance(m["content"], list) and p["type"] == "image_url"
    ]
    paths = [p.path for m in request.messages for p in m.parts if getattr(p, "path", None)]
    assert len(images) == len(paths) >= 2  # a template and the query
    for part, path in zip(images, paths, strict=True):
        header, _, payload = part["image_url"]["url"].partition(",")
        assert header.startswith("data:image/") and base64.b64decode(payload) == Path(path).read_bytes()
        assert "detail" not in part["image_url"]


def test_sampling_is_greedy_and_asks_for_logprobs_only_when_wanted() -> None:
    plain = Request(messages=(), max_tokens=5)
    assert sampling_arguments(plain, top_logprobs=20) == {"max_tokens": 5, "temperature": 0.0}
    scored = Request(messages=(), max_tokens=1, want_logprobs=True, temperature=None)
    assert sampling_arguments(scored, top_logprobs=7) == {"max_tokens": 1, "temperature": 0.0, "logprobs": 7}


def test_a_request_without_max_tokens_gets_the_local_default() -> None:
    from mmad.models.base import LOCAL_DEFAULT_MAX_TOKENS

    unlimited = Request(messages=(), max_tokens=None, temperature=None)
    assert sampling_arguments(unlimited, top_logprobs=20) == {
        "max_tokens": LOCAL_DEFAULT_MAX_TOKENS,
        "temperature": 0.0,
    }
    assert LOCAL_DEFAULT_MAX_TOKENS > 16  # vLLM's own default (16) would cut every reply


def test_letters_are_read_from_the_first_step() -> None:
    step = {1: Logprob(-0.2, 1, " A"), 2: Logprob(-1.5, 2, "B."), 3: Logprob(-0.9, 3, "A"), 4: Logprob(-3.0, 4, "the")}
    assert first_step_letters(step) == {"A": -0.2, "B": -1.5}
    assert first_step_letters({}) is None
    output = RequestOutput("0", None, [1, 2, 3], [CompletionOutput(0, "A", [7], None, [step], "length")])
    completion = from_vllm_output(output)
    assert (completion.text, completion.prompt_tokens, completion.completion_tokens) == ("A", 3, 1)
    assert completion.finish_reason == "length" and completion.letter_logprobs == {"A": -0.2, "B": -1.5}
    bare = from_vllm_output(RequestOutput("1", None, None, [CompletionOutput(0, "B", [], None, None)]))
    assert bare.letter_logprobs is None and bare.prompt_tokens is None


def test_concurrent_requests_reach_the_engine_as_batches(mmad_json: Path) -> None:
    engine = ChatEngine()
    model = VLLMModel("Qwen/Qwen2.5-VL-7B-Instruct", batch_size=4, engine=engine, sampling_params=SamplingParams)

    async def run() -> list:
        return await asyncio.gather(*(model.generate(r) for r in _requests(mmad_json, 6, want_logprobs=True)))

    results = asyncio.run(run())
    assert [len(call["conversations"]) for call in engine.calls] == [4, 2]
    assert all(call["use_tqdm"] is False for call in engine.calls)
    # the family preset reaches vLLM's processor
    assert engine.calls[0]["mm_processor_kwargs"]["size"]["longest_edge"] == 1280 * 28 * 28
    assert all(p.logprobs == 20 and p.temperature == 0.0 for call in engine.calls for p in call["params"])
    assert all(r.text == "A." and r.letter_logprobs == {"A": -0.1, "B": -2.5, "C": -4.0} for r in results)


def test_the_backend_through_mmad_eval(mmad_json: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    engine = ChatEngine()
    model = VLLMModel("some/vlm", batch_size=16, engine=engine, sampling_params=SamplingParams)
    config = RunConfig.from_flat(
        "vllm-local:some/vlm",
        str(mmad_json),
        cache=False,
        concurrency=16,
        answer_from="likelihood",
        datasets=["VisA"],
    )
    result = asyncio.run(evaluate_async(config, out=tmp_path / "run", model=model))
    records = read_records(tmp_path / "run" / "records.jsonl")
    assert result.complete and records and all(r.parse_method == "likelihood" and r.answer == "A" for r in records)
    assert max(len(call["conversations"]) for call in engine.calls) > 1
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["model"]["engine"] == "vllm (in-process)" and meta["model"]["batch_size"] == 16
    assert "cannot fill" not in caplog.text
    small = RunConfig.from_flat("vllm-local:some/vlm", str(mmad_json), cache=False, concurrency=4, limit=2)
    asyncio.run(evaluate_async(small, out=tmp_path / "small", model=model))
    assert "batches of 16 cannot fill with 4 requests in flight" in caplog.text


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed here")
def test_without_vllm_the_error_names_the_extra(mmad_json: Path, tmp_path: Path) -> None:
    with pytest.raises(MissingExtraError, match=r"mmad\[vllm\]"):
        create_model("vllm-local:Qwen/Qwen2.5-VL-7B-Instruct", ModelOptions(batch_size=8))
    with pytest.raises(MissingExtraError, match=r"mmad\[vllm\]"):
        evaluate("vllm-local:some/vlm", mmad_json, out=tmp_path / "run", cache=False)
    assert not (tmp_path / "run").exists()  # nothing was started


def test_a_bad_dtype_is_named_before_vllm_is_looked_for() -> None:
    from mmad.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown dtype 'bf17'"):
        create_model("vllm-local:some/vlm", ModelOptions(dtype="bf17"))
