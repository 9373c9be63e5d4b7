"""OpenAI-compatible endpoints by provider name: base URL and the variable that holds the key."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    """Where a provider's OpenAI-compatible API lives."""

    base_url: str
    key_env: str | None
    is_local: bool = False
    note: str = ""


PRESETS: dict[str, Preset] = {
    "openai": Preset("https://api.openai.com/v1", "OPENAI_API_KEY"),
    "gemini": Preset(
        "https://generativelanguage.googleapis.com/v1beta/openai/",
        "GEMINI_API_KEY",
        note="Gemini's OpenAI-compatible endpoint",
    ),
    "anthropic": Preset(
        "https://api.anthropic.com/v1/",
        "ANTHROPIC_API_KEY",
        note="Anthropic's OpenAI SDK compatibility endpoint",
    ),
    "openrouter": Preset("https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
    "vllm": Preset("http://127.0.0.1:8000/v1", "VLLM_API_KEY", is_local=True, note="`vllm serve MODEL`"),
    "sglang": Preset("http://127.0.0.1:30000/v1", "SGLANG_API_KEY", is_local=True),
    "ollama": Preset("http://127.0.0.1:11434/v1", None, is_local=True),
    "lmstudio": Preset("http://127.0.0.1:1234/v1", None, is_local=True),
    "mmad": Preset("http://127.0.0.1:8765/v1", None, is_local=True, note="`mmad serve`"),
    "compat": Preset("", "OPENAI_API_KEY", note="any OpenAI-compatible server: give --base-url"),
}
