"""Review of issue #24's tool-using inspector: the budget, box and JSON edge cases a new user met."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import cast

import pytest

from mmad import evaluate
from mmad.protocol.tool_text import parse_text_turn
from mmad.records.record import read_records
from mmad.run.manifest import read_manifest
from mmad.serve.scripted_tools import ScriptedToolUser
from mmad.serve.server import ChatServer, serve_in_thread
from mmad.tools.base import ToolContext
from mmad.tools.crops import ZoomTool
from tests.helpers.mmad_tree import make_mmad_tree


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return make_mmad_tree(tmp_path / "data")


def test_max_cost_sets_aside_the_whole_tool_conversation_not_one_request(data: Path, tmp_path: Path) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"compat:scripted": [1000, 1000]}))
    out = tmp_path / "run"
    options = {"datasets": ["DS-MVTec"], "limit": 8, "cache": False, "tools": ["zoom", "reference"]}
    with serve_in_thread(ChatServer(ScriptedToolUser("zoom,reference"), any_model=True)) as server:
        # One question's cost first, from a run of one, to size the budget at about two questions.
        evaluate(
            "compat:scripted",
            data,
            out=tmp_path / "one",
            base_url=server.base_url,
            strategies="tools",
            prices=str(prices),
            **{**options, "limit": 1},
        )
        one = read_manifest(tmp_path / "one").usage
        assert one is not None and one.cost_usd
        budget = 2.5 * one.cost_usd
        evaluate(
            "compat:scripted",
            data,
            out=out,
            base_url=server.base_url,
            strategies="tools",
            prices=str(prices),
            max_cost=budget,
            concurrency=4,
            **options,
        )
    usage = read_manifest(out).usage
    assert usage is not None and usage.cost_usd is not None
    # Each question sends its direct request and up to --max-turns more: a reservation of one request
    # let four conversations start on a budget of two and a half, and spend past it.
    assert usage.cost_usd <= budget
    assert 1 <= len(read_records(out / "records.jsonl")) < 8


@pytest.mark.parametrize(
    ("reply", "kind", "answer"),
    [
        ('{"answer": "B"} because the scratch {near the rim} is clear', "answer", "B"),
        ('I think {"answer": "C"} is right; the options were {A, B, C}', "answer", "C"),
        ('{"tool": "zoom", "args": {"x0": 0.1, "y0": 0.1, "x1": 0.5, "y1": 0.5}}\n{"answer": "A"}', "tool", ""),
        ('{"answer": null}', "invalid", ""),
    ],
)
def test_the_text_protocol_finds_its_object_beside_other_text_and_objects(reply: str, kind: str, answer: str) -> None:
    turn = parse_text_turn(reply)
    assert turn.kind == kind and turn.answer == answer
    if kind == "tool":
        assert turn.tool == "zoom" and turn.args == {"x0": 0.1, "y0": 0.1, "x1": 0.5, "y1": 0.5}
    if kind == "invalid":
        assert "letter" in turn.problem


@pytest.mark.parametrize(
    "raw",
    [
        '{"x0": 1' + "0" * 400 + ', "y0": 0, "x1": 1, "y1": 1}',  # an int no float holds
        '{"x0": 1' + "0" * 5000 + ', "y0": 0, "x1": 1, "y1": 1}',  # more digits than Python converts
    ],
)
def test_a_box_of_enormous_numbers_is_an_error_for_the_model_not_a_crash(raw: str) -> None:
    result = ZoomTool().call(cast("ToolContext", None), raw)  # refused before the image is looked at
    assert result.error and result.text.startswith("error: ")
    assert len(result.text) < 800  # the schema, not the digits


def _run_tools(data: Path, out: Path, user: ScriptedToolUser, **settings: object) -> None:
    options: dict[str, object] = {"limit": 1, "datasets": ["DS-MVTec"], "cache": False, "tools": ["zoom", "reference"]}
    with serve_in_thread(ChatServer(user, any_model=True)) as server:
        evaluate("compat:scripted", data, out=out, base_url=server.base_url, strategies="tools", **options, **settings)


def test_a_tools_run_made_in_one_directory_resumes_and_reports_from_another(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import re

    from mmad.report.html import write_html_report
    from tests.tools.test_tools_loop import FailsOnce

    (tmp_path / "here").mkdir()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    _run_tools(data, Path("run"), FailsOnce("zoom,reference"))  # a relative --out, as a user types it
    monkeypatch.chdir(tmp_path / "elsewhere")
    run = tmp_path / "here" / "run"
    second = ScriptedToolUser("zoom,reference")
    _run_tools(data, run, second, resume=True)
    # The journal knows the turns whose prompts held tool images, though they now lie under another path.
    assert len(second.requests) == 1
    (record,) = read_records(run / "records.jsonl")
    images = [p for call in record.extra["tools"]["calls"] for p in call["images"]]
    assert images and all(p.startswith("tools/") for p in images)  # relative to the run folder
    page = write_html_report([run], tmp_path / "report.html").read_text()
    found = re.search(r'id="mmad-data">(.*?)</script>', page, re.S)
    assert found is not None
    packed = json.loads(found[1])
    (talk,) = packed["runs"][0]["tools"].values()
    shown = [index for turn in talk["turns"] for index in turn[2]]
    assert len(shown) == 2 and all(packed["thumbs"][i] for i in shown)


def test_a_server_without_tools_under_native_says_how_to_get_the_text_protocol(data: Path, tmp_path: Path) -> None:
    with serve_in_thread(ChatServer(ScriptedToolUser("zoom"), any_model=True, refuse_tools=True)) as server:
        evaluate(
            "compat:scripted",
            data,
            out=tmp_path / "run",
            base_url=server.base_url,
            strategies="tools",
            tool_protocol="native",
            limit=1,
            datasets=["DS-MVTec"],
            cache=False,
            tools=["zoom"],
        )
    (record,) = read_records(tmp_path / "run" / "records.jsonl")
    assert record.error_class == "tools_refused"
    # It did not fall back (native was asked for): the message says how to.
    assert "--tool-protocol text" in (record.error_message or "") and "falls back" not in (record.error_message or "")


def test_max_cost_sets_aside_the_conversation_when_the_cache_answers_the_direct_question(
    data: Path, tmp_path: Path
) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"compat:scripted": [1000, 1000]}))
    options: dict[str, object] = {"datasets": ["DS-MVTec"], "limit": 8, "prices": str(prices)}
    cache = str(tmp_path / "cache")
    with serve_in_thread(ChatServer(ScriptedToolUser("zoom,reference"), any_model=True)) as server:
        # The plain run puts every direct question in the cache; the tools run's conversations are not there.
        evaluate("compat:scripted", data, out=tmp_path / "plain", base_url=server.base_url, cache_dir=cache, **options)
        plain = read_manifest(tmp_path / "plain").usage
        assert plain is not None and plain.cost_usd
        budget = 2 * plain.cost_usd
        evaluate(
            "compat:scripted",
            data,
            out=tmp_path / "run",
            base_url=server.base_url,
            cache_dir=cache,
            strategies="tools",
            tools=["zoom", "reference"],
            max_cost=budget,
            concurrency=4,
            **options,
        )
    usage = read_manifest(tmp_path / "run").usage
    assert usage is not None and usage.cost_usd is not None
    assert usage.cost_usd <= budget


def test_a_blend_of_weight_0_or_1_is_one_branch_though_the_other_gave_no_answer() -> None:
    from mmad.solvers.tools import _blend

    direct = {"A": 0.0, "B": 1.0}
    tools = {"A": 1.0, "B": 0.0}
    assert _blend({}, direct, 0.0) == (direct, "direct")  # the tools branch unreadable: --blend 0 is still direct
    assert _blend(direct, {}, 1.0) == (direct, "tools")
    # A branch that knows nothing leaves the blend to the other, whatever the weight (it was empty: unparsed).
    assert _blend({}, direct, 0.5) == (direct, "direct")
    assert _blend(tools, {}, 0.5) == (tools, "tools")
    assert _blend(tools, {}, 0.0) == (tools, "tools")
    assert _blend({}, {}, 0.5) == ({}, None)
    assert _blend(tools, direct, 0.5) == ({"A": 0.5, "B": 0.5}, "both")


def test_a_category_being_calibrated_does_not_hold_up_the_expert_of_another(data: Path, tmp_path: Path) -> None:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from mmad.data.official import load_benchmark
    from mmad.tools import Toolbox

    benchmark = load_benchmark(data)
    first, second = {}, {}
    for item in benchmark.items:
        category = tuple(item.key.split("/")[:2])
        if not first:
            first[category] = item
        elif category not in first and not second:
            second[category] = item
    (item_a,), (item_b,) = first.values(), second.values()
    release = threading.Event()
    calibrated: list[str] = []

    def make(part: object) -> object:
        keys = {i.key.split("/")[1] for i in part.items}  # type: ignore[attr-defined]
        calibrated.append(next(iter(keys)))
        if item_b.category in keys:
            assert release.wait(10)  # the second category calibrates slowly
        return object()

    box = Toolbox(benchmark, tmp_path / "tools", names=("zoom",), expert=make)  # type: ignore[arg-type]
    fitted_a = box.expert(item_a)
    with ThreadPoolExecutor(2) as pool:
        slow = pool.submit(box.expert, item_b)
        deadline = time.monotonic() + 10
        while len(calibrated) < 2 and time.monotonic() < deadline:
            release.wait(0.01)
        # While the second category calibrates, the first one's expert is at hand.
        quick = pool.submit(box.expert, item_a)
        assert quick.result(timeout=5) is fitted_a
        release.set()
        assert slow.result(timeout=10) is box.expert(item_b)
    assert len(calibrated) == 2  # each category once


def test_a_tools_question_is_from_the_cache_only_when_every_request_it_needed_was(data: Path, tmp_path: Path) -> None:
    options: dict[str, object] = {"datasets": ["DS-MVTec"], "limit": 3, "cache_dir": str(tmp_path / "cache")}
    tools: dict[str, object] = {"strategies": "tools", "tools": ["zoom"], **options}
    with serve_in_thread(ChatServer(ScriptedToolUser("zoom"), any_model=True)) as server:
        # The plain run caches every direct question; the tools run sends each conversation.
        evaluate("compat:scripted", data, out=tmp_path / "plain", base_url=server.base_url, **options)
        sent = evaluate("compat:scripted", data, out=tmp_path / "tools", base_url=server.base_url, **tools)
        again = evaluate("compat:scripted", data, out=tmp_path / "again", base_url=server.base_url, **tools)
    # Counted as cached because its direct request was, though its conversation was sent ("3 from cache").
    assert sent.stats.done == 3 and sent.stats.cached == 0
    assert not any(r.cached for r in read_records(tmp_path / "tools" / "records.jsonl"))
    usage = read_manifest(tmp_path / "tools").usage
    assert usage is not None and usage.cached == 0
    # Every request in the cache: each question is.
    assert again.stats.cached == again.stats.done == 3
    assert all(r.cached for r in read_records(tmp_path / "again" / "records.jsonl"))
