"""The known gaps of the published MMAD copies, summed up after validation with what evaluation does about each.

Per-image problems (a missing template, a missing mask) are listed by :mod:`mmad.data.validate`
one by one; here they are recognised as the known gaps of the Hub copies and summed up once:

- template images missing from the Hub copy (jam-cc/MMAD issue #6; DS-MVTec's templates are
  MVTec-AD train/good images, a separate archive);
- the 22 metal-nut photos filed as ``DS-MVTec/pill/image/good/000-021.png`` (#15, #19, #21);
- DS-MVTec's colour-mask folder spelled both ``rgb_mask/`` and ``rbg_mask/``;
- GoodsAD images that are ``.jpg`` with masks that are ``.png``.
"""

from __future__ import annotations

from collections import Counter

from mmad.data.errata import PILL_METAL_NUT_KEYS
from mmad.data.schema import Benchmark
from mmad.data.validate import Problem, Severity
from mmad.errors import UnsafePathError

WHERE = "(data root)"
FAILED = "recorded as failed with the missing path as the reason, and the run goes on"


def _gap(code: str, message: str, fix: str) -> Problem:
    return Problem(severity=Severity.WARNING, code=code, key=WHERE, message=message, fix=fix)


def known_gaps(benchmark: Benchmark, problems: list[Problem], *, check_files: bool) -> list[Problem]:
    """One summary problem per known gap present in this data root."""
    gaps: list[Problem] = []
    missing_templates = {p.path or "" for p in problems if p.code == "missing-template"}
    if missing_templates:
        images = len({p.key for p in problems if p.code == "missing-template"})
        mvtec = sum(t.startswith("MVTec-AD/") for t in missing_templates)
        where = f" ({mvtec} under MVTec-AD/, the templates of DS-MVTec)" if mvtec else ""
        remedy = (
            "`mmad download --datasets MVTec-AD`, or copy the official MVTec AD train/good images into "
            "MVTec-AD/<category>/train/good/"
            if mvtec
            else "re-extract the dataset archives (`mmad download` resumes and fills what is missing)"
        )
        gaps.append(
            _gap(
                "gap-missing-templates",
                f"{len(missing_templates)} template image(s) named by {images} image(s) are missing{where}; the Hub "
                "copy of MMAD is known to lack template images (jam-cc/MMAD issue #6)",
                f"In a k-shot run, each question of those images is {FAILED}; 0-shot runs need no template. "
                f"To fill the gap: {remedy}.",
            )
        )
    pills = sorted(item.key for item in benchmark.items if item.key in PILL_METAL_NUT_KEYS)
    if pills:
        gaps.append(
            _gap(
                "gap-misfiled-pill",
                f"{len(pills)} of the 22 images DS-MVTec/pill/image/good/000-021.png are in this benchmark; in copies "
                "made before the upstream fix they are metal-nut photos filed as normal pills, with pill templates "
                "(jam-cc/MMAD issues #15, #19, #21)",
                "Evaluation asks and scores them as published (the paper's numbers include them); --errata drop "
                "leaves them out (mmad eval and mmad score). Open "
                f"{pills[0]}: if it shows a metal nut, this copy predates the fix and their answers are unreliable.",
            )
        )
    if check_files:
        gaps.extend(_mask_gaps(benchmark))
    return gaps


def _mask_gaps(benchmark: Benchmark) -> list[Problem]:
    found: Counter[str] = Counter()
    for item in benchmark.items:
        if item.mask_path:
            try:
                found[benchmark.locate_mask(item).how] += 1
            except UnsafePathError:
                continue  # validate names the record and its unsafe path; a summary has nothing to add
    gaps: list[Problem] = []
    if found["rgb/rbg spelling"]:
        gaps.append(
            _gap(
                "gap-mask-spelling",
                f"{found['rgb/rbg spelling']} mask(s) exist only under the other spelling of DS-MVTec's colour-mask "
                "folder (rgb_mask/ and rbg_mask/ are both published)",
                "Nothing to do: mmad tries both spellings wherever it reads a mask.",
            )
        )
    if found["png for jpg"]:
        gaps.append(
            _gap(
                "gap-mask-extension",
                f"{found['png for jpg']} mask path(s) end in .jpg but the mask is a .png (GoodsAD images are .jpg, "
                "their masks .png)",
                "Nothing to do: mmad reads the .png, as the upstream ground-truth code does.",
            )
        )
    if found["missing"]:
        gaps.append(
            _gap(
                "gap-missing-masks",
                f"{found['missing']} mask(s) named in the json are missing",
                "Masks are not a model input in the standard protocol; a strategy that reads one (the ground-truth "
                f"agent) has each question whose mask is missing {FAILED}. Re-extract the dataset's archive to "
                "restore them.",
            )
        )
    return gaps
