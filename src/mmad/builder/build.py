"""Build an MMAD-style benchmark from an anomaly-detection dataset.

The output folder gets ``mmad.json`` (the official format), ``domain_knowledge.json`` when one
is used, ``build_report.json`` (counts and what was skipped, and why) and a canonical image tree
``<name>/<category>/{train,test}/<defect>/<file>``: links to the source files (or copies with
``copy=True``). Each defective image's mask is written as one 0/255 PNG at the image's size,
``<name>/<category>/ground_truth/<defect>/<stem>_mask.png``: the union of its instance masks
(MVTec LOCO), with any non-zero source value as defect (VisA's 1, 2, ...).

Keys cannot collide: templates from a split other than ``train`` (LOCO's ``validation/good``,
numbered from 000 like ``train/good``) carry the split as a prefix, and any key still taken is
numbered. See `mmad.builder.keys` for how names are kept safe under the scorer's 'good' rule.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image

from mmad._io import atomic_write_bytes, atomic_write_text
from mmad.builder import geometry, questions
from mmad.builder.keys import KeyAllocator, component, dataset_name
from mmad.builder.readers import read_dataset
from mmad.builder.samples import AdSample
from mmad.builder.templates import descriptor, random_templates, similar_templates
from mmad.builder.visa import DEFAULT_VISA_SPLIT
from mmad.data.official import content_ids, load_benchmark
from mmad.data.schema import Benchmark
from mmad.errors import DatasetLayoutError

logger = logging.getLogger(__name__)
Progress = Callable[[int, int], None]


@dataclass
class BuildReport:
    """What a build produced and skipped."""

    name: str
    layout: str
    images: int = 0
    templates: int = 0
    questions: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    renamed: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    letters: dict[str, dict[str, int]] = field(default_factory=dict)


def _place(source: Path, target: Path, copy: bool) -> None:
    """Link (or copy) source to target, replacing what an earlier build left there."""
    if target.is_symlink() and not copy and target.resolve() == source.resolve():
        return
    if target.is_symlink() or target.is_file():
        target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    if copy:
        shutil.copy2(source, target)
    else:
        target.symlink_to(source.resolve())


def _header_size(path: Path) -> tuple[int, int] | None:
    try:
        with Image.open(path) as opened:
            return opened.size
    except UNREADABLE:
        return None  # the build reports an unreadable file where it reads it


def _check_mask_sizes(samples: list[AdSample]) -> None:
    """Refuse, before anything is written, a mask whose size is not its image's: stretched to fit, it
    would move every defect, and every Defect Localization answer with it."""
    for sample in samples:
        if not sample.masks:
            continue
        image_size = _header_size(sample.image)
        for mask in sample.masks:
            mask_size = _header_size(mask)
            if image_size is not None and mask_size is not None and mask_size != image_size:
                msg = (
                    f"mask {mask} is {mask_size[0]}x{mask_size[1]} px but its image {sample.image} is "
                    f"{image_size[0]}x{image_size[1]}; mmad does not stretch a mask onto an image of another size. "
                    "Give each image the mask made for it (or remove the mask), then build again"
                )
                raise DatasetLayoutError(msg)


def _write_mask(sample: AdSample, size: tuple[int, int], target: Path) -> np.ndarray:
    """Write the union of the sample's masks as one 0/255 PNG at the image's size (width, height); return it."""
    union = geometry.union_mask(sample.masks, (size[1], size[0]))
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink():
        target.unlink()
    buffer = io.BytesIO()
    Image.fromarray(union.astype(np.uint8) * 255).save(buffer, format="PNG")
    atomic_write_bytes(target, buffer.getvalue())
    return union


def _split_normals(
    samples: list[AdSample], rng: np.random.Generator, test_share: float, notes: list[str]
) -> list[AdSample]:
    """A category without normal test images (generic folders, VisA without its csv) gets a share of its
    normal images held out as test images, so that Anomaly Discrimination has both answers."""
    tested = {s.category for s in samples if s.is_query and s.is_normal}
    out: list[AdSample] = []
    by_category: dict[str, list[AdSample]] = defaultdict(list)
    for sample in samples:
        (by_category[sample.category] if sample.is_normal and sample.category not in tested else out).append(sample)
    for category, normals in sorted(by_category.items()):
        order = rng.permutation(len(normals))
        n_test = round(len(normals) * test_share)
        for rank, index in enumerate(order):
            sample = normals[int(index)]
            split = "test" if rank < n_test else sample.split
            out.append(AdSample(category, split, "good", sample.image, ()))
        notes.append(
            f"{category}: no normal test images; {n_test} of {len(normals)} normal images held out as test images"
        )
    return out


UNREADABLE = (OSError, ValueError, Image.DecompressionBombError)


def _unreadable(path: Path, exc: Exception, report: BuildReport) -> None:
    report.skipped["unreadable image file (not an image, or truncated)"] += 1
    note = f"skipped {path}: {exc}"
    logger.warning(note)
    report.notes.append(note)


def _template_pool(
    normals: list[AdSample], folder: str, keys: KeyAllocator, target: Path, copy: bool, report: BuildReport
) -> tuple[list[str], np.ndarray]:
    """The category's template keys (placed in the tree) and their descriptors; unreadable images are skipped."""
    pool: list[str] = []
    features: list[np.ndarray] = []
    for sample in normals:
        try:
            features.append(descriptor(sample.image))
        except UNREADABLE as exc:
            _unreadable(sample.image, exc, report)
            continue
        key = keys.claim(f"{folder}/train/good/{_template_file(sample)}")
        _place(sample.image, target / key, copy)
        pool.append(key)
    if not pool:
        msg = f"none of the {len(normals)} normal training images under {folder} could be read as an image"
        raise DatasetLayoutError(msg)
    report.templates += len(pool)
    return pool, np.stack(features)


def _benchmark_name(name: str | None, source: Path, report_notes: list[str]) -> str:
    if name is None:
        return dataset_name(source.resolve().name)
    safe = component(name)
    if safe != name:
        note = f"the name {name!r} became {safe!r}: MMAD's scorer reads 'good' anywhere in a key as 'normal image'"
        logger.warning(note)
        report_notes.append(note)
    return safe


def _template_file(sample: AdSample) -> str:
    """A template's file name: the source split prefixes it unless it is train, so splits cannot collide."""
    name = component(sample.image.name)
    return name if sample.split == "train" else f"{component(sample.split)}_{name}"


def build_benchmark(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    name: str | None = None,
    layout: str = "auto",
    visa_split: str = DEFAULT_VISA_SPLIT,
    seed: int = 0,
    templates: int = 3,
    knowledge: str | os.PathLike[str] | None = None,
    copy: bool = False,
    progress: Progress | None = None,
) -> tuple[Benchmark, BuildReport]:
    """Read an anomaly-detection dataset and write an MMAD-format benchmark into out.

    Args:
        source: the dataset root (``<root>/<category>/...``).
        out: the folder to write (created).
        name: the benchmark's source-dataset name, the first path component of every key
            (default: the MMAD spelling of a known dataset folder, else the folder's name).
        layout: ``auto`` or one of mvtec, visa, loco, goodsad, folder (any case).
        visa_split: raw VisA's split scheme, the csv in ``split_csv/`` (1cls, 2cls_fewshot, 2cls_highshot).
        seed: makes every choice reproducible.
        templates: how many random and similar templates each image gets.
        knowledge: a domain-knowledge json in the official format, for Object Analysis.
        copy: copy the images instead of linking them (masks are always written files).
        progress: called with (done, total) images.
    """
    source_root = Path(source)
    target = Path(out)
    dataset = read_dataset(source_root, layout, visa_split=visa_split)
    notes = list(dataset.notes)
    name = _benchmark_name(name, source_root, notes)
    _check_mask_sizes(dataset.samples)
    rng = np.random.default_rng(seed)
    samples = _split_normals(dataset.samples, rng, 0.5, notes)
    table: dict[str, dict[str, str]] = {}
    if knowledge:
        raw = json.loads(Path(knowledge).read_text(encoding="utf-8"))
        table = raw.get(name) or next(iter(raw.values()), {}) if isinstance(raw, dict) else {}
    report = BuildReport(name=name, layout=dataset.layout, skipped=Counter(dataset.skipped), notes=notes)
    balancer = questions.LetterBalancer(rng)
    keys = KeyAllocator()
    by_category: dict[str, list[AdSample]] = defaultdict(list)
    for sample in samples:
        by_category[sample.category].append(sample)
    categories = sorted(by_category)
    records: dict[str, Any] = {}
    total = sum(1 for s in samples if s.is_query)
    done = 0
    if progress is not None:  # the total first: a category's templates are read before its first image is done
        progress(done, total)
    for category in categories:
        members = by_category[category]
        folder = f"{name}/{component(category)}"
        normals = [s for s in members if s.is_normal and not s.is_query]
        tests = sorted((s for s in members if s.is_query), key=lambda s: (s.defect_type, s.image.name))
        if not normals:
            msg = f"category {category} has no normal training images to use as templates"
            raise DatasetLayoutError(msg)
        defects = sorted({s.defect_type for s in tests if not s.is_normal})
        pool, pool_features = _template_pool(normals, folder, keys, target, copy, report)
        for sample in tests:
            done += 1
            try:
                rgb = geometry.load_rgb(sample.image)
            except UNREADABLE as exc:
                _unreadable(sample.image, exc, report)
                if progress is not None:  # skipped, but done: the count still reaches the total
                    progress(done, total)
                continue
            defect = "good" if sample.is_normal else component(sample.defect_type)
            key = keys.claim(f"{folder}/test/{defect}/{component(sample.image.name)}")
            _place(sample.image, target / key, copy)
            record = _image_record(
                sample, key, rgb, category, defects, categories, table, balancer, rng, report, target, keys
            )
            record["random_templates"] = random_templates(pool, templates, rng)
            record["similar_templates"] = similar_templates(descriptor(rgb), pool, pool_features, templates)
            records[key] = record
            report.images += 1
            if progress is not None:
                progress(done, total)
    report.renamed["key taken by another image: numbered"] += keys.renamed
    report.renamed["category, defect or file name made key-safe ('good' -> 'Good', '#' -> '_')"] += sum(
        # A normal image's folder is "good" on purpose (the scorer reads it): only the other names count.
        any(component(n) != n for n in (s.image.name, s.category, *(() if s.is_normal else (s.defect_type,))))
        for s in samples
    )
    report.renamed = +report.renamed  # drop zero counts
    target.mkdir(parents=True, exist_ok=True)
    json_path = target / "mmad.json"
    atomic_write_text(json_path, json.dumps(records, indent=4, ensure_ascii=False))
    if table:
        atomic_write_text(target / "domain_knowledge.json", json.dumps({name: table}, indent=4, ensure_ascii=False))
    report.letters = {k: dict(sorted(v.items())) for k, v in balancer.counts.items()}
    report_data = {
        "name": report.name,
        "layout": report.layout,
        "images": report.images,
        "templates": report.templates,
        "questions": dict(report.questions),
        "skipped": dict(report.skipped),
        "renamed": dict(report.renamed),
        "notes": report.notes,
        "letters": report.letters,
        "seed": seed,
        "visa_split": visa_split,
        "source": str(source_root.resolve()),
    }
    atomic_write_text(target / "build_report.json", json.dumps(report_data, indent=2))
    return load_benchmark(json_path), report


def _image_record(
    sample: AdSample,
    key: str,
    rgb: np.ndarray,
    category: str,
    defects: list[str],
    categories: list[str],
    table: dict[str, dict[str, str]],
    balancer: questions.LetterBalancer,
    rng: np.random.Generator,
    report: BuildReport,
    target: Path,
    keys: KeyAllocator,
) -> dict[str, Any]:
    conversation = [questions.anomaly_question(sample.is_normal, balancer)]
    mask_path = ""
    generated: list[tuple[str, dict[str, Any] | None]] = []
    if sample.is_normal:
        generated.append(("Object Classification", questions.object_question(category, categories, balancer, rng)))
        generated += [(q["type"], q) for q in questions.object_analysis_questions(category, table, balancer, rng)]
        if not table:
            report.skipped["Object Analysis: no domain knowledge"] += 1
    else:
        classified = questions.classification_question(sample.defect_type, defects, balancer, rng, category)
        if isinstance(classified, questions.Skip):
            report.skipped[classified.reason] += 1
        else:
            generated.append(("Defect Classification", classified))
        if sample.masks:
            mask_path = _mask_record(sample, key, rgb, rng, balancer, report, target, keys, generated)
        else:
            report.skipped["Defect Localization/Description: no mask"] += 1
        generated.append(("Defect Analysis", questions.analysis_question(sample.defect_type, balancer, rng)))
    for qtype, qa in generated:
        if qa is None:
            report.skipped[f"{qtype}: too few distinct distractors"] += 1
        else:
            conversation.append(qa)
    for qa in conversation:
        report.questions[qa["type"]] += 1
    # Each question records its content id, so review verdicts reach it whatever else is removed.
    ids = content_ids(key, conversation)
    return {
        "mask_path": mask_path,
        "conversation": [{"id": uid, **qa} for uid, qa in zip(ids, conversation, strict=True)],
    }


def _mask_record(
    sample: AdSample,
    key: str,
    rgb: np.ndarray,
    rng: np.random.Generator,
    balancer: questions.LetterBalancer,
    report: BuildReport,
    target: Path,
    keys: KeyAllocator,
    generated: list[tuple[str, dict[str, Any] | None]],
) -> str:
    """Write the mask (the union of instance masks, as one file) and make the mask-grounded questions.

    mask_path is relative to ``{dataset}/{category}/``, as MMAD's InternVL script resolves it.
    """
    parts = PurePosixPath(key).parts
    base = "/".join(parts[:2])
    mask_key = keys.claim(f"{base}/ground_truth/{parts[-2]}/{PurePosixPath(key).stem}_mask.png")
    with Image.open(sample.image) as opened:
        size = opened.size
    try:
        full = _write_mask(sample, size, target / mask_key)
    except UNREADABLE as exc:
        report.skipped["Defect Localization/Description: unreadable mask file"] += 1
        report.notes.append(f"mask of {sample.image} unreadable: {exc}")
        return ""
    mask = geometry.resize_mask(full, rgb.shape[:2])
    extent = geometry.product_extent(rgb)
    if not mask.any():
        report.skipped["Defect Localization/Description: the mask is empty"] += 1
        return mask_key[len(base) + 1 :]
    location = geometry.locate(mask, extent)
    if location is None:
        report.skipped["Defect Localization: ambiguous or empty mask"] += 1
    else:
        generated.append(("Defect Localization", questions.localization_question(location, balancer, rng)))
    appearance = geometry.describe(mask, rgb, extent)
    if appearance is None:
        report.skipped["Defect Description: defect too faint or empty"] += 1
    else:
        generated.append(("Defect Description", questions.description_question(appearance, balancer, rng)))
    return mask_key[len(base) + 1 :]
