"""What the commands tell a user beyond the table: replies that could not be read, shown as text."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmad.cli import main
from mmad.models.base import Completion, Model, Request
from tests.helpers.serving import running_server

REPLY = "Hard to say; <b>it</b> could be [red]several[/] things."


class Rambler(Model):
    async def generate(self, request: Request) -> Completion:
        return Completion(text=REPLY)


def test_unreadable_replies_are_counted_and_shown_literally(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    with running_server(Rambler()) as server:
        args = ["eval", "-m", "compat:x", "--base-url", server.base_url, "-d", str(mmad_json), "--out", str(out)]
        code = main([*args, "--no-cache", "--limit", "10"])
    captured = capsys.readouterr()
    assert code == 0  # every question has a reply: unparsed is an outcome, not a failure
    assert "10 replies had no readable letter" in captured.err and "--judge" in captured.err
    assert repr(REPLY) in captured.err  # rich markup in model text is printed, not applied
    assert main(["score", str(out)]) == 0
    captured = capsys.readouterr()
    assert "10 replies had no readable letter" in captured.err and repr(REPLY) in captured.err
