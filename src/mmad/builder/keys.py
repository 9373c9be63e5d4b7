"""Image keys of a built benchmark: unique, and safe under the official scorer's rules.

MMAD's scorer calls an image normal when the substring ``good`` (lower case) occurs anywhere in
its key (``evaluation/examples/helper/summary.py``, ``normal_flag='good'``). The builder keeps that
rule true by construction: the normal folder is ``good`` and no other key component may contain
``good`` in lower case, so a dataset, category, defect or file name that does is written with a
capital G ("goodsad" -> "GoodsAD" for the known dataset, "not_good" -> "not_Good").
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from mmad.data.schema import NORMAL_FLAG

# Folder names of the known source datasets, matched without regard to case, and their MMAD names.
KNOWN_DATASETS = {
    "goodsad": "GoodsAD",
    "goods_ad": "GoodsAD",
    "visa": "VisA",
    "mvtec_loco": "MVTec-LOCO",
    "mvtec_loco_ad": "MVTec-LOCO",
    "mvtec_loco_anomaly_detection": "MVTec-LOCO",
    "mvtec_ad": "MVTec-AD",
    "mvtec_anomaly_detection": "MVTec-AD",
    "ds_mvtec": "DS-MVTec",
}


def scorer_safe(text: str) -> str:
    """text with every lower-case 'good' written 'Good', so the scorer's substring rule cannot misfire."""
    return text.replace(NORMAL_FLAG, NORMAL_FLAG.capitalize())


def component(text: str) -> str:
    """One path component of a key: no separators, no '#' (question ids use it), scorer-safe."""
    cleaned = re.sub(r"[\\/#]+", "_", text.strip()) or "_"
    return scorer_safe(cleaned)


def dataset_name(folder_name: str) -> str:
    """The benchmark name for a source folder: the MMAD spelling of a known dataset, else the folder's name."""
    return KNOWN_DATASETS.get(re.sub(r"[\s\-]+", "_", folder_name.strip().lower()), component(folder_name))


class KeyAllocator:
    """Hands out keys that no other image has (compared without case, for case-insensitive file systems)."""

    def __init__(self) -> None:
        self._taken: set[str] = set()
        self.renamed = 0

    def claim(self, key: str) -> str:
        """key itself, or key with '_2', '_3', ... before its suffix when it is taken."""
        path = PurePosixPath(key)
        candidate, n = key, 1
        while candidate.lower() in self._taken:
            n += 1
            candidate = str(path.with_name(f"{path.stem}_{n}{path.suffix}"))
        if n > 1:
            self.renamed += 1
        self._taken.add(candidate.lower())
        return candidate
