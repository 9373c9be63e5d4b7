"""The Ray engine against real `mmad serve` endpoints, on a local Ray with two CPUs.

Killing the driver, killing an actor, Ctrl-C and the stop rules are each tried for real: the
driver as a subprocess joining the test's Ray, an actor with ``ray.kill``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from mmad import evaluate
from mmad.data.official import load_benchmark
from mmad.errors import MissingExtraError
from mmad.records.record import read_records
from mmad.run.config import RunConfig
from mmad.run.finish import finish
from mmad.run.ray_engine import RayEngine
from mmad.run.ray_runner import make_ray_engine, prepare_on_ray
from mmad.run.runner import execute
from tests.helpers.processes import eval_args, mmad_command, process_env
from tests.helpers.runs import wait_for_records
from tests.helpers.serving import running_server

pytestmark = pytest.mark.ray


def _outcome(path: Path) -> dict[tuple[str, str], tuple[str, str | None, str | None]]:
    return {r.key: (r.status.value, r.answer, r.parse_method) for r in read_records(path)}


def _raw_keys(path: Path) -> Counter[tuple[str, str]]:
    """Keys of records.jsonl as written (before the finish stage compacts it)."""
    keys: Counter[tuple[str, str]] = Counter()
    for line in path.read_text().splitlines():
        if line.strip():
            data = json.loads(line)
            keys[(data["question_id"], data.get("variant", ""))] += 1
    return keys


def _eval_args(mmad_json: Path, out: Path, base_url: str, address: str, *, resume: bool) -> list[str]:
    """`mmad eval`'s arguments for a run on the test's Ray, or for its resume."""
    ray = ["--engine", "ray", "--ray-address", address, "--ray-actors", "2"]
    if resume:
        return ["eval", "--resume", str(out), *ray, "--concurrency", "4"]
    return [*eval_args(mmad_json, out, base_url, concurrency=4), *ray]


def _driver(mmad_json: Path, out: Path, base_url: str, address: str, *, resume: bool) -> list[str]:
    """The command line of a driver process, for a run that is killed or signalled."""
    return mmad_command(_eval_args(mmad_json, out, base_url, address, resume=resume))


@pytest.mark.slow
def test_same_records_as_the_local_engine(mmad_json: Path, tmp_path: Path, ray_cluster: str) -> None:
    with running_server(latency_s=0.01) as server:
        common = {"base_url": server.base_url, "cache": False, "concurrency": 4, "circular": True, "limit": 30}
        local = evaluate("mmad:random", mmad_json, out=tmp_path / "local", **common)
        on_ray = evaluate("mmad:random", mmad_json, out=tmp_path / "ray", engine="ray", ray_actors=2, **common)
    assert local.complete and on_ray.complete
    expected = _outcome(tmp_path / "local" / "records.jsonl")
    assert len(expected) > 30  # circular: every rotation is its own record
    assert _outcome(tmp_path / "ray" / "records.jsonl") == expected
    assert on_ray.table.average == local.table.average
    assert (on_ray.stats.completion_tokens, on_ray.stats.done) == (local.stats.completion_tokens, local.stats.done)
    meta = json.loads((tmp_path / "ray" / "run.json").read_text())
    assert meta["status"] == "complete" and meta["config"]["execution"]["engine"] == "ray"


@pytest.mark.slow
def test_the_budget_holds_on_ray_with_many_in_flight(mmad_json: Path, tmp_path: Path, ray_cluster: str) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"mmad:random": [1000.0, 1000.0]}))
    with running_server(latency_s=0.2) as server:
        run = evaluate(
            "mmad:random",
            mmad_json,
            out=tmp_path / "ray",
            base_url=server.base_url,
            cache=False,
            concurrency=8,
            max_cost=3.0,
            prices=str(prices),
            engine="ray",
            ray_actors=2,
        )
        sent = server.stats.requests
    assert run.stats.stopped_reason and "budget" in run.stats.stopped_reason
    per_request = run.stats.cost_usd / max(1, sent)
    assert 0 < sent < 16, "fewer requests than the 16 the driver keeps out at once"
    assert run.stats.cost_usd <= 3.0 + per_request, (run.stats.cost_usd, sent)


@pytest.mark.slow
def test_gpus_a_local_ray_lacks_are_refused_at_once(
    mmad_json: Path, tmp_path: Path, ray_cluster: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The test's Ray has no GPU and no address is given: actors asking for one would wait for ever (named by
    the keyword: the caller is Python)."""
    from mmad.errors import RunError

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(RunError, match=r"ray_gpus 1: the local Ray of this run has 0 GPUs"):
        evaluate("expert", mmad_json, out=tmp_path / "run", cache=False, limit=4, engine="ray", ray_gpus=1)


@pytest.mark.slow
def test_a_model_without_an_endpoint_runs_on_the_actors(mmad_json: Path, tmp_path: Path, ray_cluster: str) -> None:
    evaluate("random:7", mmad_json, out=tmp_path / "local", cache=False, limit=20)
    on_ray = evaluate("random:7", mmad_json, out=tmp_path / "ray", cache=False, limit=20, engine="ray")
    assert on_ray.complete
    assert _outcome(tmp_path / "ray" / "records.jsonl") == _outcome(tmp_path / "local" / "records.jsonl")


@pytest.mark.slow
def test_a_killed_actor_is_replaced_and_every_question_recorded_once(
    mmad_json: Path, tmp_path: Path, ray_cluster: str
) -> None:
    import ray

    with running_server(latency_s=0.1) as server:  # about 5 s of asking: the kill lands mid-run
        reference = evaluate("mmad:random", mmad_json, out=tmp_path / "ref", base_url=server.base_url, cache=False)
        config = RunConfig.from_flat(
            "mmad:random", str(mmad_json), base_url=server.base_url, cache=False, concurrency=2, engine="ray"
        )
        out = tmp_path / "run"
        killed: list[str] = []
        engines: list[RayEngine] = []

        def kill_one_actor() -> None:
            """Kill an actor of this run while it holds questions, once a few answers are in."""
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                records = out / "records.jsonl"
                if engines and records.exists() and records.read_text().count("\n") >= 6:
                    busy = next((a for a in list(engines[0].actors) if a.ready and a.jobs), None)
                    if busy is not None:
                        ray.kill(busy.handle)
                        killed.append(busy.name)
                        return
                time.sleep(0.005)

        async def run() -> tuple[RayEngine, int]:
            prepared = prepare_on_ray(config, out=out)
            engine = make_ray_engine(prepared)
            assert isinstance(engine, RayEngine)
            engines.append(engine)
            killer = threading.Thread(target=kill_one_actor)
            killer.start()
            stats = await execute(prepared, engine)
            killer.join()
            raw = _raw_keys(out / "records.jsonl")  # before finish compacts the file
            assert set(raw) == set(prepared.order) and set(raw.values()) == {1}, "a question recorded twice or never"
            await finish(prepared, stats)
            return engine, stats.done

        engine, done = asyncio.run(run())
    assert killed and engine.replaced >= 1
    assert done == reference.completeness.asked
    assert _outcome(out / "records.jsonl") == _outcome(tmp_path / "ref" / "records.jsonl")
    assert json.loads((out / "run.json").read_text())["status"] == "complete"


@pytest.mark.slow
@pytest.mark.subprocess
def test_a_killed_driver_resumes_and_asks_every_question_once(
    mmad_json: Path, tmp_path: Path, ray_cluster: str
) -> None:
    env = process_env(120)
    out = tmp_path / "killed"
    with running_server(latency_s=0.05) as server:
        reference = evaluate("mmad:random", mmad_json, out=tmp_path / "ref", base_url=server.base_url, cache=False)
        log = tmp_path / "driver.log"
        with log.open("wb") as stderr:
            driver = subprocess.Popen(
                _driver(mmad_json, out, server.base_url, ray_cluster, resume=False),
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        wait_for_records(out, 12, 120, alive=lambda: driver.poll() is None)
        assert driver.poll() is None, log.read_text()[-2000:]
        driver.send_signal(signal.SIGKILL)
        driver.wait(30)
        before = _raw_keys(out / "records.jsonl")
        assert before and set(before.values()) == {1}
        assert len(before) < reference.completeness.asked

        config = RunConfig.from_flat(
            "mmad:random", str(mmad_json), base_url=server.base_url, cache=False, concurrency=4, engine="ray"
        )

        async def resume() -> int:
            prepared = prepare_on_ray(config, out=out, resume=True)
            assert prepared.wanted == set(prepared.order) - set(before)
            stats = await execute(prepared, make_ray_engine(prepared))
            raw = _raw_keys(out / "records.jsonl")
            assert set(raw) == set(prepared.order) and set(raw.values()) == {1}
            await finish(prepared, stats)
            return stats.done

        asked = asyncio.run(resume())
    assert asked == reference.completeness.asked - len(before)
    assert _outcome(out / "records.jsonl") == _outcome(tmp_path / "ref" / "records.jsonl")


@pytest.mark.slow
@pytest.mark.subprocess
def test_ctrl_c_on_the_ray_engine_saves_marks_and_resumes(mmad_json: Path, tmp_path: Path, ray_cluster: str) -> None:
    from mmad.cli import main

    env = process_env()
    out = tmp_path / "run"
    with running_server(latency_s=0.3) as server:  # seconds of asking: the signal lands mid-run
        driver = subprocess.Popen(
            _driver(mmad_json, out, server.base_url, ray_cluster, resume=False),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for_records(out, 8, 120)
        driver.send_signal(signal.SIGINT)
        _, stderr = driver.communicate(timeout=60)
        assert driver.returncode == 130, stderr[-2000:]
        assert f"mmad eval --resume {out}" in stderr
        assert "never retrieved" not in stderr, "calls cut short by the stop are not logged as lost errors"
        meta = json.loads((out / "run.json").read_text())
        assert meta["status"] == "interrupted" and meta["missing"] > 0
        server.latency_s = 0.0  # the latency only had to hold the run open for the signal
        # The signal needed a driver process of its own; the resume joins the same Ray from this one.
        assert main(_eval_args(mmad_json, out, server.base_url, ray_cluster, resume=True)) == 0
    assert json.loads((out / "run.json").read_text())["status"] == "complete"


@pytest.mark.slow
@pytest.mark.subprocess
def test_a_run_folder_deleted_under_a_ray_run_stops_it_as_a_local_one(
    mmad_json: Path, tmp_path: Path, ray_cluster: str
) -> None:
    out = tmp_path / "run"
    with running_server(latency_s=0.2) as server:  # seconds of asking: the folder goes mid-run
        driver = subprocess.Popen(
            _driver(mmad_json, out, server.base_url, ray_cluster, resume=False),
            env=process_env(120),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for_records(out, 4, 120, alive=lambda: driver.poll() is None)
        shutil.rmtree(out)
        _, stderr = driver.communicate(timeout=120)
        asked = server.stats.requests
    assert driver.returncode != 0
    assert f"the run folder {out} was deleted" in stderr, stderr[-2000:]
    assert asked < load_benchmark(mmad_json).n_questions / 2, "the run stopped asking once its folder was gone"
    assert "Traceback" not in stderr
    assert not (out / "run.json").exists(), "no run.json may claim answers that are gone"


@pytest.mark.slow
def test_max_errors_stops_a_ray_run_as_it_stops_a_local_one(mmad_json: Path, tmp_path: Path, ray_cluster: str) -> None:
    with running_server(fault_rate=1.0) as server:
        result = evaluate(
            "mmad:random",
            mmad_json,
            out=tmp_path / "run",
            base_url=server.base_url,
            cache=False,
            engine="ray",
            max_retries=0,
            max_errors=3,
            concurrency=1,
        )
    assert result.status == "partial"
    assert result.stats.stopped_reason is not None and "--max-errors 3" in result.stats.stopped_reason
    assert result.completeness.missing > 0


def test_without_ray_the_error_names_the_extra(
    mmad_json: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as it does where ray is not installed
    with pytest.raises(MissingExtraError, match=r"pip install 'mmad\[ray\]'"):
        evaluate("random", mmad_json, out=tmp_path / "run", engine="ray")
    assert not (tmp_path / "run").exists()  # nothing was started


def test_engine_and_ray_settings_are_flags_and_flat_names(mmad_json: Path) -> None:
    from mmad.errors import ConfigError
    from mmad.run.config import FLAT_NAMES, flag_of

    for name in ("engine", "ray_address", "ray_actors", "ray_gpus"):
        assert FLAT_NAMES[name] == ("execution", name)
    assert flag_of("execution", "ray_address") == "--ray-address"
    config = RunConfig.from_flat("random", str(mmad_json), engine="ray", ray_address="127.0.0.1:6379", ray_actors=3)
    assert (config.execution.engine, config.execution.ray_actors) == ("ray", 3)
    with pytest.raises(ConfigError, match=r"engine \(--engine\): must be 'local' or 'ray'"):
        RunConfig.from_flat("random", str(mmad_json), engine="spark")
    with pytest.raises(ConfigError, match=r"ray_actors \(--ray-actors\): must be at least 1"):
        RunConfig.from_flat("random", str(mmad_json), ray_actors=0)


@pytest.mark.slow
@pytest.mark.subprocess
def test_without_an_address_a_local_ray_is_started_for_the_run(mmad_json: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    out = tmp_path / "run"
    command = [sys.executable, "-m", "mmad", "-v", "eval", "-m", "random", "-d", str(mmad_json), "--out", str(out)]
    finished = subprocess.run(
        [*command, "--engine", "ray", "--ray-actors", "1", "--limit", "12", "--no-cache"],
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "starting a local Ray for this run" in finished.stderr
    assert json.loads((out / "run.json").read_text())["status"] == "complete"


@pytest.mark.slow
@pytest.mark.expert
def test_an_in_process_model_is_loaded_by_the_actors_not_the_driver(
    mmad_json: Path, tmp_path: Path, ray_cluster: str
) -> None:
    pytest.importorskip("torch", reason="the [expert] extra is installed by `make setup`")
    local = evaluate("expert", mmad_json, out=tmp_path / "local", cache=False, limit=10)
    on_ray = evaluate("expert", mmad_json, out=tmp_path / "ray", cache=False, limit=10, engine="ray", ray_actors=1)
    assert local.complete and on_ray.complete
    assert _outcome(tmp_path / "ray" / "records.jsonl") == _outcome(tmp_path / "local" / "records.jsonl")
    described = [json.loads((tmp_path / name / "run.json").read_text())["model"] for name in ("local", "ray")]
    assert described[0] == described[1] and "fingerprint" in described[1]["fitted"]  # fitted by the actor
