"""The `mmad` command line. Only this package talks to the terminal."""

from __future__ import annotations

import logging
import sys

import typer
from rich.logging import RichHandler

from mmad.cli.common import err_console
from mmad.errors import MMADError

app = typer.Typer(
    name="mmad",
    help="Test multimodal LLMs as industrial quality inspectors (the MMAD benchmark and beyond).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _configure(
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="-v info, -vv debug"),
) -> None:
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(
        level=level,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False)],
        force=True,
    )


def _register() -> None:
    from mmad.cli import data_commands, eval_commands, report_commands, score_commands

    data_commands.register(app)
    score_commands.register(app)
    report_commands.register(app)
    eval_commands.register(app)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; mmad's own errors become one red line and exit status 2."""
    _register()
    try:
        status = app(args=argv, standalone_mode=False)
    except MMADError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        return 2
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except typer.Abort:
        err_console.print("aborted")
        return 130
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    except Exception as exc:
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            return exc.exit_code
        raise
    return status if isinstance(status, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
