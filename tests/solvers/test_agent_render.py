"""The agent strategy's picture: named by the prompt builder without drawing it, drawn by the
agent-render solver before the request is sent; a picture that cannot be drawn fails its questions
as input errors, with nothing sent."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from mmad.errors import ConfigError
from mmad.models.base import Completion, Model, Request
from mmad.records.record import Status, read_records
from mmad.run.config import RunConfig
from mmad.run.prepare import prepare
from mmad.run.runner import run_async


class ExpertImageWatcher(Model):
    """Answers A, noting each request's expert image and whether its file existed when it was sent."""

    name = "watcher"

    def __init__(self) -> None:
        self.seen: list[tuple[str, bool]] = []

    async def generate(self, request: Request) -> Completion:
        self.seen += [(str(p.path), Path(str(p.path)).is_file()) for p in request.expert_images]
        return Completion(text="Answer: A", prompt_tokens=10, completion_tokens=2)


def _config(data: Path) -> RunConfig:
    return RunConfig.from_flat("watcher", str(data), strategies=["agent:gt:bbox"], cache=False, concurrency=4)


def test_building_the_prompts_draws_nothing(mmad_json: Path, tmp_path: Path) -> None:
    prepared = prepare(_config(mmad_json), out=tmp_path / "run", model=ExpertImageWatcher())
    try:
        prompts = list(prepared.planner.prompts(prepared.selection.items))
    finally:
        prepared.store.close()
    expert = [p for prompt in prompts for m in prompt.messages for p in m.images if p.role == "expert"]
    assert len(expert) == len(prompts) > 0
    assert all(Path(str(p.path)).parent == tmp_path / "run" / "agent" for p in expert)
    assert not (tmp_path / "run" / "agent").exists()


def test_the_solver_draws_each_picture_before_its_request_is_sent(mmad_json: Path, tmp_path: Path) -> None:
    model = ExpertImageWatcher()
    asyncio.run(run_async(_config(mmad_json), out=tmp_path / "run", model=model))
    records = read_records(tmp_path / "run" / "records.jsonl")
    assert records and all(r.status is Status.ANSWERED for r in records)
    assert model.seen and all(existed for _, existed in model.seen)
    drawn = {path for path, _ in model.seen}
    assert drawn == {str(p) for p in (tmp_path / "run" / "agent").iterdir()}  # one picture per image
    assert len(drawn) == len({r.image for r in records})


def _with_a_missing_mask(mmad_json: Path, tmp_path: Path) -> tuple[Path, str]:
    """A copy of the benchmark whose one defective image names a mask that is not there."""
    data = json.loads(mmad_json.read_text())
    broken = next(k for k, v in data.items() if v.get("mask_path"))
    copy = tmp_path / "data"
    copy.mkdir()
    for entry in mmad_json.parent.iterdir():
        (copy / entry.name).symlink_to(entry)
    (copy / "mmad.json").unlink()
    data[broken]["mask_path"] = "missing/mask.png"
    (copy / "mmad.json").write_text(json.dumps(data))
    return copy, broken


def test_a_picture_that_cannot_be_drawn_fails_its_questions_as_input_without_a_request(
    mmad_json: Path, tmp_path: Path
) -> None:
    copy, broken = _with_a_missing_mask(mmad_json, tmp_path)
    model = ExpertImageWatcher()
    asyncio.run(run_async(_config(copy / "mmad.json"), out=tmp_path / "run", model=model))
    records = read_records(tmp_path / "run" / "records.jsonl")
    failed = [r for r in records if r.image == broken]
    assert failed and all(r.status is Status.ERROR and r.error_class == "input" for r in failed)
    assert all(r.attempts == 0 and "mask" in (r.error_message or "") for r in failed)
    assert all(r.status is Status.ANSWERED for r in records if r.image != broken)
    assert len(model.seen) == len({r.question_id for r in records if r.image != broken})


def test_a_blind_agent_run_is_refused_before_a_picture_is_drawn(mmad_json: Path, tmp_path: Path) -> None:
    # A blind run's prompts hold no image: the solver drew every picture anyway (and a missing mask failed
    # questions that never needed it); since the agent strategy needs its picture sent, blind is refused
    # before the run folder is made or anything drawn.
    copy, _ = _with_a_missing_mask(mmad_json, tmp_path)
    config = RunConfig.from_flat("watcher", str(copy), strategies=["agent:gt:bbox"], blind=True, cache=False)
    model = ExpertImageWatcher()
    with pytest.raises(ConfigError, match="--blind"):
        asyncio.run(run_async(config, out=tmp_path / "run", model=model))
    assert not model.seen and not (tmp_path / "run").exists()
