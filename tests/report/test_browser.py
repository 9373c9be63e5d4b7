"""The HTML report in a real browser: headless Chromium (Debian's chromium package) driven by
Playwright's Python package. No console errors, no network, charts and images decode, the filters
work, and model text full of markup and script stays inert."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mmad.records import Status
from mmad.report.html import write_html_report
from mmad.run.folder import open_run
from tests.helpers.runs import copy_run, edit_meta, edit_records

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
EVIL = "<img src=x onerror=window.__pwned=1><script>window.__pwned=1</script>"


def _chromium() -> str | None:
    configured = os.environ.get("MMAD_CHROMIUM")
    if configured:
        return configured if Path(configured).is_file() else None
    return shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright's Python package is absent: pip install -e '.[dev]'"
    )
    executable = _chromium()
    if executable is None:
        pytest.skip("no Chromium here: install Debian's chromium package (apt-get install -y chromium); .ci/run does")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Session:
    """One page, with every console message, page error and request it made."""

    def __init__(self, browser: Any, url: str) -> None:
        self.page = browser.new_page(viewport={"width": 1300, "height": 900})
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type in ("error", "warning") else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(url)
        self.page.wait_for_selector("#samples-list article.sample")
        self.settle()

    def settle(self) -> None:
        """Wait until every image on the page has loaded or failed."""
        self.page.wait_for_function("Array.from(document.images).every(i => i.complete)")

    def count(self) -> int:
        return int(self.page.get_attribute("#sample-count", "data-count") or -1)

    def choose(self, select: str, value: str) -> int:
        self.page.select_option(select, value)
        self.settle()
        return self.count()

    def close(self) -> None:
        self.page.close()


def _undecoded_images(page: Any, selector: str) -> list[str]:
    return list(
        page.eval_on_selector_all(
            selector, "imgs => imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt || i.src)"
        )
    )


def test_report_loads_without_errors_or_network_and_draws_everything(
    browser: Any, random_run: Path, tmp_path: Path
) -> None:
    page_path = write_html_report([random_run], tmp_path / "report.html")
    session = Session(browser, page_path.as_uri())
    page = session.page
    assert session.errors == []
    assert [u for u in session.requests if not u.startswith("data:")] == [page_path.as_uri()]
    heatmaps = page.locator("img.heatmap")
    assert heatmaps.count() == 1 and _undecoded_images(page, "img.heatmap") == []
    widths = page.eval_on_selector_all("svg.radar polygon.series", "ps => ps.map(p => p.getBBox().width)")
    assert len(widths) == 3 and all(w > 0 for w in widths)  # overview (run + human expert) and the run's own
    thumbs = page.locator("#samples-list img")
    assert thumbs.count() == 40  # 20 questions on the first page, each with its template and query image
    assert _undecoded_images(page, "#samples-list img") == []
    assert page.locator("#leaderboard-table tbody.ranked tr.mine").count() == 1
    assert "GPT-4o (gpt-4o)" in page.inner_text("#leaderboard-table")
    session.close()


def test_filters_and_pages_change_what_is_shown(browser: Any, random_run: Path, tmp_path: Path) -> None:
    records = open_run(random_run).plain
    right = sum(r.status is Status.ANSWERED and r.answer == r.correct_answer for r in records)
    by_type = Counter(r.question_type for r in records)
    visa_wrong = sum(r.image.startswith("VisA/") and r.answer != r.correct_answer for r in records)
    session = Session(browser, write_html_report([random_run], tmp_path / "r.html", published=[]).as_uri())
    page = session.page
    assert session.count() == len(records) == 92
    assert page.inner_text("#page-label") == "page 1 of 5"
    first = page.inner_text("#samples-list article.sample .head >> nth=0")
    page.click("#page-next")
    assert page.inner_text("#page-label") == "page 2 of 5"
    assert page.inner_text("#samples-list article.sample .head >> nth=0") != first
    assert session.choose("#f-outcome", "right") == right
    assert session.choose("#f-outcome", "wrong") == len(records) - right
    assert page.locator("#samples-list article.sample.right").count() == 0
    assert page.inner_text("#page-label") == "page 1 of 4"  # a new filter starts at the first page
    session.choose("#f-outcome", "")
    assert session.choose("#f-subtask", "0") == by_type["Anomaly Detection"]
    assert session.choose("#f-subtask", "6") == by_type["Object Structure"] + by_type["Object Details"]
    session.choose("#f-subtask", "")
    category = page.eval_on_selector(
        "#f-category", "s => Array.from(s.options).find(o => o.textContent === 'VisA/candle').value"
    )
    assert session.choose("#f-category", category) == 18
    assert session.choose("#f-outcome", "wrong") == visa_wrong
    assert session.choose("#f-outcome", "unanswered") == 0
    assert "No question matches" in page.inner_text("#samples-list")
    session.choose("#f-outcome", "")
    session.choose("#f-category", "")
    page.fill("#f-search", records[5].question_id)
    assert session.count() == 1
    assert page.inner_text("#samples-list article.sample .head").startswith(records[5].question_id)
    assert session.errors == []
    session.close()


def test_model_text_with_markup_and_script_stays_inert(browser: Any, random_run: Path, tmp_path: Path) -> None:
    run = copy_run(random_run, tmp_path / "hostile")

    def plant(index: int, record: Any) -> Any:
        update = {"raw_reply": f"{EVIL} Answer: {record.answer}"}
        if index == 0:
            update["question_text"] = f"</script><!-- {EVIL}"
            update["options"] = {"A": EVIL, "B": "<b>No.</b>"}
        return record.model_copy(update=update)

    edit_records(run, plant)
    config = open_run(run).config.model_dump(mode="json")
    edit_meta(run, config={**config, "model": "<img src=x onerror=window.__pwned=1>"})
    session = Session(browser, write_html_report([run], tmp_path / "r.html").as_uri())
    page = session.page
    assert page.evaluate("typeof window.__pwned") == "undefined"
    planted = "img[src='x'], #samples-list script, .qtext *, pre.reply *, ol.options li *, #leaderboard-table td img"
    assert page.evaluate(f'document.querySelectorAll("{planted}").length') == 0
    card = page.locator("#samples-list article.sample").first
    assert card.locator("pre.reply").text_content() == f"{EVIL} Answer: {records_first_answer(run)}"
    assert card.locator(".qtext").text_content() == f"</script><!-- {EVIL}"
    assert card.locator("ol.options li").first.text_content() == f"A. {EVIL}"
    assert "<img src=x onerror=window.__pwned=1>" in page.inner_text("#leaderboard-table")
    assert page.eval_on_selector("#f-run", "s => s.options[0].textContent") == "<img src=x onerror=window.__pwned=1>"
    page.fill("#f-search", "script")  # re-render through the filter path too
    assert session.count() >= 1 and page.evaluate("typeof window.__pwned") == "undefined"
    assert session.errors == []
    session.close()


def records_first_answer(run: Path) -> str | None:
    return open_run(run).plain[0].answer


def test_report_folder_over_http_loads_only_its_own_files(browser: Any, random_run: Path, tmp_path: Path) -> None:
    page_path = write_html_report([random_run], tmp_path / "site")
    handler = functools.partial(_QuietHandler, directory=str(page_path.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        origin = f"http://127.0.0.1:{server.server_address[1]}"
        session = Session(browser, f"{origin}/index.html")
        assert session.errors == []
        outside = [u for u in session.requests if not u.startswith((f"{origin}/", "data:"))]
        assert outside == []
        shown = session.page.eval_on_selector_all("#samples-list img", "imgs => imgs.map(i => i.src)")
        assert len(shown) == 40 and all(u.startswith(f"{origin}/thumbs/") and u.endswith(".jpg") for u in shown)
        assert {u for u in session.requests if "/thumbs/" in u} == set(shown)  # each image fetched, once
        assert _undecoded_images(session.page, "img") == []
        session.close()
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


def test_a_long_reply_leaves_the_question_its_full_width(browser: Any, random_run: Path, tmp_path: Path) -> None:
    long_reply = "Let me look at every part of the object in turn. " * 60 + "x" * 400
    run = copy_run(random_run, tmp_path / "long")
    edit_records(run, lambda i, r: r.model_copy(update={"raw_reply": long_reply}) if i == 0 else r)
    session = Session(browser, write_html_report([run], tmp_path / "r.html", published=[]).as_uri())
    boxes = session.page.eval_on_selector(
        "#samples-list article.sample",
        """card => Object.fromEntries(['.thumbs', '.qtext', 'pre.reply'].map(s => {
            const r = card.querySelector(s).getBoundingClientRect(); return [s, [r.left, r.width]]; }))""",
    )
    thumbs, question, reply = boxes[".thumbs"], boxes[".qtext"], boxes["pre.reply"]
    assert session.page.inner_text("#samples-list article.sample pre.reply >> nth=0").startswith("Let me look")
    # The reply sits beside the images, under the question, as wide as it: not in the images' column,
    # where its text widened that column and squeezed the question into what was left.
    assert reply[0] == question[0] > thumbs[0] + thumbs[1]
    assert abs(reply[1] - question[1]) < 2 and question[1] > 700
    session.close()
