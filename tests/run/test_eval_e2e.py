"""`mmad eval` against `mmad serve` on 127.0.0.1: faults, resume, cache, budget, secrets."""

import json
import logging
from pathlib import Path

import pytest

from mmad import Status, evaluate
from mmad.cli import main
from mmad.data.official import load_benchmark
from mmad.records.record import read_records
from tests.helpers.serving import running_server

FAST = {"retry_base_s": 0.01, "retry_max_s": 0.05, "timeout_s": 0.5}


def _eval(mmad_json: Path, server, out: Path, **settings):
    options = {"base_url": server.base_url, "cache": False, "concurrency": 8, **FAST, **settings}
    return evaluate("mmad:random", mmad_json, out=out, **options)


def test_faulted_server_then_resume(mmad_json: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    with running_server(fault_rate=0.2, seed=1) as server:
        result = _eval(mmad_json, server, out, max_retries=0)
        assert sum(server.stats.faults.values()) > 0
    records = read_records(out / "records.jsonl")
    n_questions = load_benchmark(mmad_json).n_questions
    assert len({r.question_id for r in records}) == len(records) == n_questions == result.table.n_answers
    failed = [r for r in records if r.status is Status.ERROR]
    assert failed, "a 20% fault rate with no retries must leave failures"
    assert {r.error_class for r in failed} <= {
        "rate_limit",
        "server_error",
        "timeout",
        "connection",
        "malformed",
        "empty",
    }
    assert all(r.answer is not None for r in records if r.status is Status.ANSWERED)
    assert not result.complete
    assert json.loads((out / "run.json").read_text())["status"] == "partial"
    with running_server() as healthy:
        resumed = evaluate(
            "mmad:random", mmad_json, out=out, resume=True, base_url=healthy.base_url, cache=False, **FAST
        )
        assert healthy.stats.requests == len(failed)  # only what failed is asked again
    final = read_records(out / "records.jsonl")
    assert resumed.complete
    assert len(final) == len(records) and not [r for r in final if r.status is Status.ERROR]
    answered_before = {r.question_id: r.answer for r in records if r.status is Status.ANSWERED}
    assert all(r.answer == answered_before[r.question_id] for r in final if r.question_id in answered_before)


def test_retries_ride_out_faults(mmad_json: Path, tmp_path: Path) -> None:
    with running_server(fault_rate=0.2, seed=2) as server:
        result = _eval(mmad_json, server, tmp_path / "run", max_retries=8)
    assert result.complete and result.stats.retries > 0
    assert result.table.n_unanswered == 0


def test_run_directory_and_official_files(mmad_json: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    with running_server() as server:
        result = _eval(mmad_json, server, out)
    meta = json.loads((out / "run.json").read_text())
    assert meta["dataset"]["sha256"] and meta["card"]["protocol"] == "per-question"
    assert meta["card"]["images"]["image_size"] == 512 and meta["status"] == "complete"
    assert meta["card_hash"] == meta["card"]["hash"] and len(meta["card_hash"]) == 12
    answers = json.loads((out / "answers_1_shot_random.json").read_text())
    assert {"image", "question", "question_type", "correct_answer", "gpt_answer"} <= set(answers[0])
    assert (out / "answers_1_shot_random_accuracy.csv").exists() and (out / "heatmap.png").exists()
    record = read_records(out / "records.jsonl")[0]
    assert record.prompt_hash and record.latency_s is not None and record.prompt_tokens
    assert record.parse_method == "explicit" and record.raw_reply.startswith("Answer:")
    assert result.table.average is not None
    with pytest.raises(Exception, match=r"already holds a run; continue it .*resume=True from Python"):
        _eval(mmad_json, server, out)


def test_cache_makes_a_rerun_free(mmad_json: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with running_server() as server:
        first = _eval(mmad_json, server, tmp_path / "a", cache=True, cache_dir=str(cache))
        asked = server.stats.requests
        second = _eval(mmad_json, server, tmp_path / "b", cache=True, cache_dir=str(cache))
        assert server.stats.requests == asked  # nothing new reached the server
    assert second.stats.cached == first.table.n_answers
    assert second.table.average == first.table.average


def test_budget_stops_cleanly_and_resumes(mmad_json: Path, tmp_path: Path) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"random": [1000.0, 1000.0]}))  # ~$0.1+ per request
    out = tmp_path / "run"
    with running_server() as server:
        stopped = evaluate(
            "compat:random",
            mmad_json,
            out=out,
            base_url=server.base_url,
            cache=False,
            concurrency=1,
            max_cost=0.5,
            prices=str(prices),
            **FAST,
        )
        assert stopped.stats.stopped_reason and "budget" in stopped.stats.stopped_reason
        assert not stopped.complete
        done = len(read_records(out / "records.jsonl"))
        assert 0 < done < load_benchmark(mmad_json).n_questions
        finished = evaluate(
            "compat:random",
            mmad_json,
            out=out,
            resume=True,
            base_url=server.base_url,
            cache=False,
            prices=str(prices),
            **FAST,
        )
    assert finished.complete


def test_budget_holds_with_many_requests_in_flight(mmad_json: Path, tmp_path: Path) -> None:
    """The first requests of a run are priced before any reply says what a request costs: 16 in
    flight at once must not spend 16 requests' worth past the budget."""
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"random": [1000.0, 1000.0]}))
    with running_server(latency_s=0.2) as server:
        run = evaluate(
            "compat:random",
            mmad_json,
            out=tmp_path / "run",
            base_url=server.base_url,
            cache=False,
            concurrency=16,
            max_cost=1.0,
            prices=str(prices),
            **FAST,
        )
        sent = server.stats.requests
    per_request = run.stats.cost_usd / sent
    assert run.stats.stopped_reason and "budget" in run.stats.stopped_reason
    assert 0 < sent < 16, "the budget allows fewer requests than the concurrency"
    assert run.stats.cost_usd <= 1.0 + per_request, (run.stats.cost_usd, sent)


def test_planted_key_never_written(
    mmad_json: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "sk-test-PLANTED-0123456789abcdef0123456789"
    monkeypatch.setenv("MMAD_TEST_API_KEY", secret)
    caplog.set_level(logging.DEBUG)
    out = tmp_path / "run"
    with running_server(fault_rate=0.3, seed=5) as server:
        evaluate(
            "compat:random",
            mmad_json,
            out=out,
            base_url=server.base_url.replace("127.0.0.1", "localhost"),
            key_env="MMAD_TEST_API_KEY",
            cache=True,
            cache_dir=str(tmp_path / "cache"),
            max_retries=1,
            **FAST,
        )
    for path in [*out.rglob("*"), *(tmp_path / "cache").rglob("*")]:
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    assert secret not in caplog.text
    assert json.loads((out / "run.json").read_text())["model"]["key_env"] == "MMAD_TEST_API_KEY"


def test_missing_key_is_a_clear_error(
    mmad_json: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    status = main(
        ["eval", "--model", "openai:gpt-4o", "--data", str(mmad_json), "--out", str(tmp_path / "r"), "--limit", "2"]
    )
    assert status == 2
    assert "OPENAI_API_KEY" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # nothing was started


def test_cli_eval_and_dry_run(mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "-m", "openai:gpt-4o", "-d", str(mmad_json), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "nothing sent" in out and "cost ≈ $" in out and "requests 92" in out
    assert (
        main(["eval", "-m", "openai:gpt-4o", "-d", str(mmad_json), "--dry-run", "--strategy", "cot", "--circular"]) == 0
    )
    assert "(per-question, 1-shot, strategy cot, circular): nothing sent" in capsys.readouterr().out
    with running_server() as server:
        status = main(
            [
                "eval",
                "-m",
                "mmad:random",
                "-d",
                str(mmad_json),
                "--base-url",
                server.base_url,
                "--out",
                str(tmp_path / "run"),
                "--no-cache",
                "--protocol",
                "per-image",
                "--subtask",
                "Anomaly Discrimination",
                "--dataset",
                "VisA",
            ]
        )
    assert status == 0
    printed = capsys.readouterr().out
    assert "VisA" in printed and "run directory" in printed
    records = read_records(tmp_path / "run" / "records.jsonl")
    assert {r.question_type for r in records} == {"Anomaly Detection"}
    assert {r.image.split("/")[0] for r in records} == {"VisA"}
    # one asked question per image: "Answer: B" is read as a per-question reply is (issue 21 item 2)
    assert {r.status.value for r in records} == {"answered"}


def test_every_eval_flag_maps_onto_the_config() -> None:
    import inspect

    from mmad.cli.eval_commands import eval_command
    from mmad.run.config import FLAT_NAMES

    control = {"model", "data", "out", "resume", "config_file", "recipe", "dry_run", "no_cache", "detail"}
    renamed = {"similar", "strategy", "dataset", "category", "subtask", "timeout", "text_only", "original_images"}
    flags = set(inspect.signature(eval_command).parameters) - control
    unmapped = {f for f in flags if f not in FLAT_NAMES and f not in renamed}
    assert unmapped == set()
    assert {"detail", "cache", "image_size", "text_only"} <= set(FLAT_NAMES)


def test_requests_spread_over_several_endpoints(mmad_json: Path, tmp_path: Path) -> None:
    with running_server(latency_s=0.02) as first, running_server(latency_s=0.02) as second:
        result = evaluate(
            "vllm:random",
            mmad_json,
            out=tmp_path / "run",
            cache=False,
            concurrency=8,
            base_url=f"{first.base_url},{second.base_url}",
            **FAST,
        )
        counts = (first.stats.requests, second.stats.requests)
    assert result.complete and sum(counts) == result.table.n_answers
    assert min(counts) >= 0.3 * sum(counts)  # both replicas did a fair share


def test_missing_files_fail_their_questions_not_the_run(fresh_mmad_json: Path, tmp_path: Path) -> None:
    """A template missing from the copy (upstream issue #6) fails the questions that show it, with
    the path named; the run goes on and is not stopped by --max-errors, which counts model failures."""
    import shutil

    shutil.rmtree(fresh_mmad_json.parent / "MVTec-AD")  # DS-MVTec's templates
    with running_server() as server:
        result = _eval(fresh_mmad_json, server, tmp_path / "run", max_errors=1, concurrency=2)
    records = read_records(tmp_path / "run" / "records.jsonl")
    failed = [r for r in records if r.status is Status.ERROR]
    assert failed and all(r.image.startswith("DS-MVTec/") for r in failed)
    assert all(r.error_class == "input" and "MVTec-AD/bottle/train/good" in (r.error_message or "") for r in failed)
    assert result.stats.stopped_reason is None and not result.complete
    others = [r for r in records if not r.image.startswith("DS-MVTec/")]
    assert others and all(r.status is Status.ANSWERED for r in others)


def test_the_budget_is_the_runs_across_resumes(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"random": [1000.0, 1000.0]}))
    out = tmp_path / "run"
    with running_server() as server:
        base = ["eval", "--resume", str(out)]
        first = ["eval", "-m", "compat:random", "--base-url", server.base_url, "-d", str(mmad_json), "--out", str(out)]
        assert main([*first, "--no-cache", "-c", "2", "--max-cost", "0.5", "--prices", str(prices)]) == 1
        spent = json.loads((out / "run.json").read_text())["usage"]["cost_usd"]
        asked = server.stats.requests
        capsys.readouterr()
        assert main(base) == 1, "the recorded budget is spent: a resume asks nothing more"
        assert server.stats.requests == asked and "before this session" in capsys.readouterr().err
        assert main([*base, "--max-cost", "1000"]) == 0
    usage = json.loads((out / "run.json").read_text())["usage"]
    assert usage["cost_usd"] > spent and 0 < spent <= 0.5 + spent / max(1, asked)


def test_a_run_the_cache_answers_is_not_refused_by_a_budget_smaller_than_one_request(
    mmad_json: Path, tmp_path: Path
) -> None:
    # Each request was set aside its expected cost before the cache was looked at: a rerun whose every
    # reply is cached (it costs nothing) stopped at once under a --max-cost below one request's price.
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"random": [1000.0, 1000.0]}))  # ~$0.1+ per request
    cache_dir = tmp_path / "cache"
    with running_server() as server:
        first = evaluate(
            "compat:random",
            mmad_json,
            out=tmp_path / "first",
            base_url=server.base_url,
            cache_dir=str(cache_dir),
            prices=str(prices),
            **FAST,
        )
        assert first.complete and first.stats.cost_usd > 0.01
        asked = server.stats.requests
        again = evaluate(
            "compat:random",
            mmad_json,
            out=tmp_path / "again",
            base_url=server.base_url,
            cache_dir=str(cache_dir),
            prices=str(prices),
            max_cost=0.01,
            **FAST,
        )
        assert server.stats.requests == asked
    assert again.complete, again.stats.stopped_reason
    assert again.stats.cached == again.completeness.asked and again.stats.cost_usd == 0
