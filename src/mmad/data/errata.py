"""Known errors in the published MMAD data, reported by users on the official repository.

The list is a manifest shipped with mmad (``errata.json`` beside this file), each erratum with the
report it comes from: jam-cc/MMAD issues #15 and #19 (metal-nut photos filed as normal pill images),
#18 (a Defect Localization gold answer) and #20 (transistor "misplaced" localization answers).
`mmad validate` warns about them; ``--errata drop`` (mmad.data.clean) leaves them out of a run.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Literal

from pydantic import BaseModel, Field

from mmad.data.schema import RAW_TYPE_TO_SUBTASK, ImageItem, Question

MANIFEST = "errata.json"


class Erratum(BaseModel):
    """One known data error: which images (or which of their questions) it concerns, and its source."""

    model_config = {"frozen": True}

    id: str
    code: str = Field(description="the `mmad validate` problem code")
    scope: Literal["image", "question"] = Field(description="image: every question of the image; question: some")
    message: str
    source: str
    urls: tuple[str, ...] = ()
    images: frozenset[str] = frozenset()
    image_prefix: str = ""
    subtask: str | None = Field(default=None, description="question scope: the subtask (by value) it concerns")

    def names_image(self, image: str) -> bool:
        """Whether the erratum concerns this image key (or some of its questions)."""
        return image in self.images or bool(self.image_prefix and image.startswith(self.image_prefix))

    def concerns(self, image: str, subtask: str | None) -> bool:
        """Whether a question (its image key and subtask value) is one this erratum makes unreliable."""
        if not self.names_image(image):
            return False
        return self.scope == "image" or subtask == self.subtask


class ErrataManifest(BaseModel):
    """The shipped list of errata."""

    about: str = ""
    errata: tuple[Erratum, ...]


@cache
def errata_manifest() -> ErrataManifest:
    """The errata shipped with mmad (read once)."""
    text = resources.files(__package__).joinpath(MANIFEST).read_text(encoding="utf-8")
    return ErrataManifest.model_validate(json.loads(text))


def question_subtask(question_type: str) -> str | None:
    """A question type (raw, as in mmad.json, or a subtask's name) as a subtask value."""
    subtask = RAW_TYPE_TO_SUBTASK.get(question_type)
    return subtask.value if subtask is not None else question_type


def errata_of(image: str, question_type: str) -> list[Erratum]:
    """The errata that make one question (its image key and type) unreliable."""
    subtask = question_subtask(question_type)
    return [e for e in errata_manifest().errata if e.concerns(image, subtask)]


def item_errata(item: ImageItem) -> list[Erratum]:
    """The known errata that concern a whole image."""
    return [e for e in errata_manifest().errata if e.scope == "image" and e.names_image(item.key)]


def question_errata(question: Question) -> list[Erratum]:
    """The known errata that concern one question (not its whole image)."""
    subtask = question_subtask(question.type)
    return [e for e in errata_manifest().errata if e.scope == "question" and e.concerns(question.image, subtask)]


PILL_METAL_NUT_KEYS = next(e.images for e in errata_manifest().errata if e.id == "pill-metal-nut")
