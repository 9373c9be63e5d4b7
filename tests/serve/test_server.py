"""`mmad serve`'s server spoken to by the real `openai` SDK: replies with usage, injected faults, latency."""

from __future__ import annotations

import asyncio
import base64
import io
import re
import subprocess
import sys
import time

import openai
import pytest
from PIL import Image

from mmad.models.registry import create_model
from mmad.serve.server import ChatServer, FaultPlan, serve_in_thread


def _ask(base_url: str, model: str = "fixed:B") -> openai.types.chat.ChatCompletion:
    async def ask() -> openai.types.chat.ChatCompletion:
        client = openai.AsyncOpenAI(api_key="none", base_url=base_url, max_retries=0)
        try:
            return await client.chat.completions.create(
                model=model,
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


def test_a_model_it_does_not_serve_gets_404_as_from_a_real_server() -> None:
    with serve_in_thread(ChatServer(create_model("fixed:B"), model_name="fixed:B")) as server:
        with pytest.raises(
            openai.NotFoundError, match=r"The model `gpt-4o` does not exist: this server serves `fixed:B`"
        ):
            _ask(server.base_url, model="gpt-4o")
        assert _ask(server.base_url, model="fixed:B").choices[0].message.content == "Answer: B"
        assert _ask(server.base_url, model="fixed").choices[0].message.content == "Answer: B"  # the family


def test_a_fault_rate_without_fault_kinds_is_refused() -> None:
    with pytest.raises(ValueError, match=r"a fault rate of 1 needs at least one fault kind"):
        FaultPlan(rate=1.0, kinds=())
    assert FaultPlan(rate=0.0, kinds=()).kinds == ()  # no faults asked for: nothing to choose from, and no error


@pytest.mark.slow
@pytest.mark.subprocess
def test_serve_refuses_a_fault_rate_with_an_empty_fault_list() -> None:
    # Before, it started and answered every request with an IndexError (a 500 with no cause named).
    done = subprocess.run(
        [sys.executable, "-m", "mmad", "serve", "--port", "0", "--fault-rate", "1", "--faults", ""],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--fault-rate 1 with no --faults: name at least one kind" in done.stderr


def test_a_text_only_server_answers_images_as_llama_cpp_does() -> None:
    from mmad.serve.server import TEXT_ONLY_MESSAGE

    png = io.BytesIO()
    Image.new("RGB", (32, 32), (120, 60, 30)).save(png, format="PNG")
    image = "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()

    async def ask(base_url: str) -> None:
        client = openai.AsyncOpenAI(api_key="none", base_url=base_url, max_retries=0)
        try:
            await client.chat.completions.create(
                model="fixed:B",
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": image}},
                            {"type": "text", "text": "Is there any defect?\nA. Yes.\nB. No.\n"},
                        ],
                    }
                ],
            )
        finally:
            await client.close()

    with serve_in_thread(ChatServer(create_model("fixed:B"), text_only=True)) as server:
        with pytest.raises(openai.InternalServerError, match=re.escape(TEXT_ONLY_MESSAGE)):
            asyncio.run(ask(server.base_url))
        assert _ask(server.base_url).choices[0].message.content == "Answer: B"  # text alone is answered


def test_a_models_abstentions_stay_abstentions_over_http(mmad_json, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The visual expert behind mmad serve declines most subtasks: over HTTP that must not read as empty replies."""
    from mmad.cli import main
    from mmad.models.base import Completion, Model, Request
    from mmad.records.record import read_records
    from tests.helpers.serving import running_server

    class DeclinesAllButAD(Model):
        async def generate(self, request: Request) -> Completion:
            stems = re.findall(r"Question(?:\s*\d+)?:\s*(.*)", request.messages[-1].text)
            letters = ["A" if "any defect" in stem else None for stem in stems]
            if all(letter is None for letter in letters):
                return Completion(text="", abstained=True)
            if len(letters) == 1:
                return Completion(text="Answer: A")
            reply = "\n".join(f"{i}. Answer: {letter or '-'}." for i, letter in enumerate(letters, start=1))
            return Completion(text=reply, abstained_items=[i for i, x in enumerate(letters) if x is None])

    for protocol in ("per-question", "per-image"):
        out = tmp_path / protocol
        with running_server(DeclinesAllButAD()) as server:
            args = ["eval", "-m", "compat:x", "--base-url", server.base_url, "-d", str(mmad_json), "--out", str(out)]
            assert main([*args, "--protocol", protocol, "--limit", "30", "--seed", "2", "--no-cache"]) == 0
        statuses = {
            (r.question_type == "Anomaly Detection", r.status.value) for r in read_records(out / "records.jsonl")
        }
        assert statuses == {(True, "answered"), (False, "abstained")}, (protocol, statuses)


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]"])
def test_an_unreadable_or_non_object_body_gets_400(body: bytes) -> None:
    import json
    import urllib.error
    import urllib.request

    with serve_in_thread(ChatServer(create_model("fixed:B"), model_name="fixed:B")) as server:
        request = urllib.request.Request(
            f"{server.base_url}/chat/completions", data=body, headers={"content-type": "application/json"}
        )
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 400
    assert json.loads(caught.value.read())["error"]["message"].startswith("bad request: ")
