"""hf: models without a reachable Hub: refused in seconds when not cached, loaded from the cache when they are.

The Hub is played by a local server that accepts connections and never answers (a network that
drops packets): before, transformers waited on it for minutes.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("transformers", reason="the [hf] extra is installed by `make setup`")

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]


@pytest.fixture
def silent_hub() -> Iterator[str]:
    """An endpoint that accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        for connection in held:
            connection.close()
        listener.close()


def _env(hub: str, cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_OFFLINE")}  # online, as a user's machine
    return {**env, "HF_ENDPOINT": hub, "HF_HUB_CACHE": str(cache), "HF_HOME": str(cache.parent / "hf-home")}


def test_an_uncached_model_without_the_hub_is_refused_in_seconds(
    silent_hub: str, mmad_json: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "mmad", "eval", "-m", "hf:someorg/tiny-vlm", "-d", str(mmad_json), "--out", str(out)],
        env={**_env(silent_hub, tmp_path / "cache"), "COLUMNS": "300"},
        capture_output=True,
        text=True,
        timeout=240,
    )
    took = time.monotonic() - started
    assert done.returncode == 2, done.stderr[-2000:]
    text = " ".join(done.stderr.split())
    assert "hf:someorg/tiny-vlm is not in the Hugging Face cache" in text and f"the Hub at {silent_hub}" in text
    assert "no answer within 5 s" in text and "hf download someorg/tiny-vlm" in text
    assert took < 60, f"{took:.0f} s before the error (2 min 25 s before)"
    assert not out.exists()


def test_a_cached_model_loads_without_the_hub(silent_hub: str, tmp_path: Path) -> None:
    from tests.helpers.tiny_vlm import make_tiny_llava

    # The Hugging Face cache's layout: refs/main names the snapshot that holds the files.
    revision = "0" * 40
    repo = tmp_path / "cache" / "models--someorg--tiny-llava"
    shutil.copytree(make_tiny_llava(tmp_path / "made"), repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    load = "from mmad.models.hf import TransformersModel; print(TransformersModel('someorg/tiny-llava').name)"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", load],
        env=_env(silent_hub, tmp_path / "cache"),
        capture_output=True,
        text=True,
        timeout=240,
    )
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "hf:someorg/tiny-llava"
    assert took < 90, f"{took:.0f} s to load a cached model"
