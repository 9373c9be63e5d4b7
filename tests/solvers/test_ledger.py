"""The run's ledger: each key written once where a scheduler may send twice, only the keys asked,
no credential in an error message, the model's description changed only through it; and usage
counted for what was sent, not for what the cache answered."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from mmad.models.base import Completion, Model, Request
from mmad.protocol.encoding import ImageSettings
from mmad.protocol.images import ImageEncoder
from mmad.records.record import Record, Status
from mmad.run.config import RunConfig
from mmad.run.ledger import EngineSettings, Ledger
from mmad.run.limits import RetryPolicy
from mmad.run.runner import run_async
from mmad.run.store import RunStore


def _record(question_id: str, **fields: object) -> Record:
    values: dict[str, object] = {"status": Status.ANSWERED, "answer": "A"} | fields
    return Record(
        question_id=question_id, image="img.png", question_type="Anomaly Detection", correct_answer="A", **values
    )


def _ledger(tmp_path: Path, **options: object) -> Ledger:
    store = RunStore(tmp_path / "run")
    store.open()
    settings = EngineSettings(policy=RetryPolicy(0, 0.01, 0.01, 1.0), concurrency=2)
    return Ledger(store, settings, ImageEncoder(ImageSettings()), **options)  # type: ignore[arg-type]


def test_the_ledger_writes_each_wanted_key_once_and_scrubs_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_SERVICE_TOKEN", "s3cr3t-value-123")
    ledger = _ledger(tmp_path, once=True)
    ledger.wanted = {("q1", ""), ("q2", "")}
    ledger.write([_record("q1"), _record("q3")])
    ledger.write([_record("q1", answer="B")])  # sent again (its actor died): not written twice
    leak = "401 from https://x.example/?key=s3cr3t-value-123"
    ledger.write([_record("q2", status=Status.ERROR, answer=None, error_class="auth", error_message=leak)])
    ledger.store.close()
    lines = [json.loads(line) for line in (tmp_path / "run" / "records.jsonl").read_text().splitlines()]
    assert [(r["question_id"], r["answer"]) for r in lines] == [("q1", "A"), ("q2", None)]
    assert "s3cr3t" not in json.dumps(lines) and lines[1]["error_message"].endswith("key=***")
    assert (ledger.stats.done, ledger.stats.answered, ledger.stats.failed) == (2, 1, 1)
    assert ledger.stats.stopped_reason is not None and "auth" in ledger.stats.stopped_reason  # fatal at once
    assert "s3cr3t" not in ledger.stats.stopped_reason


def test_the_model_description_reaches_the_manifest_through_the_ledger(tmp_path: Path) -> None:
    described: list[dict[str, object]] = []

    def with_model(description: dict[str, object]) -> SimpleNamespace:
        described.append(description)
        return SimpleNamespace(model=description)

    manifest = SimpleNamespace(with_model=with_model)
    holder = SimpleNamespace(manifest=manifest)
    ledger = _ledger(tmp_path, manifest_holder=holder)
    ledger.describe_model({"name": "m", "endpoint": "ray actors"})
    ledger.store.close()
    assert described == [{"name": "m", "endpoint": "ray actors"}]
    assert holder.manifest.model == {"name": "m", "endpoint": "ray actors"}


class Thinker(Model):
    """Replies with a few tokens of thought or a letter; every reply costs tokens."""

    name = "thinker"

    async def generate(self, request: Request) -> Completion:
        return Completion(
            text="Answer: A" if request.questions else "thinking", prompt_tokens=100, completion_tokens=10
        )


def test_a_chain_of_thought_turn_from_the_cache_costs_nothing(mmad_json: Path, tmp_path: Path) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"thinker": [1.0, 2.0]}))
    config = RunConfig.from_flat(
        "thinker",
        str(mmad_json),
        strategies=["cot"],
        datasets=["VisA"],
        cache=True,
        cache_dir=str(tmp_path / "cache"),
        prices=str(prices),
    )
    first = asyncio.run(run_async(config, out=tmp_path / "first", model=Thinker()))
    assert first.stats.cost_usd > 0 and first.stats.cached == 0
    again = asyncio.run(run_async(config, out=tmp_path / "again", model=Thinker()))
    # One per record: the cached chain-of-thought turns answer no question (they were counted too, twice the records).
    assert again.stats.cached == again.stats.done == again.completeness.asked > 0
    assert (again.stats.prompt_tokens, again.stats.completion_tokens, again.stats.cost_usd) == (0, 0, 0.0)


def test_the_next_request_is_expected_to_cost_the_models_average_not_the_judges_share(tmp_path: Path) -> None:
    # The run's cost_usd holds the judge's calls too, but priced_requests counts the model's alone: the
    # average taken over them charged each further model request with the judge's spending as well (the
    # judge reserves its own calls), so a --max-cost run with a dear judge stopped well before its budget.
    from mmad.protocol.messages import Message, Prompt, TextPart

    ledger = _ledger(tmp_path)
    ledger.stats.priced_requests = 10
    ledger.stats.cost_usd = 1.0  # $0.10 of the model's over 10 requests, $0.90 of the judge's
    ledger.stats.judge.cost_usd = 0.9
    ledger.stats.judge.priced_requests = 9
    prompt = Prompt(image="img.png", messages=(Message(role="user", parts=(TextPart(text="?"),)),), questions=())
    ledger.store.close()
    assert ledger.expected_cost(prompt) == pytest.approx(0.01)
