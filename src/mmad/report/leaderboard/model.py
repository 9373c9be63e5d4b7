"""What a leaderboard is made of: its rows and the board that holds them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from mmad.score.table import Policy


@dataclass
class LeaderboardRow:
    """One line of the leaderboard: a run of yours or a published result."""

    name: str
    kind: Literal["run", "published"]
    source: str
    group: str
    group_label: str
    protocol: str
    card_hash: str | None
    completeness: str
    score: float | None  # the figure the ranking uses
    strict: float | None
    upstream: float | None
    subtasks: dict[str, float | None]
    overkill: float | None
    miss: float | None
    asked: int | None = None
    answered: int | None = None
    in_benchmark: int | None = None
    eligible: bool = False
    rank: int | None = None
    marks: list[str] = field(default_factory=list)
    seen_test_products: str = "none known"
    citation: str = ""
    card: dict[str, Any] = field(default_factory=dict)
    covers: list[str] = field(default_factory=list)
    """For a run, the subtasks its score is the mean of (a declined subtask is missing, not 0); for a
    published row, empty: its figures are the source's."""

    @property
    def ranked(self) -> bool:
        """Whether the row holds a rank in its group."""
        return self.rank is not None


@dataclass
class Leaderboard:
    """The rows (ranked first, then the rest), the groups they form, and what was filtered."""

    rows: list[LeaderboardRow]
    groups: dict[str, str]
    policy: Policy
    datasets: list[str] = field(default_factory=list)
    subtasks: list[str] = field(default_factory=list)
    protocol: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ranked(self) -> list[LeaderboardRow]:
        """The rows that hold a rank within their group."""
        return [r for r in self.rows if r.ranked]

    @property
    def unranked(self) -> list[LeaderboardRow]:
        """The rows shown but not ranked (incomplete, subset, other protocol, reference lines)."""
        return [r for r in self.rows if not r.ranked]

    def group_letters(self) -> dict[str, str]:
        """A short tag per group (A, B, ...) in the order the groups first appear."""
        letters: dict[str, str] = {}
        for row in self.rows:
            if row.group not in letters:
                index = len(letters)
                letters[row.group] = chr(65 + index % 26) + ("" if index < 26 else str(index // 26))
        return letters
