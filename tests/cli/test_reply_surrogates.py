"""A reply that holds half of a character (JSON's ``"\\ud800"``) is recorded with U+FFFD in its place: the
run goes on and its files are valid UTF-8 (the record's write raised, and the run stopped with a traceback)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmad.cli import main
from mmad.models.base import Completion, Model, Request
from mmad.models.openai_convert import from_openai_response
from tests.helpers.serving import running_server

HALF = "\ud83d"  # the first half of 😀 alone


class HalfCharacterModel(Model):
    """Answers A, then a character cut in half, as a server that splits a reply between two tokens may."""

    def __init__(self) -> None:
        self.name = "half"

    async def generate(self, request: Request) -> Completion:
        return Completion(text=f"Answer: A {HALF}", prompt_tokens=1, completion_tokens=3)


def test_a_reply_with_a_lone_surrogate_is_recorded_and_the_run_completes(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    with running_server(HalfCharacterModel()) as server:
        command = ["eval", "-m", "compat:half", "-d", str(mmad_json), "--base-url", server.base_url, "--no-cache"]
        assert main([*command, "--limit", "4", "--out", str(run)]) == 0
    capsys.readouterr()
    records = [json.loads(line) for line in (run / "records.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(records) == 4
    assert all("Answer: A \ufffd" in json.dumps(record, ensure_ascii=False) for record in records)
    answers = next(run.glob("answers_*.json"))
    assert [a["gpt_answer"] for a in json.loads(answers.read_text(encoding="utf-8"))] == ["A"] * 4


def test_lone_surrogates_in_text_refusal_snapshot_and_tool_calls_become_replacement_characters() -> None:
    completion = from_openai_response(
        {
            "model": f"snap{HALF}",
            "choices": [
                {
                    "message": {
                        "content": f"A{HALF}",
                        "refusal": f"no{HALF}",
                        "tool_calls": [{"id": "c1", "function": {"name": f"zoom{HALF}", "arguments": f'"{HALF}"'}}],
                    },
                    "finish_reason": "stop",
                }
            ],
        }
    )
    assert completion.text == "A\ufffdno\ufffd"
    assert completion.extra == {"model_snapshot": "snap\ufffd"}
    call = completion.tool_calls[0]
    assert (call.name, call.arguments) == ("zoom\ufffd", '"\ufffd"')
    # a whole character sent as its two halves is one character, and stays
    whole = json.loads('{"choices": [{"message": {"content": "\\ud83d\\ude00"}}]}')
    assert from_openai_response(whole).text == "\U0001f600"
