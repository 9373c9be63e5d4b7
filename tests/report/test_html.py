"""The HTML report as a file: escaping, safe embedded JSON, the published rows by default, both layouts."""

import base64
import hashlib
import json
import re
from pathlib import Path

import pytest

from mmad.cli import main
from mmad.report.html import script_json, write_html_report
from mmad.report.samples import auto_thumb_size
from tests.helpers.runs import copy_run, edit_meta, edit_records

EVIL = "<img src=x onerror=window.__pwned=1><script>window.__pwned=1</script><!-- </script> &amp;"


@pytest.fixture
def hostile_run(random_run: Path, tmp_path: Path) -> Path:
    """A real run whose replies, question texts and model name are planted markup."""
    run = copy_run(random_run, tmp_path / "hostile")
    edit_records(run, lambda i, r: r.model_copy(update={"raw_reply": f"Answer: {r.answer} {EVIL}"}))
    meta = json.loads((run / "run.json").read_text())
    meta["config"]["model"] = "<b>bold</b>-model"
    edit_meta(run, config=meta["config"])
    return run


def test_script_json_cannot_end_its_block() -> None:
    value = {"reply": "</script><script>alert(1)</script><!-- x --> & \u2028", "n": [1, 2.5, None]}
    text = str(script_json(value))
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == value


def test_report_escapes_model_text_and_embeds_no_markup(hostile_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    assert main(["report", str(hostile_run), "--out", str(out)]) == 0
    page = out.read_text()
    assert EVIL not in page and "<img src=x" not in page and "<b>bold</b>" not in page
    assert "&lt;b&gt;bold&lt;/b&gt;-model" in page  # the model name, escaped in the HTML
    assert page.count("<script") == 2 and page.count("</script>") == 2  # the data block and the viewer
    assert "<!--" not in page
    data = json.loads(re.search(r'<script type="application/json" id="mmad-data">(.*?)</script>', page, re.S)[1])
    assert any(EVIL in s for s in data["strings"])  # the reply survives intact, as data
    script = re.search(r"<script>(.*?)</script>", page, re.S)[1]
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in page  # the CSP allows this script and no other
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script and "eval(" not in script


def test_single_file_report_needs_nothing_else(random_run: Path, tmp_path: Path) -> None:
    out = write_html_report([random_run], tmp_path / "r.html")
    page = out.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
    assert "url(" not in page and "@import" not in page
    data = json.loads(re.search(r'id="mmad-data">(.*?)</script>', page, re.S)[1])
    assert data["thumbs"] and all(t.startswith("data:image/jpeg;base64,") for t in data["thumbs"])
    # 20 query images and the 8 templates their 1-shot prompts showed, each thumbnailed once
    assert len(data["keys"]) == 20 and len(data["thumbs"]) == 28
    assert len(data["runs"][0]["rows"]) == 92 and len(data["questions"]) == 92
    assert "GPT-4o (gpt-4o)" in page and "74.31" in page and "Human expert" in page  # shipped published rows
    assert page.index("Qwen2-VL-72B-Instruct") < page.index("GPT-4o (gpt-4o)")


def test_folder_report_writes_thumbnails_beside_the_page(random_run: Path, tmp_path: Path) -> None:
    page = write_html_report([random_run], tmp_path / "site")
    assert page == tmp_path / "site" / "index.html"
    data = json.loads(re.search(r'id="mmad-data">(.*?)</script>', page.read_text(), re.S)[1])
    assert data["thumbs"] and all(t.startswith("thumbs/") for t in data["thumbs"])
    assert all((page.parent / t).is_file() for t in data["thumbs"])


def test_interrupted_run_is_listed_under_not_ranked(random_run: Path, tmp_path: Path) -> None:
    cut = copy_run(random_run, tmp_path / "cut")
    edit_records(cut, lambda i, r: r if i < 48 else None)
    page = write_html_report([random_run, cut], tmp_path / "r.html", published=[]).read_text()
    ranked, unranked = page.index('<tbody class="ranked">'), page.index('<tbody class="unranked">')
    assert ranked < page.index("random (random)", ranked) < unranked < page.index("random (cut)", ranked)
    assert "incomplete: asked 48 of 92 selected" in page


def test_missing_images_leave_the_report_readable(random_run: Path, tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    moved = copy_run(random_run, tmp_path / "moved")
    meta = json.loads((moved / "run.json").read_text())
    meta["config"]["data"] = str(tmp_path / "gone" / "mmad.json")
    edit_meta(moved, config=meta["config"])
    page = write_html_report([moved], tmp_path / "r.html", published=[]).read_text()
    data = json.loads(re.search(r'id="mmad-data">(.*?)</script>', page, re.S)[1])
    assert data["thumbs"] == [] and all(key[1] is None for key in data["keys"])
    assert "thumbnails are left out" in caplog.text


def test_report_usage_errors(random_run: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["report", "--out", str(tmp_path / "r.html")]) == 2
    assert "give at least one run directory" in capsys.readouterr().err
    assert main(["report", str(random_run), "--published", str(tmp_path / "nowhere")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


def test_thumbnail_size_fits_the_page_budget() -> None:
    assert auto_thumb_size(200, single_file=True) == 128
    assert auto_thumb_size(12_000, single_file=True) == 64
    assert auto_thumb_size(12_000, single_file=False) == 192


@pytest.mark.parametrize("side", [30_000, 10_000])  # over Pillow's bomb error limit; over its warning limit only
def test_a_decompression_bomb_image_is_shown_as_unavailable(
    fresh_mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], side: int
) -> None:
    from tests.data.test_broken_inputs import png_header

    data = fresh_mmad_json.parent
    bomb = next(iter(json.loads(fresh_mmad_json.read_text())))
    assert main(["eval", "-m", "random", "-d", str(data), "--out", str(tmp_path / "run"), "--no-cache"]) == 0
    (data / bomb).write_bytes(png_header(side, side))
    capsys.readouterr()
    out = tmp_path / "r.html"
    assert main(["report", str(tmp_path / "run"), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "DecompressionBombWarning" not in err
    assert f"warning: no thumbnail for {data / bomb}:" in err, err
    page = out.read_text()
    packed = json.loads(re.search(r'id="mmad-data">(.*?)</script>', page, re.S)[1])
    thumb = next(key[1] for key in packed["keys"] if key[0] == bomb)
    assert packed["thumbs"][thumb] is None  # the page draws "no image" for it
    assert sum(source is not None for source in packed["thumbs"]) == len(packed["thumbs"]) - 1


def test_data_naming_another_benchmark_is_warned_and_its_images_left_out(
    random_run: Path,
    fresh_mmad_json: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At 80 columns the warning is the CLI's own `warning: ...` line, whole (the terminal wraps it),
    not a log record's timestamp and level columns around a narrow block of a few words a line."""
    monkeypatch.setenv("COLUMNS", "80")
    same = write_html_report([random_run], tmp_path / "same.html", published=[], data=fresh_mmad_json.parent)
    assert json.loads(re.search(r'id="mmad-data">(.*?)</script>', same.read_text(), re.S)[1])["thumbs"]
    other = json.loads(fresh_mmad_json.read_text())
    first = next(iter(other.values()))
    first["conversation"][0]["Question"] = "Is anything wrong with this other object?"
    fresh_mmad_json.write_text(json.dumps(other))
    out = tmp_path / "r.html"
    assert (
        main(["report", str(random_run), "--data", str(fresh_mmad_json.parent), "--no-published", "-o", str(out)]) == 0
    )
    raw = capsys.readouterr().err
    line = next((x for x in raw.splitlines() if "is not the one the run asked" in x), "")
    assert line.startswith(f"warning: {random_run}: the benchmark at "), raw
    assert "sha256" in line and line.endswith("give --data the benchmark the run was made on"), raw
    assert "WARNING" not in raw and not re.search(r"\d\d:\d\d:\d\d", raw), raw
    data = json.loads(re.search(r'id="mmad-data">(.*?)</script>', out.read_text(), re.S)[1])
    assert data["thumbs"] == [] and all(key[1] is None for key in data["keys"])
