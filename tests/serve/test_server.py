"""`mmad serve`'s server spoken to by the real `openai` SDK: replies with usage, injected faults, latency."""

from __future__ import annotations

import asyncio
import time

import openai
import pytest

from mmad.models.registry import create_model
from mmad.serve.server import ChatServer, FaultPlan, serve_in_thread


def _ask(base_url: str) -> openai.types.chat.ChatCompletion:
    async def ask() -> openai.types.chat.ChatCompletion:
        client = openai.AsyncOpenAI(api_key="none", base_url=base_url, max_retries=0)
        try:
            return await client.chat.completions.create(
                model="fixed",
                messages=[{"role": "user", "content": "Is there any defect in the object?\nA. Yes.\nB. No.\n"}],
            )
        finally:
            await client.close()

    return asyncio.run(ask())


def test_a_reply_carries_the_model_answer_and_usage() -> None:
    with serve_in_thread(ChatServer(create_model("fixed:B"), latency_s=0.2)) as server:
        started = time.monotonic()
        reply = _ask(server.base_url)
        waited = time.monotonic() - started
        assert server.stats.requests == 1
    assert reply.choices[0].message.content == "Answer: B"
    assert reply.usage is not None and reply.usage.prompt_tokens > 0
    assert waited >= 0.2


@pytest.mark.parametrize(("kind", "error"), [("500", openai.InternalServerError), ("429", openai.RateLimitError)])
def test_injected_faults_reach_the_client_as_a_real_server_sends_them(kind: str, error: type[Exception]) -> None:
    with serve_in_thread(ChatServer(create_model("fixed:B"), faults=FaultPlan(rate=1.0, kinds=(kind,)))) as server:
        with pytest.raises(error):
            _ask(server.base_url)
        assert server.stats.faults == {kind: 1}


def test_an_unknown_fault_kind_is_named() -> None:
    with pytest.raises(ValueError, match=r"unknown fault kinds \['bogus'\]"):
        FaultPlan(rate=0.5, kinds=("bogus",))
