"""OpenAI-compatible endpoints by provider name: base URL and the variable that holds the key."""

from __future__ import annotations

from dataclasses import dataclass

from mmad.models.providers import PROVIDERS


@dataclass(frozen=True)
class Preset:
    """Where a provider's OpenAI-compatible API lives."""

    base_url: str
    key_env: str | None
    is_local: bool = False
    note: str = ""


# Read from the providers' descriptions (mmad.models.providers), the one place they are written.
PRESETS: dict[str, Preset] = {
    name: Preset(info.base_url or "", info.key_env, is_local=info.on_this_machine, note=info.note)
    for name, info in PROVIDERS.items()
    if info.transport == "http"
}
