"""Every built-in model provider, described once: how it is reached, what it costs, which settings it reads.

The registry builds backends from these, the price table asks whether a provider is free, the
unused-setting check asks which settings a provider honours, and ``mmad models`` lists them.
A setting is named by its field (``image_size``, ``device``); `ProviderInfo.honours` also takes it
with its section (``images.image_size``).

Providers other packages register (the ``mmad.models`` entry points) are described by
`plugin_info`: mmad cannot know what they read, so they are taken to honour every setting.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Literal

from mmad.errors import UnknownModelError

Transport = Literal["http", "transformers", "vllm", "expert", "none", "plugin"]

API_SETTINGS = ("base_url", "key_env", "extra_body", "text_only")
IN_PROCESS_SETTINGS = ("device", "dtype", "batch_size", "model_args")
IMAGE_SETTINGS = ("image_size", "image_format", "detail", "original_images", "resize", "mime", "perturb")
DECODING_SETTINGS = ("max_tokens", "temperature", "likelihood")
BACKEND_SETTINGS = (*API_SETTINGS, *IN_PROCESS_SETTINGS, *IMAGE_SETTINGS, *DECODING_SETTINGS)
"""The settings that are the backend's to honour or not; every other setting is the engine's."""

# Other spellings of a backend setting (older section fields, flags' own names).
_ALIASES = {
    "size": "image_size",
    "format": "image_format",
    "original": "original_images",
    "text_only_server": "text_only",
}


@dataclass(frozen=True)
class ProviderInfo:
    """One provider: the ``provider`` of ``-m provider:model``."""

    name: str
    transport: Transport
    """http: an OpenAI-compatible server; transformers, vllm, expert: loaded in this process;
    none: a baseline that loads nothing; plugin: another package's (unknown)."""
    description: str
    free: bool
    """True: it costs no tokens (in process, or a server on this machine); False: priced by the
    price table, or of unknown cost."""
    reads: frozenset[str] | None
    """The backend settings (`BACKEND_SETTINGS`) it honours; None: unknown, taken as all (a plugin)."""
    extra: str | None = None
    """The pip extra it needs (``pip install 'mmad[extra]'``), None when the core install does."""
    base_url: str | None = None
    """An http provider's default server ('' when there is none: --base-url is required)."""
    key_env: str | None = None
    """An http provider's key variable (None: it takes no key)."""
    on_this_machine: bool = False
    """An http provider whose default server is on this machine (it needs no key)."""
    note: str = ""

    @property
    def in_process(self) -> bool:
        """Whether the model runs inside mmad's process (weights loaded here), not behind a server."""
        return self.transport in {"transformers", "vllm", "expert"}

    @property
    def loads_weights(self) -> bool:
        """Whether it loads a model here (the baselines and http clients do not)."""
        return self.in_process

    def honours(self, setting: str) -> bool:
        """Whether the backend reads a setting: ``image_size`` (or ``images.image_size``, ``size``).

        A setting that is not the backend's (the protocol, selection, execution) is the engine's,
        the same for every backend: True.
        """
        name = _setting_name(setting)
        if name is None:
            return True
        return self.reads is None or name in self.reads


def _setting_name(setting: str) -> str | None:
    """A backend setting's name, None for a setting that is not a backend's."""
    section, _, field = setting.rpartition(".")
    if section and section not in {"connection", "images", "decoding", "answers"}:
        return None
    name = _ALIASES.get(field, field)
    return name if name in BACKEND_SETTINGS else None


_CHAT = frozenset(DECODING_SETTINGS)
_API = frozenset(API_SETTINGS) | frozenset(IMAGE_SETTINGS) | _CHAT


def _http(
    name: str, base_url: str, key_env: str | None, description: str, *, here: bool = False, note: str = ""
) -> ProviderInfo:
    return ProviderInfo(
        name=name,
        transport="http",
        description=description,
        free=here,
        reads=_API,
        base_url=base_url,
        key_env=key_env,
        on_this_machine=here,
        note=note,
    )


PROVIDERS: dict[str, ProviderInfo] = {
    p.name: p
    for p in (
        _http("openai", "https://api.openai.com/v1", "OPENAI_API_KEY", "OpenAI's API"),
        _http(
            "gemini",
            "https://generativelanguage.googleapis.com/v1beta/openai/",
            "GEMINI_API_KEY",
            "Google's Gemini API",
            note="Gemini's OpenAI-compatible endpoint",
        ),
        _http(
            "anthropic",
            "https://api.anthropic.com/v1/",
            "ANTHROPIC_API_KEY",
            "Anthropic's API",
            note="Anthropic's OpenAI SDK compatibility endpoint",
        ),
        _http("openrouter", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY", "OpenRouter"),
        _http(
            "vllm", "http://127.0.0.1:8000/v1", "VLLM_API_KEY", "a vLLM server", here=True, note="`vllm serve MODEL`"
        ),
        _http("sglang", "http://127.0.0.1:30000/v1", "SGLANG_API_KEY", "an SGLang server", here=True),
        _http("ollama", "http://127.0.0.1:11434/v1", None, "an Ollama server", here=True),
        _http("lmstudio", "http://127.0.0.1:1234/v1", None, "an LM Studio server", here=True),
        _http("mmad", "http://127.0.0.1:8765/v1", None, "an `mmad serve` server", here=True, note="`mmad serve`"),
        _http(
            "compat",
            "",
            "OPENAI_API_KEY",
            "any OpenAI-compatible server",
            note="any OpenAI-compatible server: give --base-url",
        ),
        ProviderInfo("random", "none", "seeded random letters (random:SEED)", free=True, reads=frozenset()),
        ProviderInfo("fixed", "none", "always the same letter (fixed:B)", free=True, reads=frozenset()),
        ProviderInfo(
            "expert",
            "expert",
            "the visual expert, PatchCore on EfficientNet-Lite0 ([expert] extra); expert:category",
            free=True,
            # It reads the image files itself (its detector sizes them), but scores the query perturbed
            # by --perturb as an API model would be sent it.
            reads=frozenset({"device", "model_args", "perturb"}),
            extra="expert",
        ),
        ProviderInfo(
            "hf",
            "transformers",
            "a transformers VLM in process (hf:REPO; [hf] extra)",
            free=True,
            # It loads each image file whole: the processor sizes it, not --image-size.
            reads=frozenset(IN_PROCESS_SETTINGS) | _CHAT,
            extra="hf",
        ),
        ProviderInfo(
            "vllm-local",
            "vllm",
            "vLLM's offline engine in process (vllm-local:REPO; [vllm] extra)",
            free=True,
            # vLLM places the model itself (CUDA_VISIBLE_DEVICES), and gets the original image files.
            reads=frozenset({"dtype", "batch_size", "model_args"}) | _CHAT,
            extra="vllm",
        ),
    )
}


def plugin_info(name: str) -> ProviderInfo:
    """What mmad knows of a provider another package registers: its name, and nothing it reads."""
    return ProviderInfo(name, "plugin", "plugin (entry point mmad.models)", free=False, reads=None)


def plugin_names() -> list[str]:
    """The providers other packages register (not loaded), built-in names excluded."""
    return sorted({e.name for e in entry_points(group="mmad.models")} - set(PROVIDERS))


def provider_info(model_name: str) -> ProviderInfo:
    """The description of a ``provider:model`` name's provider; UnknownModelError for an unknown one."""
    provider = model_name.partition(":")[0]
    if provider in PROVIDERS:
        return PROVIDERS[provider]
    if provider in plugin_names():
        return plugin_info(provider)
    raise unknown_provider(model_name, [*PROVIDERS, *plugin_names()])


def unknown_provider(model_name: str, known: Iterable[str], *, served: bool = False) -> UnknownModelError:
    """The refusal of a name whose provider is none of ``known``: the list, and the name most likely meant
    (``served``: for `mmad serve`, which serves no model asked over HTTP, so a bare name gets no such example)."""
    provider, colon, model_id = model_name.partition(":")
    names = sorted(known)
    msg = f"unknown model provider {provider!r} in {model_name!r}; known providers: {', '.join(names)}"
    close = difflib.get_close_matches(provider.lower(), names, n=1, cutoff=0.6)
    if close:
        msg += f"; did you mean {close[0] + colon + model_id!r}?"
    elif not colon and not served:
        # a bare model name (gpt-4o, Qwen/Qwen2-VL-2B-Instruct) is read as a provider: say how names are made
        msg += f"; a model is named PROVIDER:MODEL, e.g. openai:{model_name} or vllm:{model_name}"
    return UnknownModelError(msg)
