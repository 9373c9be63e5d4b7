"""The response cache: one SQLite store per folder, misses without I/O, batched writes, a size
limit, two processes at once, older caches, and `mmad cache info|clear`."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mmad import evaluate
from mmad.cli import main
from mmad.errors import CacheError
from mmad.models.base import Completion, Model, Request
from mmad.models.baselines import RandomModel
from mmad.records.record import read_records
from mmad.run.cache import DATABASE, ResponseCache, cache_key
from tests.helpers.serving import running_server


def _key(i: int, model: str = "m") -> str:
    return cache_key({"name": model}, f"prompt {i}", {"images": "jpeg 512"})


def _rows(folder: Path) -> int:
    with sqlite3.connect(folder / DATABASE) as db:
        return int(db.execute("SELECT count(*) FROM responses").fetchone()[0])


def test_a_reply_survives_the_process_whole(tmp_path: Path) -> None:
    reply = Completion(
        text="B. The screw is bent.",
        prompt_tokens=812,
        completion_tokens=7,
        finish_reason="stop",
        letter_logprobs={"A": -3.5, "B": -0.03},
        extra={"thoughts": "looked twice"},
    )
    cache = ResponseCache(tmp_path)
    cache.put(_key(1), reply)
    assert cache.get(_key(1)) == reply  # from memory, before any write
    cache.close()
    again = ResponseCache(tmp_path)
    assert again.get(_key(1)) == reply
    assert again.get(_key(2)) is None
    assert again.hits == 1
    again.close()


def test_a_miss_runs_no_query_and_a_put_is_written_by_another_thread(tmp_path: Path) -> None:
    filled = ResponseCache(tmp_path)
    for i in range(500):
        filled.put(_key(i), Completion(text="A"))
    filled.close()
    cache = ResponseCache(tmp_path)
    statements: list[str] = []
    cache._db.set_trace_callback(statements.append)
    for i in range(500, 3000):
        assert cache.get(_key(i)) is None
    assert statements == []  # a miss is a set lookup: no SQL, so no read of the file
    cache.put(_key(9999), Completion(text="C"))
    assert statements == []  # queued, not written by the caller
    deadline = time.monotonic() + 10
    while _rows(tmp_path) < 501:  # the writer thread stores it without a flush
        assert time.monotonic() < deadline, "the queued reply was never written"
        time.sleep(0.02)
    cache.close()
    reopened = ResponseCache(tmp_path)
    hits: list[str] = []
    reopened._db.set_trace_callback(hits.append)
    assert reopened.get(_key(3)) == Completion(text="A")  # a small cache's replies are held in memory
    assert reopened.get(_key(9999)) == Completion(text="C")
    assert hits == []
    reopened.close()


def test_a_cache_too_large_to_hold_answers_a_hit_with_one_query(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    filled = ResponseCache(tmp_path)
    filled.put(_key(1), Completion(text="A"))
    filled.close()
    monkeypatch.setattr("mmad.run.cache.PRELOAD_BYTES", 10)
    cache = ResponseCache(tmp_path)
    statements: list[str] = []
    cache._db.set_trace_callback(statements.append)
    assert cache.get(_key(2)) is None and statements == []
    assert cache.get(_key(1)) == Completion(text="A")
    assert len(statements) == 1 and statements[0].startswith("SELECT value FROM responses")
    cache.close()


def test_the_size_limit_drops_the_oldest_replies_first(tmp_path: Path) -> None:
    one = len(_key(0)) + len(json.dumps({"text": "x" * 1000}))
    cache = ResponseCache(tmp_path, max_bytes=40 * one)
    for i in range(100):
        cache.put(_key(i), Completion(text="x" * 1000))
        cache.flush()  # one batch per reply, so their ages differ
    info = cache.info()
    assert 0 < info.reply_bytes <= 40 * one
    assert cache.get(_key(99)) is not None and cache.get(_key(98)) is not None
    assert cache.get(_key(0)) is None and cache.get(_key(50)) is None
    cache.close()


def test_replies_held_in_memory_are_dropped_with_the_ones_the_limit_evicts(tmp_path: Path) -> None:
    """A reopened small cache holds its replies in memory; the size limit must drop them there too, or this
    process would go on answering from replies the cache no longer has."""
    one = len(_key(0)) + len(json.dumps({"text": "x" * 1000}))
    filled = ResponseCache(tmp_path)
    for i in range(30):
        filled.put(_key(i), Completion(text="x" * 1000))
        filled.flush()
    filled.close()
    cache = ResponseCache(tmp_path, max_bytes=20 * one)  # preloads all 30, then the next write evicts
    cache.put(_key(100), Completion(text="x" * 1000))
    cache.flush()
    assert cache.get(_key(0)) is None and cache.get(_key(5)) is None
    assert cache.get(_key(29)) is not None and cache.get(_key(100)) is not None
    cache.close()


def test_a_cache_opened_without_preload_reads_replies_only_when_asked(tmp_path: Path) -> None:
    """`mmad cache info|clear` open the cache to count or empty it: they need no reply in memory."""
    filled = ResponseCache(tmp_path)
    filled.put(_key(3), Completion(text="A"))
    filled.close()
    cache = ResponseCache(tmp_path, preload=False)
    statements: list[str] = []
    cache._db.set_trace_callback(statements.append)
    assert cache.get(_key(3)) == Completion(text="A")
    assert any(s.lstrip().upper().startswith("SELECT") for s in statements), "the reply came from the database"
    assert cache.info().entries == 1
    cache.close()


WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from mmad.models.base import Completion
    from mmad.run.cache import ResponseCache, cache_key
    folder, name, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
    while time.time() < start:  # both processes begin together
        time.sleep(0.001)
    cache = ResponseCache(folder)
    for i in range(3000):
        cache.put(cache_key({"name": name}, str(i), {}), Completion(text=name))
        if i % 500 == 0:
            cache.flush()
    cache.close()
    """
)


@pytest.mark.subprocess
def test_two_processes_writing_at_once_keep_both_sets(tmp_path: Path) -> None:
    start = time.time() + 1.5
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), name, str(start)], stderr=subprocess.PIPE)
        for name in ("first", "second")
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    cache = ResponseCache(tmp_path)
    for name in ("first", "second"):
        assert all(cache.get(cache_key({"name": name}, str(i), {})) == Completion(text=name) for i in range(3000))
    assert cache.info().entries == 6000
    cache.close()


@pytest.mark.subprocess
def test_an_open_cache_sees_what_another_process_stored(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    start = time.time()
    subprocess.run([sys.executable, "-c", WRITER, str(tmp_path), "other", str(start)], check=True, timeout=120)
    cache.put(_key(1), Completion(text="mine"))
    cache.flush()  # a batch of its own brings the others' keys into the index
    assert cache.get(cache_key({"name": "other"}, "7", {})) == Completion(text="other")
    cache.close()


def test_an_older_mmads_files_are_read_and_cleared(tmp_path: Path) -> None:
    good, broken = _key(1), _key(2)
    for key, text in ((good, json.dumps({"text": "D", "prompt_tokens": 5})), (broken, "{half a fi")):
        (tmp_path / key[:2]).mkdir(exist_ok=True)
        (tmp_path / key[:2] / f"{key}.json").write_text(text)
    cache = ResponseCache(tmp_path)
    assert cache.get(good) == Completion(text="D", prompt_tokens=5)
    assert cache.get(broken) is None  # asked again, not a crash
    assert cache.info().legacy_files == 2
    assert cache.clear() == 1 + 2
    assert not any(tmp_path.glob("??/*.json"))
    assert cache.get(good) is None
    cache.close()


def test_a_damaged_database_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / DATABASE).write_bytes(b"this is not a database, just some bytes that happen to be here" * 20)
    with pytest.raises(CacheError, match=r"responses\.sqlite3.*mmad cache clear.*--no-cache"):
        ResponseCache(tmp_path)


def test_a_bad_size_limit_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMAD_CACHE_MAX_MB", "lots")
    with pytest.raises(CacheError, match="MMAD_CACHE_MAX_MB='lots'"):
        ResponseCache(tmp_path)


@pytest.mark.parametrize("raw", ["nan", "inf", "-inf", "0", "-1"])
def test_a_size_limit_that_is_not_a_finite_positive_number_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    # float() accepts 'nan' and 'inf'; int() of them raised a bare ValueError/OverflowError (a traceback)
    monkeypatch.setenv("MMAD_CACHE_MAX_MB", raw)
    with pytest.raises(CacheError, match=f"MMAD_CACHE_MAX_MB='{raw}'"):
        ResponseCache(tmp_path)


def test_cache_info_and_clear_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "responses"
    monkeypatch.setenv("MMAD_CACHE_DIR", str(folder))
    assert main(["cache", "info"]) == 0
    assert "no response cache" in capsys.readouterr().out
    assert not folder.exists()  # looking does not make one
    cache = ResponseCache(folder)
    for i in range(10):
        cache.put(_key(i), Completion(text="A"))
    assert cache.get(_key(3)) is not None
    cache.close()
    assert main(["cache", "info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["entries"] == 10 and info["hits"] == 1 and info["path"] == str(folder / DATABASE)
    assert set(info) == {
        *("path", "exists", "entries", "reply_bytes", "file_bytes", "max_bytes", "hits", "legacy_files")
    }
    assert main(["cache", "clear"]) == 0
    assert "removed 10 replies" in capsys.readouterr().out
    assert main(["cache", "info", "--dir", str(folder), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["entries"] == 0
    monkeypatch.setenv("MMAD_CACHE_MAX_MB", "0.5")
    assert main(["cache", "info"]) == 0
    assert "limit 0.5 MB" in capsys.readouterr().out  # was "limit 0 MB"


def test_cache_clear_removes_a_damaged_database_that_every_error_sends_the_user_to_clear(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = ResponseCache(tmp_path)
    cache.put(_key(1), Completion(text="A"))
    cache.close()
    with (tmp_path / DATABASE).open("r+b") as db:
        db.write(b"X" * 100)  # the header gone: "file is not a database"
    assert main(["cache", "info", "--dir", str(tmp_path)]) == 2
    assert "mmad cache clear" in capsys.readouterr().err
    assert main(["cache", "clear", "--dir", str(tmp_path)]) == 0
    assert "removed the damaged response cache" in capsys.readouterr().out
    fresh = ResponseCache(tmp_path)  # the next run starts it afresh
    assert fresh.get(_key(1)) is None
    fresh.close()


def test_a_cache_that_cannot_be_opened_is_not_sent_to_cache_clear(tmp_path: Path) -> None:
    # A read-only folder (or a database path that is not a file) raises OperationalError; clear
    # fails the same way, so the advice must be a writable folder, not `mmad cache clear`.
    (tmp_path / DATABASE).mkdir()
    with pytest.raises(CacheError) as caught:
        ResponseCache(tmp_path)
    err = str(caught.value)
    assert str(tmp_path / DATABASE) in err and "writable" in err and "--no-cache" in err
    assert "cache clear" not in err
    (tmp_path / DATABASE).rmdir()
    cache = ResponseCache(tmp_path)
    locked = str(cache._error(sqlite3.OperationalError("database is locked")))
    cache.close()
    assert "wait for the other mmad" in locked and "cache clear" not in locked


def test_a_run_refused_for_its_damaged_cache_leaves_no_run_folder_behind(
    tmp_path: Path, mmad_json: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The run folder was written before the cache was opened: after `mmad cache clear` the same
    # command then failed with "already holds a run" (an empty one).
    folder = tmp_path / "cache"
    folder.mkdir()
    (folder / DATABASE).write_bytes(b"not a database" * 100)
    monkeypatch.setenv("MMAD_CACHE_DIR", str(folder))
    out = tmp_path / "run"
    argv = ["eval", "-m", "random", "-d", str(mmad_json), "--out", str(out), "--limit", "4"]
    assert main(argv) == 2
    assert "mmad cache clear" in capsys.readouterr().err
    assert not out.exists()
    assert main(["cache", "clear"]) == 0
    assert main(argv) == 0


@pytest.mark.parametrize(("where", "why"), [("", "it is a file, not a folder"), ("sub", "part of that path is a file")])
def test_a_cache_folder_that_is_a_file_says_so(tmp_path: Path, where: str, why: str) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(CacheError, match=f"cannot be used \\({why}\\); set MMAD_CACHE_DIR"):
        ResponseCache(tmp_path / "f" / where if where else tmp_path / "f")


def test_cache_commands_name_a_cache_folder_that_is_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a cache")
    monkeypatch.setenv("MMAD_CACHE_DIR", str(a_file))
    assert main(["cache", "info"]) == 2  # not "the first run makes it": a run refuses it
    assert f"MMAD_CACHE_DIR {a_file} is a file, not a folder" in capsys.readouterr().err
    assert main(["cache", "clear", "--dir", str(a_file)]) == 2
    assert "--dir" in capsys.readouterr().err and a_file.read_text() == "not a cache"


@pytest.mark.slow
def test_eval_stores_its_replies_and_an_unusable_cache_folder_is_exit_2(
    mmad_json: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "responses"
    monkeypatch.setenv("MMAD_CACHE_DIR", str(folder))
    with running_server() as server:
        command = ["eval", "-m", "mmad:random", "-d", str(mmad_json), "--base-url", server.base_url, "-c", "8"]
        assert main([*command, "--out", str(tmp_path / "a")]) == 0
        asked = _rows(folder)
        assert asked > 0 and not any(folder.glob("??/*.json"))  # one database, no file per reply
        assert server.stats.requests > 0
        before = server.stats.requests
        assert main([*command, "--out", str(tmp_path / "b")]) == 0
        assert server.stats.requests == before  # every reply came from the cache
        capsys.readouterr()
        monkeypatch.setenv("MMAD_CACHE_DIR", str(tmp_path / "a" / "run.json"))  # a file, not a folder
        assert main([*command, "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "response cache folder" in err and "--no-cache" in err


def test_a_reply_json_cannot_hold_is_skipped_and_the_rest_stored(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    cache.put(_key(1), Completion(text="A", extra={"tensor": object()}))
    cache.put(_key(2), Completion(text="B"))
    cache.close()
    again = ResponseCache(tmp_path)
    assert again.get(_key(1)) is None and again.get(_key(2)) == Completion(text="B")
    again.close()


def test_a_ray_run_refused_for_its_damaged_cache_leaves_no_run_folder_behind(
    tmp_path: Path, mmad_json: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # With --engine ray the actors opened the cache, after prepare had written the run folder.
    folder = tmp_path / "cache"
    folder.mkdir()
    (folder / DATABASE).write_bytes(b"not a database" * 100)
    monkeypatch.setenv("MMAD_CACHE_DIR", str(folder))
    out = tmp_path / "run"
    argv = ["eval", "-m", "random", "-d", str(mmad_json), "--out", str(out), "--limit", "4", "--engine", "ray"]
    assert main(argv) == 2
    assert "mmad cache clear" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("dry", [[], ["--dry-run"]])
def test_mmad_cache_dir_under_a_file_is_refused_in_preflight_naming_the_variable(
    tmp_path: Path, mmad_json: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], dry: list[str]
) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a cache")
    monkeypatch.setenv("MMAD_CACHE_DIR", str(a_file / "responses"))
    out = tmp_path / "run"
    assert main(["eval", "-m", "random", "-d", str(mmad_json), "--out", str(out), "--limit", "4", *dry]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"MMAD_CACHE_DIR={a_file / 'responses'}: the response cache folder is under {a_file}, which is a file" in err
    assert "point MMAD_CACHE_DIR at a folder" in err and "Traceback" not in err
    assert not out.exists() and a_file.read_text() == "not a cache"
    assert main(["eval", "-m", "random", "-d", str(mmad_json), "--out", str(out), "--limit", "4", "--no-cache"]) == 0


@pytest.mark.parametrize("command", ["info", "clear"])
def test_cache_dir_without_a_value_points_at_its_own_commands_help(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cache", command, "--dir"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"Option '--dir' requires an argument. (see 'mmad cache {command} --help')" in err


def test_cache_help_shows_each_commands_first_sentence_whole(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["cache", "--help"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.startswith("  ")}
    assert "..." not in lines["info"] and lines["info"].rstrip().endswith("hits.")
    assert "..." not in lines["clear"]


def test_a_reply_from_the_cache_prepares_no_image_and_a_changed_file_is_asked_again(tmp_path: Path) -> None:
    """Issue #22: the key hashes the image files (with the settings), not the prepared JPEGs, so a
    run answered from the cache never decodes, resizes or encodes an image."""
    import asyncio

    from PIL import Image

    from mmad.protocol.encoding import ImageSettings
    from mmad.protocol.images import ImageEncoder
    from mmad.protocol.messages import ImagePart, Message, PosedQuestion, Prompt, TextPart
    from mmad.run.caller import ModelClient
    from mmad.run.ledger import EngineSettings, EngineStats
    from mmad.run.limits import RetryPolicy
    from tests.helpers.recording import RecordingModel

    template, query = tmp_path / "good.png", tmp_path / "query.png"
    Image.new("RGB", (40, 30), (90, 90, 90)).save(template)
    Image.new("RGB", (40, 30), (200, 30, 30)).save(query)
    question = PosedQuestion(
        question_id="q#0", image="q", question_type="Anomaly Detection", text="Is there a defect?",
        options={"A": "Yes", "B": "No"}, correct_answer="A", number=1,
    )  # fmt: skip
    parts = (ImagePart(path=str(template), role="template"), ImagePart(path=str(query)), TextPart(text="Defect?"))
    prompt = Prompt(image="q", messages=(Message(role="user", parts=parts),), questions=(question,))
    settings = EngineSettings(policy=RetryPolicy(0, 0.01, 0.01, 5.0), concurrency=1)
    settings.cache_settings["images"] = ImageSettings().describe()

    def ask() -> tuple[bool, int, int]:
        model, images, cache = RecordingModel(), ImageEncoder(ImageSettings()), ResponseCache(tmp_path / "cache")
        try:
            reply = asyncio.run(ModelClient(model, images, settings, EngineStats(), cache=cache)(prompt))
        finally:
            cache.close()
        return reply.cached, len(model.requests), images.encoded

    assert ask() == (False, 1, 2)
    assert ask() == (True, 0, 0)  # nothing sent, nothing prepared
    Image.new("RGB", (40, 30), (30, 200, 30)).save(query)  # the same path, other pixels
    assert ask() == (False, 1, 2)


class _Thinker(Model):
    """The random baseline, with a reply of its own to the chain-of-thought turn (it poses no question),
    so that turn's cache entries can be told from the question turns'."""

    name = "thinker"
    THOUGHTS = "Looking closely: the surface is even, the edges are straight."

    def __init__(self) -> None:
        self.random = RandomModel(seed=3)

    async def generate(self, request: Request) -> Completion:
        if not request.choices:
            return Completion(text=self.THOUGHTS)
        return await self.random.generate(request)


def test_a_cot_question_whose_cot_turn_was_sent_is_not_counted_from_the_cache(mmad_json: Path, tmp_path: Path) -> None:
    # Only the question turn's reply was looked at: a CoT turn sent again (its cache entry gone) gave the
    # same thoughts, so the question turn was found in the cache and the question counted as cached.
    cache = tmp_path / "cache"
    settings = {"strategies": ["cot"], "cache_dir": str(cache), "limit": 6, "concurrency": 2}
    with running_server(_Thinker()) as server:
        first = evaluate("compat:thinker", mmad_json, out=tmp_path / "a", base_url=server.base_url, **settings)
        asked = server.stats.requests
        with sqlite3.connect(cache / DATABASE) as db:  # the CoT turns' replies leave the cache, the rest stay
            gone = db.execute("DELETE FROM responses WHERE value LIKE ?", (f"%{_Thinker.THOUGHTS}%",)).rowcount
        images = len({r.image for r in read_records(tmp_path / "a" / "records.jsonl")})
        assert first.complete and first.stats.cached == 0 and 0 < gone == images < asked
        again = evaluate("compat:thinker", mmad_json, out=tmp_path / "b", base_url=server.base_url, **settings)
        assert server.stats.requests == asked + images  # the CoT turns only: each question turn was cached
        assert again.complete and again.stats.done == first.stats.done
        assert again.stats.cached == 0
        assert json.loads((tmp_path / "b" / "run.json").read_text())["usage"]["cached"] == 0
        # Everything in the cache: every question is.
        third = evaluate("compat:thinker", mmad_json, out=tmp_path / "c", base_url=server.base_url, **settings)
        assert server.stats.requests == asked + images
    assert third.stats.cached == third.stats.done == first.stats.done
