"""`mmad eval` against servers that cannot answer: each stops at once and says what to do."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from mmad.cli import main
from mmad.models.registry import create_model
from mmad.serve.server import ChatServer, serve_in_thread


def _eval(mmad_json: Path, out: Path, base_url: str, *extra: str) -> list[str]:
    return [
        "eval",
        "-m",
        "mmad:fixed:B",
        "-d",
        str(mmad_json),
        "--out",
        str(out),
        "--no-cache",
        "--base-url",
        base_url,
        *extra,
    ]


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, float]:
    started = time.monotonic()
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out + captured.err, time.monotonic() - started


def test_a_text_only_server_sent_images_stops_at_once_and_names_blind(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with serve_in_thread(ChatServer(create_model("fixed:B"), text_only=True)) as server:
        code, text, _ = _run(_eval(mmad_json, tmp_path / "seeing", server.base_url, "--concurrency", "1"), capsys)
        sent = server.stats.requests
        assert code == 1 and "images_refused" in text and "--blind" in text and "--text-only where" in text
        assert sent == 1, "every request would meet the same 500: the first one stops the run"
        code, text, _ = _run(_eval(mmad_json, tmp_path / "blind", server.base_url, "--blind", "--limit", "6"), capsys)
    assert code == 0, text


def test_text_only_server_without_blind_is_refused_before_anything_is_sent(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with serve_in_thread(ChatServer(create_model("fixed:B"))) as server:
        code, text, _ = _run(_eval(mmad_json, tmp_path / "run", server.base_url, "--text-only-server"), capsys)
        assert server.stats.requests == 0
    assert code == 2 and "--text-only sends no images" in text and "add --blind" in text
    assert not (tmp_path / "run").exists()


def test_https_against_the_plain_http_server_is_named_tls_at_once(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with serve_in_thread(ChatServer(create_model("fixed:B"))) as server:
        https = server.base_url.replace("http://", "https://")
        code, text, took = _run(_eval(mmad_json, tmp_path / "run", https), capsys)
    assert code == 1 and "tls" in text and "use http:// in --base-url" in " ".join(text.split())
    assert took < 20, f"the run took {took:.0f} s to name the cause"  # it hung for over 10 minutes before
    assert json.loads((tmp_path / "run" / "run.json").read_text())["stopped_reason"].startswith("tls: ")


def test_a_server_that_refuses_the_first_connection_stops_the_run_at_once(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # The default retries (5, with back-off) took 50 s before; nothing has ever answered, so none are made.
    code, text, took = _run(_eval(mmad_json, tmp_path / "run", f"http://127.0.0.1:{port}/v1"), capsys)
    assert code == 1 and "is the server running" in text
    assert took < 15, f"{took:.0f} s before the run stopped"
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["stopped_reason"].startswith("connection_refused: ")


def test_a_model_name_the_server_does_not_serve_stops_at_once(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with serve_in_thread(ChatServer(create_model("fixed:B"))) as server:
        args = _eval(mmad_json, tmp_path / "run", server.base_url, "--concurrency", "1")
        args[2] = "mmad:gpt-4o"
        code, text, _ = _run(args, capsys)
        assert server.stats.requests == 1
    assert code == 1 and "not_found" in text and "gpt-4o" in text
