"""--judge-base-url: the judge at its own address. A real `mmad serve` is the model and another, on its own
port, the judge: every judge request reaches the judge's server and none the model's, by the flag, the
keyword and the run-file key, locally and on the Ray actors; run.json records where the judge was; the
setting without a judge is refused in the caller's words, before anything is written."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mmad import evaluate
from mmad.cli import main
from mmad.errors import ConfigError
from mmad.models.base import Completion, Model, Request
from mmad.records.record import read_records
from mmad.run.config import RunConfig
from mmad.serve.server import ChatServer
from tests.helpers.judging import Rambler
from tests.helpers.serving import running_server

KEY = "sk-judgekey0123456789abcdefghijklmnop"


class Judge(Model):
    """A judge that always reads the reply as B, and says whether it was asked to judge."""

    name = "judge"

    def __init__(self) -> None:
        self.prompts: list[str] = []

    async def generate(self, request: Request) -> Completion:
        self.prompts.append(" ".join(m.text for m in request.messages))
        return Completion(text="B", prompt_tokens=20, completion_tokens=1)


@contextlib.contextmanager
def model_and_judge() -> Iterator[tuple[ChatServer, ChatServer, Judge]]:
    """Two servers on two ports: the rambling model's and the judge's."""
    judge = Judge()
    with running_server(Rambler()) as model_server, running_server(judge) as judge_server:
        assert model_server.base_url != judge_server.base_url
        yield model_server, judge_server, judge


def _check_run(run: Path, model_server: ChatServer, judge_server: ChatServer, judge: Judge) -> None:
    records = read_records(run / "records.jsonl")
    assert records and {(r.parse_method, r.answer) for r in records} == {("judge", "B")}
    # the model's server answered the questions only; the judge's server every judge call, and nothing else
    assert model_server.stats.requests == len(records)
    assert judge_server.stats.requests == len(records) == len(judge.prompts)
    assert all("Hard to say" in prompt for prompt in judge.prompts)  # each is a judge's prompt, on the reply
    text = (run / "run.json").read_text()
    recorded = json.loads(text)
    assert recorded["config"]["answers"]["judge_base_url"] == judge_server.base_url
    assert recorded["judge"]["base_url"] == judge_server.base_url  # as "model" records the model's endpoint
    assert recorded["judge"]["key_env"] == "OPENAI_API_KEY"  # its provider's variable, by name
    assert recorded["model"]["base_url"] == model_server.base_url
    assert KEY not in text and KEY not in (run / "records.jsonl").read_text()


def test_the_flag_sends_every_judge_call_to_the_judges_server(
    mmad_json: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)  # compat:'s variable: read, never written
    run = tmp_path / "run"
    with model_and_judge() as (model_server, judge_server, judge):
        command = ["eval", "-m", "compat:rambler", "--base-url", model_server.base_url, "-d", str(mmad_json)]
        command += ["--judge", "compat:judge", "--judge-base-url", judge_server.base_url, "--limit", "4"]
        assert main([*command, "--no-cache", "--out", str(run)]) == 0, capsys.readouterr().err
        _check_run(run, model_server, judge_server, judge)
    assert KEY not in capsys.readouterr().err


def _judged_by_keyword(mmad_json: Path, run: Path, **settings: Any) -> None:
    """A run through `mmad.evaluate` with the judge at its own server: complete, every judge call there."""
    with model_and_judge() as (model_server, judge_server, judge):
        result = evaluate(
            "compat:rambler",
            mmad_json,
            out=run,
            base_url=model_server.base_url,
            judge="compat:judge",
            judge_base_url=judge_server.base_url,
            limit=4,
            cache=False,
            **settings,
        )
        assert result.complete
        _check_run(run, model_server, judge_server, judge)


def test_the_keyword_sends_every_judge_call_to_the_judges_server(mmad_json: Path, tmp_path: Path) -> None:
    _judged_by_keyword(mmad_json, tmp_path / "run")


@pytest.mark.parametrize("where", ["top level", "section"])
def test_the_run_file_key_sends_every_judge_call_to_the_judges_server(
    where: str, mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    with model_and_judge() as (model_server, judge_server, judge):
        judge_lines = f'judge = "compat:judge"\njudge_base_url = "{judge_server.base_url}"\n'
        lines = [
            'model = "compat:rambler"',
            f'data = "{mmad_json}"',
            f'base_url = "{model_server.base_url}"',
            "limit = 4",
            "cache = false",
        ]
        text = "\n".join(lines) + "\n"
        text += judge_lines if where == "top level" else "[answers]\n" + judge_lines
        (tmp_path / "run.toml").write_text(text)
        assert main(["eval", "--config", str(tmp_path / "run.toml"), "--out", str(run)]) == 0, capsys.readouterr()
        _check_run(run, model_server, judge_server, judge)


def test_a_resume_may_find_the_judge_at_another_address(mmad_json: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    common: dict[str, Any] = {"judge": "compat:judge", "limit": 4, "cache": False}
    with running_server(Rambler()) as model_server, running_server(Judge()) as first:
        evaluate(
            "compat:rambler",
            mmad_json,
            out=run,
            base_url=model_server.base_url,
            judge_base_url=first.base_url,
            **common,
        )
    raw = json.loads((run / "run.json").read_text())
    raw["status"] = "interrupted"  # its server moved before the run was done
    (run / "run.json").write_text(json.dumps(raw))
    with running_server(Rambler()) as model_server, running_server(Judge()) as second:
        argv = ["eval", "--resume", str(run), "--base-url", model_server.base_url]
        assert main([*argv, "--judge-base-url", second.base_url]) == 0
    assert json.loads((run / "run.json").read_text())["judge"]["base_url"] == second.base_url


def test_a_script_resuming_without_the_judge_is_told_the_recorded_one(mmad_json: Path, tmp_path: Path) -> None:
    """mmad.evaluate(resume=True) takes every setting from its keywords: one left out is a change, and the
    fix is the value run.json recorded, not 'resume without those settings' (the caller gave none)."""
    run = tmp_path / "run"
    with model_and_judge() as (model_server, judge_server, _):
        common: dict[str, Any] = {"out": run, "base_url": model_server.base_url, "limit": 4, "cache": False}
        evaluate("compat:rambler", mmad_json, judge="compat:judge", judge_base_url=judge_server.base_url, **common)
        with pytest.raises(ConfigError) as raised:
            evaluate("compat:rambler", mmad_json, resume=True, **common)
    said = str(raised.value)
    assert "'compat:judge' in its run.json" in said and "resume with the values recorded" in said, said
    assert "without those settings" not in said and "--" not in said, said


def test_the_judges_address_without_a_judge_is_refused_by_flag_and_by_keyword(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    command = ["eval", "-m", "random", "-d", str(mmad_json), "--limit", "3", "--no-cache", "--out", str(run)]
    assert main([*command, "--judge-base-url", "http://127.0.0.1:9/v1"]) == 2
    err = capsys.readouterr().err
    assert "--judge-base-url is the judge's address" in err and "add --judge" in err, err
    with pytest.raises(ConfigError) as raised:
        evaluate("random", mmad_json, out=run, judge_base_url="http://127.0.0.1:9/v1", limit=3)
    said = str(raised.value)
    assert "judge_base_url is the judge's address" in said and "add judge " in said and "--" not in said, said
    run_file = tmp_path / "run.toml"
    run_file.write_text(
        f'model = "random"\ndata = "{mmad_json}"\n[answers]\njudge_base_url = "http://127.0.0.1:9/v1"\n'
    )
    assert main(["eval", "--config", str(run_file), "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert "judge_base_url is the judge's address" in err and "--judge" not in err, err
    assert not run.exists()


def test_the_judges_address_for_a_judge_not_asked_over_http_is_refused() -> None:
    with pytest.raises(ConfigError, match="--judge-base-url would be ignored: the judge random is not asked over HTTP"):
        RunConfig.from_flat("random", "d", judge="random", judge_base_url="http://127.0.0.1:9/v1")


@pytest.mark.parametrize("url", ["127.0.0.1:8001/v1", "http://127.0.0.1:8001/v1,", f"http://{KEY}@127.0.0.1:8001/v1"])
def test_a_judge_address_that_is_no_url_is_refused_by_its_flag(url: str) -> None:
    with pytest.raises(ConfigError, match=r"judge_base_url \(--judge-base-url\): (must start|holds an API key)"):
        RunConfig.from_flat("random", "d", judge="compat:judge", judge_base_url=url)


def test_a_compat_judge_without_its_address_is_refused_naming_the_setting(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    command = ["eval", "-m", "random", "-d", str(mmad_json), "--limit", "3", "--no-cache"]
    assert main([*command, "--judge", "compat:judge", "--out", str(tmp_path / "run")]) == 2
    assert "give the judge's with --judge-base-url URL" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="give the judge's with judge_base_url URL") as raised:
        evaluate("random", mmad_json, out=tmp_path / "run", judge="compat:judge", limit=3)
    assert "--" not in str(raised.value)


def test_a_ray_actor_builds_the_judge_at_its_address(mmad_json: Path, tmp_path: Path) -> None:
    """The actor's own build (`PromptWorker`, without Ray): the judge it makes from the config it is sent."""
    from mmad.run.ledger import EngineSettings
    from mmad.run.limits import RetryPolicy
    from mmad.run.ray_worker import PromptWorker

    config = RunConfig.from_flat(
        "compat:rambler",
        str(mmad_json),
        base_url="http://127.0.0.1:9/v1",
        judge="compat:judge",
        judge_base_url="http://127.0.0.1:10/v1",
    )
    worker = PromptWorker(config.model_dump(mode="json"), EngineSettings(RetryPolicy(), 4), str(tmp_path))
    assert worker.error is None and worker.asker is not None and worker.asker.judge is not None
    assert worker.asker.judge.describe()["base_url"] == "http://127.0.0.1:10/v1"


@pytest.mark.slow
def test_on_ray_every_judge_call_reaches_the_judges_server(mmad_json: Path, tmp_path: Path, ray_cluster: str) -> None:
    _judged_by_keyword(mmad_json, tmp_path / "run", engine="ray", ray_address=ray_cluster, ray_actors=1)


def test_the_dry_run_refuses_a_compat_judge_without_its_address_as_the_run_would(
    mmad_json: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    command = ["eval", "-m", "random", "-d", str(mmad_json), "--limit", "3", "--dry-run", "--judge", "compat:judge"]
    assert main(command) == 2
    assert "give the judge's with --judge-base-url URL" in capsys.readouterr().err
    assert main([*command, "--judge-base-url", "http://127.0.0.1:9/v1"]) == 0, capsys.readouterr().err
