"""Comparability: which rows may be ranked together, and what a run's protocol is.

Published rows are grouped by the group their catalog gives them; runs by benchmark and protocol
card (or, for a run made before protocol cards, by the settings run.json kept). A run that asked
only part of its benchmark is a subset and is never ranked."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from mmad.report.leaderboard.model import CONTAMINATED
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
    completeness = run.completeness
    # --errata drop / --exclude leave questions out by design: the run covers its clean split, not a subset of it
    whole = completeness.in_benchmark - left_out_by_split(run.card)
    if completeness.selected < whole:
        return True
    if run.manifest.dataset.questions_in_benchmark:
        # the counts decide: a --limit 1000 on a 150-question benchmark (or a --dataset naming every dataset)
        # selected every question, and its run is the whole set
        return False
    selection = run.config.selection
    return any((selection.limit, selection.datasets, selection.categories, selection.subtasks))


def left_out_by_split(card: Mapping[str, Any] | None) -> int:
    """How many of the benchmark's questions a run's --errata drop / --exclude left out, from its card."""
    split = (card or {}).get("clean_split")
    left_out = split.get("left_out") if isinstance(split, Mapping) else None
    return int(left_out.get("questions", 0)) if isinstance(left_out, Mapping) else 0


def clean_split_marks(card: Mapping[str, Any] | None) -> list[str]:
    """A run's --errata drop and --exclude as the leaderboard marks them, from its card."""
    split = (card or {}).get("clean_split")
    if not isinstance(split, Mapping):
        return []
    marks = []
    if split.get("errata") == "drop":
        marks.append("--errata drop: the known errata left out (not the official question set)")
    if split.get("exclude"):
        rules = ", ".join(str(e) for e in split["exclude"])
        marks.append(f"--exclude {rules}: left out of what is asked and scored")
    return marks


def contamination_group(group: str, label: str, contamination: str) -> tuple[str, str]:
    """The comparable group of a row given what its system was trained on: a system trained on MMAD or its
    source datasets is never ranked with clean rows, so it gets a group of its own kind."""
    if contamination not in CONTAMINATED:
        return group, label
    return f"{group}|trained-on-mmad", f"{label}; trained on MMAD or its source datasets"


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
