"""The judge (--judge) is called through a model caller of its own: a real `mmad serve` as the judge gets
the run's retries, its replies are cached, and its tokens and dollars count in run.json and against
--max-cost."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from mmad import RunConfig
from mmad.api import evaluate_async
from mmad.cli import main
from mmad.errors import ConfigError, ModelCallError
from mmad.models.base import Completion, Model, Request
from mmad.models.registry import ModelOptions, create_model
from mmad.records.record import Status, read_records
from mmad.run.ledger import EngineStats
from tests.helpers.judging import Rambler
from tests.helpers.serving import running_server


class BusyJudge(Model):
    """A judge behind `mmad serve` that answers its first `busy` requests with HTTP 429, then B."""

    name = "busy"

    def __init__(self, busy: int) -> None:
        self.busy = busy
        self.calls = 0

    async def generate(self, request: Request) -> Completion:
        self.calls += 1
        if self.calls <= self.busy:
            raise ModelCallError("rate limit reached (injected)", error_class="rate_limit")
        return Completion(text="B")


def _config(data: Path, tmp_path: Path, **settings: Any) -> RunConfig:
    flat: dict[str, Any] = {
        "datasets": ["VisA"],
        "judge": "compat:judge",  # priced by this name; the object given to the run is the one asked
        "cache_dir": str(tmp_path / "cache"),
        "retry_base_s": 0.01,
        "retry_max_s": 0.05,
        "max_retries": 4,
        "concurrency": 4,
    }
    return RunConfig.from_flat("rambler", str(data), **{**flat, **settings})


def _judge(base_url: str) -> Model:
    return create_model("compat:judge", ModelOptions(base_url=base_url))


def _run(config: RunConfig, out: Path, base_url: str) -> Any:
    return asyncio.run(evaluate_async(config, out=out, model=Rambler(), judge=_judge(base_url)))


def _usage(run: Path) -> dict[str, Any]:
    usage = json.loads((run / "run.json").read_text())["usage"]
    assert isinstance(usage, dict)
    return usage


def test_a_judge_answering_429_is_retried_and_its_replies_cached(mmad_json: Path, tmp_path: Path) -> None:
    config = _config(mmad_json, tmp_path)
    judge = BusyJudge(busy=3)
    with running_server(judge) as server:
        result = _run(config, tmp_path / "first", server.base_url)
        records = read_records(tmp_path / "first" / "records.jsonl")
        n = len(records)
        assert n > 3 and {(r.parse_method, r.answer) for r in records} == {("judge", "B")}
        counts = result.stats.judge
        assert (counts.requests, counts.retries, counts.failed) == (n, 3, 0)
        # A judge prompt met before (the same question and reply on another image) is the cache's: each
        # distinct one was sent once, and the three refused requests again.
        sent = n - counts.cached
        assert sent > 3 and server.stats.requests == sent + 3
        usage = _usage(tmp_path / "first")
        assert usage["judge"]["requests"] == n and usage["judge"]["retries"] == 3
        assert usage["judge"]["prompt_tokens"] > 0 and usage["retries"] == 0  # the model's own retries
        # the run's totals hold the judge's tokens beside the model's
        assert usage["prompt_tokens"] == 50 * n + usage["judge"]["prompt_tokens"]

        # The same run again, from the cache: the judge is sent nothing and costs nothing.
        again = _run(config, tmp_path / "again", server.base_url)
        assert server.stats.requests == sent + 3
    assert (again.stats.judge.requests, again.stats.judge.cached) == (n, n)
    assert {r.parse_method for r in read_records(tmp_path / "again" / "records.jsonl")} == {"judge"}
    assert _usage(tmp_path / "again")["judge"]["prompt_tokens"] == 0


def test_a_judge_that_keeps_failing_fails_its_questions_and_a_resume_judges_them(
    mmad_json: Path, tmp_path: Path
) -> None:
    """A reply left unjudged is not an answer: the run would be 'complete' with a score that depends on which
    judge calls got through. The questions fail (class judge) and --resume judges them, the model's replies
    coming from the cache."""
    config = _config(mmad_json, tmp_path, max_retries=1, max_errors=0)
    with running_server(BusyJudge(busy=10**6)) as server:
        result = _run(config, tmp_path / "run", server.base_url)
    records = read_records(tmp_path / "run" / "records.jsonl")
    assert {(r.status, r.error_class) for r in records} == {(Status.ERROR, "judge")}
    assert not result.complete and all(
        "the judge gave no verdict (rate_limit)" in str(r.error_message) for r in records
    )
    assert result.stats.judge.failed == len(records) == result.stats.judge.requests
    assert _usage(tmp_path / "run")["judge"]["failed"] == len(records)

    model_calls = Counting()
    with running_server(BusyJudge(busy=0)) as server:
        resumed = asyncio.run(
            evaluate_async(config, out=tmp_path / "run", resume=True, model=model_calls, judge=_judge(server.base_url))
        )
    assert resumed.complete and model_calls.calls == 0  # every model reply came from the response cache
    latest = {r.question_id: r for r in read_records(tmp_path / "run" / "records.jsonl")}
    assert {(r.parse_method, r.answer) for r in latest.values()} == {("judge", "B")}


class Counting(Rambler):
    """The same replies as Rambler's (the same response-cache key), counted."""

    def __init__(self) -> None:
        self.calls = 0

    async def generate(self, request: Request) -> Completion:
        self.calls += 1
        return await super().generate(request)


def test_a_judge_that_is_not_there_stops_the_run_at_once(
    mmad_json: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = _config(mmad_json, tmp_path, cache=False)
    result = _run(config, tmp_path / "run", f"http://127.0.0.1:{port}/v1")
    reason = result.stats.stopped_reason or ""
    assert reason.startswith("judge_unreachable: the judge gave no verdict (connection_refused)"), reason
    assert "--judge-base-url" in reason and "--base-url right" not in reason.replace("--judge-base-url", "")
    # the warning logged on the first failure names the judge's address setting too, not the model's
    warned = [r.getMessage() for r in caplog.records if r.name == "mmad.solvers.judge"]
    assert warned and all(
        "--judge-base-url" in m and "--base-url" not in m.replace("--judge-base-url", "") for m in warned
    )
    # stopped at the first refusal: not a minute of retries, not one failure per question
    assert result.stats.judge.retries == 0 and result.stats.judge.requests <= config.execution.concurrency
    assert not result.complete


def test_a_priced_judge_is_paid_from_the_run_s_budget(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prices = tmp_path / "prices.json"
    # the model is free; each judge call (about 60 prompt tokens) costs about 6 cents
    prices.write_text(json.dumps({"rambler": [0.0, 0.0], "compat:judge": [1000.0, 1000.0]}))
    config = _config(mmad_json, tmp_path, prices=str(prices), max_cost=0.3, concurrency=2, cache=False)
    with running_server(BusyJudge(busy=0)) as server:
        result = _run(config, tmp_path / "run", server.base_url)
        asked = server.stats.requests
    usage = _usage(tmp_path / "run")
    n = result.completeness.selected
    assert 0 < asked < n, "the budget stopped the judge before every question was judged"
    assert result.status == "partial" and "cost budget of $0.30" in (result.stats.stopped_reason or "")
    # every judge call was reserved before it was sent: the budget is never passed
    assert 0 < usage["judge"]["cost_usd"] == usage["cost_usd"] <= 0.3
    assert result.stats.cost_known
    # A question whose judge call was refused in flight failed (class budget); once the budget is reached no
    # further question is asked. Which of the two stops a given question is a matter of timing (two in flight);
    # either way a resume with more asks and judges them.
    refused = [r for r in read_records(tmp_path / "run" / "records.jsonl") if r.status is Status.ERROR]
    assert {r.error_class for r in refused} <= {"budget"}
    assert refused or result.completeness.asked < n
    # the closing line's cost is the run's, the judge's share beside it
    from mmad.cli.eval_commands import spending_text

    line = spending_text(result.stats, "rambler", "compat:judge")
    assert f"${usage['cost_usd']:.4f}" in line and f"judge: {result.stats.judge.requests} calls" in line
    assert f"${usage['judge']['cost_usd']:.4f} of it" in line

    more = config.model_copy(update={"execution": config.execution.model_copy(update={"max_cost": 100.0})})
    with running_server(BusyJudge(busy=0)) as server:
        resumed = asyncio.run(
            evaluate_async(more, out=tmp_path / "run", resume=True, model=Rambler(), judge=_judge(server.base_url))
        )
    assert resumed.complete
    assert {r.parse_method for r in read_records(tmp_path / "run" / "records.jsonl")} == {"judge"}
    total = _usage(tmp_path / "run")
    assert total["judge"]["cost_usd"] == total["cost_usd"] > usage["cost_usd"]
    assert total["judge"]["requests"] == result.stats.judge.requests + resumed.stats.judge.requests


def test_max_cost_needs_a_price_for_the_judge(mmad_json: Path, tmp_path: Path) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"rambler": [0.0, 0.0]}))
    config = _config(mmad_json, tmp_path, prices=str(prices), max_cost=1.0)
    with pytest.raises(ConfigError, match="--max-cost needs a price for the judge compat:judge"):
        _run(config, tmp_path / "run", "http://127.0.0.1:9/v1")
    assert not (tmp_path / "run" / "run.json").exists()


def test_an_unpriced_judge_makes_the_run_s_cost_unknown() -> None:
    from mmad.cli.eval_commands import spending_text

    stats = EngineStats(cost_usd=0.5, priced_requests=3)
    stats.judge.requests = stats.judge.unpriced_requests = 2
    stats.judge.prompt_tokens = 120
    line = spending_text(stats, "openai:gpt-4o", "compat:judge")
    assert "$0.5" not in line and "cost unknown (no price for the judge compat:judge" in line
    # a judge given a price whose server reports no usage is not sent looking for a price
    stats.judge.prompt_tokens = 0
    line = spending_text(stats, "openai:gpt-4o", "compat:judge")
    assert "the judge's replies carried no token usage to price" in line and "--prices" not in line


def test_the_dry_run_says_the_judge_is_not_in_the_estimate_and_bounds_it(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"compat:judge": [1000.0, 1000.0]}))
    command = ["eval", "-m", "openai:gpt-4o", "-d", str(mmad_json), "--limit", "5", "--dry-run"]
    command += ["--judge-base-url", "http://127.0.0.1:9/v1"]  # compat: has no address of its own
    assert main([*command, "--judge", "compat:judge", "--prices", str(prices)]) == 0
    out = capsys.readouterr().out
    assert "judge compat:judge: not in the cost above" in out and "up to 5 requests, at most $" in out
    bound = float(out.split("at most $")[1].split()[0])
    # five judge calls, each reading a reply of up to 128 tokens: more than 5 x 128 tokens at $1000/M
    assert bound > 5 * 128 * 1000 / 1e6
    assert main([*command, "--judge", "compat:judge"]) == 0
    assert "up to 5 requests, no price known for it" in capsys.readouterr().out


def test_ray_actors_judge_counters_reach_the_driver() -> None:
    from mmad.run.ledger import Ledger
    from mmad.run.ray_worker import usage_of

    actor = EngineStats(prompt_tokens=70, cost_usd=0.2, priced_requests=1)
    actor.judge.requests, actor.judge.cached, actor.judge.prompt_tokens, actor.judge.cost_usd = 2, 1, 20, 0.05
    driver = Ledger.__new__(Ledger)
    driver.stats = EngineStats()
    driver.add_usage_totals(usage_of(actor))
    assert (driver.stats.prompt_tokens, driver.stats.cost_usd) == (70, 0.2)
    assert (driver.stats.judge.requests, driver.stats.judge.cached, driver.stats.judge.cost_usd) == (2, 1, 0.05)


def test_a_version_2_usage_reads_without_a_judge_and_resumes_add_up(mmad_json: Path, tmp_path: Path) -> None:
    from mmad.run.manifest import SCHEMA_VERSION, JudgeUsage, Usage, parse_manifest

    small_run = tmp_path / "run"
    assert main(["eval", "-m", "random", "-d", str(mmad_json), "--limit", "2", "--out", str(small_run)]) == 0
    raw = json.loads((small_run / "run.json").read_text())
    raw["schema_version"] = 2
    raw["usage"] = {"prompt_tokens": 10, "completion_tokens": 2, "cost_usd": 0.5, "cached": 0, "retries": 0}
    manifest = parse_manifest(raw, small_run / "run.json")
    assert manifest.schema_version == SCHEMA_VERSION and manifest.usage is not None and manifest.usage.judge is None
    session = Usage(prompt_tokens=5, cost_usd=0.25, judge=JudgeUsage(requests=2, prompt_tokens=5, cost_usd=0.25))
    total = session.plus(manifest.usage)
    assert (total.cost_usd, total.judge) == (0.75, session.judge)
    assert total.plus(session).judge == JudgeUsage(requests=4, prompt_tokens=10, cost_usd=0.5)


@pytest.mark.ray
@pytest.mark.slow
def test_on_ray_the_actors_judge_is_cached_and_counted(mmad_json: Path, tmp_path: Path, ray_cluster: str) -> None:
    """The actors build the judge's caller as the local engine does; the driver adds up its counters.
    (Named, not shipped: a judge given as an object to Ray must pickle, and --judge has no --base-url.)"""
    ray = {"engine": "ray", "ray_address": ray_cluster, "ray_actors": 2, "judge": "fixed:B"}
    with running_server(Rambler()) as server:
        config = _config(mmad_json, tmp_path, base_url=server.base_url, **ray)
        config = config.model_copy(update={"model": "compat:rambler"})
        first = asyncio.run(evaluate_async(config, out=tmp_path / "first"))
        again = asyncio.run(evaluate_async(config, out=tmp_path / "again"))
    records = read_records(tmp_path / "first" / "records.jsonl")
    assert {(r.parse_method, r.answer) for r in records} == {("judge", "B")}
    assert (first.stats.judge.requests, first.stats.judge.failed) == (len(records), 0)
    assert _usage(tmp_path / "first")["judge"]["requests"] == len(records)
    assert (again.stats.judge.requests, again.stats.judge.cached) == (len(records), len(records))


class FilteringJudge(Model):
    """A judge behind `mmad serve` whose content filter turns down every reply it is asked about (HTTP 400)."""

    name = "filtering"

    async def generate(self, request: Request) -> Completion:
        raise ModelCallError("content_filter: the prompt was flagged (injected)", error_class="refused")


def test_a_judge_s_content_filter_leaves_the_parse_and_the_run_completes(mmad_json: Path, tmp_path: Path) -> None:
    # A refusal is the judge's answer, not a verdict it failed to give: the same judge refusing in its reply
    # (finish_reason content_filter) left the parse, but refusing with HTTP 400 failed the questions (class
    # judge), which every --resume asked again and the filter refused again: the run could never complete.
    config = _config(mmad_json, tmp_path, max_errors=0)
    with running_server(FilteringJudge()) as server:
        result = _run(config, tmp_path / "run", server.base_url)
        sent = server.stats.requests
    records = read_records(tmp_path / "run" / "records.jsonl")
    assert result.complete and {r.status for r in records} == {Status.UNPARSED}
    assert sent > 0 and result.stats.judge.requests == len(records) and result.stats.judge.failed == 0


def test_an_actors_earlier_snapshot_read_late_takes_no_counts_back() -> None:
    """On Ray each job brings back its actor's counters so far; two of one actor's jobs may be read in either
    order (the judge's calls in run.json came out short: 16 of 18)."""
    from mmad.run.ray_engine import latest_usage

    later = {"prompt_tokens": 900.0, "judge_requests": 9.0, "cost_usd": 0.5}
    earlier = {"prompt_tokens": 400.0, "judge_requests": 4.0, "cost_usd": 0.2}
    known = latest_usage({}, later)
    assert latest_usage(known, earlier) == later
    assert latest_usage(latest_usage({}, earlier), later) == later
