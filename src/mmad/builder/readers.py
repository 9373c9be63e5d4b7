"""Readers for anomaly-detection datasets as they are distributed.

Each reader walks one dataset root and returns `AdSample`s: category, source split, defect type
(``good`` for normal images), the image and its mask file(s). Layouts (root/category/...):

- ``mvtec``: ``train/good``, ``test/{good,<defect>}``, ``ground_truth/<defect>/<stem>_mask.png``
- ``visa``: raw as downloaded (``Data/Images/{Normal,Anomaly}``, ``Data/Masks/Anomaly``, the split
  in ``split_csv/<scheme>.csv``; see `mmad.builder.visa`), or the prepared 1-class tree
  ``train/good``, ``test/{good,bad}``, ``ground_truth/bad/<stem>.png``
- ``loco``: like mvtec, with ``validation/good`` as more normal images, and masks as folders of
  instance masks ``ground_truth/<type>/<stem>/000.png, 001.png, ...``
- ``goodsad``: like mvtec, masks ``ground_truth/<defect>/<stem>.png``
- ``folder``: ``good`` (or ``normal``) and one folder per defect type; optional masks under
  ``masks/<defect>/`` (or ``ground_truth/<defect>/``); normal images are split into templates and
  test images by the builder.

The four split layouts share one reader: folder names match without regard to case, a mask may
be ``<stem>.<any image suffix>``, ``<stem>_mask.*`` (and similar suffixes) or a folder of
instance masks, or lie beside its image; hidden files are ignored. The layout name mostly
documents what was found.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from mmad.builder.files import (
    MASK_ROOT_NAMES,
    MaskIndex,
    child,
    images,
    is_image,
    is_normal_name,
    norm,
    subdirs,
)
from mmad.builder.samples import AdSample, SourceDataset, find_masks, missing_mask
from mmad.builder.visa import DEFAULT_VISA_SPLIT, is_raw_visa, read_raw_visa
from mmad.errors import DatasetLayoutError

LAYOUTS = ("mvtec", "visa", "loco", "goodsad", "folder")
LAYOUT_ALIASES = {
    "mvtec": "mvtec",
    "mvtec_ad": "mvtec",
    "mvtecad": "mvtec",
    "visa": "visa",
    "loco": "loco",
    "mvtec_loco": "loco",
    "mvtec_loco_ad": "loco",
    "goodsad": "goodsad",
    "goods_ad": "goodsad",
    "folder": "folder",
    "auto": "auto",
}
TRAIN_SPLITS = ("train", "training")
EXTRA_NORMAL_SPLITS = ("validation", "val", "valid")
TEST_SPLITS = ("test", "testing", "test_public")
NOT_CATEGORIES = frozenset({"split_csv"})
LOCO_TYPES = frozenset({"logical_anomalies", "structural_anomalies"})


def _has_images(folder: Path) -> bool:
    return next((True for p in folder.rglob("*") if is_image(p)), False)


def _looks_like_category(folder: Path) -> bool:
    return child(folder, *TEST_SPLITS) is not None and child(folder, *TRAIN_SPLITS) is not None


def categories(root: Path) -> list[Path]:
    """The category folders of a dataset root (the root itself when it is one category)."""
    if not root.is_dir():
        msg = f"dataset root {root} does not exist or is not a folder"
        raise DatasetLayoutError(msg)
    if _looks_like_category(root):
        return [root]
    found = [p for p in subdirs(root) if norm(p.name) not in NOT_CATEGORIES and _has_images(p)]
    if not found:
        msg = f"{root} holds no category folders with images; expected {root}/<category>/..."
        raise DatasetLayoutError(msg)
    return found


def _normal_images(split_dir: Path) -> Iterator[Path]:
    """Images in the normal sub-folders of a training split, and any lying in the split folder itself."""
    yield from images(split_dir)
    for folder in subdirs(split_dir):
        if is_normal_name(folder.name):
            yield from images(folder)


def read_split_layout(root: Path, layout: str) -> SourceDataset:
    """mvtec, visa (prepared), loco and goodsad: train/ (and validation/) normal images, test/ by type."""
    result = SourceDataset(layout, [])
    for category in categories(root):
        train = child(category, *TRAIN_SPLITS)
        test = child(category, *TEST_SPLITS)
        if train is None or test is None:
            found = [p.name for p in subdirs(category)]
            msg = f"{category} lacks a train/ or test/ folder (it holds {found}); is this the right --layout?"
            raise DatasetLayoutError(msg)
        splits = [("train", train)]
        splits += [(norm(p.name), p) for p in subdirs(category) if norm(p.name) in EXTRA_NORMAL_SPLITS]
        normals = 0
        for split, folder in splits:
            normal = [AdSample(category.name, split, "good", p) for p in _normal_images(folder)]
            result.samples += normal
            normals += len(normal)
            for defect in subdirs(folder):
                if not is_normal_name(defect.name):
                    result.skipped[f"defective image in the {split} split (templates must be normal)"] += len(
                        images(defect)
                    )
        if not normals:
            msg = f"{train} holds no normal images (expected {train}/good/*.png)"
            raise DatasetLayoutError(msg)
        mask_root = child(category, *MASK_ROOT_NAMES) or child(test, *MASK_ROOT_NAMES)
        result.skipped["image lying in test/ itself (no type folder labels it)"] += len(images(test))
        for folder in subdirs(test):
            if norm(folder.name) in MASK_ROOT_NAMES:
                continue
            if is_normal_name(folder.name):
                result.samples += [AdSample(category.name, "test", "good", p) for p in images(folder)]
                continue
            # ground_truth/<type>/, or ground_truth/test/<type>/ as VisA's prepared 2-class trees have it
            masks_of_type = child(mask_root, folder.name) or child(child(mask_root, "test"), folder.name)
            index, beside = MaskIndex(masks_of_type), MaskIndex(folder)
            for image in images(folder):
                masks = find_masks(image, index, beside)
                if not masks:
                    raise missing_mask(image, index.expected(image.stem))
                result.samples.append(AdSample(category.name, "test", folder.name, image, masks))
    result.skipped = +result.skipped  # drop zero counts
    return result


def read_folder(root: Path) -> SourceDataset:
    """The generic layout: a normal folder and one folder per defect type, per category."""
    result = SourceDataset("folder", [])
    for category in categories(root):
        folders = subdirs(category)
        normal = next((p for p in folders if is_normal_name(p.name)), None)
        if normal is None:
            msg = f"{category} has no normal folder (it holds {[p.name for p in folders]}): name it 'good' or 'normal'"
            raise DatasetLayoutError(msg)
        result.samples += [AdSample(category.name, "train", "good", p) for p in images(normal)]
        mask_root = child(category, *MASK_ROOT_NAMES)
        for folder in folders:
            if folder in {normal, mask_root}:
                continue
            mask_folder = child(mask_root, folder.name)
            index, beside = MaskIndex(mask_folder), MaskIndex(folder)
            for image in images(folder):
                masks = find_masks(image, index, beside)
                if not masks and mask_folder is not None:
                    raise missing_mask(image, index.expected(image.stem))
                result.samples.append(AdSample(category.name, "test", folder.name, image, masks))
    return result


def detect_layout(root: Path) -> str:
    """Guess a dataset's layout from its folders."""
    if is_raw_visa(root):
        return "visa"
    category = categories(root)[0]
    test = child(category, *TEST_SPLITS)
    if test is None or child(category, *TRAIN_SPLITS) is None:
        return "folder"
    defects = {norm(p.name) for p in subdirs(test)} - set(MASK_ROOT_NAMES)
    if defects & LOCO_TYPES:
        return "loco"
    truth = child(category, *MASK_ROOT_NAMES) or child(test, *MASK_ROOT_NAMES)
    if "bad" in defects and defects <= {"good", "bad"}:
        return "visa"
    masks = [p for p in truth.rglob("*") if is_image(p)] if truth is not None else []
    if masks and all(not p.stem.lower().endswith("_mask") for p in masks):
        return "goodsad"
    return "mvtec"


def layout_name(layout: str) -> str:
    """A layout argument as one of LAYOUTS or 'auto' (case, '-' and aliases such as 'mvtec_loco' accepted)."""
    chosen = LAYOUT_ALIASES.get(norm(layout))
    if chosen is None:
        msg = f"unknown layout {layout!r}; choose auto or one of {LAYOUTS}"
        raise DatasetLayoutError(msg)
    return chosen


def read_dataset(root: str | Path, layout: str = "auto", *, visa_split: str = "1cls") -> SourceDataset:
    """Read a dataset; `visa_split` names raw VisA's split scheme (1cls, 2cls_fewshot, 2cls_highshot)."""
    path = Path(root)
    chosen = layout_name(layout)
    if chosen == "auto":
        chosen = detect_layout(path)
    if chosen == "visa" and is_raw_visa(path):
        result = read_raw_visa(path, visa_split)
    elif visa_split != DEFAULT_VISA_SPLIT:  # only raw VisA's split_csv/ has schemes: it would do nothing
        msg = (
            f"--visa-split {visa_split} chooses raw VisA's split_csv/ scheme, but {path} is read as the {chosen} "
            "layout, which has none, so it would be ignored; leave --visa-split out"
        )
        raise DatasetLayoutError(msg)
    elif chosen == "folder":
        result = read_folder(path)
    else:
        result = read_split_layout(path, chosen)
    if not result.samples:
        msg = f"found no images under {path}"
        raise DatasetLayoutError(msg)
    return result


__all__ = ["LAYOUTS", "AdSample", "SourceDataset", "detect_layout", "read_dataset"]
