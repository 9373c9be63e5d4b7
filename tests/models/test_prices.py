"""Prices: a --prices file wins, local models are free otherwise, unknown API models have none."""

from __future__ import annotations

import pytest

from mmad.models.prices import cost_usd, price_for


def test_a_listed_price_wins_over_the_local_default() -> None:
    table = {"random": (1.0, 2.0), "openai:gpt-4o": (2.5, 10.0)}
    assert price_for("mmad:random", table) == (1.0, 2.0)
    assert price_for("vllm:Qwen/Qwen2.5-VL-7B-Instruct", table) == (0.0, 0.0)
    assert price_for("openai:gpt-4o", table) == (2.5, 10.0)
    assert price_for("openai:gpt-4o-mini", {}) is None


def test_cost_of_a_call() -> None:
    assert cost_usd(1_000_000, 500_000, (2.5, 10.0)) == pytest.approx(7.5)
    assert cost_usd(None, 10, (2.5, 10.0)) is None
    assert cost_usd(10, 10, None) is None
