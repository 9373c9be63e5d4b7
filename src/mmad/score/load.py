"""Read graded answers from any file mmad understands."""

from __future__ import annotations

import os
from pathlib import Path

from mmad._io import collector_paused
from mmad.errors import AnswersFormatError
from mmad.records.folder import run_records
from mmad.records.record import read_records
from mmad.score.answers import GradedAnswer, graded_from_records, read_official_answers


def load_answers(path: str | os.PathLike[str]) -> list[GradedAnswer]:
    """Graded answers from a run directory, a records.jsonl, or an official answers json."""
    source = Path(path)
    with collector_paused():
        if source.is_dir():
            return graded_from_records(run_records(source))
        if source.suffix == ".jsonl":
            return graded_from_records(read_records(source))
        if source.suffix == ".json":
            return read_official_answers(source)
    msg = f"{path}: give a run directory, a records.jsonl or an official answers .json"
    raise AnswersFormatError(msg)
