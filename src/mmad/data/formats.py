"""The shapes MMAD's questions come in, and what each can serve.

- ``mmad.json``: the official file (the data root's, or any json of that shape). Everything.
- ``metadata.csv``: the Hugging Face viewer export (``load_dataset("jiang-cc/MMAD")``): one row per
  question, no question type, no random templates, only the first similar template.
- A ``QA.json`` tree: the loose-file revisions hold ``<dataset>/<category>/QA.json`` with keys
  relative to the category folder.

A protocol that needs what a shape lacks is refused up front by :func:`check_protocol`, with the
ways out, rather than failing question by question.
"""

from __future__ import annotations

import json
from pathlib import Path

from mmad.data.known import GITHUB_BASE, GITHUB_PATHS, GITHUB_REF, GITHUB_REPO
from mmad.data.schema import Benchmark, ImageItem
from mmad.errors import BenchmarkFormatError

MMAD_JSON = "mmad.json"
VIEWER_CSV = "metadata.csv"
QA_TREE = "QA.json tree"
JSON_NAMES = ("mmad.json", "benchmark.json")

_DESCRIPTIONS = {
    VIEWER_CSV: "the Hugging Face viewer export (metadata.csv)",
    QA_TREE: "a tree of per-category QA.json files",
}


def qa_files(folder: Path) -> list[Path]:
    """The ``<dataset>/<category>/QA.json`` files under a folder, in path order."""
    return sorted(folder.glob("*/*/QA.json"))


def detect_format(data: Path) -> str:
    """Which shape a path holds: MMAD_JSON, VIEWER_CSV or QA_TREE."""
    if data.is_file():
        return VIEWER_CSV if data.suffix.lower() == ".csv" else MMAD_JSON
    if data.is_dir():
        if any((data / name).is_file() for name in JSON_NAMES):
            return MMAD_JSON
        if (data / VIEWER_CSV).is_file():
            return VIEWER_CSV
        if qa_files(data):
            return QA_TREE
    if data.is_dir():
        raw = _run_folder_message(data) or _raw_dataset_message(data)
        if raw:
            raise BenchmarkFormatError(raw)
        folders = [name for name in (*JSON_NAMES, VIEWER_CSV) if (data / name).is_dir()]
        state = f"{data / folders[0]} is a folder, not a file" if folders else "the folder exists"
    else:
        state = "the path does not exist" if not data.exists() else "it is neither a file nor a folder"
    msg = (
        f"no {', '.join(JSON_NAMES)}, {VIEWER_CSV} or <dataset>/<category>/QA.json in {data} ({state}). "
        f"Pass the data root or the file itself, or run `mmad download --out {data}`"
    )
    raise BenchmarkFormatError(msg)


def _run_folder_message(data: Path) -> str | None:
    """The way out when a run folder is given as the data: `mmad download` into it would be wrong."""
    try:
        meta = json.loads((data / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    config = meta.get("config") if isinstance(meta, dict) else None
    used = config.get("data") if isinstance(config, dict) else None
    where = f"its benchmark is {used}" if isinstance(used, str) else "give the benchmark it was asked on"
    return (
        f"{data} is a run folder (it holds run.json), not a benchmark: {where}; "
        f"a run is scored with `mmad score {data}` and continued with `mmad eval --resume {data}`"
    )


_SPLITS = frozenset({"train", "training", "test", "testing", "test_public", "ground_truth"})


def _raw_dataset_message(data: Path) -> str | None:
    """The way out when a folder holds an anomaly-detection dataset (<category>/train, test, ground_truth),
    not a benchmark: it needs `mmad build`; `mmad download` would put MMAD's own files into it."""
    from mmad.data.known import DATASETS

    if any(p.is_dir() and p.name in DATASETS for p in data.iterdir()):
        return None  # MMAD's own data root, short of its json: `mmad download` is the fix
    # The dataset root (<category>/train...), one category (train/, test/), or raw VisA (split_csv).
    splits = {p.name.lower() for p in data.iterdir() if p.is_dir()}
    splits |= {p.name.lower() for p in data.glob("*/*") if p.is_dir()}
    if not (splits & _SPLITS or (data / "split_csv").is_dir()):
        return None
    return (
        f"{data} holds an anomaly-detection dataset's images (train/test folders), not an MMAD benchmark; "
        f"make one from it with `mmad build {data} --out DIR`, then give DIR"
    )


def _json_hint() -> str:
    url = f"{GITHUB_BASE}/{GITHUB_REPO}/{GITHUB_REF}/{GITHUB_PATHS['mmad.json']}"
    return f"get mmad.json with `mmad download --out DIR` (or fetch {url} into the folder that holds the images)"


def check_protocol(benchmark: Benchmark, *, shots: int, similar_templates: bool = False) -> None:
    """Refuse, with the ways out, a k-shot protocol that the benchmark's shape cannot serve.

    Args:
        benchmark: the loaded benchmark.
        shots: templates per question (0 needs none).
        similar_templates: whether templates come from ``similar_templates`` (else ``random_templates``).
    """
    if shots <= 0:
        return
    pool = "similar_templates" if similar_templates else "random_templates"
    limit = benchmark.template_limit.get(pool)
    if limit is None or shots <= limit:
        return
    shape = _DESCRIPTIONS.get(benchmark.origin, benchmark.origin)
    has = f"only {limit}" if limit else "no"
    ways = ["run 0-shot"]
    similar_limit = benchmark.template_limit.get("similar_templates")
    if not similar_templates and (similar_limit is None or similar_limit >= shots):
        ways.append(f"use similar templates for {shots}-shot")
    elif similar_limit:
        ways.append(f"use at most {similar_limit} similar template(s)")
    ways.append(_json_hint())
    reason = benchmark.lacks.get(pool, "")
    msg = (
        f"{benchmark.source or 'the benchmark'} is {shape}: it has {has} {pool.replace('_', ' ')} per image "
        f"({reason or 'the shape does not carry them'}), and a {shots}-shot run from {pool} needs {shots}. "
        f"To go on: {'; or '.join(ways)}"
    )
    raise BenchmarkFormatError(msg)


def missing_inputs(benchmark: Benchmark, item: ImageItem, *, shots: int, similar_templates: bool = False) -> list[str]:
    """Why an image's questions cannot be asked k-shot: its missing files and template shortfall ([] when all is there).

    The runner records each question of such an image as failed with these reasons instead of
    stopping (a template missing from the Hub copy, jam-cc/MMAD issue #6, is the common case).
    """
    pool = "similar_templates" if similar_templates else "random_templates"
    templates = item.templates(shots, similar=similar_templates) if shots > 0 else []
    reasons = [
        f"{what} {path} is missing"
        for what, path in [("image", item.key), *(("template", t) for t in templates)]
        if not benchmark.resolve(path).is_file()
    ]
    if shots > len(templates):
        reasons.append(f"{shots}-shot needs {shots} {pool.replace('_', ' ')}; the record lists {len(templates)}")
    return reasons
