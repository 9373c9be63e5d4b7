"""What a leaderboard is made of: its rows and the board that holds them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from mmad.score.table import Policy

RANKED = "ranked"
TRAINED_ON_MMAD = "trained on MMAD"
NOT_RANKED = "not ranked"
DETECTION_ONLY = "detection only"
SECTION_ORDER = (RANKED, TRAINED_ON_MMAD, NOT_RANKED, DETECTION_ONLY)
SECTION_TITLES = {
    RANKED: "Ranked within comparable groups",
    TRAINED_ON_MMAD: "Trained on MMAD or its source datasets (ranked only among themselves, never with clean rows)",
    NOT_RANKED: "Not ranked: incomplete, subset, other protocol or reference",
    DETECTION_ONLY: "Anomaly discrimination only (the source's own metric; not a seven-subtask average)",
}
CONTAMINATED = ("saw MMAD", "saw MMAD's sources")


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
    shots: int | None = None
    question_set: str = ""
    """Which questions the figure covers: all of MMAD, a subset (its size), the official debug sample."""
    trained_on: str = ""
    """What of MMAD the system was trained on (MMAD questions, MMAD images, its source datasets), with the
    source of the claim; "" where nothing is known."""
    contamination: str = "none known"
    """saw MMAD, saw MMAD's sources, possible or none known (a run: none known, or what --exclude left out)."""
    table: Literal["main", "detection-only"] = "main"
    """detection-only: a figure for anomaly discrimination alone, never shown beside seven-subtask averages."""
    figure: str = "seven-subtask average"
    """What ``score`` is: the seven-subtask average, or a detection-only row's figure by name ('AD accuracy (%)')."""
    clean_split: list[str] = field(default_factory=list)
    """A run's --errata drop and --exclude, as its card records them."""
    metrics: dict[str, float | None] = field(default_factory=dict)
    """For a run, every registered metric's headline figures (``metric:cell``, `mmad.score.metrics`) over the
    whole run under the board's policy, as `mmad score` shows them; empty for a published row."""
    intervals: dict[str, list[float]] = field(default_factory=dict)
    """With --ci, a run's 95% image-bootstrap interval [low, high] of its score (``Average``), of each
    subtask's figure (by its name), and of ``Overkill`` and ``Miss``, in the board's view (a view narrowed
    to some datasets or subtasks has its own figures' intervals); empty otherwise."""

    @property
    def ranked(self) -> bool:
        """Whether the row holds a rank in its group."""
        return self.rank is not None

    @property
    def contaminated(self) -> bool:
        """Whether the system was trained on MMAD or on its source datasets (so never ranked with clean rows)."""
        return self.contamination in CONTAMINATED

    @property
    def section(self) -> str:
        """Where the row is listed: ranked, trained on MMAD, not ranked, or the detection-only table."""
        if self.table == "detection-only":
            return DETECTION_ONLY
        if self.contaminated:
            return TRAINED_ON_MMAD
        return RANKED if self.ranked else NOT_RANKED


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
        """The clean seven-subtask rows that hold a rank within their group."""
        return [r for r in self.rows if r.section == RANKED]

    @property
    def unranked(self) -> list[LeaderboardRow]:
        """The clean seven-subtask rows shown but not ranked (incomplete, subset, other protocol, reference)."""
        return [r for r in self.rows if r.section == NOT_RANKED]

    @property
    def trained_on_mmad(self) -> list[LeaderboardRow]:
        """Rows of systems trained on MMAD or its source datasets: ranked, if at all, only among themselves."""
        return [r for r in self.rows if r.section == TRAINED_ON_MMAD]

    @property
    def detection_only(self) -> list[LeaderboardRow]:
        """Figures for anomaly discrimination alone: their own table."""
        return [r for r in self.rows if r.section == DETECTION_ONLY]

    def sections(self) -> list[tuple[str, str, list[LeaderboardRow]]]:
        """(section, title, rows) in the order they are shown; empty sections left out."""
        parts = [
            (RANKED, SECTION_TITLES[RANKED], self.ranked),
            (TRAINED_ON_MMAD, SECTION_TITLES[TRAINED_ON_MMAD], self.trained_on_mmad),
            (NOT_RANKED, SECTION_TITLES[NOT_RANKED], self.unranked),
            (DETECTION_ONLY, SECTION_TITLES[DETECTION_ONLY], self.detection_only),
        ]
        return [part for part in parts if part[2]]

    def detection_figure(self) -> str:
        """The detection-only table's figure header: the rows' one figure name, or 'AD figure' when they differ
        (each row's own name is then in its marks)."""
        names = {r.figure for r in self.detection_only}
        return names.pop() if len(names) == 1 else "AD figure (see marks)"

    def group_letters(self) -> dict[str, str]:
        """A short tag per group (A, B, ...) in the order the groups first appear."""
        letters: dict[str, str] = {}
        for row in self.rows:
            if row.group not in letters:
                index = len(letters)
                letters[row.group] = chr(65 + index % 26) + ("" if index < 26 else str(index // 26))
        return letters
