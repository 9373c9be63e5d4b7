"""Reading a tools run (`--strategy tools`): the direct, tools and blend branches side by side, and tool use.

Every record of a tools run carries both branches (``extra.direct``, ``extra.tools``, with
``--blend`` ``extra.blend``), so the comparison is paired: the same questions, the same run.

- ``tools`` (Tools vs direct): accuracy of each branch over the questions both branches answered
  with a letter, the differences tools − direct and blend − direct, and image AUROC of each branch on
  Anomaly Discrimination (the defect score is p(Yes) from the branch's letter probabilities, or its
  answer where it gave none). With ``--ci`` each figure has a 95% interval from a bootstrap over
  images (the questions of an image move together, as in `mmad.score.intervals`); a difference
  whose interval holds 0 is not a gain. Then each branch's tokens and seconds per question.
- ``tool-use``: tool calls per question, in all, per tool and per subtask, and the share of calls
  the tool refused (bad arguments); with ``--blend``, the share of questions whose tools branch
  gave no answer (its conversation failed, or its last reply had no letter) and so fell back to the
  direct answer (``extra.blend.fallback``).

Neither applies to a run without tools records.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mmad.data.schema import RAW_TYPE_TO_SUBTASK, Subtask, is_normal_key
from mmad.records.record import Record
from mmad.score.auroc import auroc
from mmad.score.metrics.base import Cell, Graded, Metric, MetricResult

BRANCHES = ("direct", "tools", "blend")
LEVEL = 95.0


@dataclass(frozen=True)
class Paired:
    """One question's outcome in each branch."""

    image: str
    subtask: Subtask | None
    correct: dict[str, bool]
    """Branch -> whether its answer is the gold letter (branches without an answer are absent)."""
    defect: dict[str, float]
    """Branch -> p(Yes), for Anomaly Discrimination questions whose branch has a score."""


def tools_records(records: Sequence[Record]) -> list[Record]:
    """The unrotated records of a run that carry the tools branch."""
    return [r for r in records if r.plain and isinstance(r.extra.get("tools"), dict)]


def option_probabilities(scores: dict[str, float], options: dict[str, str], letter: str | None) -> dict[str, float]:
    """Option probabilities from letter log-probabilities (normalised over the options); without them,
    the answer's letter at 1. Empty when there is neither. The tools solver's blend uses it too."""
    values = {k: math.exp(v) for k, v in scores.items() if k in options and math.isfinite(v)}
    total = sum(values.values())
    if total > 0:
        return {k: values.get(k, 0.0) / total for k in options}
    return {k: float(k == letter) for k in options} if letter in options else {}


def _branch(record: Record, name: str) -> tuple[str | None, dict[str, float]]:
    """A branch's letter and option probabilities in a record."""
    part: Any = record.extra.get(name)
    if not isinstance(part, dict):
        return None, {}
    letter = part.get("answer")
    letter = letter if isinstance(letter, str) and letter else None
    if name == "blend":
        mixed = part.get("probabilities")
        return letter, dict(mixed) if isinstance(mixed, dict) else {}
    scores = part.get("scores")
    return letter, option_probabilities(scores if isinstance(scores, dict) else {}, record.options, letter)


def paired(records: Sequence[Record]) -> list[Paired]:
    """Each tools record as the outcome of its branches."""
    out = []
    for record in tools_records(records):
        subtask = RAW_TYPE_TO_SUBTASK.get(record.question_type)
        yes = next((k for k, v in record.options.items() if v.strip().lower().startswith("yes")), None)
        correct: dict[str, bool] = {}
        defect: dict[str, float] = {}
        for name in BRANCHES:
            letter, probabilities = _branch(record, name)
            if letter is None:
                continue
            correct[name] = letter == record.correct_answer
            if subtask is Subtask.ANOMALY_DISCRIMINATION and yes is not None and probabilities:
                defect[name] = probabilities.get(yes, 0.0)
        out.append(Paired(record.image, subtask, correct, defect))
    return out


def _accuracy(rows: Sequence[Paired], branch: str, weights: dict[str, float] | None = None) -> float | None:
    total = hits = 0.0
    for row in rows:
        weight = 1.0 if weights is None else weights.get(row.image, 0.0)
        total += weight
        hits += weight * row.correct[branch]
    return 100 * hits / total if total else None


def _auroc(rows: Sequence[Paired], branch: str, weights: dict[str, float] | None = None) -> float | None:
    scores: list[float] = []
    labels: list[bool] = []
    for row in rows:
        if branch not in row.defect:
            continue
        count = 1 if weights is None else int(weights.get(row.image, 0))
        scores += [row.defect[branch]] * count
        labels += [not is_normal_key(row.image)] * count
    area = auroc(scores, labels)
    # In percent, as the operating points' AUROC (a table says "percent unless a unit is shown").
    return None if area is None else 100 * area


def _figures(
    both: dict[str, list[Paired]], detect: dict[str, list[Paired]], weights: dict[str, float] | None
) -> dict[str, float | None]:
    figures: dict[str, float | None] = {}
    for name, rows in both.items():
        figures[f"{name} accuracy"] = _accuracy(rows, name, weights)
    for name in ("tools", "blend"):
        if name in both:
            mine, direct = _accuracy(both[name], name, weights), _accuracy(both[name], "direct", weights)
            figures[f"{name} − direct"] = None if mine is None or direct is None else mine - direct
    for name, rows in detect.items():
        figures[f"{name} AUROC"] = _auroc(rows, name, weights)
    return figures


class ToolsVersusDirect(Metric):
    """Direct, tools and blend side by side (see the module docstring)."""

    name = "tools"
    title = "Tools vs direct"

    def compute(self, graded: Graded) -> MetricResult | None:
        """None for a run without tools records."""
        rows = paired(graded.records)
        if not rows:
            return None
        # Paired: a branch is compared with the direct one on the questions both answered.
        both = {name: [r for r in rows if name in r.correct and "direct" in r.correct] for name in BRANCHES}
        both = {name: kept for name, kept in both.items() if kept}
        detect = {
            name: [r for r in rows if r.subtask is Subtask.ANOMALY_DISCRIMINATION and name in r.defect]
            for name in BRANCHES
        }
        detect = {name: kept for name, kept in detect.items() if kept}
        figures = _figures(both, detect, None)
        spread = self._bootstrap(graded, rows, both, detect) if graded.bootstrap else {}
        cells = []
        for key, value in figures.items():
            low, high = spread.get(key, (None, None))
            cells.append(Cell(key, value, unit="%", low=low, high=high))
        cells += _usage(tools_records(graded.records))
        notes = [f"paired over {len(both.get('tools', []))} questions both branches answered"]
        if any(not r.defect for r in detect.get("tools", [])):
            notes.append("AUROC from answers where a branch gave no letter log-probabilities (ask with --likelihood)")
        # The AUROC too: a blend can rank better with no gain in accuracy (AnomalyClaw's finding).
        headline = [c.name for c in cells if c.name.endswith(("accuracy", "− direct", "AUROC"))]
        return self.result(cells, headline=headline, notes=notes)

    def _bootstrap(
        self, graded: Graded, rows: list[Paired], both: dict[str, list[Paired]], detect: dict[str, list[Paired]]
    ) -> dict[str, tuple[float, float]]:
        import numpy as np

        from mmad.score.intervals import image_resamples

        assert graded.bootstrap is not None
        images = sorted({r.image for r in rows})
        rng = np.random.default_rng(graded.bootstrap.seed)
        samples: dict[str, list[float]] = defaultdict(list)
        for block in image_resamples(rng, len(images), graded.bootstrap.samples, block=64):
            for counts in block:
                weights = dict(zip(images, counts.tolist(), strict=True))
                for key, value in _figures(both, detect, weights).items():
                    if value is not None:
                        samples[key].append(value)
        out = {}
        for key, values in samples.items():
            low, high = np.percentile(values, [(100 - LEVEL) / 2, 100 - (100 - LEVEL) / 2])
            out[key] = (float(low), float(high))
        return out


def _usage(records: Sequence[Record]) -> list[Cell]:
    """Tokens and seconds per question of each branch."""
    count = len(records)
    direct_tokens = [
        (r.extra["direct"].get("prompt_tokens") or 0) + (r.extra["direct"].get("completion_tokens") or 0)
        for r in records
        if isinstance(r.extra.get("direct"), dict)
    ]
    tools_tokens = [
        sum(
            (t.get("prompt_tokens") or 0) + (t.get("completion_tokens") or 0) for t in r.extra["tools"].get("turns", [])
        )
        for r in records
    ]
    direct_seconds = [_model_seconds(r.extra["direct"]) for r in records if isinstance(r.extra.get("direct"), dict)]
    tools_seconds = [_tools_seconds(r) for r in records]
    kept_direct = [s for s in direct_seconds if s is not None]
    kept_tools = [s for s in tools_seconds if s is not None]
    return [
        Cell("direct tokens/question", sum(direct_tokens) / count if direct_tokens else None, unit="tokens"),
        Cell("tools tokens/question", sum(tools_tokens) / count, unit="tokens"),
        Cell("direct s/question", sum(kept_direct) / len(kept_direct) if kept_direct else None, unit="s"),
        Cell("tools s/question", sum(kept_tools) / len(kept_tools) if kept_tools else None, unit="s"),
    ]


def _model_seconds(part: dict[str, Any]) -> float | None:
    """A branch's or a turn's seconds of the model: for a reply from the cache, those of when it was asked
    (None where the cache kept none), never the lookup's."""
    seconds = part.get("asked_latency_s") if part.get("cached") else part.get("latency_s")
    return seconds if isinstance(seconds, int | float) else None


def _tools_seconds(record: Record) -> float | None:
    """The tools branch's seconds: its turns' (as `_model_seconds`) and its tool calls'; None where a turn's are
    not known."""
    turns = [_model_seconds(t) for t in record.extra["tools"].get("turns", [])]
    if any(t is None for t in turns):
        return None
    calls = sum(c.get("latency_s") or 0 for c in record.extra["tools"].get("calls", []))
    return sum(t for t in turns if t is not None) + calls


class ToolUse(Metric):
    """How often the model called each tool, per question and per subtask."""

    name = "tool-use"
    title = "Tool use"

    def compute(self, graded: Graded) -> MetricResult | None:
        """None for a run without tools records."""
        records = tools_records(graded.records)
        if not records:
            return None
        by_tool: Counter[str] = Counter()
        by_subtask: dict[Subtask | None, list[int]] = defaultdict(list)
        refused = total = forced = fallbacks = 0
        blended = False
        for record in records:
            calls = record.extra["tools"].get("calls", [])
            by_tool.update(str(c.get("name")) for c in calls)
            refused += sum(bool(c.get("error")) for c in calls)
            total += len(calls)
            forced += bool(record.extra["tools"].get("forced_final"))
            blend = record.extra.get("blend")
            if isinstance(blend, dict):
                blended = True
                fallbacks += bool(blend.get("fallback"))
            by_subtask[RAW_TYPE_TO_SUBTASK.get(record.question_type)].append(len(calls))
        count = len(records)
        cells = [Cell("calls/question", total / count, unit="")]
        cells += [Cell(f"{name}/question", n / count, unit="") for name, n in sorted(by_tool.items())]
        cells += [
            Cell(f"calls/question {subtask.short}", sum(calls) / len(calls), unit="")
            for subtask, calls in sorted(by_subtask.items(), key=lambda kv: list(Subtask).index(kv[0]) if kv[0] else 99)
            if subtask is not None
        ]
        cells.append(Cell("questions without a call", 100 * sum(not c for v in by_subtask.values() for c in v) / count))
        cells.append(Cell("calls refused", 100 * refused / total if total else None))
        cells.append(Cell("turn limit reached", 100 * forced / count))
        headline = ["calls/question", "questions without a call", "turn limit reached"]
        if blended:
            cells.append(Cell("fell back to direct", 100 * fallbacks / count))
            headline.append("fell back to direct")
        return self.result(cells, headline=headline)
