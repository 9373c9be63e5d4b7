"""The live progress line of a run shows tokens and dollars only where they were measured: a model without a
price, or a backend that counts no tokens, is not shown as '0 tok · $0.0000'."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console
from rich.progress import ProgressColumn

from mmad.cli.common import add_run_task, progress_bar, show_stats
from mmad.run.ledger import EngineStats


def _details(stats: EngineStats, width: int) -> str:
    bar = progress_bar(Console(file=io.StringIO(), width=width, force_terminal=True))
    task = add_run_task(bar, "run")
    show_stats(bar, task, stats)
    column = bar.columns[-1]
    assert isinstance(column, ProgressColumn)
    return str(column.render(bar.tasks[0]))


@pytest.mark.parametrize(
    ("counters", "narrow", "wide"),
    [
        # an unpriced model over HTTP: its server reports tokens, nothing prices them
        ({"prompt_tokens": 900, "completion_tokens": 12, "unpriced_requests": 3}, "no price", "912 tok · no price"),
        # an in-process baseline or the visual expert: no tokens at all
        ({"unpriced_requests": 3}, "no usage", "no usage reported"),
        # a priced model
        ({"prompt_tokens": 900, "completion_tokens": 12, "priced_requests": 3, "cost_usd": 0.0123}, "$0.01", "$0.0123"),
    ],
)
def test_the_progress_line_shows_spending_only_where_measured(counters: dict[str, Any], narrow: str, wide: str) -> None:
    stats = EngineStats(**counters)
    assert _details(stats, 80).endswith(narrow)
    assert wide in _details(stats, 160)
    if "$" not in narrow:
        assert "$" not in _details(stats, 80) + _details(stats, 160)
