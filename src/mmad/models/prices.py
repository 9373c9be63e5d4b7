"""Token prices for cost estimates, in US dollars per million tokens (input, output).

List prices as published by the providers in 2025; they change. Override with a JSON file of
``{"model": [input, output]}`` (``--prices FILE``). Unknown models cost None, not 0.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from mmad.errors import ConfigError
from mmad.models.providers import PROVIDERS

PRICES_PER_MILLION: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-2024-08-06": (2.50, 10.00),
    "gpt-4o-2024-05-13": (5.00, 15.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gemini-1.5-pro": (1.25, 5.00),
    "gemini-1.5-flash": (0.075, 0.30),
    "gemini-2.0-flash": (0.10, 0.40),
    "gemini-2.5-flash": (0.30, 2.50),
    "gemini-2.5-pro": (1.25, 10.00),
    "claude-3-5-sonnet-20241022": (3.00, 15.00),
    "claude-3-5-haiku-20241022": (0.80, 4.00),
    "claude-sonnet-4-20250514": (3.00, 15.00),
}


def load_prices(path: str | os.PathLike[str] | None = None) -> dict[str, tuple[float, float]]:
    """The built-in table, updated from a JSON file when given."""
    table = dict(PRICES_PER_MILLION)
    if path is None:
        return table
    shape = '{"model": [input_usd_per_M, output_usd_per_M]}'
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        msg = f"{path}: a price file is a JSON object {shape} ({exc})"
        raise ConfigError(msg) from exc
    if not isinstance(raw, dict):
        msg = f"{path}: a price file is a JSON object {shape}, not a JSON {type(raw).__name__}"
        raise ConfigError(msg)
    for model, pair in raw.items():
        table[model] = _price_pair(path, model, pair)
    return table


def _price_pair(path: str | os.PathLike[str], model: str, pair: object) -> tuple[float, float]:
    """One entry's (input, output) price; a wrong entry names its key, what it holds and what it should."""
    if isinstance(pair, list) and len(pair) == 2:
        numbers = [value for value in pair if isinstance(value, (int, float)) and not isinstance(value, bool)]
        if len(numbers) == 2 and min(numbers) >= 0:
            return (float(numbers[0]), float(numbers[1]))
    found = json.dumps(pair)
    msg = (
        f'{path}: "{model}" is {found}; each price is a list of two non-negative numbers, '
        f'[input_usd_per_M, output_usd_per_M], e.g. "{model}": [2.5, 10.0]'
    )
    raise ConfigError(msg)


def price_for(model_name: str, table: dict[str, tuple[float, float]]) -> tuple[float, float] | None:
    """The (input, output) price of a ``provider:model`` name: the table's (a --prices file can price
    a local model's GPU time too), else free for local models, else None (unknown)."""
    provider, _, model = model_name.partition(":")
    listed = table.get(model_name) or table.get(model)
    if listed is not None:
        return listed
    info = PROVIDERS.get(provider)
    if info is not None and info.free:
        return (0.0, 0.0)
    return None


def cost_usd(
    prompt_tokens: int | None, completion_tokens: int | None, price: tuple[float, float] | None
) -> float | None:
    """What a call cost."""
    if price is None or prompt_tokens is None:
        return None
    return (prompt_tokens * price[0] + (completion_tokens or 0) * price[1]) / 1e6
