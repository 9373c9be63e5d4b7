"""`mmad.evaluate`: a benchmark, a model and a protocol in; a run directory, its files and the table out.

This sits at the top of mmad beside the CLI: it runs the three stages of `mmad.run` and then
writes the report files (`mmad.report`) and the official answer files, as the CLI does.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mmad._io import atomic_write_text
from mmad.models.base import Model
from mmad.records.folder import RECORDS_FILE, RUN_FILE
from mmad.report.files import write_score_files
from mmad.run.config import RunConfig
from mmad.run.engine import EngineStats
from mmad.run.finish import RunResult
from mmad.run.naming import answers_file_name
from mmad.run.runner import run_async
from mmad.score.answers import without_dropped_images, write_official_answers
from mmad.score.official_csv import write_accuracy_csv
from mmad.score.table import Policy, score_answers


def write_run_files(result: RunResult, *, plot: bool = True) -> dict[str, Path]:
    """The score files of a finished run, its official answers json and the official accuracy csv.

    The ``_accuracy.csv`` file is named as the official scripts name it, so it holds what they
    compute: the upstream policy's numbers. mmad's own (strict) table is in ``scores.*``.
    When no request got a reply, only the records and run.json are there: files of zeros would
    read as results.
    """
    run_dir = result.run_dir
    if result.nothing_answered:
        result.files = {"records": run_dir / RECORDS_FILE, "run": run_dir / RUN_FILE}
        return result.files
    files = write_score_files(result.table, result.graded, run_dir, title=f"MMAD — {result.config.model}", plot=plot)
    answers_path = run_dir / answers_file_name(result.config)
    write_official_answers(without_dropped_images(result.graded), answers_path)  # as the script writes them
    accuracy_path = answers_path.with_name(answers_path.stem + "_accuracy.csv")
    write_accuracy_csv(score_answers(result.graded, Policy.UPSTREAM), accuracy_path)
    files.update(answers=answers_path, official_csv=accuracy_path)
    files.update(records=run_dir / RECORDS_FILE, run=run_dir / RUN_FILE)
    if result.circular is not None:
        files["circular"] = run_dir / "circular.json"
        atomic_write_text(files["circular"], json.dumps(asdict(result.circular), indent=2))
    result.files = files
    return files


async def evaluate_async(
    config: RunConfig,
    *,
    out: str | Path | None = None,
    resume: bool = False,
    model: Model | None = None,
    judge: Model | None = None,
    on_progress: Callable[[EngineStats], None] | None = None,
    write_files: bool = True,
) -> RunResult:
    """Run an evaluation from a config and write its files; see `evaluate`."""
    result = await run_async(config, out=out, resume=resume, model=model, judge=judge, on_progress=on_progress)
    if write_files:
        write_run_files(result)
    return result


def evaluate(
    model: str,
    data: str | Path,
    *,
    out: str | Path | None = None,
    resume: bool = False,
    recipe: str | None = None,
    on_progress: Callable[[EngineStats], None] | None = None,
    **settings: Any,
) -> RunResult:
    """Evaluate a model on an MMAD-format benchmark with the official protocol (or a variant).

    Args:
        model: ``provider:model``, e.g. ``openai:gpt-4o``, ``vllm:Qwen/Qwen2.5-VL-7B-Instruct``, ``random``.
        data: the data root holding mmad.json, or the json.
        out: the run directory (default ``runs/<model>_<k>shot_<protocol>``).
        resume: continue the run in ``out``: ask only what is missing or failed.
        recipe: an official script's settings (``gpt4o``, ``gemini``, ...); other settings go on top.
        on_progress: called with live counters.
        **settings: flat settings, as the CLI flags: ``shots``, ``protocol``, ``concurrency``,
            ``max_cost``, ``strategies``, ``image_size``, ... (see `RunConfig.from_flat`).
    """
    config = RunConfig.from_flat(model, str(data), recipe=recipe, **settings)
    return asyncio.run(evaluate_async(config, out=out, resume=resume, on_progress=on_progress))
