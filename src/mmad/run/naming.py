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


# The suffix each official script appends for an option, in that script's order (the script, then the
# lines, of jam-cc/MMAD evaluation/examples/; tests/run/test_naming.py cites them). A recipe's script
# that lacks an option (gpt4o.py has no --CoT) gets mmad's own order for it, after the script's.
_GENERIC_ORDER = ("similar", "rag", "agent", "cot", "blind", "debug")
_SCRIPT_ORDER: dict[str, tuple[str, ...]] = {
    "gpt4o": ("similar",),  # GPT4/gpt4o.py 342-345
    "gpt4o-mini": ("similar",),  # GPT4/gpt4o-mini.py 353-356
    "gemini": ("similar",),  # Gemini/gemini_query.py 287-291
    "internvl": ("similar", "rag", "agent", "cot", "debug"),  # Transformers/internvl_query.py 285-337
    "qwen2.5-vl": ("similar", "rag"),  # Transformers/qwen2_5_vl_query.py 163-171
    "qwen2-vl": ("similar", "rag"),  # unreleased; the settings (and name) of qwen2_5_vl_query.py
    "llava": ("cot", "rag", "blind", "similar", "agent"),  # LLaVA_Query/llava_query.py 309-323
}


def _suffixes(config: RunConfig) -> dict[str, str]:
    """The run's options as the official scripts spell them in a file name."""
    prompt = config.prompt
    found: dict[str, str] = {}
    if prompt.similar_templates:
        found["similar"] = "_Similar_template"
    for strategy in prompt.strategies:
        kind, _, rest = strategy.partition(":")
        if kind == "rag":
            found["rag"] = "_Domain_knowledge"
        elif kind == "cot":
            found["cot"] = "_CoT"
        elif kind == "agent":
            expert, _, notation = rest.partition(":")
            if config.recipe == "llava":
                found["agent"] = "_Agent"  # llava_query.py names no agent model
            else:  # internvl_query.py: "_Agent-" + agent_model + "-with-" + agent_notation
                found["agent"] = f"_Agent-{'GT' if expert == 'gt' else slug(expert)}-with-{slug(notation)}"
        else:
            found[kind] = f"_{slug(strategy)}"
    if prompt.blind:
        found["blind"] = "_Text_only"
    if config.selection.subset == "official-debug":
        found["debug"] = "_Debug"  # as internvl_query.py names a --debug run
    return found


def answers_file_name(config: RunConfig) -> str:
    """The official answers file name: ``answers_{k}_shot_{model}{suffixes}.json``.

    A recipe run's file is named as its script names it: the model's base name (the scripts' last part
    of --model-path, or their model name: ``InternVL2-8B``, not ``OpenGVLab-InternVL2-8B``) and the
    script's suffixes in the script's order. Other runs keep the model's slug and mmad's order.
    """
    found = _suffixes(config)
    model = config.model.split(":", 1)[-1]
    if config.recipe:
        order = _SCRIPT_ORDER.get(config.recipe, ())
        order += tuple(kind for kind in _GENERIC_ORDER if kind not in order)
        model = slug(model.rstrip("/").rsplit("/", 1)[-1])
    else:
        order = _GENERIC_ORDER
        model = slug(model)
    order += tuple(kind for kind in found if kind not in order)
    suffix = "".join(found[kind] for kind in order if kind in found)
    return f"answers_{config.prompt.shots}_shot_{model}{suffix}.json"
