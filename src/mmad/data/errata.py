"""Known errors in the published MMAD data, reported by users on the official repository.

Sources: jam-cc/MMAD issues #15 and #19 (metal-nut photos filed as normal pill images),
#18 (a Defect Localization gold answer) and #20 (transistor "misplaced" localization answers).
"""

from __future__ import annotations

from dataclasses import dataclass

from mmad.data.schema import ImageItem, Question


@dataclass(frozen=True)
class Erratum:
    """One known data error."""

    code: str
    message: str
    source: str


PILL_METAL_NUT_KEYS = frozenset(f"DS-MVTec/pill/image/good/{index:03d}.png" for index in range(22))

WRONG_IMAGE = Erratum(
    code="erratum-wrong-image",
    message="this 'normal pill' image is a metal-nut photo inherited from Defect Spectrum; "
    "its Anomaly Discrimination and Object questions are unreliable",
    source="jam-cc/MMAD issues #15, #19",
)
BOTTLE_LOCALIZATION = Erratum(
    code="erratum-label",
    message="Defect Localization gold 'Around the center' should be 'Around the edges'",
    source="jam-cc/MMAD issue #18",
)
TRANSISTOR_MISPLACED = Erratum(
    code="erratum-label",
    message="Defect Localization gold answers for a whole-object misplacement point at sub-parts",
    source="jam-cc/MMAD issue #20",
)


def item_errata(item: ImageItem) -> list[Erratum]:
    """The known errata that concern a whole image."""
    return [WRONG_IMAGE] if item.key in PILL_METAL_NUT_KEYS else []


def question_errata(question: Question) -> list[Erratum]:
    """The known errata that concern one question."""
    if question.type != "Defect Localization":
        return []
    if question.image == "DS-MVTec/bottle/image/broken_large/016.png":
        return [BOTTLE_LOCALIZATION]
    if question.image.startswith("DS-MVTec/transistor/image/misplaced/"):
        return [TRANSISTOR_MISPLACED]
    return []
