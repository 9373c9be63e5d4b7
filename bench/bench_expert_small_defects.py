"""How well the visual expert finds small and large defects on real photos, and at what cost.

Data: scikit-image's photos (brick, gravel, grass, coffee, coins), normal captures that vary in
position, light and noise, and defects drawn on them with exact masks (tests/helpers/photo_defects.py):
small ones cover 0.1-0.7% of the image, large ones 2-6%. The tree is built with `mmad build`'s
default (linked files) unless --copy. Each mode of the expert is prepared on the benchmark and
asked about every test image with one template (the official 1-shot setting).

Reported per mode: image AUROC of small defects against normal images and of large ones
(the mean over categories of each category's AUROC), the miss rate of each at the calibrated
threshold, the false-positive rate, balanced accuracy at the threshold, preparation time and
the median time per query (torch on one thread unless --threads). `--json FILE` writes the figures.

Runs against whichever mmad is importable, so the same script measures an older checkout
(`PYTHONPATH=<checkout>/src`); detector options it lacks are then left at its defaults.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers.photo_defects import CATEGORIES, write_mvtec_tree

from mmad.builder import build_benchmark
from mmad.data.official import load_benchmark
from mmad.data.schema import Benchmark
from mmad.expert import patchcore
from mmad.models.expert_model import ExpertModel
from mmad.protocol.messages import ImagePart
from mmad.score.auroc import auroc


def _expert(size: int | None) -> patchcore.PatchCoreExpert:
    if size is None:
        return patchcore.PatchCoreExpert()
    if not hasattr(patchcore, "DetectorSettings"):
        sys.exit("this mmad has no detector settings; run without --size")
    return patchcore.PatchCoreExpert(settings=patchcore.DetectorSettings(image_size=size))


def _measure(bench: Benchmark, model: ExpertModel) -> dict[str, Any]:
    started = time.perf_counter()
    model.prepare(bench)
    prepare_s = time.perf_counter() - started
    rows: list[tuple[str, str, float, float]] = []  # category, class, score, threshold
    times = []
    for item in bench.items:
        query = ImagePart(path=str(bench.resolve(item.key)))
        templates = [ImagePart(path=str(bench.resolve(t)), role="template") for t in item.random_templates[:1]]
        started = time.perf_counter()
        result, threshold = model.inspect(query, templates)
        times.append(time.perf_counter() - started)
        rows.append((item.category, item.defect_type, result.pred_score, threshold))
    figures: dict[str, Any] = {"prepare_s": round(prepare_s, 2), "query_ms": round(1000 * statistics.median(times))}
    for size in ("small", "large"):
        per_category = []
        for category in sorted({r[0] for r in rows}):
            mine = [r for r in rows if r[0] == category and r[1] in {"good", size}]
            value = auroc([r[2] for r in mine], [r[1] == size for r in mine])
            if value is not None:
                per_category.append(value)
        defects = [r for r in rows if r[1] == size]
        figures[f"auroc_{size}"] = round(statistics.mean(per_category), 3)
        figures[f"missed_{size}"] = f"{sum(r[2] <= r[3] for r in defects)}/{len(defects)}"
        figures[f"miss_rate_{size}"] = round(sum(r[2] <= r[3] for r in defects) / len(defects), 3)
    normal = [r for r in rows if r[1] == "good"]
    defective = [r for r in rows if r[1] != "good"]
    false_positives = sum(r[2] > r[3] for r in normal)
    figures["false_positives"] = f"{false_positives}/{len(normal)}"
    recall = sum(r[2] > r[3] for r in defective) / len(defective)
    figures["balanced_accuracy"] = round(50 * (recall + 1 - false_positives / len(normal)), 1)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-class", type=int, default=12, help="normal, small and large test images per category")
    parser.add_argument("--train", type=int, default=6, help="normal training images (templates) per category")
    parser.add_argument("--size", type=int, default=None, help="the detector's input side (default: mmad's)")
    parser.add_argument("--copy", action="store_true", help="copy the images into the build instead of linking")
    parser.add_argument("--modes", default="templates,category")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (one: steadier times on a shared box)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        source = write_mvtec_tree(
            Path(tmp) / "photos",
            seed=args.seed,
            n_train=args.train,
            n_good=args.per_class,
            n_small=args.per_class,
            n_large=args.per_class,
        )
        build_benchmark(source, Path(tmp) / "bench", name="Photos", copy=args.copy)
        bench = load_benchmark(Path(tmp) / "bench" / "mmad.json")
        expert = _expert(args.size)
        results = {}
        for mode in args.modes.split(","):
            figures = _measure(bench, ExpertModel(expert, fit_on=mode))
            results[mode] = figures
            print(f"{'expert:category' if mode == 'category' else 'expert'} ({expert.image_size} px): {figures}")
    summary = {
        "categories": list(CATEGORIES),
        "per_class": args.per_class,
        "train": args.train,
        "seed": args.seed,
        "build": "copied" if args.copy else "linked",
        "image_size": expert.image_size,
        "results": results,
    }
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
