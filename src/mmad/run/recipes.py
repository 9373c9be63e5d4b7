"""Official recipes as config settings: each official script's protocol, texts, decoding and images."""

from __future__ import annotations

from typing import Any

from mmad.errors import ConfigError


def recipe_settings(name: str) -> dict[str, dict[str, Any]]:
    """The config sections a recipe sets."""
    msg = f"unknown recipe {name!r}"
    raise ConfigError(msg)


def recipe_catalogue() -> list[dict[str, Any]]:
    """Every recipe: name, description, official script and the published result files it made."""
    return []
