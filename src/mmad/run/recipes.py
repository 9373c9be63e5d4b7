"""Official recipes as config settings: each official script's protocol, texts, decoding and images.

The recipes themselves live in `mmad.protocol.recipes` (in the protocol layer's field names);
this module maps them onto `RunConfig`'s sections, where explicit settings go on top.
"""

from __future__ import annotations

from typing import Any

from mmad.models.presets import PRESETS
from mmad.protocol.recipes import NO_RECIPE, RECIPES, get_recipe

# protocol-layer field -> (config section, field)
_RENAMED: dict[tuple[str, str], tuple[str, str]] = {
    ("prompt", "variant"): ("prompt", "protocol"),
    ("prompt", "max_tokens"): ("decoding", "max_tokens"),
    ("images", "max_side"): ("images", "image_size"),
    ("images", "format"): ("images", "image_format"),
    ("images", "original"): ("images", "original_images"),
}
_NOT_IN_CONFIG = {("images", "quality")}


def recipe_settings(name: str) -> dict[str, dict[str, Any]]:
    """The config sections a recipe sets (ConfigError for an unknown name, listing the known ones)."""
    recipe = get_recipe(name)
    sections: dict[str, dict[str, Any]] = {}
    for section in ("prompt", "images", "decoding", "answers"):
        for field, value in getattr(recipe, section).items():
            if (section, field) in _NOT_IN_CONFIG:
                continue
            target_section, target_field = _RENAMED.get((section, field), (section, field))
            sections.setdefault(target_section, {})[target_field] = value
    if recipe.processor:
        sections.setdefault("connection", {})["model_args"] = {"processor_kwargs": dict(recipe.processor)}
    return sections


def recipe_policy(name: str | None) -> str:
    """The scoring policy of a run's headline and files: its recipe's (the one that made the published
    rows), else mmad's own ``strict``."""
    return get_recipe(name).policy if name else "strict"


def recipe_policy_note(name: str) -> str:
    """What a recipe run's table says about its policy."""
    policy = recipe_policy(name)
    other = "strict" if policy == "upstream" else "upstream"
    return (
        f"scored under the {policy} policy, the one behind the {name} recipe's published rows "
        f"(the official summary.py's); `mmad score --policy {other}` gives the other"
    )


def server_caveats(recipe: str | None, model: str) -> list[str]:
    """What a model behind an HTTP server does not take from its recipe (in-process models take all)."""
    if not recipe or model.partition(":")[0] not in PRESETS:
        return []
    return list(get_recipe(recipe).server_caveats)


def recipe_catalogue() -> list[dict[str, Any]]:
    """Every recipe (name, description, official script, published result files, exact or preset),
    and the published files no recipe reproduces, with the reason."""
    rows: list[dict[str, Any]] = [
        {
            "name": recipe.name,
            "description": recipe.description,
            "source": recipe.source,
            "published": list(recipe.published),
            "exact": recipe.exact,
            "policy": recipe.policy,
            "server_caveats": list(recipe.server_caveats),
            "not_reproduced": list(recipe.not_reproduced),
        }
        for recipe in RECIPES.values()
    ]
    return rows


def unreproduced_files() -> dict[str, str]:
    """Published result files that no recipe reproduces, and why."""
    return dict(NO_RECIPE)
