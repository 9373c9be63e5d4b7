"""Make docs/report-screenshot.png: the report of the demo's benchmark (538 questions) with the random
baseline, the visual expert (when the [expert] extra is installed) and an interrupted run, opened in
headless Chromium. Not a benchmark; `make bench` does not run it.

    python bench/report_screenshot.py [--out docs/report-screenshot.png] [--keep DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
import tempfile
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_report import demo_tree
from tests.helpers.runs import copy_run, edit_meta, edit_records

import mmad
from mmad.report.html import write_html_report

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def make_report(work: Path) -> Path:
    data = demo_tree(work / "demo")
    runs = [mmad.evaluate("random", data, out=work / "runs" / "random", cache=False).run_dir]
    if importlib.util.find_spec("efficientnet_lite_pytorch"):
        runs.append(mmad.evaluate("expert", data, out=work / "runs" / "expert", cache=False, concurrency=2).run_dir)
    cut = copy_run(runs[-1], work / "runs" / "interrupted")
    edit_records(cut, lambda i, r: r if i < 48 else None)
    edit_meta(cut, status="interrupted")
    return write_html_report([*runs, cut], work / "report.html", title="MMAD report: demo benchmark")


def shoot(page: Path, out: Path, width: int = 1200) -> None:
    """Four regions of the page, stacked: the top, the leaderboard around your runs, a run, the viewer."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        tab = browser.new_page(viewport={"width": width, "height": 900}, device_scale_factor=1)
        tab.goto(page.as_uri())
        tab.wait_for_selector("#samples-list article.sample")
        tab.select_option("#f-outcome", "wrong")
        tab.wait_for_function("Array.from(document.images).every(i => i.complete)")
        top = "s => s.getBoundingClientRect().top + window.scrollY"
        regions = [
            (0, 330),
            (
                tab.eval_on_selector(
                    "#leaderboard-table tr.mine", "r => " + top[5:].replace("s.", "r.previousElementSibling.", 1)
                ),
                430,
            ),
            (tab.eval_on_selector("#run-1", top), 820),
            (tab.eval_on_selector("#samples", top) - 10, 640),
        ]
        parts = []
        for number, (y, height) in enumerate(regions):
            target = out.with_suffix(f".part{number}.png")
            tab.screenshot(path=str(target), full_page=True, clip={"x": 0, "y": y, "width": width, "height": height})
            parts.append(target)
        browser.close()
    images = [Image.open(p).convert("RGB") for p in parts]
    sheet = Image.new("RGB", (width, sum(i.height for i in images) + 6 * (len(images) - 1)), "#6b7280")
    y = 0
    for image in images:
        sheet.paste(image, (0, y))
        y += image.height + 6
    sheet.quantize(colors=96, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    for path in parts:
        path.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "report-screenshot.png")
    parser.add_argument("--keep", type=Path, help="also copy the report here")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        page = make_report(Path(scratch))
        if options.keep:
            shutil.copy(page, options.keep)
        shoot(page, options.out)
    print(f"wrote {options.out} ({options.out.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
