"""`mmad.cli.main` called many times in one process, as the tests (and notebooks) do: each call costs one call.

Every call used to add all commands to the app again and rebuild the click command from all of them,
so the n-th call in a process read n times 107 signatures: whole seconds per call late in a test session.
"""

from __future__ import annotations

from typing import Any

import pytest
import typer.main

from mmad import cli


def test_repeated_calls_register_and_build_the_commands_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    built: list[Any] = []
    real = typer.main.get_command

    def counting(app: typer.Typer) -> Any:
        built.append(app)
        return real(app)

    monkeypatch.setattr(typer.main, "get_command", counting)
    cli._command.cache_clear()
    for _ in range(3):
        assert cli.main(["--version"]) == 0
        assert cli.main(["models"]) == 0
    capsys.readouterr()
    assert len(built) == 1
    names = [info.name for info in cli.app.registered_commands]
    assert len(names) == len(set(names)), "a command registered twice"
