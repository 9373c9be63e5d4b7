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


@pytest.mark.parametrize("width", [80, 100, 200])
def test_the_progress_line_keeps_the_count_and_time_left_on_a_narrow_terminal(width: int) -> None:
    import io

    from rich.console import Console

    from mmad.cli.common import add_run_task, progress_bar

    buffer = io.StringIO()
    terminal = Console(file=buffer, width=width, force_terminal=True, color_system=None)
    bar = progress_bar(terminal)
    task = add_run_task(bar, "openai-gpt-4o_1shot_per-question_rag+cot")
    bar.update(task, total=538, completed=120, rate=12.3, failed=2, tokens=12345, cost=0.1234, conc=16)
    terminal.print(bar.make_tasks_table(bar.tasks))
    line = buffer.getvalue().rstrip("\n")
    assert "\n" not in line and len(line) <= width
    assert "120/538" in line and "12.3 q/s" in line and "failed 2" in line and ":" in line.split("q/s")[1]
