"""The HTML report's size and build time for the demo's 538 questions and for a full-size (39,672-question)
run, made by the real runner with the random model. Target: the single-file page of the full size
stays under about 50 MB. With --browser, also the time Chromium takes to open it and apply a filter.

The full-size benchmark is tests/helpers/fullsize.py's json with a 224 px photo-like PNG per query
image and template (crops of scikit-image's sample photos when it is installed, else gradients with
noise), so the thumbnails weigh what real photos would.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers.fullsize import full_size_mmad

import mmad
from mmad.report.html import write_html_report

TARGET_BYTES = 50_000_000
IMAGE_SIDE = 224


def _photos() -> list[np.ndarray]:
    try:
        from skimage import data
    except ImportError:
        return []
    return [getattr(data, name)() for name in ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")]


def _image(path: Path, seed: int, photos: list[np.ndarray]) -> None:
    rng = np.random.default_rng(seed)
    if photos:
        photo = photos[seed % len(photos)]
        side = int(rng.integers(IMAGE_SIDE, min(photo.shape[:2])))
        y = int(rng.integers(0, photo.shape[0] - side + 1))
        x = int(rng.integers(0, photo.shape[1] - side + 1))
        picture = Image.fromarray(photo[y : y + side, x : x + side]).resize((IMAGE_SIDE, IMAGE_SIDE))
    else:
        ramp = np.linspace(0, 255, IMAGE_SIDE)[None, :, None] * rng.random(3)[None, None, :]
        noise = rng.normal(0, 12, (IMAGE_SIDE, IMAGE_SIDE, 3))
        picture = Image.fromarray(np.clip(ramp + noise, 0, 255).astype(np.uint8))
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path, compress_level=1)


def full_size_tree(root: Path) -> Path:
    """A 39,672-question data root with an image for every query key and template."""
    data = full_size_mmad()
    photos = _photos()
    paths = set(data)
    for item in data.values():
        paths.update(item["random_templates"][:1])
    for seed, relative in enumerate(sorted(paths)):
        _image(root / relative, seed, photos)
    path = root / "mmad.json"
    path.write_text(json.dumps(data))
    return path


def demo_tree(root: Path) -> Path:
    """The demo's synthetic benchmark: 538 questions on real texture photos."""
    from mmad.builder.build import build_benchmark
    from mmad.builder.synthetic import DATASET_NAME, make_synthetic_dataset

    source = make_synthetic_dataset(root / "source", seed=0)
    build_benchmark(source.root, root / "benchmark", name=DATASET_NAME, seed=0, knowledge=source.knowledge)
    return root / "benchmark" / "mmad.json"


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def open_in_chromium(page: Path) -> tuple[float, float] | None:
    """(seconds to the first rendered question, seconds to apply a filter) in headless Chromium."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        tab = browser.new_page()
        start = time.perf_counter()
        tab.goto(page.as_uri(), timeout=300_000)
        tab.wait_for_selector("#samples-list article.sample", timeout=300_000)
        opened = time.perf_counter() - start
        start = time.perf_counter()
        tab.select_option("#f-outcome", "wrong")
        tab.wait_for_function("document.querySelector('#sample-count').dataset.count !== '39672'")
        filtered = time.perf_counter() - start
        browser.close()
    return opened, filtered


def measure(label: str, data: Path, work: Path, browser: bool) -> dict[str, object]:
    start = time.perf_counter()
    run = mmad.evaluate("random", data, out=work / f"run-{label}", cache=False, concurrency=64).run_dir
    run_s = time.perf_counter() - start
    start = time.perf_counter()
    page = write_html_report([run], work / f"{label}.html")
    single_s = time.perf_counter() - start
    start = time.perf_counter()
    folder = write_html_report([run], work / f"{label}-site").parent
    folder_s = time.perf_counter() - start
    result: dict[str, object] = {
        "questions": len(mmad.open_run(run).plain),
        "run_s": round(run_s, 1),
        "single_file_mb": round(page.stat().st_size / 1e6, 2),
        "single_file_build_s": round(single_s, 1),
        "folder_mb": round(folder_bytes(folder) / 1e6, 2),
        "folder_page_mb": round((folder / "index.html").stat().st_size / 1e6, 2),
        "folder_build_s": round(folder_s, 1),
    }
    if browser:
        timings = open_in_chromium(page)
        if timings:
            result["chromium_open_s"], result["chromium_filter_s"] = (round(t, 2) for t in timings)
    print(label, json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--browser", action="store_true", help="also time opening the page in headless Chromium")
    parser.add_argument("--only", choices=["demo", "full"], help="measure one size only")
    parser.add_argument("--work", type=Path, help="keep the data, runs and reports in this (new) folder")
    options = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(f"{platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        work = options.work or Path(scratch)
        if options.only in (None, "demo"):
            results["demo"] = measure("demo-538", demo_tree(work / "demo"), work, options.browser)
        if options.only in (None, "full"):
            start = time.perf_counter()
            data = full_size_tree(work / "full")
            print(f"full-size tree with images: {time.perf_counter() - start:.0f} s", flush=True)
            results["full"] = measure("full-39672", data, work, options.browser)
    full = results.get("full")
    if full and float(str(full["single_file_mb"])) * 1e6 > TARGET_BYTES:
        sys.exit(f"the full-size single-file page is {full['single_file_mb']} MB, over the ~50 MB target")


if __name__ == "__main__":
    main()
