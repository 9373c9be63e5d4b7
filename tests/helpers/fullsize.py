"""A full-size MMAD-shaped json (no images) with the per-dataset × subtask counts of the real one.

Counts from ../shared/reference/mmad-protocol.md §B.3 (derived from the published CSVs); they sum
to 39,672. Passing ``drop=2`` gives the 39,670-question revision's size.
"""

from __future__ import annotations

import random
from typing import Any

COUNTS = {
    "DS-MVTec": [1691, 1205, 1193, 1213, 1205, 464, 1367],
    "MVTec-LOCO": [1565, 982, 982, 974, 954, 544, 1623],
    "VisA": [2141, 1190, 1197, 1190, 1163, 935, 2806],
    "GoodsAD": [2900, 1311, 1506, 1333, 1460, 1211, 3367],
}
SPLIT = {"DS-MVTec": "image", "MVTec-LOCO": "test", "VisA": "test", "GoodsAD": "test"}
DEFECT_TYPES = ["Defect Classification", "Defect Localization", "Defect Description", "Defect Analysis"]


def full_size_mmad(seed: int = 0, drop: int = 0) -> dict[str, Any]:
    """A dict in mmad.json's shape with 39,672 - drop questions."""
    rng = random.Random(seed)
    data: dict[str, Any] = {}
    for dataset, (ad, dc, dl, dd, da, oc, oa) in COUNTS.items():
        n_normal = oc
        defect_left = dict(zip(DEFECT_TYPES, [dc, dl, dd, da], strict=True))
        oa_left = oa
        for i in range(ad):
            normal = i < n_normal
            folder = "good" if normal else f"defect{i % 7}"
            key = f"{dataset}/cat{i % 9}/{SPLIT[dataset]}/{folder}/{i:05d}.png"
            conversation = [_question("Anomaly Detection", "B" if normal else "A", 2, rng)]
            if normal:
                conversation.append(_question("Object Classification", rng.choice("ABCD"), 4, rng))
                share = oa_left // max(1, n_normal - i) if i < n_normal - 1 else oa_left
                for j in range(share):
                    conversation.append(
                        _question("Object Structure" if j % 2 else "Object Details", rng.choice("ABCD"), 4, rng)
                    )
                oa_left -= share
            else:
                remaining = ad - i
                for qtype in DEFECT_TYPES:
                    take = defect_left[qtype] // remaining + (
                        1 if rng.random() < (defect_left[qtype] % remaining) / remaining else 0
                    )
                    take = min(take, defect_left[qtype]) if remaining > 1 else defect_left[qtype]
                    for _ in range(take):
                        conversation.append(_question(qtype, rng.choice("ABCD"), 4, rng))
                    defect_left[qtype] -= take
            data[key] = {
                "mask_path": "" if normal else f"mask/{folder}/{i:05d}_mask.png",
                "random_templates": [f"MVTec-AD/cat{i % 9}/train/good/{j:03d}.png" for j in range(3)],
                "similar_templates": [f"MVTec-AD/cat{i % 9}/train/good/{j:03d}.png" for j in range(3, 6)],
                "conversation": conversation,
            }
    keys = list(data)
    for _ in range(drop):
        for key in reversed(keys):
            if len(data[key]["conversation"]) > 2:
                data[key]["conversation"].pop()
                break
    return data


def _question(qtype: str, answer: str, n_options: int, rng: random.Random) -> dict[str, Any]:
    letters = "ABCD"[:n_options]
    options = {"A": "Yes.", "B": "No."} if n_options == 2 else {k: f"Option {k} {rng.random():.6f}" for k in letters}
    return {
        "Question": f"{qtype} question {rng.random():.8f}?",
        "Options": options,
        "Answer": answer,
        "type": qtype,
        "annotation": True,
    }
