"""What a seeded run asks and records, pinned: a refactor of the runner must not change a request.

Each digest covers, for every request in the order the questions appear: its messages' roles, texts
and image files (relative to the data root, in order), its max_tokens and temperature; and then
every record's question, variant, status and answer. Image bytes are left out (PNG encoders differ
between Pillow versions). When a change is meant to alter what is sent (a protocol fix), update the
digest here and say so in CHANGELOG.md: the runs made before it are then not comparable.

Checked against the runner before issue #10's refactor (f227bed) on the same generated data, with
texts compared without whitespace: per-question and cumulative runs sent and recorded the same; the
differences were the official scripts' exact spacing around images and chain of thought's turn
structure (issue #12), both intended.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from pathlib import Path

import pytest

from mmad.api import evaluate_async
from mmad.models.base import Completion, Model, Request
from mmad.records.record import read_records
from mmad.run.config import RunConfig


class Recorder(Model):
    """Answers a seeded letter among each question's options and notes every request."""

    name = "recorder"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.seen: list[object] = []

    async def generate(self, request: Request) -> Completion:
        messages = [
            [m.role, m.text, [str(Path(p.path).relative_to(self.root)) if p.path else "data-url" for p in m.images]]
            for m in request.messages
        ]
        self.seen.append([sorted(request.question_ids), messages, request.max_tokens, request.temperature])
        rng = random.Random(json.dumps(messages))
        letters = [rng.choice(options) for options in request.choices] or ["A"]
        return Completion(text="\n".join(f"Answer: {letter}" for letter in letters))


GOLDEN = {
    "per-question 1-shot": ({}, "0ac034f15e7d9740"),
    "cumulative 0-shot": ({"protocol": "cumulative", "shots": 0}, "eece26c66f0330e8"),
    "recipe gpt4o": ({"recipe": "gpt4o", "base_url": "http://127.0.0.1:9/v1"}, "719669608634abcd"),
    "cot, similar 2-shot": ({"strategies": ["cot"], "shots": 2, "similar_templates": True}, "fbe2a7c329f56146"),
    # issue 21: question k carries the CoT turn and questions 1..k-1 with their replies (InternVL's chat())
    "recipe internvl, cot": (
        {"recipe": "internvl", "strategies": ["cot"], "base_url": "http://127.0.0.1:9/v1"},
        "8e67d15a94f3fa0a",
    ),
}


@pytest.mark.parametrize("name", list(GOLDEN))
def test_a_seeded_run_sends_and_records_what_it_always_did(name: str, mmad_json: Path, tmp_path: Path) -> None:
    settings, expected = dict(GOLDEN[name][0]), GOLDEN[name][1]
    root = mmad_json if mmad_json.is_dir() else mmad_json.parent
    model = Recorder(root.resolve())
    config = RunConfig.from_flat("compat:recorder", str(mmad_json), cache=False, concurrency=1, **settings)
    run = asyncio.run(evaluate_async(config, out=tmp_path / "run", model=model))
    records = sorted(
        (r.question_id, r.variant, r.status.value, r.answer) for r in read_records(tmp_path / "run" / "records.jsonl")
    )
    payload = json.dumps([sorted(model.seen, key=json.dumps), records], sort_keys=True)
    digest = hashlib.sha256(payload.encode()).hexdigest()[:16]
    assert run.completeness.asked > 0
    assert digest == expected, f"{name}: what a seeded run sends or records changed (digest {digest})"
