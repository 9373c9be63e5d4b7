"""Open a run and score it: the one function `score`, `compare`, `leaderboard`, `report` and `sweep` use.

A run folder is scored under its recipe's policy (the one behind the recipe's published rows), else
strict, unless the caller names one; a records.jsonl outside a run folder and an official answers
json are scored as they are (strict by default). What is computed, and when, is `mmad.score.scored`'s.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mmad.data.clean import CleanSplit, DropCounts, filter_pairs
from mmad.errors import AnswersFormatError
from mmad.records.folder import RECORDS_FILE, is_run_folder
from mmad.run.folder import RunFolder, open_run
from mmad.run.recipes import recipe_policy
from mmad.score.metrics import Bootstrap, Graded
from mmad.score.scored import Scored, graded_of, score_answers_file
from mmad.score.table import Policy


@dataclass
class ScoredRun(Scored):
    """A run folder's answers scored, with the folder beside them (None for a bare answers file)."""

    run: RunFolder | None


def run_policy(run: RunFolder | None) -> Policy:
    """The policy of a run's headline: its recipe's, else strict."""
    return Policy(recipe_policy(run.config.recipe)) if run is not None else Policy.STRICT


def score_run(
    source: RunFolder | str | os.PathLike[str],
    *,
    policy: Policy | str | None = None,
    bootstrap: Bootstrap | None = None,
) -> ScoredRun:
    """Open a run folder (or its records.jsonl), a records.jsonl or an official answers json, and score it.

    ``policy`` defaults to the run's own (`run_policy`); ``bootstrap`` asks for 95% intervals wherever a
    metric can give them. Nothing is computed until asked for.
    """
    if isinstance(source, RunFolder):
        run = source
    else:
        path = Path(source)
        if not path.exists():
            msg = f"{path} does not exist; give a run directory, a records.jsonl or an official answers .json"
            raise AnswersFormatError(msg)
        if path.is_dir():
            run = open_run(path)
        elif path.name == RECORDS_FILE and is_run_folder(path.parent):
            run = open_run(path.parent)
        else:
            scored = score_answers_file(path, policy=policy, bootstrap=bootstrap)
            return ScoredRun(scored.source, scored.data, None)
    chosen = run_policy(run) if policy is None else Policy(policy)
    graded = graded_of(run.records, policy=chosen, bootstrap=bootstrap)
    graded.spent_usd = run_spent_usd(run, graded)
    return ScoredRun(run.path, graded, run=run)


def run_spent_usd(run: RunFolder, graded: Graded) -> float | None:
    """run.json's total spending, where it is a measured figure: unknown (None) in a run.json that says so,
    and in one written before it could, whose 0.0 meant unknown as well when no record carries dollars."""
    spent = run.manifest.usage.cost_usd if run.manifest.usage is not None else None
    if spent is None or (spent == 0.0 and all(r.cost_usd is None for r in graded.records)):
        return None
    return spent


def without_left_out(scored: ScoredRun, split: CleanSplit) -> tuple[ScoredRun, DropCounts]:
    """The answers without what ``split`` leaves out (`mmad score --errata drop / --exclude`: a run re-scored on a
    clean split), and the counts of what it left out, per reason (one per question: the unrotated posing)."""
    graded = scored.data
    keep, counts = filter_pairs(split, [(a.image, a.question_type) for a in graded.answers])
    answers = [answer for answer, kept in zip(graded.answers, keep, strict=True) if kept]
    records = [r for r in graded.records if split.reason(r.image, r.question_type) is None]
    # what the run paid is the run's, whatever a clean split leaves out of its per-question figures
    kept_data = Graded(answers, records, graded.policy, graded.bootstrap, spent_usd=graded.spent_usd)
    return ScoredRun(scored.source, kept_data, scored.run), counts
