"""The published MMAD results, shipped with mmad as package data: numbers, sources and protocols.

``catalog.json`` (beside this file) lists every row: the 22 result files of the official
repository (``all_result/*.csv``, copied byte for byte from jam-cc/MMAD at bad03b4), the paper's
table rows that differ from them, the human baselines, and later results with their citation, the
protocol they used where known, and whether the system may have seen MMAD's test products.
Nothing here reads outside the package.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from mmad.data.schema import SUBTASKS
from mmad.errors import AnswersFormatError
from mmad.score.official_csv import AVERAGE_ROW, PublishedResult, read_accuracy_csv

CATALOG = "catalog.json"
CSV_FOLDER = "all_result"
PUBLISHED_PROTOCOL = "published: protocol as stated by the source"

Coverage = Literal["full", "subset", "debug-sample", "unknown"]
Seen = Literal["none known", "possible", "yes"]
TrainedOn = Literal["mmad-questions", "mmad-images", "source-datasets"]
Scope = Literal["seven-subtask", "detection-only"]
Contamination = Literal["saw MMAD", "saw MMAD's sources", "possible", "none known"]

MMAD_QUESTIONS = 39_672
"""The questions of the released mmad.json: what a "full" row covers."""
TRAINED_ON_TEXT: dict[str, str] = {
    "mmad-questions": "MMAD questions",
    "mmad-images": "MMAD images",
    "source-datasets": "MMAD's source datasets",
}


class PublishedEntry(BaseModel):
    """One published result: a model's (or a human baseline's) MMAD figures and where they come from."""

    id: str
    system: str = Field(description="the name shown on the leaderboard")
    kind: Literal["model", "human"] = "model"
    average: float | None = None
    subtasks: dict[str, float | None] = Field(default_factory=dict, description="by Subtask value")
    datasets: dict[str, dict[str, float | None]] = Field(
        default_factory=dict, description="per source dataset: subtask values, 'Average', Overkill and Miss"
    )
    detection: dict[str, float | None] = Field(default_factory=dict, description="Recall ... Miss of the Average row")
    shots: int | None = None
    group: str = Field(description="rows of one group share a protocol and may be ranked together")
    group_label: str = ""
    ranked: bool = False
    source: str = ""
    citation: str = ""
    scorer: str = "as published"
    protocol: str = ""
    coverage: Coverage = "unknown"
    coverage_note: str = ""
    seen_test_products: Seen = "none known"
    seen_note: str = ""
    notes: str = ""
    csv: str | None = Field(default=None, description="the result file, relative to the catalog")
    questions: int | None = Field(default=None, description="how many questions the figure covers, where stated")
    trained_on: list[TrainedOn] = Field(
        default_factory=list, description="what of MMAD the system was trained on, where its source says"
    )
    trained_source: str = Field(default="", description="where the training claim comes from")
    scope: Scope = Field(
        default="seven-subtask",
        description="detection-only: a figure for anomaly discrimination alone, by the source's own metric",
    )
    metric: str = Field(default="", description="detection-only rows: what the figure measures")
    figure_name: str = Field(
        default="",
        description="detection-only rows: the figure's short name (its column header, e.g. 'AD accuracy (%)')",
    )

    @property
    def figure(self) -> str:
        """What ``average`` is: the seven-subtask average, or a detection-only row's own figure by name."""
        if self.scope == "detection-only":
            return self.figure_name or "AD figure (source's metric)"
        return "seven-subtask average"

    @property
    def contamination(self) -> Contamination:
        """Whether the system saw MMAD (its questions or images), the products of its source datasets, maybe."""
        if "mmad-questions" in self.trained_on or "mmad-images" in self.trained_on:
            return "saw MMAD"
        if "source-datasets" in self.trained_on:
            return "saw MMAD's sources"
        return "possible" if self.seen_test_products != "none known" else "none known"

    @property
    def trained_text(self) -> str:
        """What it was trained on, in words, with the source of the claim; "" where nothing is known."""
        if not self.trained_on:
            return ""
        what = ", ".join(TRAINED_ON_TEXT[t] for t in self.trained_on)
        return f"{what} ({self.trained_source})" if self.trained_source else what

    @property
    def question_set(self) -> str:
        """Which questions the figure covers: all of MMAD, a subset with its size, the debug sample, or unknown."""
        if self.coverage == "full":
            return f"all {self.questions or MMAD_QUESTIONS:,} questions"
        if self.coverage == "debug-sample":
            return "the official debug sample (1,600 images)"
        if self.coverage == "subset":
            size = f"{self.questions:,} questions" if self.questions else (self.coverage_note or "size not stated")
            return f"a subset: {size.split(';')[0]}"
        return "not stated by the source"

    @property
    def protocol_text(self) -> str:
        """What a leaderboard shows in its protocol column."""
        return f"{PUBLISHED_PROTOCOL}: {self.protocol}" if self.protocol else PUBLISHED_PROTOCOL


class LeakageNote(BaseModel):
    """A system known to have seen MMAD's test products, with no figure of its own here."""

    system: str
    note: str
    trained_on: list[TrainedOn] = Field(default_factory=list)
    source: str = ""


class PublishedCatalog(BaseModel):
    """The shipped catalog: its rows, the groups they form, and the leakage notes."""

    about: str = ""
    groups: dict[str, dict[str, Any]] = Field(default_factory=dict)
    results: list[PublishedEntry]
    leakage: list[LeakageNote] = Field(default_factory=list)


@contextmanager
def packaged_folder() -> Iterator[Path]:
    """The folder of the shipped catalog and CSVs, as a real path while the context is open."""
    with resources.as_file(resources.files(__name__)) as folder:
        yield Path(folder)


def packaged_csv_names() -> list[str]:
    """The file names of the 22 official result CSVs shipped with mmad."""
    with packaged_folder() as folder:
        return sorted(p.name for p in (folder / CSV_FOLDER).glob("*.csv"))


def _fill_from_csv(entry: PublishedEntry, result: PublishedResult) -> PublishedEntry:
    """The entry with its numbers taken from an accuracy CSV."""
    average_row = result.rows.get(AVERAGE_ROW, {})
    subtasks = {s.value: average_row.get(s.official_column) for s in SUBTASKS}
    datasets = {
        name: {
            **{s.value: result.rows[name].get(s.official_column) for s in SUBTASKS},
            "Average": result.rows[name].get("Average"),
            **{c: result.rows[name][c] for c in ("Overkill", "Miss") if c in result.rows[name]},
        }
        for name in result.datasets
    }
    detection = {c: average_row[c] for c in ("Recall", "Precision", "F1", "Overkill", "Miss") if c in average_row}
    return entry.model_copy(
        update={
            "average": result.average,
            "subtasks": subtasks,
            "datasets": datasets,
            "detection": detection,
            "shots": result.shots if entry.shots is None else entry.shots,
        }
    )


def read_catalog() -> PublishedCatalog:
    """The shipped catalog, with group labels filled in (numbers of CSV rows not yet read)."""
    with packaged_folder() as folder:
        catalog = PublishedCatalog.model_validate_json((folder / CATALOG).read_text(encoding="utf-8"))
    for entry in catalog.results:
        group = catalog.groups.get(entry.group, {})
        entry.group_label = str(group.get("label") or f"{entry.system}: {entry.source}")
        entry.ranked = bool(group.get("ranked", False))
    return catalog


def load_published_results(folder: str | os.PathLike[str] | None = None) -> list[PublishedEntry]:
    """The published rows, best average first.

    Without ``folder``: everything shipped with mmad. With a folder of accuracy CSVs (an
    ``all_result/`` of your own): one row per CSV; files named as the official ones keep their
    catalog's protocol and notes, others are marked as of unknown protocol.
    """
    catalog = read_catalog()
    by_csv = {Path(e.csv).name: e for e in catalog.results if e.csv}
    entries: list[PublishedEntry] = []
    if folder is None:
        with packaged_folder() as base:
            for entry in catalog.results:
                if entry.csv:
                    entry = _fill_from_csv(entry, read_accuracy_csv(base / entry.csv))
                entries.append(entry)
    else:
        source = Path(folder)
        if not source.is_dir():
            msg = f"{source} is not a folder; --published takes a folder of accuracy CSVs (like all_result/)"
            raise AnswersFormatError(msg)
        files = sorted(source.glob("*.csv"))
        if not files:
            msg = f"{source} holds no .csv files; --published takes a folder of accuracy CSVs (like all_result/)"
            raise AnswersFormatError(msg)
        for path in files:
            result = read_accuracy_csv(path)
            known = by_csv.get(path.name)
            entry = known or PublishedEntry(
                id=f"file/{path.stem}",
                system=f"{result.model}{result.suffix}",
                shots=result.shots,
                group=f"folder:{source}",
                group_label=f"accuracy CSVs in {source}",
                ranked=True,
                source=str(path),
                scorer="an accuracy CSV (the official layout)",
                protocol="unknown: read from a folder given with --published",
            )
            entries.append(_fill_from_csv(entry.model_copy(update={"source": str(path)}), result))
    return sorted(entries, key=lambda e: -(e.average if e.average is not None else -1.0))


def leakage_notes() -> list[LeakageNote]:
    """Systems known to have seen MMAD's test products that have no figure here."""
    return read_catalog().leakage
