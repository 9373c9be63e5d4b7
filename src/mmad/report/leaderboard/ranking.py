"""Ranks: eligible rows ranked within their comparable group, ranked rows first."""

from __future__ import annotations

from mmad.report.leaderboard.model import SECTION_ORDER, LeaderboardRow


def rank_rows(rows: list[LeaderboardRow]) -> list[LeaderboardRow]:
    """Rank eligible rows within their group; order the sections (clean ranked rows, rows trained on MMAD,
    the rest, detection-only figures), ranked rows first in each, best figure first."""
    by_group: dict[str, list[LeaderboardRow]] = {}
    for row in rows:
        row.rank = None
        if row.eligible:
            by_group.setdefault(row.group, []).append(row)
    for members in by_group.values():
        ordered = sorted(members, key=lambda r: -(r.score or 0.0))
        for position, row in enumerate(ordered, start=1):
            previous = ordered[position - 2] if position > 1 else None
            # Equal figures share a rank (1, 1, 3), so file order never decides between them.
            row.rank = previous.rank if previous is not None and previous.score == row.score else position

    def order(row: LeaderboardRow) -> tuple[int, int, float]:
        section = SECTION_ORDER.index(row.section)
        return (section, 0 if row.ranked else 1, -(row.score if row.score is not None else -1.0))

    return sorted(rows, key=order)
