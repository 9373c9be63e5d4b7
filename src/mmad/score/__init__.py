"""Records to numbers: the MMAD table, breakdowns, official file formats and published results."""

from mmad.score.answers import GradedAnswer, read_official_answers, write_official_answers
from mmad.score.breakdown import BreakdownRow, GroupBy, breakdown
from mmad.score.official_csv import (
    PublishedResult,
    load_published,
    read_accuracy_csv,
    recompute_average_row,
    write_accuracy_csv,
)
from mmad.score.table import Policy, ScoreTable, score_answers

__all__ = [
    "BreakdownRow",
    "GradedAnswer",
    "GroupBy",
    "Policy",
    "PublishedResult",
    "ScoreTable",
    "breakdown",
    "load_published",
    "read_accuracy_csv",
    "read_official_answers",
    "recompute_average_row",
    "score_answers",
    "write_accuracy_csv",
    "write_official_answers",
]
