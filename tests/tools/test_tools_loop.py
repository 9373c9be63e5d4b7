"""--strategy tools end to end over real HTTP, against `mmad serve`'s scripted tool user."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from mmad import evaluate
from mmad.data.official import load_benchmark
from mmad.errors import ConfigError, PermanentError
from mmad.models.base import Completion, Request
from mmad.protocol.images import load_image
from mmad.protocol.messages import Message
from mmad.protocol.tool_text import FINAL_TURN
from mmad.records.record import Record, Status, read_records
from mmad.serve.scripted_tools import ScriptedToolUser, parse_plan
from mmad.serve.server import ChatServer, serve_in_thread
from mmad.solvers.tools import ToolLoopSettings
from tests.helpers.mmad_tree import make_mmad_tree

KNOWLEDGE = {"MVTec": {"bottle": {"good": "A round glass bottle.", "broken_large": "A piece is missing."}}}


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = make_mmad_tree(tmp_path / "data")
    (path.parent / "domain_knowledge.json").write_text(json.dumps(KNOWLEDGE))
    return path


def _run(data: Path, out: Path, user: ScriptedToolUser, *, refuse_tools: bool = False, **settings: Any) -> list[Record]:
    options: dict[str, Any] = {
        "limit": 1,
        "datasets": ["DS-MVTec"],
        "cache": False,
        "tools": ["zoom", "reference"],
        "strategies": "tools",
    }
    options.update(settings)
    with serve_in_thread(ChatServer(user, any_model=True, refuse_tools=refuse_tools)) as server:
        evaluate("compat:scripted", data, out=out, base_url=server.base_url, **options)
    return read_records(out / "records.jsonl")


def _tools_turns(user: ScriptedToolUser) -> list[Request]:
    """The requests of the tools branch (the direct branch's one request has no system message of tools)."""
    return [r for r in user.requests if any("tool" in m.text for m in r.messages if m.role == "system")]


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float64)


def test_each_tool_is_called_and_its_result_delivered_in_the_next_request(data: Path, tmp_path: Path) -> None:
    user = ScriptedToolUser("zoom,reference,compare,knowledge")
    tools = ["zoom", "reference", "compare", "knowledge"]
    (record,) = _run(data, tmp_path / "run", user, tools=tools, max_turns=5)
    assert record.status is Status.ANSWERED
    calls = record.extra["tools"]["calls"]
    assert [c["name"] for c in calls] == ["zoom", "reference", "compare", "knowledge"]
    assert not any(c["error"] for c in calls)
    turns = _tools_turns(user)
    assert len(turns) == 5  # four tool turns and the answer
    benchmark = load_benchmark(data)
    item = benchmark.item(record.image)
    query = Image.open(benchmark.resolve(item.key)).convert("RGB")

    # zoom: the next request carries the box's pixels, enlarged to the run's image size (512)
    zoomed = load_image(turns[1].messages[-1].images[0])
    expected = query.crop((8, 8, 24, 24)).resize((512, 512), Image.Resampling.BICUBIC)
    assert zoomed.size == (512, 512)
    assert np.abs(_pixels(zoomed) - _pixels(expected)).mean() < 6
    elsewhere = query.crop((16, 16, 32, 32)).resize((512, 512), Image.Resampling.BICUBIC)
    assert np.abs(_pixels(zoomed) - _pixels(elsewhere)).mean() > 30  # random pixels: another box differs a lot

    # reference: a normal image of the same product (the question's first similar template)
    reference = load_image(turns[2].messages[-1].images[0])
    template = Image.open(benchmark.resolve(item.similar_templates[0])).convert("RGB")
    assert np.abs(_pixels(reference) - _pixels(template.resize((512, 512), Image.Resampling.BICUBIC))).mean() < 6
    assert "/train/good/" in calls[1]["data"]["references"][0] and "/bottle/" in calls[1]["data"]["references"][0]

    # compare: the query's box beside the template's box
    pair = load_image(turns[3].messages[-1].images[0])
    assert pair.width > pair.height

    # knowledge: the category's text, as the tool message
    answered = [m for m in turns[4].messages if m.role == "tool"]
    assert answered[-1].text == "A round glass bottle.\nA piece is missing."
    assert [m.tool_call_id for m in answered] == ["call_0_0", "call_1_0", "call_2_0", "call_3_0"]
    assert all(t.tools for t in turns[:4]) and turns[0].tool_choice is None


def test_the_record_keeps_both_branches_every_turn_and_replays_the_conversation(data: Path, tmp_path: Path) -> None:
    user = ScriptedToolUser("zoom,reference")
    (record,) = _run(data, tmp_path / "run", user)
    tools = record.extra["tools"]
    assert tools["protocol"] == "native" and not tools["forced_final"]
    assert [t["calls"] for t in tools["turns"]] == [["zoom"], ["reference"], []]
    for turn in tools["turns"]:
        assert turn["prompt_tokens"] > 0 and turn["latency_s"] >= 0 and "cost_usd" in turn
    assert record.extra["direct"]["answer"] == "A" and record.extra["direct"]["status"] == "answered"
    direct = record.extra["direct"]
    assert direct["prompt_tokens"] > 0 and direct["latency_s"] >= 0
    assert record.prompt_tokens == sum(t["prompt_tokens"] for t in tools["turns"]) + direct["prompt_tokens"]
    # The conversation in the record is what the last request sent, and then the model's answer.
    last = _tools_turns(user)[-1]
    replayed = tools["conversation"]
    assert [(m["role"], m["text"]) for m in replayed[:-1]] == [(m.role, m.text) for m in last.messages]
    assert [m.get("tool_call_id") for m in replayed[:-1]] == [m.tool_call_id for m in last.messages]
    assert [len(m.get("images", [])) for m in replayed[:-1]] == [len(m.images) for m in last.messages]
    assert replayed[-1] == {"role": "assistant", "text": "A"}
    for message in replayed:
        for path in message.get("images", []):
            assert (tmp_path / "run" / path).is_file()  # a tool image relative to the run folder


def test_bad_arguments_and_unknown_tools_are_answered_and_the_loop_goes_on(data: Path, tmp_path: Path) -> None:
    user = ScriptedToolUser("bad,unknown")
    (record,) = _run(data, tmp_path / "run", user)
    calls = record.extra["tools"]["calls"]
    assert [(c["name"], c["error"]) for c in calls] == [("zoom", True), ("magnify", True)]
    assert "x1 must exceed x0" in calls[0]["summary"]
    delivered = [m.text for m in _tools_turns(user)[-1].messages if m.role == "tool"]
    assert delivered[0].startswith("error: ") and "there is no tool 'magnify'" in delivered[1]
    assert record.status is Status.ANSWERED


def test_the_last_turn_forbids_tools_and_asks_for_the_answer(data: Path, tmp_path: Path) -> None:
    user = ScriptedToolUser("zoom,zoom,zoom,zoom,zoom")
    (record,) = _run(data, tmp_path / "run", user, max_turns=3)
    turns = _tools_turns(user)
    assert len(turns) == 3
    assert [t.tool_choice for t in turns] == [None, None, "none"]
    assert turns[-1].messages[-1].text == FINAL_TURN
    tools = record.extra["tools"]
    assert tools["forced_final"] and [t["calls"] for t in tools["turns"]] == [["zoom"], ["zoom"], []]
    assert record.status is Status.ANSWERED


def test_a_server_that_refuses_tools_gets_the_text_protocol(data: Path, tmp_path: Path) -> None:
    user = ScriptedToolUser("zoom,reference")
    (record,) = _run(data, tmp_path / "run", user, refuse_tools=True)
    tools = record.extra["tools"]
    assert tools["protocol"] == "text"
    assert [c["name"] for c in tools["calls"]] == ["zoom", "reference"]
    turns = _tools_turns(user)
    assert not any(t.tools for t in turns)  # the refused request never reached the model
    assert json.loads(tools["turns"][0]["reply"]) == {
        "tool": "zoom",
        "args": {"x0": 0.25, "y0": 0.25, "x1": 0.75, "y1": 0.75},
    }
    assert turns[1].messages[-1].text.startswith("Result of zoom: ")
    assert len(turns[1].messages[-1].images) == 1
    assert record.answer == "A" and record.status is Status.ANSWERED


def test_the_text_protocol_by_setting(data: Path, tmp_path: Path) -> None:
    user = ScriptedToolUser("zoom")
    (record,) = _run(data, tmp_path / "run", user, tool_protocol="text")
    assert record.extra["tools"]["protocol"] == "text"
    assert not any(r.tools for r in user.requests)


class FailsOnce(ScriptedToolUser):
    """Answers as the scripted user, but the first answering turn of the tools branch fails for good."""

    failed = False  # per model: set on the instance, so no earlier test on the worker disarms it

    async def generate(self, request: Request) -> Completion:
        tools_turns = sum(1 for m in request.messages if m.role == "assistant" and m.tool_calls)
        if request.tools and tools_turns == len(self.plan) and not self.failed:
            self.failed = True
            self.requests.append(request)
            raise PermanentError("the model crashed (injected)", error_class="bad_request")
        return await super().generate(request)


def test_resume_in_the_middle_of_a_conversation_asks_only_what_was_not_answered(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = FailsOnce("zoom,reference")
    (failed,) = _run(data, out, first)
    assert failed.status is Status.ERROR and "direct" in failed.extra
    assert len(first.requests) == 4  # the direct question, two tool turns, the failed answering turn
    second = ScriptedToolUser("zoom,reference")
    (record,) = _run(data, out, second, resume=True)
    # Only the turn that failed is asked again: the direct answer and the two tool turns come from the
    # run's journal (the response cache is off).
    assert len(second.requests) == 1
    assert record.status is Status.ANSWERED
    assert [t["cached"] for t in record.extra["tools"]["turns"]] == [True, True, False]
    assert [c["name"] for c in record.extra["tools"]["calls"]] == ["zoom", "reference"]


def test_blend_averages_the_option_scores_of_the_two_branches(data: Path, tmp_path: Path) -> None:
    user = ScriptedToolUser("zoom")
    (record,) = _run(data, tmp_path / "run", user, blend=0.5, likelihood=True)
    options = record.options
    direct = {k: math.exp(v) for k, v in record.extra["direct"]["scores"].items()}
    tools = {k: math.exp(v) for k, v in record.extra["tools"]["scores"].items()}
    assert direct["A"] == pytest.approx(0.6) and tools["A"] == pytest.approx(0.9)
    blended = record.extra["blend"]["probabilities"]
    for letter in options:
        expected = 0.5 * tools.get(letter, 0) / sum(tools.values()) + 0.5 * direct.get(letter, 0) / sum(direct.values())
        assert blended[letter] == pytest.approx(expected)
    assert record.answer == max(blended, key=blended.__getitem__) == record.extra["blend"]["answer"]
    assert math.exp(record.scores["A"]) == pytest.approx(0.75)


class _OneBranchMute(ScriptedToolUser):
    """The scripted user, but one branch (the tools conversation or the plain question) replies with
    no letter and no scores."""

    def __init__(self, mute: str) -> None:
        super().__init__("zoom")
        self.mute = mute

    async def generate(self, request: Request) -> Completion:
        completion = await super().generate(request)
        tools_branch = any("tool" in m.text for m in request.messages if m.role == "system")
        if completion.tool_calls or tools_branch != (self.mute == "tools"):
            return completion
        return Completion(text="I cannot tell from this picture.")


@pytest.mark.parametrize("mute", ["tools", "direct"])
def test_blend_of_a_branch_that_gave_no_answer_is_the_other_branch(data: Path, tmp_path: Path, mute: str) -> None:
    (record,) = _run(data, tmp_path / "run", _OneBranchMute(mute), blend=0.5)
    speaker = "direct" if mute == "tools" else "tools"
    assert record.extra[mute]["answer"] is None and record.extra[speaker]["answer"]
    # The tools branch's unparsed outcome was kept though the direct branch had answered.
    assert record.status is Status.ANSWERED
    assert record.answer == record.extra[speaker]["answer"] == record.extra["blend"]["answer"]
    assert record.extra["blend"]["from"] == speaker


def test_a_blend_the_direct_branch_decided_puts_nothing_to_the_judge(data: Path, tmp_path: Path) -> None:
    """With --blend, an unreadable tools reply whose question the direct answer already decided is not judged:
    the verdict was paid for, then dropped (the record keeps the blend's answer)."""
    (record,) = _run(data, tmp_path / "run", _OneBranchMute("tools"), blend=0.5, judge="fixed:B")
    assert record.status is Status.ANSWERED and record.parse_method == "likelihood"
    assert record.extra["blend"]["from"] == "direct"
    assert json.loads((tmp_path / "run" / "run.json").read_text())["usage"]["judge"] is None  # no reply put to it


def test_loop_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="at least 1 turn"):
        ToolLoopSettings(max_turns=0)
    with pytest.raises(ConfigError, match=r"--blend 1\.5"):
        ToolLoopSettings(blend=1.5)
    with pytest.raises(ConfigError, match="--tool-protocol json"):
        ToolLoopSettings(protocol="json")
    assert parse_plan("") == ("expert", "zoom")
    with pytest.raises(ConfigError, match="unknown step fly"):
        parse_plan("zoom+fly")


def test_the_scripted_user_answers_from_the_experts_score() -> None:
    import asyncio

    question = Message.model_validate(
        {"role": "user", "parts": [{"type": "text", "text": "Is there any defect in the object?\nA. Yes.\nB. No."}]}
    )
    facts = 'Anomaly score 3.0 ... As JSON: {"score": 3.0, "threshold": 2.0, "box": [0.1, 0.2, 0.3, 0.4]}'
    result = Message.model_validate({"role": "tool", "parts": [{"type": "text", "text": facts}], "tool_call_id": "c"})
    user = ScriptedToolUser("expert")
    spec = ({"type": "function", "function": {"name": "expert", "parameters": {}}},)
    first = asyncio.run(user.generate(Request(messages=(question,), tools=spec)))
    assert [c.name for c in first.tool_calls] == ["expert"]
    called = Message(role="assistant", tool_calls=tuple(first.tool_calls))
    answer = asyncio.run(user.generate(Request(messages=(question, called, result), tools=spec)))
    assert answer.text == "A" and not answer.tool_calls  # 3.0 > 2.0: Yes
    zoom = ScriptedToolUser("expert,zoom")
    second = asyncio.run(zoom.generate(Request(messages=(question, called, result), tools=spec)))
    assert json.loads(second.tool_calls[0].arguments) == {"x0": 0.1, "y0": 0.2, "x1": 0.3, "y1": 0.4}


def test_settings_the_tools_strategy_cannot_take_stop_the_run_before_it_starts(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mmad.cli import main

    base = ["eval", "-m", "random", "-d", str(data), "--out", str(tmp_path / "run"), "--strategy"]
    assert main([*base, "tools", "--protocol", "per-image"]) == 2
    assert "--strategies tools asks one question per request" in capsys.readouterr().err
    assert main([*base, "tools+cot"]) == 2
    assert "does not combine with cot" in capsys.readouterr().err
    assert main([*base, "tools", "--tools", "zoom,magnify"]) == 2
    assert "unknown tool(s) magnify" in capsys.readouterr().err
    assert main([*base, "tools", "--tools", "knowledge", "--knowledge", str(tmp_path / "none.json")]) == 2
    assert "--tools knowledge: cannot read the domain-knowledge file" in capsys.readouterr().err
    assert main(["eval", "-m", "random", "-d", str(data), "--out", str(tmp_path / "run"), "--max-turns", "2"]) == 2
    assert "--max-turns is a setting of the tools strategy, but this run has no tools strategy" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "run").exists()


def test_the_reports_viewer_shows_the_tool_conversation_with_its_images(data: Path, tmp_path: Path) -> None:
    import re

    from mmad.report.html import write_html_report

    user = ScriptedToolUser("zoom,reference")
    (record,) = _run(data, tmp_path / "run", user)
    page = write_html_report([tmp_path / "run"], tmp_path / "report.html").read_text()
    found = re.search(r'id="mmad-data">(.*?)</script>', page, re.S)
    assert found is not None
    packed = json.loads(found[1])
    (talk,) = packed["runs"][0]["tools"].values()
    assert talk["direct"] == record.extra["direct"]["answer"] and talk["calls"] == 2
    roles = [turn[0] for turn in talk["turns"]]
    assert roles == ["assistant", "tool", "user", "assistant", "tool", "user", "assistant"]
    assert packed["strings"][talk["turns"][0][1]].startswith("calls zoom(")
    shown = [index for turn in talk["turns"] for index in turn[2]]
    assert len(shown) == 2  # the zoom crop and the reference
    assert all(packed["thumbs"][i].startswith("data:image/jpeg;base64,") for i in shown)
    assert "tool conversation" in page  # the viewer's script renders them


def test_the_protocol_card_holds_the_tools_settings_and_other_cards_keep_their_hash(data: Path) -> None:
    from mmad.protocol.strategies import parse_strategies
    from mmad.run.card import protocol_card
    from mmad.run.config import RunConfig

    benchmark = load_benchmark(data)

    def card(**settings: Any) -> dict[str, Any]:
        config = RunConfig.from_flat("random", str(data), **settings)
        return protocol_card(config, benchmark, parse_strategies(config.prompt.strategies))

    tools = card(strategies="tools", tools="zoom,expert", max_turns=3, blend=0.5)
    assert tools["tools"] == {"tools": ["zoom", "expert"], "max_turns": 3, "tool_protocol": "auto", "blend": 0.5}
    assert card(strategies="tools", max_turns=2)["hash"] != card(strategies="tools", max_turns=3)["hash"]
    assert card(strategies="tools")["tools"]["tools"] == "all"
    assert "tools" not in card()


def test_a_blind_run_against_a_text_only_server_without_tools(data: Path, tmp_path: Path) -> None:
    """What a small text model behind llama.cpp's server (no --mmproj, no tool template) meets: the
    refused tools switch the run to the text protocol, and no image is sent, the tools' included."""
    user = ScriptedToolUser("zoom,knowledge")
    options: dict[str, Any] = {"limit": 2, "cache": False, "tools": ["zoom", "knowledge"], "blind": True}
    with serve_in_thread(ChatServer(user, any_model=True, refuse_tools=True, text_only=True)) as server:
        evaluate("compat:scripted", data, out=tmp_path / "run", strategies="tools", base_url=server.base_url, **options)
    records = read_records(tmp_path / "run" / "records.jsonl")
    assert len(records) == 2 and all(r.status is Status.ANSWERED for r in records)
    assert all(r.extra["tools"]["protocol"] == "text" for r in records)
    assert not any(m.images for r in user.requests for m in r.messages)
    zoomed = [m.text for r in user.requests for m in r.messages if m.text.startswith("Result of zoom: ")]
    assert zoomed and all(text.endswith("(Its image is not shown: this run sends no images.)") for text in zoomed)


def test_an_in_process_model_gets_the_text_protocol(data: Path, tmp_path: Path) -> None:
    """A backend in this process has no function calling to try: auto means the text protocol."""
    evaluate("random", data, out=tmp_path / "run", strategies="tools", tools=["zoom"], limit=3, cache=False)
    records = read_records(tmp_path / "run" / "records.jsonl")
    assert len(records) == 3
    assert all(r.extra["tools"]["protocol"] == "text" for r in records)
    assert all(r.status is Status.ANSWERED for r in records)  # a plain letter is taken as the answer


@pytest.mark.slow
def test_the_response_cache_replays_tool_calls(data: Path, tmp_path: Path) -> None:
    """A reply that called tools goes into the response cache and comes back as the same calls."""
    user = ScriptedToolUser("zoom,reference")
    options: dict[str, Any] = {"limit": 1, "datasets": ["DS-MVTec"], "tools": ["zoom", "reference"]}
    with serve_in_thread(ChatServer(user, any_model=True)) as server:  # one server: its URL is in the cache key
        for name in ("first", "again"):
            evaluate(
                "compat:scripted",
                data,
                out=tmp_path / name,
                strategies="tools",
                base_url=server.base_url,
                cache_dir=str(tmp_path / "cache"),
                **options,
            )
            if name == "first":
                asked_requests = len(user.requests)
    (asked,) = read_records(tmp_path / "first" / "records.jsonl")
    (cached,) = read_records(tmp_path / "again" / "records.jsonl")
    assert asked_requests == 4 and len(user.requests) == 4  # the second run asked nothing
    assert [t["cached"] for t in cached.extra["tools"]["turns"]] == [True, True, True]
    assert cached.extra["tools"]["calls"][0]["arguments"] == asked.extra["tools"]["calls"][0]["arguments"]
    assert cached.answer == asked.answer


class Declines(ScriptedToolUser):
    """Declines every question, as the visual expert declines the subtasks it cannot see."""

    async def generate(self, request: Request) -> Completion:
        self.requests.append(request)
        return Completion(text="", abstained=True)


def test_a_model_that_declines_is_an_abstention_not_an_unreadable_reply(data: Path, tmp_path: Path) -> None:
    user = Declines()
    (record,) = _run(data, tmp_path / "run", user)
    assert record.status is Status.ABSTAINED
    assert len(record.extra["tools"]["turns"]) == 1  # declining ends the conversation: nothing is asked again
    assert record.extra["direct"]["status"] == "abstained"


def test_serve_refuses_an_unknown_step_of_the_scripted_user(capsys: pytest.CaptureFixture[str]) -> None:
    from mmad.cli import main

    assert main(["serve", "-m", "scripted-tools:zoom,fly", "--port", "0"]) == 2
    assert "scripted-tools: unknown step fly" in capsys.readouterr().err


class SlowTools(ScriptedToolUser):
    """Takes its time over the tools branch's turns only."""

    async def generate(self, request: Request) -> Completion:
        import asyncio

        if request.tools:
            await asyncio.sleep(0.3)
        return await super().generate(request)


def test_each_branch_keeps_its_own_latency_and_the_record_the_slower(data: Path, tmp_path: Path) -> None:
    (record,) = _run(data, tmp_path / "run", SlowTools("zoom"), concurrency=4)
    direct = record.extra["direct"]["latency_s"]
    # The direct branch's own time (sending its images included), not the time until the tools branch
    # finished: that one has two turns of 0.3 s more.
    assert record.latency_s is not None and record.latency_s - direct >= 0.5


def test_the_dry_run_counts_the_most_the_tool_turns_can_send(data: Path) -> None:
    from mmad.run.config import RunConfig
    from mmad.run.estimate import dry_run
    from mmad.run.tokens import TOOL_RESULT_TOKENS

    plain = dry_run(RunConfig.from_flat("openai:gpt-4o", str(data), limit=10))
    tools = dry_run(RunConfig.from_flat("openai:gpt-4o", str(data), limit=10, strategies="tools", max_turns=3))
    assert tools.requests == plain.requests * 4  # the direct question and three turns each
    assert tools.images_sent == plain.images_sent * 4 + 10 * 3  # and one tool image per earlier turn: 0 + 1 + 2
    assert tools.prompt_tokens > plain.prompt_tokens * 4 + 10 * 3 * TOOL_RESULT_TOKENS
    assert tools.cost_usd is not None and plain.cost_usd is not None and tools.cost_usd > 4 * plain.cost_usd


def test_the_tools_solver_composes_with_the_agent_picture_and_the_judge(data: Path, tmp_path: Path) -> None:
    """Wrapped by agent-render (its picture drawn before the question) and by the judge fallback (its letter
    for a tools reply the parser cannot read)."""

    class Mumbles(ScriptedToolUser):
        async def generate(self, request: Request) -> Completion:
            done = await super().generate(request)
            if request.tools and not done.tool_calls:
                return Completion(text="Hard to say, honestly.")
            return done

    user = Mumbles("zoom")
    (record,) = _run(data, tmp_path / "run", user, strategies="tools+agent:gt:contour", judge="fixed:B")
    assert [c["name"] for c in record.extra["tools"]["calls"]] == ["zoom"]
    first = _tools_turns(user)[0]
    assert len(next(m for m in first.messages if m.role == "user").images) == 3  # template, query, the agent's picture
    assert record.status is Status.ANSWERED and record.parse_method == "judge" and record.answer == "B"
    assert record.extra["tools"]["answer"] is None  # the branch's own reply had no letter
