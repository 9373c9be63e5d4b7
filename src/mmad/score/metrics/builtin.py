"""The built-in metrics: the MMAD table, Overkill and Miss, the operating points of a defect score,
circular accuracy, and cost (tokens, dollars and seconds per question; tokens per correct answer)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from mmad.records.record import Record
from mmad.score.metrics.base import Cell, Graded, Metric, MetricResult
from mmad.score.table import DETECTION_COLUMNS, Policy, ScoreTable, score_answers

if TYPE_CHECKING:
    from mmad.score.intervals import Interval, TableIntervals
    from mmad.score.operating import OperatingReport


def table_of(graded: Graded, policy: Policy | None = None) -> ScoreTable:
    """The MMAD table of the run under ``policy`` (the run's by default), computed once per run."""
    chosen = graded.policy if policy is None else policy
    key = f"table:{chosen.value}"
    if key not in graded.shared:
        graded.shared[key] = score_answers(graded.answers, chosen)
    table: ScoreTable = graded.shared[key]
    return table


def intervals_of(graded: Graded) -> TableIntervals | None:
    """The table's image-bootstrap intervals when the caller asked for them, computed once per run."""
    if graded.bootstrap is None:
        return None
    if "intervals" not in graded.shared:
        from mmad.score.intervals import table_intervals  # numpy: only --ci needs it

        graded.shared["intervals"] = table_intervals(
            graded.answers, graded.policy, samples=graded.bootstrap.samples, seed=graded.bootstrap.seed
        )
    intervals: TableIntervals = graded.shared["intervals"]
    return intervals


def operating_of(graded: Graded) -> OperatingReport:
    """The run's operating-point report, computed once per run."""
    if "operating" not in graded.shared:
        from mmad.score.operating import operating_report

        graded.shared["operating"] = operating_report(graded.answers)
    report: OperatingReport = graded.shared["operating"]
    return report


def _cell(name: str, value: float | None, bounds: Mapping[str, Interval | None]) -> Cell:
    """A cell with its interval from ``bounds`` (by the cell's name), where there is one."""
    interval = bounds.get(name)
    low, high = (interval.low, interval.high) if interval is not None else (None, None)
    return Cell(name, value, low=low, high=high)


class MMADTable(Metric):
    """The MMAD table: every cell, each dataset's and subtask's average, and the headline Average."""

    name = "mmad"
    title = "MMAD accuracy"

    def compute(self, graded: Graded) -> MetricResult | None:
        """Cells named as `TableIntervals.named_cells` names them; intervals under --ci."""
        table = table_of(graded)
        values: dict[str, float | None] = {}
        for row in table.rows:
            values.update({f"{row.name}/{s.value}": v for s, v in row.cells.items()})
            values[f"{row.name}/Average"] = row.average
        values.update({f"Average/{s.value}": v for s, v in table.average_cells.items()})
        values["Average"] = table.average
        intervals = intervals_of(graded)
        bounds = intervals.named_cells() if intervals is not None else {}
        cells = [_cell(name, value, bounds) for name, value in values.items()]
        return self.result(cells, headline=["Average"])


class OverkillMiss(Metric):
    """Anomaly Discrimination's Overkill and Miss from the letters (MMAD's detection columns), per dataset
    and their mean, with recall, precision and F1."""

    name = "detection"
    title = "Overkill and Miss"

    def compute(self, graded: Graded) -> MetricResult | None:
        """None when the run asked no Anomaly Discrimination question. Under --ci every figure has the image
        bootstrap's interval, as the table's cells do."""
        table = table_of(graded)
        if not any(r.detection.normal.total + r.detection.abnormal.total for r in table.rows):
            return None
        intervals = intervals_of(graded)
        bounds = intervals.detection_cells() if intervals is not None else {}
        cells = [_cell(column, table.average_detection[column], bounds) for column in DETECTION_COLUMNS]
        for row in table.rows:
            metrics = row.detection_metrics()
            cells += [_cell(f"{row.name}/{column}", metrics[column], bounds) for column in DETECTION_COLUMNS]
        return self.result(cells, headline=["Overkill", "Miss"])


class OperatingPoints(Metric):
    """AUROC, AUPRC, the 1%/5% operating points and ECE of the run's defect score, overall and per dataset."""

    name = "operating"
    title = "Operating points (defect score)"

    def compute(self, graded: Graded) -> MetricResult | None:
        """None for a run whose answers carry no score (letters only: Overkill and Miss are its figures)."""
        report = operating_of(graded)
        if not report.by_score["overall"]:
            return None
        overall = report.by_score["overall"][0]
        bounds = _auroc_intervals(graded)
        cells = [_operating_cell(name, value, bounds.get("all")) for name, value in overall.cells().items()]
        for row in report.by_score["dataset"]:
            cells += [
                _operating_cell(name, value, bounds.get(row.group), prefix=f"{row.group}/")
                for name, value in row.cells().items()
            ]
        # its notes (coarse points, how many answers carry a score) are the operating-point report's
        return self.result(cells, headline=["AUROC", "Miss@5%Overkill"])


def _auroc_intervals(graded: Graded) -> dict[str, tuple[float, float]]:
    """Under --ci, the AUROC's 95% image-bootstrap interval overall (``all``) and per dataset."""
    if graded.bootstrap is None:
        return {}
    from mmad.score.intervals import auroc_interval

    scored = [a for a in graded.answers if a.question_type == "Anomaly Detection" and a.score is not None]
    groups = {"all": scored}
    for answer in scored:
        groups.setdefault(answer.dataset, []).append(answer)
    bounds = {}
    for group, answers in groups.items():
        interval = auroc_interval(
            [a.score for a in answers if a.score is not None],
            [not a.is_normal for a in answers],
            [a.image for a in answers],
            samples=graded.bootstrap.samples,
            seed=graded.bootstrap.seed,
        )
        if interval is not None:
            bounds[group] = interval
    return bounds


def _operating_cell(name: str, value: float | None, auroc: tuple[float, float] | None, prefix: str = "") -> Cell:
    """An operating-point cell; only the AUROC carries an interval."""
    low, high = auroc if auroc is not None and name == "AUROC" else (None, None)
    return Cell(f"{prefix}{name}", value, low=low, high=high)


class CircularAccuracy(Metric):
    """The share of questions right under every rotation of their options (a --circular run)."""

    name = "circular"
    title = "Circular accuracy"

    def compute(self, graded: Graded) -> MetricResult | None:
        """None for a run asked without rotations."""
        if all(r.plain for r in graded.records):
            return None
        from mmad.score.circular import circular_report

        report = circular_report(graded.records)
        cells = []
        for row in report.rows:
            cells += [Cell(row.group, row.circular), Cell(f"{row.group} (plain)", row.plain)]
        notes = [f"All covers {', '.join(report.covers)}"] if report.declined else []
        return self.result(cells, headline=["All"], notes=notes)


TOKENS_PER_QUESTION = "tokens/question"
DOLLARS_PER_QUESTION = "$/question"
SECONDS_PER_QUESTION = "s/question"
TOKENS_PER_CORRECT = "tokens/correct"
DOLLARS_OF_THE_RUN = "$ run total"


class Cost(Metric):
    """What the answers cost: tokens, dollars and seconds of requests per question, and tokens per correct answer.

    Counted over the latest record of every posing (a --circular run pays for its rotations). Each figure is
    divided by the questions whose records carry it: a record without it (a model without a price, a server
    that reports no usage, a failed request) is not a free one, so it is left out of both sides, with a note
    saying how many questions the figure covers; a figure no record carries is missing, not 0. A reply from
    the response cache carries its tokens and what they cost at the run's price: what a question costs does
    not depend on whether this session paid for it, so a cached run and the run that paid give one figure.
    Seconds are the model's, alike: a cached reply counts the seconds its request took when it was asked (the
    cache keeps them), never the lookup's; one whose cache entry kept none is not measured. A request that
    posed several questions (``--protocol per-image``) is shared among them, as its tokens and dollars are:
    each of its records holds the request's whole time.
    Beside them (not a headline; where run.json knows it), what the run paid in all: every session, and
    requests whose records a later one replaced (a failure before a resume, a re-asked reply), and nothing
    for replies from the cache.
    """

    name = "cost"
    title = "Cost"

    def compute(self, graded: Graded) -> MetricResult | None:
        """None without records (an official answers json carries no tokens or time)."""
        records = list(graded.records)
        questions = len(graded.answers)
        if not records or not questions:
            return None
        posings: dict[str, list[Record]] = {}
        for record in records:
            posings.setdefault(record.question_id, []).append(record)

        def measured(value: Callable[[Record], float | None]) -> tuple[float | None, list[str]]:
            """The sum over the records that carry the figure, and the questions they cover."""
            covered = [q for q, rs in posings.items() if any(value(r) is not None for r in rs)]
            total = sum(v for rs in posings.values() for r in rs if (v := value(r)) is not None)
            return (total if covered else None), covered

        tokens, token_questions = measured(_tokens)
        dollars, dollar_questions = measured(lambda r: r.cost_usd)
        sharing = _request_shares(records)
        seconds, second_questions = measured(
            lambda r: None if (s := r.model_latency_s) is None else s / sharing.get(_request_of(r), 1)
        )
        right = {q for q, rs in posings.items() if any(r.plain and r.answer == r.correct_answer for r in rs)}
        correct = len(right & set(token_questions))
        notes = []
        if tokens is not None and not correct:
            notes.append("no correct answer: tokens per correct answer is not defined")
        cached = sum(r.cached for r in records)
        if cached:
            notes.append(
                f"{cached} of {len(records)} replies came from the cache: $/question counts what they cost when "
                "they were asked, at this run's price; this run did not pay it again; s/question counts the "
                "seconds they took when they were asked, not the lookup's"
            )
        untimed = sum(r.cached and r.asked_latency_s is None for r in records)
        if untimed:
            notes.append(
                f"s/question leaves out {untimed} replies from the cache that kept no time of their own (cached or "
                "recorded by mmad before it kept the seconds a reply took): not measured, "
                "not 0 s" + ("" if seconds is not None else "; no record carries its time, so s/question is –")
            )
        for what, covered in (("tokens", token_questions), ("dollars", dollar_questions)):
            if covered and len(covered) < len(posings):
                notes.append(
                    f"{what} per question over the {len(covered)} of {len(posings)} questions whose records carry "
                    "them (the others' records carry none: no price or usage, a failure, an abstention, a reply "
                    "from the cache recorded by mmad before it priced them)"
                )
        spent = graded.spent_usd
        if spent is not None and abs(spent - (dollars or 0.0)) > 5e-7:
            notes.append(
                f"the run paid ${spent:.4f} in all (run.json: every session, a --judge's calls, and requests "
                "whose records a later one replaced; nothing for replies from the cache); $/question is over the "
                "latest records, which carry "
                f"${dollars or 0.0:.4f}"
            )
        cells = [
            Cell(TOKENS_PER_QUESTION, _per(tokens, len(token_questions)), unit="tokens"),
            Cell(DOLLARS_PER_QUESTION, _per(dollars, len(dollar_questions)), unit="$"),
            Cell(SECONDS_PER_QUESTION, _per(seconds, len(second_questions)), unit="s"),
            Cell(TOKENS_PER_CORRECT, _per(tokens, correct), unit="tokens"),
        ]
        headline = [cell.name for cell in cells]
        if spent is not None:  # a run folder whose run.json knows it (an answers file has no run.json)
            cells.append(Cell(DOLLARS_OF_THE_RUN, spent, unit="$"))
        return self.result(cells, headline=headline, notes=notes)


def _tokens(record: Record) -> float | None:
    if record.prompt_tokens is None and record.completion_tokens is None:
        return None
    return (record.prompt_tokens or 0) + (record.completion_tokens or 0)


def _request_of(record: Record) -> tuple[str, float] | None:
    """The request a record's answer came from: its prompt's digest and the seconds it took (the records of
    one request carry the same figure; two requests of one prompt, e.g. a question asked twice, do not)."""
    if not record.prompt_hash or record.latency_s is None:
        return None
    return record.prompt_hash, record.latency_s


def _request_shares(records: list[Record]) -> dict[tuple[str, float] | None, int]:
    """How many of the records each request answered."""
    shares: dict[tuple[str, float] | None, int] = {}
    for record in records:
        if (request := _request_of(record)) is not None:
            shares[request] = shares.get(request, 0) + 1
    return shares


def _per(total: float | None, count: int) -> float | None:
    return total / count if total is not None and count else None


BUILTIN: tuple[type[Metric], ...] = (MMADTable, OverkillMiss, OperatingPoints, CircularAccuracy, Cost)
