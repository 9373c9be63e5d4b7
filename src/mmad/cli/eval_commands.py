"""`mmad eval`, `mmad serve`, `mmad demo` (filled in by the evaluation engine)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the evaluation commands to the app."""
