"""The leaderboard: the published results and your runs in one table, ranked only among comparable rows.

Every row carries its protocol (a run's protocol card, or "published: protocol as stated by the
source"), its completeness and both averages (strict and upstream). Rows are ranked only within a
comparable group: published rows by the group their catalog gives them, runs by benchmark and
protocol card. A run that is incomplete (interrupted, failed requests) or a subset (--limit,
--dataset, ...) is never ranked: it is listed below the ranked rows with the reason, so a
48-question interrupted run can never sit above the full run of the same model.

One job per module: ``model`` (the row and board types), ``rules`` (comparability: groups, subsets,
protocol lines), ``rows`` (a scored run or a published result made into a row), ``ranking``,
``board`` (gathering, filtering, ranking) and ``serialise`` (JSON, CSV, Markdown).
"""

from mmad.report.leaderboard.board import build_leaderboard, check_datasets, parse_subtasks
from mmad.report.leaderboard.model import Leaderboard, LeaderboardRow
from mmad.report.leaderboard.ranking import rank_rows
from mmad.report.leaderboard.rows import RunScores, published_row, run_row, view_figures
from mmad.report.leaderboard.rules import NO_CARD, RUN_SELECTION_KEYS, card_summary, is_subset_run, run_card_hash
from mmad.report.leaderboard.serialise import (
    leaderboard_csv,
    leaderboard_dict,
    leaderboard_json,
    leaderboard_markdown,
)

__all__ = [
    "NO_CARD",
    "RUN_SELECTION_KEYS",
    "Leaderboard",
    "LeaderboardRow",
    "RunScores",
    "build_leaderboard",
    "card_summary",
    "check_datasets",
    "is_subset_run",
    "leaderboard_csv",
    "leaderboard_dict",
    "leaderboard_json",
    "leaderboard_markdown",
    "parse_subtasks",
    "published_row",
    "rank_rows",
    "run_card_hash",
    "run_row",
    "view_figures",
]
