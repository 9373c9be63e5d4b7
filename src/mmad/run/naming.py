"""Names of run folders and of the official files a run leaves behind."""

from __future__ import annotations

import re
from pathlib import Path

from mmad.run.config import RunConfig


def slug(text: str) -> str:
    """A file-name-safe form of a model name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")


def run_name(config: RunConfig) -> str:
    """The default run folder name: model, recipe or shots and protocol, strategies."""
    prompt = config.prompt
    parts = [slug(config.model)]
    parts += [slug(config.recipe)] if config.recipe else []
    parts += [f"{prompt.shots}shot", prompt.protocol.value]
    parts += [slug(s) for s in prompt.strategies]
    if prompt.similar_templates:
        parts.append("similar")
    if prompt.blind:
        parts.append("blind")
    if prompt.circular:
        parts.append("circular")
    return "_".join(parts)


def default_run_dir(config: RunConfig) -> Path:
    """runs/<run name>."""
    return Path("runs") / run_name(config)


def answers_file_name(config: RunConfig) -> str:
    """The official answers file name: ``answers_{k}_shot_{model}{suffixes}.json``."""
    prompt = config.prompt
    suffix = "".join(f"_{slug(s)}" for s in prompt.strategies)
    if prompt.similar_templates:
        suffix = "_Similar_template" + suffix
    if prompt.blind:
        suffix += "_Text_only"
    if config.selection.subset == "official-debug":
        suffix += "_Debug"  # as the scripts name a --debug run
    return f"answers_{prompt.shots}_shot_{slug(config.model.split(':', 1)[-1])}{suffix}.json"
