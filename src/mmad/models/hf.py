"""Open VLMs in-process through transformers' generic image-text-to-text API.

Any model whose processor has a chat template works (Qwen2.5-VL and Qwen3-VL, InternVL-hf,
LLaVA-OneVision, Idefics3/SmolVLM, ...): messages become the chat format with PIL images, the
processor's chat template builds the inputs, ``generate`` decodes greedily. Requests that arrive
together are generated as one left-padded batch. With ``want_logprobs`` the first generated
step's log-probabilities of the letters A-E are returned (option-likelihood scoring).
Needs the ``[hf]`` extra.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from mmad.errors import MissingExtraError
from mmad.models.base import Completion, Model, Request
from mmad.protocol.images import load_image
from mmad.protocol.messages import Message, TextPart

logger = logging.getLogger(__name__)

# The official scripts' image settings per family (mmad-protocol.md §C.4), as processor arguments.
PRESETS: dict[str, dict[str, Any]] = {
    "qwen2.5-vl": {"min_pixels": 64 * 28 * 28, "max_pixels": 1280 * 28 * 28},
    "qwen2-vl": {"min_pixels": 64 * 28 * 28, "max_pixels": 1280 * 28 * 28},
    "qwen3-vl": {"min_pixels": 64 * 28 * 28, "max_pixels": 1280 * 28 * 28},
    "internvl": {"crop_to_patches": False},  # one 448x448 tile, as the official InternVL script
}
LETTERS = ("A", "B", "C", "D", "E")


def preset_for(model_id: str) -> dict[str, Any]:
    """The processor arguments of a model family, matched on the model's name."""
    lowered = model_id.lower()
    for family, options in PRESETS.items():
        if family in lowered:
            return dict(options)
    return {}


def to_chat(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    """mmad messages in transformers' chat format, images loaded."""
    chat = []
    for message in messages:
        content: list[dict[str, Any]] = []
        for part in message.parts:
            if isinstance(part, TextPart):
                content.append({"type": "text", "text": part.text})
            else:
                content.append({"type": "image", "image": load_image(part)})
        chat.append({"role": message.role, "content": content})
    return chat


@dataclass
class _Pending:
    request: Request
    future: asyncio.Future[Completion] = field(repr=False)


class TransformersModel(Model):
    """A transformers VLM with batched greedy generation."""

    def __init__(
        self,
        model_id: str,
        *,
        device: str | None = None,
        dtype: str | None = None,
        batch_size: int = 8,
        processor_kwargs: dict[str, Any] | None = None,
        batch_window_s: float = 0.02,
    ) -> None:
        try:
            import torch
            from transformers import AutoModelForImageTextToText, AutoProcessor
        except ImportError as exc:
            feature = "The transformers backend"
            raise MissingExtraError(feature, "hf", "torch and transformers") from exc
        self.torch = torch
        self.name = f"hf:{model_id}"
        self.endpoint = f"local:{model_id}"
        self.model_id = model_id
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.batch_size = batch_size
        self.batch_window_s = batch_window_s
        self.processor_kwargs = {**preset_for(model_id), **(processor_kwargs or {})}
        processor_loader: Any = AutoProcessor
        self.processor: Any = processor_loader.from_pretrained(model_id, **self.processor_kwargs)
        tokenizer = getattr(self.processor, "tokenizer", self.processor)
        tokenizer.padding_side = "left"
        self.tokenizer = tokenizer
        torch_dtype = getattr(torch, dtype) if dtype else ("auto" if self.device != "cpu" else torch.float32)
        model_loader: Any = AutoModelForImageTextToText
        self.model: Any = model_loader.from_pretrained(model_id, dtype=torch_dtype).to(self.device).eval()
        self.dtype = str(self.model.dtype)
        self.letter_ids = {
            letter: ids[0] for letter in LETTERS if (ids := tokenizer.encode(letter, add_special_tokens=False))
        }
        self._pending: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None

    def describe(self) -> dict[str, Any]:
        """Model, device, dtype and processor settings."""
        return {
            "name": self.name,
            "device": self.device,
            "dtype": self.dtype,
            "batch_size": self.batch_size,
            "processor_kwargs": dict(self.processor_kwargs.items()),
            "decoding": "greedy",
        }

    def generate_batch(self, requests: list[Request]) -> list[Completion]:
        """Generate for several requests at once (left-padded); synchronous."""
        torch = self.torch
        conversations = [to_chat(r.messages) for r in requests]
        inputs = self.processor.apply_chat_template(
            conversations,
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
            processor_kwargs={"padding": True},
        ).to(self.device)
        if "pixel_values" in inputs and self.model.dtype != torch.float32:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        want_scores = any(r.want_logprobs for r in requests)
        with torch.inference_mode():
            output = self.model.generate(
                **inputs,
                max_new_tokens=max(r.max_tokens for r in requests),
                do_sample=False,
                output_scores=want_scores,
                return_dict_in_generate=True,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        prompt_length = inputs["input_ids"].shape[1]
        new_tokens = output.sequences[:, prompt_length:]
        completions = []
        for row, request in enumerate(requests):
            tokens = new_tokens[row]
            eos = self.tokenizer.eos_token_id
            length = int((tokens != eos).cumprod(0).sum()) if eos is not None else len(tokens)
            text = self.tokenizer.decode(tokens[:length], skip_special_tokens=True)
            letters = None
            if request.want_logprobs and output.scores:
                logprobs = torch.log_softmax(output.scores[0][row].float(), dim=-1)
                letters = {letter: float(logprobs[token]) for letter, token in self.letter_ids.items()}
            completions.append(
                Completion(
                    text=text,
                    prompt_tokens=int(inputs["attention_mask"][row].sum()),
                    completion_tokens=min(length + 1, len(tokens)),
                    letter_logprobs=letters,
                )
            )
        return completions

    async def generate(self, request: Request) -> Completion:
        """Queue the request; requests that arrive within a short window are generated together."""
        loop = asyncio.get_running_loop()
        pending = _Pending(request, loop.create_future())
        self._pending.append(pending)
        if len(self._pending) >= self.batch_size:
            await self._flush()
        elif self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_later())
        return await pending.future

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.batch_window_s)
        await self._flush()

    async def _flush(self) -> None:
        batch, self._pending = self._pending[: self.batch_size], self._pending[self.batch_size :]
        if not batch:
            return
        try:
            results = await asyncio.to_thread(self.generate_batch, [p.request for p in batch])
        except Exception as exc:  # every waiting request learns of the failure
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
        else:
            for pending, result in zip(batch, results, strict=True):
                if not pending.future.done():
                    pending.future.set_result(result)
        if self._pending and (self._flusher is None or self._flusher.done()):
            self._flusher = asyncio.create_task(self._flush_later())
