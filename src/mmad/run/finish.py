"""The last stage of a run: compact the records, say what became of the run, score it.

Writing report files is the caller's business (`mmad.evaluate`, the CLI): the finish stage
returns the table and the graded answers, and records the outcome in run.json.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from mmad.records.folder import Completeness, open_run
from mmad.records.record import Record, Status
from mmad.run.config import RunConfig
from mmad.run.engine import EngineStats
from mmad.run.prepare import PreparedRun
from mmad.score.answers import GradedAnswer, graded_from_record
from mmad.score.table import ScoreTable, score_answers

RunStatus = Literal["complete", "partial", "interrupted"]


@dataclass
class RunResult:
    """What an evaluation left behind."""

    run_dir: Path
    config: RunConfig
    table: ScoreTable
    graded: list[GradedAnswer]
    stats: EngineStats
    status: RunStatus
    completeness: Completeness
    card: dict[str, Any]
    records: list[Record] = field(default_factory=list, repr=False)
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """Every selected question was asked, and no request failed."""
        return self.status == "complete"


def _usage(stats: EngineStats) -> dict[str, Any]:
    return {
        "prompt_tokens": stats.prompt_tokens,
        "completion_tokens": stats.completion_tokens,
        "cost_usd": round(stats.cost_usd, 6),
        "cached": stats.cached,
        "retries": stats.retries,
        "elapsed_s": round(stats.elapsed_s, 3),
    }


async def finish(prepared: PreparedRun, stats: EngineStats, *, interrupted: bool = False) -> RunResult:
    """Close the run: compact records.jsonl, write the outcome to run.json, score the latest records."""
    store = prepared.store
    try:
        store.compact(prepared.order)
        statuses = store.statuses()
        order = prepared.order
        missing = sum(k not in statuses for k in order)
        failed = sum(statuses.get(k) is Status.ERROR for k in order)
        status: RunStatus
        if interrupted:
            status = "interrupted"
        elif missing or failed or stats.stopped_reason is not None:
            status = "partial"
        else:
            status = "complete"
        meta = prepared.meta
        previous = meta.get("usage") if prepared.resumed else None
        usage = _usage(stats)
        if isinstance(previous, dict):  # a resumed run adds to what earlier sessions spent
            for key in ("prompt_tokens", "completion_tokens", "cost_usd", "cached", "retries", "elapsed_s"):
                usage[key] = round(usage[key] + float(previous.get(key) or 0), 6)
        meta.update(
            status=status,
            finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
            missing=missing,
            failed=failed,
            stopped_reason="interrupted (Ctrl-C)" if interrupted else stats.stopped_reason,
            usage=usage,
        )
        store.write_meta(meta)
    finally:
        store.close()
        await prepared.model.aclose()
        if prepared.judge is not None:
            await prepared.judge.aclose()
    run = open_run(prepared.run_dir)
    wanted = set(order)
    records = [r for r in run.records if r.key in wanted]
    graded = [graded_from_record(r) for r in records if r.plain]
    return RunResult(
        run_dir=prepared.run_dir,
        config=prepared.config,
        table=score_answers(graded),
        graded=graded,
        stats=stats,
        status=status,
        completeness=run.completeness,
        card=dict(meta.get("card") or {}),
        records=records,
    )
