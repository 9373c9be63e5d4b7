"""Read a tree of per-category ``QA.json`` files (the Hub's early loose-file revisions) into a Benchmark.

Each ``<dataset>/<category>/QA.json`` is an object keyed by image path relative to the category
folder (``image/broken_large/000.png``); values are records in the mmad.json shape (a
``conversation``, and where present ``mask_path`` and the template lists), or a bare list of
questions. Keys already written from the data root (starting with a dataset name, ``DS-MVTec/...``)
are kept as they are.
The exact upstream file could not be inspected (the loose folders were deleted from the Hub in
January 2025), so this reader accepts both key forms and both value forms. A tree without
template lists cannot serve a k-shot protocol; :func:`mmad.data.formats.check_protocol` says so.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from mmad.data.formats import QA_TREE, qa_files
from mmad.data.known import DATASETS
from mmad.data.official import parse_benchmark, read_json
from mmad.data.schema import Benchmark
from mmad.errors import BenchmarkFormatError


def read_qa_tree(folder: Path, *, root: Path | None = None) -> Benchmark:
    """Merge every ``<dataset>/<category>/QA.json`` under ``folder`` into one Benchmark."""
    files = qa_files(folder)
    if not files:
        msg = f"no <dataset>/<category>/QA.json under {folder}"
        raise BenchmarkFormatError(msg)
    merged: dict[str, Any] = {}
    digest = hashlib.sha256()
    for path in files:
        raw, sha = read_json(path)
        relative = path.relative_to(folder).as_posix()
        digest.update(f"{relative}\0{sha}\n".encode())
        if not isinstance(raw, dict):
            msg = f"{path}: the top level is a {type(raw).__name__}; a QA.json is one object keyed by image path"
            raise BenchmarkFormatError(msg)
        prefix = f"{path.parent.parent.name}/{path.parent.name}/"
        for key, record in raw.items():
            rooted = key.startswith(prefix) or key.split("/", 1)[0] in DATASETS
            full = key if rooted else prefix + key.removeprefix("./")
            if full in merged:
                msg = f"{path}: image {full} is also in another QA.json; each image belongs to one category"
                raise BenchmarkFormatError(msg)
            merged[full] = {"conversation": record} if isinstance(record, list) else record
    benchmark = parse_benchmark(merged, root=root or folder, source=folder, sha256=digest.hexdigest())
    limits: dict[str, int] = {}
    lacks: dict[str, str] = {}
    for pool in ("random_templates", "similar_templates"):
        most = max((len(getattr(item, pool)) for item in benchmark.items), default=0)
        if most == 0:
            limits[pool] = 0
            lacks[pool] = "the QA.json files carry no template lists"
    return benchmark.model_copy(update={"origin": QA_TREE, "template_limit": limits, "lacks": lacks})
