"""The report's per-question viewer shows a tools run's conversation, its tool images decoded, in Chromium."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from mmad import evaluate
from mmad.report.html import write_html_report
from mmad.serve.scripted_tools import ScriptedToolUser
from mmad.serve.server import ChatServer, serve_in_thread
from tests.helpers.mmad_tree import make_mmad_tree
from tests.report.test_browser import Session, _undecoded_images, browser  # noqa: F401 - the module's Chromium

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_the_tool_conversation_opens_with_its_images(browser: Any, tmp_path: Path) -> None:  # noqa: F811
    data = make_mmad_tree(tmp_path / "data")
    user = ScriptedToolUser("zoom,reference+compare")
    with serve_in_thread(ChatServer(user, any_model=True)) as server, ThreadPoolExecutor(1) as pool:
        # In a thread of its own: Playwright's sync API keeps an event loop running in this one.
        pool.submit(
            evaluate,
            "compat:scripted",
            data,
            out=tmp_path / "run",
            strategies="tools",
            tools=["zoom", "reference", "compare"],
            base_url=server.base_url,
            cache=False,
            limit=2,
        ).result()
    session = Session(browser, write_html_report([tmp_path / "run"], tmp_path / "report.html", published=[]).as_uri())
    page = session.page
    assert page.locator("#samples-list details.tools").count() == 2
    page.click("#samples-list details.tools >> nth=0 >> summary")
    session.settle()
    opened = page.locator("#samples-list details.tools >> nth=0")
    assert "call(s)" in opened.inner_text() and "calls zoom(" in opened.inner_text()
    assert opened.locator("img").count() == 3  # the zoom crop, the reference and the comparison
    assert _undecoded_images(page, "#samples-list details.tools img") == []
    assert session.errors == []
    session.close()
    assert json.loads((tmp_path / "run" / "run.json").read_text())["config"]["prompt"]["strategies"] == ["tools"]
