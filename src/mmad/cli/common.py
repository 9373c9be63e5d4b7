"""Shared terminal objects of the CLI."""

from __future__ import annotations

import os

from rich.console import Console

console = Console()
if not console.is_terminal and "COLUMNS" not in os.environ:
    # Piped into a log or a file, rich assumes 80 columns and cuts the score tables' numbers.
    console = Console(width=140)
err_console = Console(stderr=True)
