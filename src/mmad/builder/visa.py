"""Raw VisA as downloaded: ``<category>/Data/Images/{Normal,Anomaly}``, ``<category>/Data/Masks/Anomaly``
and the splits in ``split_csv/<scheme>.csv``.

VisA (amazon-science/spot-diff) ships three split schemes as csv files with the columns
``object,split,label,image,mask``: ``1cls`` (train: normal images only; the one MMAD uses),
``2cls_fewshot`` and ``2cls_highshot`` (train also holds anomalous images). ``label`` is
``normal`` or an anomaly; ``image`` and ``mask`` are relative to the VisA root. Mask pixels hold
1, 2, ... per defect region, so any non-zero value is defect. Anomalous training images are not
templates and are left out with a counted reason. Without a split csv, every normal image is a
candidate template and the builder holds out a share as normal test images.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path, PurePosixPath

from mmad.builder.files import MaskIndex, child, child_file, images, norm, subdirs
from mmad.builder.samples import AdSample, SourceDataset, find_masks, missing_mask
from mmad.errors import DatasetLayoutError

logger = logging.getLogger(__name__)

VISA_SPLITS = ("1cls", "2cls_fewshot", "2cls_highshot")
DEFAULT_VISA_SPLIT = "1cls"
COLUMNS = ("object", "split", "label", "image", "mask")
NORMAL_LABELS = frozenset({"normal", "good", "ok", "0"})
SPLIT_NAMES = {"train": "train", "training": "train", "test": "test", "testing": "test"}
SPLIT_NAMES |= {"val": "validation", "valid": "validation", "validation": "validation"}


def _data_images(category: Path) -> Path | None:
    return child(child(category, "Data"), "Images")


def is_raw_visa(root: Path) -> bool:
    """Whether root is a VisA download: a split_csv folder, or categories holding Data/Images."""
    if child(root, "split_csv") is not None or _data_images(root) is not None:
        return True
    return any(_data_images(c) is not None for c in subdirs(root))


def _resolve(root: Path, relative: str) -> Path | None:
    """A csv path under root, matched without regard to case; leading folders the root already is may be dropped."""
    parts = [p for p in PurePosixPath(relative.strip().replace("\\", "/")).parts if p not in {"", "."}]
    for skip in range(min(3, len(parts))):
        folder: Path | None = root
        for part in parts[skip:-1]:
            folder = child(folder, part)
        if folder is not None:
            found = child_file(folder, parts[-1])
            if found is not None:
                return found
    return None


def _split_file(root: Path, scheme: str) -> Path | None:
    folder = child(root, "split_csv")
    name = f"{scheme}.csv"
    found = child_file(folder, name) if folder is not None else None
    if found is None and folder is not None:
        available = sorted(p.stem for p in folder.iterdir() if p.suffix.lower() == ".csv")
        if scheme != DEFAULT_VISA_SPLIT or available:
            msg = f"{folder} has no {name}; it holds {available}. Choose one of those as the VisA split scheme"
            raise DatasetLayoutError(msg)
    if found is None and scheme != DEFAULT_VISA_SPLIT:
        msg = (
            f"the VisA split scheme {scheme!r} needs {root}/split_csv/{name}, which does not exist "
            f"(VisA ships {', '.join(VISA_SPLITS)})"
        )
        raise DatasetLayoutError(msg)
    return found


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = {norm(h): h for h in reader.fieldnames or []}
        lacking = [c for c in COLUMNS if c not in header and c != "mask"]
        if lacking:
            msg = f"{path} lacks the column(s) {lacking}; VisA split files have the columns {','.join(COLUMNS)}"
            raise DatasetLayoutError(msg)
        return [{c: (row.get(header[c]) or "").strip() for c in COLUMNS if c in header} for row in reader]


def _mask_index(category: Path | None) -> MaskIndex:
    return MaskIndex(child(child(child(category, "Data"), "Masks"), "Anomaly"))


def _from_csv(root: Path, path: Path, scheme: str) -> SourceDataset:
    result = SourceDataset("visa", [])
    indexes: dict[str, MaskIndex] = {}
    for line, row in enumerate(_read_csv(path), start=2):
        where = f"{path}, line {line}"
        if not row.get("image"):
            result.skipped["VisA split row without an image path"] += 1
            continue
        image = _resolve(root, row["image"])
        if image is None:
            msg = f"{where}: the image {row['image']} does not exist under {root}; re-extract VisA or fix the csv"
            raise DatasetLayoutError(msg)
        category = row.get("object") or PurePosixPath(row["image"].replace("\\", "/")).parts[0]
        split = SPLIT_NAMES.get(norm(row.get("split", "")))
        if split is None:
            msg = f"{where}: unknown split {row.get('split')!r}; expected train or test"
            raise DatasetLayoutError(msg)
        if norm(row.get("label", "")) in NORMAL_LABELS:
            result.samples.append(AdSample(category, split, "good", image))
            continue
        if split != "test":
            result.skipped[f"anomalous image in the {split} split of VisA {scheme} (templates must be normal)"] += 1
            continue
        found = _resolve(root, row["mask"]) if row.get("mask") else None
        if category not in indexes:
            indexes[category] = _mask_index(child(root, category))
        index = indexes[category]
        listed = (found,) if found is not None else find_masks(image, index, MaskIndex(None))
        if not listed:
            raise missing_mask(image, row.get("mask") or index.expected(image.stem))
        result.samples.append(AdSample(category, "test", "bad", image, listed))
    result.notes.append(f"VisA split scheme {scheme} read from {path}")
    return result


def _without_csv(root: Path) -> SourceDataset:
    result = SourceDataset("visa", [])
    folders = [root] if _data_images(root) is not None else [c for c in subdirs(root) if _data_images(c)]
    for category in folders:
        pictures = _data_images(category)
        normal, anomaly = child(pictures, "Normal"), child(pictures, "Anomaly")
        if normal is None:
            msg = f"{pictures} has no Normal folder of defect-free images"
            raise DatasetLayoutError(msg)
        result.samples += [AdSample(category.name, "train", "good", p) for p in images(normal)]
        index = _mask_index(category)
        for image in images(anomaly) if anomaly is not None else []:
            found = find_masks(image, index, MaskIndex(None))
            if not found:
                raise missing_mask(image, index.expected(image.stem))
            result.samples.append(AdSample(category.name, "test", "bad", image, found))
    note = f"no split_csv/{DEFAULT_VISA_SPLIT}.csv under {root}: normal images were split by the builder"
    logger.warning(note)
    result.notes.append(note)
    return result


def read_raw_visa(root: Path, scheme: str = DEFAULT_VISA_SPLIT) -> SourceDataset:
    """Read VisA as downloaded, with the split of one of its schemes (1cls by default)."""
    wanted = scheme.strip().lower().removesuffix(".csv")
    path = _split_file(root, wanted)
    return _from_csv(root, path, wanted) if path is not None else _without_csv(root)
