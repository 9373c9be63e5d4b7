"""What a run says about its recipe: the settings given on top of it, and those its backend does not read."""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from mmad.run.config.names import FLAT_NAMES, IMAGE_FIELDS, SECTIONS, as_toml, flag_of, shown_value

if TYPE_CHECKING:
    from mmad.run.config.run_config import RunConfig


def recipe_notes(config: RunConfig) -> list[str]:
    """`RunConfig.recipe_notes`'s work."""
    if not config.recipe:
        return []
    from mmad.run.recipes import recipe_settings

    given = recipe_settings(config.recipe)
    ignored = config.unhonoured([f for section, values in given.items() for f in values if f in FLAT_NAMES])
    effective = config.image_settings()
    view: dict[str, Any] = {"image_size": effective.max_side, "image_format": effective.format}
    view["detail"] = effective.detail
    view |= {"original_images": effective.original, "resize": effective.resize, "mime": effective.mime}
    images: list[str] = []
    others: list[str] = []
    for name in ignored:
        value = given[FLAT_NAMES[name][0]][name]
        if name not in view or view[name] != value:  # else the backend does as the recipe asks anyway
            (images if name in IMAGE_FIELDS else others).append(f"{name} = {as_toml(value)}")
    notes = []
    if images:
        notes.append(
            f"the {config.recipe} recipe's {', '.join(images)} {'is' if len(images) == 1 else 'are'} not used: "
            f"{config.model} reads the image files itself (its own processor prepares them), so they are left "
            "out of the protocol card"
        )
    if others:  # the expert's decoding settings: it writes no text (mmad models says what each provider reads)
        notes.append(
            f"the {config.recipe} recipe's {', '.join(others)} {'is' if len(others) == 1 else 'are'} not used: "
            f"{config.model} does not read {'it' if len(others) == 1 else 'them'} (mmad models says what it reads)"
        )
    return notes


def override_notes(config: RunConfig, *, file: str | None = None, flags: Collection[str] = ()) -> list[str]:
    """`RunConfig.override_notes`'s work."""
    if not config.recipe or not config.overridden:
        return []
    from mmad.run.recipes import recipe_settings

    recipe = recipe_settings(config.recipe)
    mine = config.model_dump(mode="json")
    notes = []
    for dotted in config.overridden:
        section, _, field = dotted.partition(".")
        if section not in SECTIONS or field not in mine[section]:
            continue
        was = recipe.get(section, {}).get(field)
        value = mine[section][field]
        if file is not None and dotted not in flags:
            given = f"{field} = {as_toml(value)} in {file}"
        else:
            flag = flag_of(section, field)
            if isinstance(value, bool):  # a yes/no flag takes no value: --cot-history, --no-cot-history
                given = flag if value else "--no-" + flag.removeprefix("--")
            else:
                given = f"{flag} {shown_value(value)}"
        notes.append(f"{given} overrides the {config.recipe} recipe's {field} = {shown_value(was)}")
    return notes
