"""Comparability: which rows may be ranked together, and what a run's protocol is.

Published rows are grouped by the group their catalog gives them; runs by benchmark and protocol
card (or, for a run made before protocol cards, by the settings run.json kept). A run that asked
only part of its benchmark is a subset and is never ranked."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from mmad.run.folder import RunFolder

NO_CARD = "no card"
RUN_SELECTION_KEYS = ("limit", "datasets", "categories", "subtasks")


def card_summary(card: Mapping[str, Any], limit: int = 240) -> str:
    """A protocol card on one line: key=value pairs, nested values as compact json."""
    parts = []
    for key, value in card.items():
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), sort_keys=True)
        parts.append(f"{key}={text}")
    line = "; ".join(parts)
    return line if len(line) <= limit else line[: limit - 1] + "…"


def run_card_hash(run: RunFolder) -> str | None:
    """The run's protocol card hash, when run.json has one."""
    return run.card_hash or None


def _legacy_settings(run: RunFolder) -> dict[str, Any]:
    """What decides comparability for a run made before protocol cards: the settings run.json kept."""
    legacy, config = run.manifest.legacy, run.config
    return {
        "protocol": legacy.protocol if legacy else {},
        "images": legacy.images if legacy else None,
        "strategies": legacy.strategies if legacy else [],
        "parser": config.answers.parser,
        "answer_from": config.answers.answer_from,
        "judge": config.answers.judge,
        "likelihood": config.answers.likelihood,
        "text_only": config.connection.text_only,
        "knowledge": config.prompt.knowledge,
    }


def legacy_protocol(run: RunFolder) -> str:
    """The protocol line of a run made before protocol cards, from the settings run.json kept."""
    settings = _legacy_settings(run)
    protocol = settings["protocol"]
    pieces = [
        str(protocol.get("variant", "?")),
        f"{protocol.get('shots', '?')}-shot",
        f"images: {settings['images'] or '?'}",
        f"parser: {settings['parser'] or '?'}",
        f"strategies: {', '.join(settings['strategies']) or 'none'}",
    ]
    return f"{NO_CARD} (run made before protocol cards): " + ", ".join(pieces)


def is_subset_run(run: RunFolder) -> bool:
    """Whether the run asked only part of its benchmark, from its counts or, in older run.json
    files without the benchmark's size, from its selection settings."""
    if run.completeness.subset:
        return True
    selection = run.config.selection
    return any((selection.limit, selection.datasets, selection.categories, selection.subtasks))


def run_group(run: RunFolder) -> tuple[str, str]:
    completeness = run.completeness
    benchmark = (run.benchmark_sha256 or "unknown")[:12]
    size = f"{completeness.in_benchmark:,} questions"
    card_hash = run_card_hash(run)
    if card_hash:
        return (
            f"runs:{benchmark}:{card_hash[:12]}",
            f"your runs: benchmark {benchmark[:8]} ({size}), card {card_hash[:8]}",
        )
    digest = hashlib.sha256(json.dumps(_legacy_settings(run), sort_keys=True, default=str).encode()).hexdigest()
    return (
        f"runs:{benchmark}:nocard-{digest[:8]}",
        f"your runs: benchmark {benchmark[:8]} ({size}), {NO_CARD} (settings {digest[:8]})",
    )
