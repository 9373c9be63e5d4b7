"""Build questions and templates for 5,000 images (target < 60 s). Generating the images is not timed."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmad.builder import build_benchmark, make_synthetic_dataset

TARGET_IMAGES = 5000


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        start = time.perf_counter()
        # 6 categories × (40 templates + 160 normal + ~3.5 defect types × 200) ≈ 5,000 test images + templates
        source = make_synthetic_dataset(root / "src", n_train=40, n_test_good=160, n_per_defect=200)
        generated = time.perf_counter() - start
        start = time.perf_counter()
        bench, report = build_benchmark(source.root, root / "out", name="SynthAD", knowledge=source.knowledge)
        elapsed = time.perf_counter() - start
    print(f"generated {source.images} images in {generated:.0f} s (not timed)")
    print(
        f"built {report.images} query images, {bench.n_questions} questions, templates included: "
        f"{elapsed:.1f} s (target < 60 s for {TARGET_IMAGES})"
    )
    if report.images < TARGET_IMAGES * 0.95 or elapsed * TARGET_IMAGES / report.images >= 60:
        sys.exit("target missed")


if __name__ == "__main__":
    main()
