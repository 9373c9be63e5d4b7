"""Open VLMs in-process through vLLM's offline engine (``vllm-local:<model>``), behind the ``[vllm]`` extra.

For most users `vllm serve` plus the ``vllm:`` preset is the better road (docs/local-models.md):
the server can be shared, restarted and spread over GPUs. In-process suits a single script on a
GPU machine. Requests that arrive together go to ``LLM.chat`` as one list of conversations (vLLM
schedules them with continuous batching); images travel as data URLs of the original files, so the
model's own processor sizes them, with the family presets of the transformers backend as
``mm_processor_kwargs``. Decoding is greedy. With ``want_logprobs`` the first generated step's top
log-probabilities give the letters' scores (option-likelihood scoring).

The translation functions here are pure and tested without vLLM; this project's machines cannot
run vLLM itself (its wheel is CUDA-only and pins its own torch), so the engine calls follow vLLM's
documented offline API (``LLM``, ``SamplingParams``, ``RequestOutput``) without a test against it.
"""

from __future__ import annotations

import math
from typing import Any

from mmad.errors import MissingExtraError
from mmad.models.base import LOCAL_DEFAULT_MAX_TOKENS, Completion, Model, Request
from mmad.models.batching import MicroBatcher
from mmad.models.hf import preset_for
from mmad.models.openai_convert import letters_from_tokens, to_openai_messages
from mmad.protocol.encoding import ImageSettings
from mmad.protocol.images import ImageEncoder

ORIGINAL_IMAGES = ImageSettings(max_side=None, detail=None, original=True)


def to_vllm_conversation(request: Request, images: ImageEncoder) -> list[dict[str, Any]]:
    """A request as the OpenAI-style conversation ``LLM.chat`` takes, images as data URLs."""
    return to_openai_messages(request.messages, images.encode, detail=None)


def sampling_arguments(request: Request, *, top_logprobs: int) -> dict[str, Any]:
    """Keyword arguments of ``vllm.SamplingParams`` for a request: greedy unless it sets a temperature.

    A request that leaves max_tokens out gets `LOCAL_DEFAULT_MAX_TOKENS` (vLLM's own default is 16).
    """
    arguments: dict[str, Any] = {
        "max_tokens": request.max_tokens if request.max_tokens is not None else LOCAL_DEFAULT_MAX_TOKENS,
        "temperature": request.temperature if request.temperature is not None else 0.0,
    }
    if request.want_logprobs:
        arguments["logprobs"] = top_logprobs
    return arguments


def first_step_letters(step: Any) -> dict[str, float] | None:
    """Letter log-probabilities among one generated position's alternatives ({token id: Logprob})."""
    if not step:
        return None
    return letters_from_tokens(
        (str(getattr(entry, "decoded_token", None) or ""), float(getattr(entry, "logprob", -math.inf)))
        for entry in step.values()
    )


def from_vllm_output(output: Any) -> Completion:
    """A ``vllm.RequestOutput`` as a Completion (text, token counts, finish reason, letter scores)."""
    choice = output.outputs[0]
    logprobs = getattr(choice, "logprobs", None)
    prompt_ids = getattr(output, "prompt_token_ids", None)
    return Completion(
        text=choice.text,
        prompt_tokens=len(prompt_ids) if prompt_ids is not None else None,
        completion_tokens=len(choice.token_ids),
        finish_reason=getattr(choice, "finish_reason", None),
        letter_logprobs=first_step_letters(logprobs[0]) if logprobs else None,
    )


class VLLMModel(Model):
    """A VLM served by an in-process vLLM engine."""

    def __init__(
        self,
        model_id: str,
        *,
        batch_size: int = 256,
        batch_window_s: float = 0.05,
        top_logprobs: int = 20,
        engine: Any = None,
        sampling_params: Any = None,
        **engine_arguments: Any,
    ) -> None:
        """``engine_arguments`` go to ``vllm.LLM`` (tensor_parallel_size, gpu_memory_utilization,
        max_model_len, dtype, ...); ``engine`` and ``sampling_params`` take an already-built
        ``vllm.LLM`` and the ``SamplingParams`` class instead of importing vLLM."""
        self.name = f"vllm-local:{model_id}"
        self.endpoint = f"local:{model_id}"
        self.model_id = model_id
        self.top_logprobs = top_logprobs
        self.mm_processor_kwargs = preset_for(model_id)
        self.engine_arguments = {"limit_mm_per_prompt": {"image": 8}, **engine_arguments}
        if engine is None or sampling_params is None:
            try:
                from vllm import LLM, SamplingParams
            except ImportError as exc:
                feature = "The in-process vLLM backend"
                raise MissingExtraError(feature, "vllm", "vllm (with a CUDA GPU)") from exc
            engine = engine or LLM(model=model_id, **self.engine_arguments)
            sampling_params = sampling_params or SamplingParams
        self.engine = engine
        self.sampling_params = sampling_params
        self.images = ImageEncoder(ORIGINAL_IMAGES)
        self.batcher = MicroBatcher(self.generate_batch, batch_size=batch_size, window_s=batch_window_s)

    def generate_batch(self, requests: list[Request]) -> list[Completion]:
        """One ``LLM.chat`` call for several requests; synchronous."""
        conversations = [to_vllm_conversation(r, self.images) for r in requests]
        params = [self.sampling_params(**sampling_arguments(r, top_logprobs=self.top_logprobs)) for r in requests]
        outputs = self.engine.chat(
            conversations,
            sampling_params=params,
            use_tqdm=False,
            mm_processor_kwargs=self.mm_processor_kwargs or None,
        )
        return [from_vllm_output(output) for output in outputs]

    async def generate(self, request: Request) -> Completion:
        """Queue the request; those that arrive together go to the engine as one batch."""
        return await self.batcher.submit(request)

    def describe(self) -> dict[str, Any]:
        """Model, engine settings and processor arguments."""
        return {
            "name": self.name,
            "engine": "vllm (in-process)",
            "engine_arguments": dict(self.engine_arguments),
            "mm_processor_kwargs": dict(self.mm_processor_kwargs),
            "batch_size": self.batcher.batch_size,
            "images": ORIGINAL_IMAGES.describe(),
            "decoding": "greedy",
        }
