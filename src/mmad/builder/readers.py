"""Readers for anomaly-detection datasets as they are distributed.

Each reader walks one dataset root and returns `AdSample`s: category, split, defect type
(``good`` for normal images), the image and its mask(s). Layouts (root/category/...):

- ``mvtec``: ``train/good``, ``test/{good,<defect>}``, ``ground_truth/<defect>/<stem>_mask.png``
- ``visa`` (the 1-class split): ``train/good``, ``test/{good,bad}``, ``ground_truth/bad/<stem>.png``
- ``loco``: like mvtec, with ``validation/good``, and masks as folders ``ground_truth/<type>/<stem>/*.png``
- ``goodsad``: like mvtec, masks ``ground_truth/<defect>/<stem>.png``
- ``folder``: ``good`` (or ``normal``) and one folder per defect type; optional masks under
  ``masks/<defect>/`` (or ``ground_truth/<defect>/``) named ``<stem>.png`` or ``<stem>_mask.png``;
  normal images are split into templates and test images by the builder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mmad.errors import DatasetLayoutError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
LAYOUTS = ("mvtec", "visa", "loco", "goodsad", "folder")


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


def _images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _categories(root: Path) -> list[Path]:
    if not root.is_dir():
        msg = f"dataset root {root} does not exist or is not a folder"
        raise DatasetLayoutError(msg)
    found = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not found:
        msg = f"{root} holds no category folders; expected {root}/<category>/..."
        raise DatasetLayoutError(msg)
    return found


def _missing_mask(image: Path, expected: Path) -> DatasetLayoutError:
    msg = (
        f"no mask for the defective image {image}: expected {expected}. "
        "Add the mask, or move the image out of the test folders"
    )
    return DatasetLayoutError(msg)


def _split_reader(
    mask_for: Callable[[Path, Path, str, Path], tuple[Path, ...]], normal_splits: tuple[str, ...] = ("train",)
) -> Callable[[Path], list[AdSample]]:
    def read(root: Path) -> list[AdSample]:
        samples: list[AdSample] = []
        for category in _categories(root):
            train = [s for s in normal_splits if (category / s / "good").is_dir()]
            if not train or not (category / "test").is_dir():
                msg = f"{category} lacks train/good or test/; is this the right --layout?"
                raise DatasetLayoutError(msg)
            for split in train:
                samples += [AdSample(category.name, split, "good", p) for p in _images(category / split / "good")]
            for folder in sorted(p for p in (category / "test").iterdir() if p.is_dir()):
                for image in _images(folder):
                    masks = () if folder.name == "good" else mask_for(category, image, folder.name, root)
                    samples.append(AdSample(category.name, "test", folder.name, image, masks))
        if not samples:
            msg = f"found no images under {root}"
            raise DatasetLayoutError(msg)
        return samples

    return read


def _mvtec_mask(category: Path, image: Path, defect: str, root: Path) -> tuple[Path, ...]:
    expected = category / "ground_truth" / defect / f"{image.stem}_mask.png"
    if not expected.is_file():
        raise _missing_mask(image, expected)
    return (expected,)


def _same_stem_mask(category: Path, image: Path, defect: str, root: Path) -> tuple[Path, ...]:
    expected = category / "ground_truth" / defect / f"{image.stem}.png"
    if not expected.is_file():
        raise _missing_mask(image, expected)
    return (expected,)


def _loco_mask(category: Path, image: Path, defect: str, root: Path) -> tuple[Path, ...]:
    folder = category / "ground_truth" / defect / image.stem
    masks = tuple(_images(folder))
    if not masks:
        raise _missing_mask(image, folder / "000.png")
    return masks


def read_folder(root: Path) -> list[AdSample]:
    """The generic layout: a normal folder and one folder per defect type, per category."""
    samples: list[AdSample] = []
    for category in _categories(root):
        normal = next((category / n for n in ("good", "normal", "ok", "OK") if (category / n).is_dir()), None)
        if normal is None:
            msg = f"{category} has no normal folder: name it 'good' (or 'normal')"
            raise DatasetLayoutError(msg)
        samples += [AdSample(category.name, "train", "good", p) for p in _images(normal)]
        mask_root = next((category / n for n in ("masks", "ground_truth") if (category / n).is_dir()), None)
        for folder in sorted(p for p in category.iterdir() if p.is_dir() and p not in {normal, mask_root}):
            for image in _images(folder):
                masks: tuple[Path, ...] = ()
                if mask_root is not None:
                    candidates = [mask_root / folder.name / f"{image.stem}{s}.png" for s in ("", "_mask")]
                    masks = tuple(c for c in candidates if c.is_file())[:1]
                    if not masks and (mask_root / folder.name).is_dir():
                        raise _missing_mask(image, candidates[0])
                samples.append(AdSample(category.name, "test", folder.name, image, masks))
    return samples


READERS: dict[str, Callable[[Path], list[AdSample]]] = {
    "mvtec": _split_reader(_mvtec_mask),
    "visa": _split_reader(_same_stem_mask),
    "loco": _split_reader(_loco_mask, ("train", "validation")),
    "goodsad": _split_reader(_same_stem_mask),
    "folder": read_folder,
}


def detect_layout(root: Path) -> str:
    """Guess a dataset's layout from its first category."""
    category = _categories(root)[0]
    test = category / "test"
    if not test.is_dir():
        return "folder"
    defects = {p.name for p in test.iterdir() if p.is_dir()}
    if defects & {"logical_anomalies", "structural_anomalies"}:
        return "loco"
    truth = category / "ground_truth"
    if defects == {"good", "bad"} or (truth / "bad").is_dir():
        return "visa"
    masks = list(truth.rglob("*.png")) if truth.is_dir() else []
    if masks and all(not p.stem.endswith("_mask") for p in masks):
        return "goodsad"
    return "mvtec"


def read_dataset(root: str | Path, layout: str = "auto") -> tuple[str, list[AdSample]]:
    """Read a dataset; returns (layout used, samples)."""
    path = Path(root)
    chosen = detect_layout(path) if layout == "auto" else layout
    if chosen not in READERS:
        msg = f"unknown layout {layout!r}; choose auto or one of {LAYOUTS}"
        raise DatasetLayoutError(msg)
    return chosen, READERS[chosen](path)
