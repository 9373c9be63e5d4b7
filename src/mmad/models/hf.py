"""Open VLMs in-process through transformers' generic image-text-to-text API.

Any model whose processor has a chat template works (Qwen2.5-VL and Qwen3-VL, InternVL-hf,
LLaVA-OneVision, Idefics3/SmolVLM, ...): messages become the chat format with PIL images, the
processor's chat template builds the inputs, ``generate`` decodes greedily. Requests that arrive
together are generated as one left-padded batch, and the next batch's images and tensors are
prepared while the current one generates (`MicroBatcher`'s two stages). With ``want_logprobs``
the first generated step's log-probabilities of the letters A-E are returned (option-likelihood
scoring).
Needs the ``[hf]`` extra.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any

from mmad.errors import ConfigError, MissingExtraError
from mmad.models.base import LOCAL_DEFAULT_MAX_TOKENS, Completion, Model, Request
from mmad.models.batching import MicroBatcher
from mmad.protocol.images import load_image
from mmad.protocol.messages import Message, TextPart

logger = logging.getLogger(__name__)

# The official scripts' image settings per family (mmad-protocol.md §C.4), as processor arguments.
# Qwen's min_pixels/max_pixels are given as the image processor's size (shortest_edge and
# longest_edge count pixels there): transformers 5 deprecates the old names at call time.
_QWEN_PIXELS = {"size": {"shortest_edge": 64 * 28 * 28, "longest_edge": 1280 * 28 * 28}}
PRESETS: dict[str, dict[str, Any]] = {
    "qwen2.5-vl": _QWEN_PIXELS,
    "qwen2-vl": _QWEN_PIXELS,
    "qwen3-vl": _QWEN_PIXELS,
    "internvl": {"crop_to_patches": False},  # one 448x448 tile, as the official InternVL script
}
LETTERS = ("A", "B", "C", "D", "E")


def preset_for(model_id: str) -> dict[str, Any]:
    """The processor arguments of a model family, matched on the model's name."""
    lowered = model_id.lower()
    for family, options in PRESETS.items():
        if family in lowered:
            return copy.deepcopy(options)
    return {}


DTYPES = {
    **dict.fromkeys(["bfloat16", "bf16"], "bfloat16"),
    **dict.fromkeys(["float16", "fp16", "half"], "float16"),
    **dict.fromkeys(["float32", "fp32", "float"], "float32"),
}


def dtype_name(name: str) -> str:
    """torch's name for a dtype given as bfloat16/bf16, float16/fp16/half or float32/fp32."""
    try:
        return DTYPES[name.lower()]
    except KeyError:
        msg = f"unknown dtype {name!r}; use bfloat16, float16 or float32"
        raise ConfigError(msg) from None


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
class PreparedBatch:
    """A batch ready for the model: its requests and the processor's tensors, on the model's device."""

    requests: list[Request]
    inputs: Any


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
        model_kwargs: dict[str, Any] | None = None,
        batch_window_s: float = 0.02,
    ) -> None:
        """``model_kwargs`` go to the model's ``from_pretrained`` (attn_implementation, revision,
        trust_remote_code, ...; trust_remote_code reaches the processor too)."""
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
        torch_dtype = (
            getattr(torch, dtype_name(dtype)) if dtype else ("auto" if self.device != "cpu" else torch.float32)
        )
        self.model_kwargs = dict(model_kwargs or {})
        self.processor_kwargs = {**preset_for(model_id), **(processor_kwargs or {})}
        if "trust_remote_code" in self.model_kwargs:
            self.processor_kwargs.setdefault("trust_remote_code", self.model_kwargs["trust_remote_code"])
        # The Hub out of reach but the model cached: no request, no minutes of retries. Not kept in the
        # kwargs: describe() (and so the response cache's key) stays the same online and off.
        cached_only = {"local_files_only": True} if _hub_access(model_id) else {}
        processor_loader: Any = AutoProcessor
        try:
            self.processor: Any = processor_loader.from_pretrained(model_id, **{**cached_only, **self.processor_kwargs})
        except OSError as exc:  # not on disk, not in the cache, and the Hub unreachable or the name wrong
            raise ConfigError(_unloadable(model_id, exc)) from exc
        tokenizer = getattr(self.processor, "tokenizer", self.processor)
        tokenizer.padding_side = "left"
        self.tokenizer = tokenizer
        model_loader: Any = AutoModelForImageTextToText
        try:
            loaded = model_loader.from_pretrained(model_id, dtype=torch_dtype, **{**cached_only, **self.model_kwargs})
        except OSError as exc:
            raise ConfigError(_unloadable(model_id, exc)) from exc
        if "device_map" in self.model_kwargs:
            # accelerate placed the layers (a model larger than one GPU); inputs go where the first layer is
            self.device = str(loaded.device)
        else:
            loaded = loaded.to(self.device)
        self.model: Any = loaded.eval()
        self.dtype = str(self.model.dtype)
        self.pixel_dtype = None if self.model.dtype == torch.float32 else self.model.dtype
        self.letter_ids = {
            letter: ids[0] for letter in LETTERS if (ids := tokenizer.encode(letter, add_special_tokens=False))
        }
        self.batcher = MicroBatcher(
            self.run_batch, prepare_batch=self.prepare_batch, batch_size=batch_size, window_s=batch_window_s
        )

    def describe(self) -> dict[str, Any]:
        """Model, device, dtype and processor settings."""
        return {
            "name": self.name,
            "device": self.device,
            "dtype": self.dtype,
            "batch_size": self.batch_size,
            "processor_kwargs": dict(self.processor_kwargs.items()),
            "model_kwargs": dict(self.model_kwargs),
            "decoding": "greedy",
        }

    def prepare_batch(self, requests: list[Request]) -> PreparedBatch:
        """The CPU half of a batch: images read, the processor's tensors (left-padded) on the device.

        The batcher calls this for the next batch while the model generates the current one, in
        another thread: it touches the processor only, never the model.
        """
        conversations = [to_chat(r.messages) for r in requests]
        inputs = self.processor.apply_chat_template(
            conversations,
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
            processor_kwargs={"padding": True},
        ).to(self.device)
        if "pixel_values" in inputs and self.pixel_dtype is not None:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.pixel_dtype)
        return PreparedBatch(requests, inputs)

    def run_batch(self, batch: PreparedBatch) -> list[Completion]:
        """The model's half of a batch: greedy generation, the replies decoded, letter scores read."""
        torch, requests, inputs = self.torch, batch.requests, batch.inputs
        want_scores = any(r.want_logprobs for r in requests)
        with torch.inference_mode():
            output = self.model.generate(
                **inputs,
                max_new_tokens=max(r.max_tokens or LOCAL_DEFAULT_MAX_TOKENS for r in requests),
                do_sample=False,
                output_scores=want_scores,
                return_dict_in_generate=True,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        prompt_length = inputs["input_ids"].shape[1]
        new_tokens = output.sequences[:, prompt_length:]
        completions = []
        eos = self.tokenizer.eos_token_id
        for row, request in enumerate(requests):
            tokens = new_tokens[row]
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

    def generate_batch(self, requests: list[Request]) -> list[Completion]:
        """Generate for several requests at once (left-padded); synchronous, both halves in turn."""
        return self.run_batch(self.prepare_batch(requests))

    async def generate(self, request: Request) -> Completion:
        """Queue the request; requests that arrive within a short window are generated together."""
        return await self.batcher.submit(request)


HUB_PROBE_TIMEOUT_S = 5.0
"""How long the Hub may take to answer one request before an uncached model is refused."""


def _hub_access(model_id: str) -> bool:
    """Whether to load from the Hugging Face cache alone (the Hub cannot be reached, the model is cached).

    Without network, transformers waits on the Hub (retries, time-outs per file) for minutes before
    its error. One request with a short time-out says at once whether the Hub answers; a model
    neither on disk nor in the cache is then refused straight away.
    """
    from pathlib import Path

    from huggingface_hub import constants, try_to_load_from_cache

    if Path(model_id).expanduser().exists() or constants.HF_HUB_OFFLINE:
        return False  # a folder, or offline already: transformers does not go to the Hub
    reason = _hub_unreachable(constants.ENDPOINT)
    if reason is None:
        return False
    if isinstance(try_to_load_from_cache(model_id, "config.json"), str):
        logger.info("the Hub cannot be reached (%s); loading %s from the Hugging Face cache", reason, model_id)
        return True
    msg = (
        f"hf:{model_id} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and the Hub at "
        f"{constants.ENDPOINT} cannot be reached ({reason}). Fetch it where there is a network "
        f"(`hf download {model_id}`) and copy the cache here, or give a local folder (hf:/path/to/model)"
    )
    raise ConfigError(msg)


def _hub_unreachable(endpoint: str) -> str | None:
    """Why the Hub does not answer one request within HUB_PROBE_TIMEOUT_S (None when it answers)."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(f"{endpoint.rstrip('/')}/api/models?limit=1", method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=HUB_PROBE_TIMEOUT_S):
            return None
    except urllib.error.HTTPError:
        return None  # any HTTP status: the Hub answered
    except TimeoutError:
        return f"no answer within {HUB_PROBE_TIMEOUT_S:.0f} s"
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            return f"no answer within {HUB_PROBE_TIMEOUT_S:.0f} s"
        return str(getattr(reason, "strerror", None) or reason)
    except OSError as exc:
        return str(exc.strerror or exc)


def _unloadable(model_id: str, exc: OSError) -> str:
    first = str(exc).strip().splitlines()[0].rstrip(".") if str(exc).strip() else type(exc).__name__
    return (
        f"hf:{model_id} cannot be loaded: {first}. Give a local folder (hf:/path/to/model), or fetch it first "
        f"where the Hub is reachable (`hf download {model_id}`) so it is in the Hugging Face cache"
    )
