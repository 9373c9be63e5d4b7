"""`mmad.evaluate`: a benchmark, a model and a protocol in; a run directory, its files and the table out.

This sits at the top of mmad beside the CLI: it runs the three stages of `mmad.run` and then
writes the report files (`mmad.report`) and the official answer files, as the CLI does.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from os import PathLike
from pathlib import Path
from typing import Any, Literal, SupportsFloat, SupportsIndex, TypedDict, Unpack

from mmad._io import atomic_write_text, collector_frozen
from mmad.errors import ConfigError, RunError
from mmad.models.base import Model
from mmad.protocol.prompts import Variant
from mmad.records.folder import RECORDS_FILE, RUN_FILE
from mmad.report.files import write_score_files
from mmad.report.operating_files import write_operating_files
from mmad.run.config import (
    FLAT_NAMES,
    NOT_GIVEN,
    NotGiven,
    ProtocolName,
    RunConfig,
    canonical_name,
    in_callers_words,
)
from mmad.run.engine import EngineStats
from mmad.run.finish import RunResult
from mmad.run.naming import answers_file_name
from mmad.run.runner import run_async
from mmad.score.answers import without_dropped_images, write_official_answers
from mmad.score.official_csv import write_accuracy_csv
from mmad.score.operating import operating_report
from mmad.score.table import Policy, score_answers

logger = logging.getLogger(__name__)

# A whole number or a number of settings' kinds as numpy gives them (np.int64 from an array is no mistake:
# the config takes it, so a type checker must too).
Int = int | SupportsIndex
Float = float | SupportsFloat


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
    title = f"MMAD — {result.config.model}"
    files = write_score_files(result.table, result.graded, run_dir, title=title, plot=plot)
    # the operating points `mmad score` writes: AUROC and the 1%/5% points where answers carry a score
    files.update(write_operating_files(operating_report(result.graded), run_dir, title=title, plot=plot))
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
    # The run freezes what is alive once it is prepared; held here too, its files are written before
    # the collector walks the benchmark again.
    with collector_frozen():
        result = await run_async(config, out=out, resume=resume, model=model, judge=judge, on_progress=on_progress)
        if write_files:
            write_run_files(result)
    return result


class OldNames(TypedDict, total=False):
    """The settings' names before each had one: still taken by `evaluate`, each with a FutureWarning
    (`mmad.run.config.OLD_NAMES`; a test keeps the two the same). Typed, so that a type checker still
    flags a misspelt keyword."""

    similar: bool
    strategy: str | Sequence[str]
    size: int | Literal["none"] | None
    format: Literal["jpeg", "png"]
    original: bool
    dataset: Sequence[str]
    category: Sequence[str]
    subtask: Sequence[str]
    timeout: float
    text_only_server: bool


def evaluate(
    model: str,
    data: str | Path,
    *,
    out: str | Path | None = None,
    resume: bool = False,
    recipe: str | None = None,
    on_progress: Callable[[EngineStats], None] | None = None,
    # The settings, one keyword each, named and ordered as RunConfig's fields (a test keeps them so).
    # NOT_GIVEN leaves a setting to the recipe or the default; None is the setting's own None.
    # [prompt]
    protocol: ProtocolName | Variant | NotGiven = NOT_GIVEN,
    shots: Int | NotGiven = NOT_GIVEN,
    similar_templates: bool | NotGiven = NOT_GIVEN,
    blind: bool | NotGiven = NOT_GIVEN,
    circular: bool | NotGiven = NOT_GIVEN,
    strategies: str | Sequence[str] | NotGiven = NOT_GIVEN,
    knowledge: str | PathLike[str] | NotGiven | None = NOT_GIVEN,
    cot_history: bool | NotGiven = NOT_GIVEN,
    tools: str | Sequence[str] | NotGiven = NOT_GIVEN,
    max_turns: Int | NotGiven = NOT_GIVEN,
    tool_protocol: Literal["auto", "native", "text"] | NotGiven = NOT_GIVEN,
    blend: Float | NotGiven | None = NOT_GIVEN,
    # [decoding]
    max_tokens: Int | Literal["none"] | NotGiven | None = NOT_GIVEN,
    temperature: Float | Literal["none"] | NotGiven | None = NOT_GIVEN,
    # [images]
    image_size: Int | Literal["none"] | NotGiven | None = NOT_GIVEN,
    image_format: Literal["jpeg", "png"] | NotGiven = NOT_GIVEN,
    detail: Literal["low", "high", "auto", "none"] | NotGiven | None = NOT_GIVEN,
    original_images: bool | NotGiven = NOT_GIVEN,
    resize: Literal["mmad", "official"] | NotGiven = NOT_GIVEN,
    mime: Literal["content", "extension"] | NotGiven = NOT_GIVEN,
    perturb: str | Mapping[str, float] | NotGiven | None = NOT_GIVEN,
    # [answers]
    parser: Literal["mmad", "upstream", "upstream-first"] | NotGiven = NOT_GIVEN,
    judge: str | NotGiven | None = NOT_GIVEN,
    judge_base_url: str | NotGiven | None = NOT_GIVEN,
    solver: str | NotGiven | None = NOT_GIVEN,
    likelihood: bool | NotGiven = NOT_GIVEN,
    answer_from: Literal["text", "likelihood"] | NotGiven = NOT_GIVEN,
    # [selection]
    limit: Int | NotGiven | None = NOT_GIVEN,
    subset: Literal["official-debug"] | NotGiven | None = NOT_GIVEN,
    datasets: Sequence[str] | NotGiven = NOT_GIVEN,
    categories: Sequence[str] | NotGiven = NOT_GIVEN,
    subtasks: Sequence[str] | NotGiven = NOT_GIVEN,
    seed: Int | NotGiven = NOT_GIVEN,
    errata: Literal["keep", "drop"] | NotGiven = NOT_GIVEN,
    exclude: str | Sequence[str] | NotGiven = NOT_GIVEN,
    # [execution]
    concurrency: Int | NotGiven = NOT_GIVEN,
    max_retries: Int | NotGiven = NOT_GIVEN,
    timeout_s: Float | NotGiven = NOT_GIVEN,
    retry_base_s: Float | NotGiven = NOT_GIVEN,
    retry_max_s: Float | NotGiven = NOT_GIVEN,
    max_cost: Float | NotGiven | None = NOT_GIVEN,
    max_errors: Int | NotGiven = NOT_GIVEN,
    prices: str | PathLike[str] | NotGiven | None = NOT_GIVEN,
    cache: bool | NotGiven = NOT_GIVEN,
    cache_dir: str | PathLike[str] | NotGiven | None = NOT_GIVEN,
    engine: Literal["local", "ray"] | NotGiven = NOT_GIVEN,
    ray_address: str | NotGiven | None = NOT_GIVEN,
    ray_actors: Int | NotGiven = NOT_GIVEN,
    ray_gpus: Float | NotGiven = NOT_GIVEN,
    # [connection]
    base_url: str | NotGiven | None = NOT_GIVEN,
    key_env: str | NotGiven | None = NOT_GIVEN,
    extra_body: Mapping[str, Any] | NotGiven = NOT_GIVEN,
    text_only: bool | NotGiven = NOT_GIVEN,
    device: str | NotGiven | None = NOT_GIVEN,
    dtype: str | NotGiven | None = NOT_GIVEN,
    batch_size: Int | NotGiven | None = NOT_GIVEN,
    model_args: Mapping[str, Any] | NotGiven = NOT_GIVEN,
    **old_names: Unpack[OldNames],
) -> RunResult:
    """Evaluate a model on an MMAD-format benchmark with the official protocol (or a variant).

    Args:
        model: ``provider:model``, e.g. ``openai:gpt-4o``, ``vllm:Qwen/Qwen2.5-VL-7B-Instruct``, ``random``.
        data: the data root holding mmad.json, or the json.
        out: the run directory (default ``runs/<model>_<k>shot_<protocol>``).
        resume: continue the run in ``out``: ask only what is missing or failed.
        recipe: an official script's settings (``gpt4o``, ``gemini``, ...); other settings go on top.
        on_progress: called with live counters.

    Every other keyword is a setting, by the name a run file and ``mmad sweep`` give it and whose
    flag is its kebab (``image_size`` is ``--image-size``); docs/settings.md describes each. One left
    out keeps the recipe's value or the default; None (or ``"none"``) is the setting's None: no
    token limit sent, ``image_size`` keeping the size (as ``0`` does), no ``detail``. ``old_names``
    takes the settings' names before they had one (``similar``, ``strategy``, ``timeout``, ...), each
    with a FutureWarning.
    """
    given = {name: value for name, value in locals().items() if name in FLAT_NAMES and value is not NOT_GIVEN}
    settings = {k: str(v) if isinstance(v, PathLike) else v for k, v in given.items()}
    for old, value in old_names.items():
        new = canonical_name(old)  # here, so that its FutureWarning points at the caller's line
        if new in settings:
            msg = f"{new} is given twice, as {new} and by its old name {old}; keep {new}"
            raise ConfigError(msg)
        settings[new] = value
    config = RunConfig.from_flat(model, str(data), recipe=recipe, by_name=True, **settings)
    for note in config.recipe_notes():  # the CLI prints them; a script sees them in its log
        logger.warning("%s", note)
    try:
        return asyncio.run(evaluate_async(config, out=out, resume=resume, on_progress=on_progress))
    except (ConfigError, RunError) as exc:
        # The run's checks across settings (preflight, the solver, the selection, the run folder) say
        # flags, as the CLI takes them; a script has no flag to look for, so its keywords are named instead.
        exc.args = (in_callers_words(str(exc)), *exc.args[1:])
        raise
