"""What a reader returns: one `AdSample` per image, and the `SourceDataset` that holds them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from mmad.builder.files import MaskIndex
from mmad.errors import DatasetLayoutError


@dataclass(frozen=True)
class AdSample:
    """One image of an anomaly-detection dataset."""

    category: str
    split: str
    defect_type: str
    image: Path
    masks: tuple[Path, ...] = ()

    @property
    def is_normal(self) -> bool:
        """Whether the image is defect-free."""
        return self.defect_type == "good"

    @property
    def is_query(self) -> bool:
        """Whether the image is asked about (a test image) rather than a template."""
        return self.split == "test"


@dataclass
class SourceDataset:
    """What a reader found: the samples, and what it left out and why."""

    layout: str
    samples: list[AdSample]
    skipped: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)


def missing_mask(image: Path, expected: Path | str) -> DatasetLayoutError:
    """The error for a defective image without a mask."""
    msg = (
        f"no mask for the defective image {image}: looked for {expected}. "
        "Add the mask, or move the image out of the test folders"
    )
    return DatasetLayoutError(msg)


def find_masks(image: Path, index: MaskIndex, beside: MaskIndex) -> tuple[Path, ...]:
    """An image's masks: in its mask folder (index), else beside it (``x.png`` + ``x_mask.png``)."""
    return index.find(image.stem) or beside.find(image.stem, same_stem=False)
