"""The protocol card: what makes two runs' numbers comparable, and its short hash.

Two runs with the same card hash asked the same questions of the same benchmark with the same
prompts (every text, part order and strategy), decoding, image preparation, parser and scoring:
only the model differs. The mmad version is on the card but not in the hash, so a new release that
changes nothing of the protocol keeps old runs comparable (a release that changes a prompt text
changes the prompt hash).

Settings are on the card by their one names (`mmad.run.config`); the image settings a backend does
not read (hf: and vllm-local: get the files and size them themselves) are left out of its card.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from mmad.data.clean import benchmark_counts, benchmark_split
from mmad.data.schema import Benchmark, ImageItem, Question
from mmad.errors import ConfigError
from mmad.protocol.messages import ImagePart, Prompt, TextPart
from mmad.protocol.prompts import Extras, build_prompts
from mmad.protocol.strategies import DomainKnowledge, StrategySet
from mmad.run.config import RunConfig
from mmad.run.recipes import recipe_policy, server_caveats

HASH_LENGTH = 12
_NOT_IN_HASH = frozenset({"mmad_version", "hash", "data_source", "data_provenance"})

_CANONICAL = ImageItem(
    key="CARD/product/test/scratch/000.png",
    questions=[
        Question(
            id="CARD/product/test/scratch/000.png#0",
            image="CARD/product/test/scratch/000.png",
            index=0,
            stem="Is there any defect in the object?",
            options={"A": "Yes.", "B": "No."},
            answer="A",
            type="Anomaly Detection",
        ),
        Question(
            id="CARD/product/test/scratch/000.png#1",
            image="CARD/product/test/scratch/000.png",
            index=1,
            stem="What is the type of the defect?",
            options={"A": "Scratch.", "B": "Crack.", "C": "Stain.", "D": "Hole."},
            answer="A",
            type="Defect Classification",
        ),
    ],
    mask_path="",
    random_templates=[f"CARD/product/train/good/{i:03d}.png" for i in range(8)],
    similar_templates=[f"CARD/product/train/good/{i:03d}.png" for i in range(8, 16)],
)


def _shape(prompt: Prompt) -> list[Any]:
    return [
        [m.role, [p.text if isinstance(p, TextPart) else f"<image:{p.role}>" for p in m.parts]] for m in prompt.messages
    ] + [prompt.answer_format, prompt.max_tokens]


def prompt_hash(config: RunConfig, strategies: StrategySet) -> str:
    """A hash of every prompt text and part order the run's settings produce, on a fixed sample item."""
    extras = Extras(
        knowledge="<domain knowledge>" if strategies.rag else None,
        expert_image=ImagePart(path="CARD/expert.png", role="expert") if strategies.agent_expert else None,
        expert_text=f"<agent:{strategies.agent_expert}:{strategies.agent_notation}>" if strategies.agent_expert else "",
        chain_of_thought=strategies.cot,
    )
    benchmark = Benchmark(items=[_CANONICAL], root=Path("/card"))
    prompts = build_prompts(benchmark, _CANONICAL, config.prompt_settings(), extras)
    canonical = json.dumps([_shape(p) for p in prompts], sort_keys=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:HASH_LENGTH]


def protocol_card(config: RunConfig, benchmark: Benchmark, strategies: StrategySet) -> dict[str, Any]:
    """The card of a run, with its hash under ``hash``."""
    from mmad._version import __version__

    prompt = config.prompt
    card: dict[str, Any] = {
        "recipe": config.recipe,
        "overridden": list(config.overridden),
        "protocol": prompt.protocol.value,
        "prompt_hash": prompt_hash(config, strategies),
        "shots": prompt.shots,
        "similar_templates": prompt.similar_templates,
        "blind": prompt.blind,
        "circular": prompt.circular,
        "strategies": strategies.names,
        # Only where it changes what is sent, so that other runs keep their card hash.
        **({"cot_history": True} if prompt.cot_history and strategies.cot else {}),
        # The tools strategy's settings shape what is asked: with it only, so that other runs keep their card hash.
        **({"tools": _tools(config)} if strategies.tools else {}),
        # The prompt hash holds a placeholder for the knowledge text: the file's content decides what is sent.
        # With knowledge only, so that other runs keep their card hash.
        **_knowledge(config, benchmark, strategies),
        "decoding": _decoding(config),
        "images": _images(config),
        # The query images' perturbations (--perturb): with them only, so that other runs keep their card hash.
        **({"perturb": _perturb(config)} if config.images.perturb else {}),
        "parser": config.answers.parser,
        "answer_from": config.answers.answer_from,
        "judge": config.answers.judge,
        # A solver chosen by name answers its own way; the default (plain, or cot with the cot strategy) is
        # what the protocol above says, so runs without one keep their card hash.
        **({"solver": config.answers.solver} if config.answers.solver else {}),
        "scoring": _scoring(config.recipe),
        # Only where there is something to say, so that other runs keep their card hash.
        **({"server_not_honoured": caveats} if (caveats := server_caveats(config.recipe, config.model)) else {}),
        **_clean_split(config, benchmark),
        "data_sha256": benchmark.sha256,
        "data_source": str(benchmark.source),
        "data_provenance": _provenance(benchmark),
        "mmad_version": __version__,
    }
    card["hash"] = card_hash(card)
    return card


def _tools(config: RunConfig) -> dict[str, Any]:
    """The tools strategy's settings: the tools asked for (all: every one that can work), turns, protocol, blend."""
    prompt = config.prompt
    return {
        "tools": list(prompt.tools) or "all",
        "max_turns": prompt.max_turns,
        "tool_protocol": prompt.tool_protocol,
        "blend": prompt.blend,
    }


def _knowledge(config: RunConfig, benchmark: Benchmark, strategies: StrategySet) -> dict[str, Any]:
    """The domain-knowledge file's SHA-256 where its text reaches the model (rag, or the tools strategy
    offering its knowledge tool): runs with different files (--knowledge) are not comparable."""
    offered = strategies.tools and (not config.prompt.tools or "knowledge" in config.prompt.tools)
    if not (strategies.rag or offered):
        return {}
    try:
        source = DomainKnowledge.find(benchmark, config.prompt.knowledge).source
    except ConfigError:
        # no readable file: the tools strategy then offers no knowledge tool, and a rag run is refused
        # before its card is made (preflight), so there is no knowledge to record
        return {}
    return {"knowledge": "sha256:" + hashlib.sha256(Path(source).read_bytes()).hexdigest()}


def _decoding(config: RunConfig) -> dict[str, Any]:
    """The decoding settings the run's backend reads (the expert writes no text: none)."""
    decoding = config.decoding.model_dump(mode="json")
    return {k: v for k, v in decoding.items() if k not in set(config.unhonoured(list(decoding)))}


def _images(config: RunConfig) -> dict[str, Any]:
    """The image settings the run's backend reads, by their names (hf: and vllm-local: read none: they get
    the files and size them with their own processor)."""
    images = config.images.model_dump(mode="json", exclude={"perturb"}) | {"text_only": config.connection.text_only}
    return {k: v for k, v in images.items() if k not in set(config.unhonoured(list(images)))}


def _perturb(config: RunConfig) -> dict[str, Any]:
    """--perturb on the card: each perturbation's parameter, in the order they apply, and what they touch."""
    from mmad.protocol.perturb import parse_perturb

    return {
        "applied": parse_perturb(config.images.perturb or "").as_dict(),
        "images": "query",
        "seed": "per image: SHA-256 of the image file",
    }


# Card keys of settings renamed since cards were first written: a card is hashed as it was then, so
# the runs made before keep comparing equal to the runs made since.
_IMAGE_KEYS_HASHED_AS = {"image_size": "size", "image_format": "format", "original_images": "original"}


def _hash_form(card: dict[str, Any]) -> dict[str, Any]:
    out = dict(card)
    if "similar_templates" in out:
        out["templates"] = "similar" if out.pop("similar_templates") else "random"
    if isinstance(out.get("images"), dict):
        out["images"] = {_IMAGE_KEYS_HASHED_AS.get(k, k): v for k, v in out["images"].items()}
    return out


def current_form(card: dict[str, Any]) -> dict[str, Any]:
    """A card by today's setting names (a card written before they had one name says templates, size, ...)."""
    out = dict(card)
    if "templates" in out and "similar_templates" not in out:
        out["similar_templates"] = out.pop("templates") == "similar"
    if isinstance(out.get("images"), dict):
        named = {old: new for new, old in _IMAGE_KEYS_HASHED_AS.items()}
        out["images"] = {named.get(k, k): v for k, v in out["images"].items()}
    return out


def _clean_split(config: RunConfig, benchmark: Benchmark) -> dict[str, Any]:
    """--errata drop and --exclude, with what they leave out of the benchmark; nothing for a run without them
    (so that its card keeps its hash)."""
    split = benchmark_split(config.selection.errata, config.selection.exclude, benchmark)
    if not split.active:
        return {}
    return {"clean_split": {**split.card(), "left_out": benchmark_counts(split, benchmark).as_dict()}}


def _scoring(recipe: str | None) -> str:
    """The policy of the run's headline and files: its recipe's (that of the published rows), else strict."""
    if not recipe:
        return "strict (upstream beside it)"
    policy = recipe_policy(recipe)
    other = "strict" if policy == "upstream" else "upstream"
    return f"{policy}, as the {recipe} recipe's published rows ({other} beside it)"


def _provenance(benchmark: Benchmark) -> dict[str, Any] | None:
    """Where the benchmark was downloaded from (repository, revision, commit), when mmad downloaded it."""
    from mmad.data.provenance import read_provenance

    record = read_provenance(benchmark.root)
    if not record:
        return None
    json_file = (record.get("files") or {}).get("mmad.json") or {}
    return {
        "repo": record.get("repo"),
        "revision": record.get("revision"),
        "commit": record.get("commit"),
        "mmad_json_check": json_file.get("check"),
        "matches_this_benchmark": json_file.get("sha256") == benchmark.sha256 if json_file.get("sha256") else None,
    }


def card_hash(card: dict[str, Any]) -> str:
    """The short hash of a card's protocol fields (not the mmad version, not where the data lies)."""
    fields = {k: v for k, v in _hash_form(card).items() if k not in _NOT_IN_HASH}
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:HASH_LENGTH]


def card_differences(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(field, value in a, value in b) for every card field that differs (mmad version included)."""
    a, b = current_form(a), current_form(b)
    keys = [k for k in dict.fromkeys([*a, *b]) if k not in {"hash", "data_source", "data_provenance"}]
    return [(k, a.get(k), b.get(k)) for k in keys if a.get(k) != b.get(k)]
