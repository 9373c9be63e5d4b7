"""The `mmad` command line. Only this package talks to the terminal.

Exit codes: 0 success; 1 the command ran but its result is incomplete (a partial run, a benchmark
with errors); 2 a usage or input error (nothing was changed); 130 interrupted.
"""

from __future__ import annotations

import functools
import gc
import logging
import signal
import sys
from types import FrameType
from typing import Any, NoReturn

import typer
from rich.logging import RichHandler
from typer._click.exceptions import ClickException, NoArgsIsHelpError, NoSuchOption, UsageError

from mmad.cli.common import err_console, fit_consoles
from mmad.errors import MMADError
from mmad.run.secrets import RedactingFilter, redact

app = typer.Typer(
    name="mmad",
    help="Test multimodal LLMs as industrial quality inspectors (the MMAD benchmark and beyond).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        from mmad._version import __version__

        typer.echo(f"mmad {__version__}")
        raise typer.Exit(0)


@app.callback()
def _configure(
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="-v info, -vv debug (mmad's own messages)"),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="print the version"),
) -> None:
    # Only mmad's loggers get louder: other libraries' debug output would drown the run's.
    fit_consoles()
    handler = RichHandler(console=err_console, show_path=False)
    # On the handler, not a logger: a filter on a logger misses its children's records.
    handler.addFilter(RedactingFilter())
    logging.basicConfig(level=logging.WARNING, format="%(message)s", handlers=[handler], force=True)
    logging.getLogger("mmad").setLevel(logging.WARNING - 10 * min(verbose, 2))


@functools.cache  # once per process: each call would add every command to `app` again
def _register() -> None:
    from mmad.cli import (
        build_commands,
        cache_commands,
        catalog_commands,
        data_commands,
        eval_commands,
        report_commands,
        score_commands,
        serve_commands,
        sweep_commands,
    )

    data_commands.register(app)
    eval_commands.register(app)
    catalog_commands.register(app)
    serve_commands.register(app)
    build_commands.register(app)
    score_commands.register(app)
    report_commands.register(app)
    sweep_commands.register(app)
    cache_commands.register(app)


TOP_LEVEL_OPTIONS = ("-v", "-vv", "--verbose", "--version")
"""Options of `mmad` itself: given after a command, click says only that the command lacks them."""


def _command_path(argv: list[str]) -> str:
    """The command an argument list names (``mmad cache info``), for a usage error that click raised
    without its context (an option missing its value)."""
    path, command = ["mmad"], _command()
    for word in argv:
        if word in TOP_LEVEL_OPTIONS:
            continue
        sub = getattr(command, "commands", {}).get(word)
        if sub is None:
            break
        path.append(word)
        command = sub
    return " ".join(path)


def _usage_line(exc: UsageError, argv: list[str] | None = None) -> str:
    given = sys.argv[1:] if argv is None else argv
    command = exc.ctx.command_path if exc.ctx is not None else _command_path(given)
    if isinstance(exc, NoSuchOption) and exc.option_name in TOP_LEVEL_OPTIONS and command != "mmad":
        option = exc.option_name
        usage = "mmad --version" if option == "--version" else f"mmad {option} {command.split()[-1]} ..."
        return f"error: {exc.format_message()} ({option} goes before the command: {usage})"
    return f"error: {exc.format_message()} (see '{command} --help')"


def _file_system_message(exc: OSError) -> str:
    path = exc.filename or "a path"
    if isinstance(exc, FileExistsError):
        return f"cannot make the folder {path}: a file of that name is there; choose another path"
    if isinstance(exc, IsADirectoryError):
        return f"cannot write {path}: it is a folder; give a file name"
    if isinstance(exc, NotADirectoryError):
        return f"cannot use {path}: part of that path is a file, not a folder"
    if isinstance(exc, PermissionError):
        return f"cannot use {path}: permission denied; choose a path you may read or write"
    return f"cannot use {path}: {exc.strerror or exc}"


def _terminate_as_interrupt(signum: int, frame: FrameType | None) -> None:
    # A SIGTERM (a scheduler's stop, `timeout`, `kill`) takes Ctrl-C's path: records saved, run.json
    # marked interrupted, the resume command printed; otherwise the run would stay "running" for ever.
    from mmad.run.interrupts import note_interrupt_cause

    note_interrupt_cause(signal.Signals(signum).name)
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):  # asyncio.run's handler cancels its main task; Python's own raises KeyboardInterrupt
        handler(signal.SIGINT, frame)
        return
    # SIGINT ignored: a child started with `&` by a non-interactive shell (CI, SLURM scripts) inherits that.
    # Re-raising SIGINT would then do nothing, and only SIGKILL would stop mmad; SIGTERM must stop it.
    import asyncio

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        raise KeyboardInterrupt from None
    # Raised here, inside whichever task's step the signal interrupted, the KeyboardInterrupt is also
    # stored in that task and logged at exit as "Task exception was never retrieved" with a traceback;
    # raised from a callback it leaves the loop as an idle Ctrl-C does, and asyncio.run cancels the tasks.
    loop.call_soon_threadsafe(_interrupt)


def _interrupt() -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run the CLI: usage and mmad's own errors become one red line on stderr; never a traceback for them."""
    _register()
    from mmad.run.interrupts import note_interrupt_cause

    note_interrupt_cause("Ctrl-C")  # until a SIGTERM says otherwise
    try:
        previous = signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    except ValueError:  # not the main thread (an embedding application): its own handlers stay
        previous = None
    try:
        return _main(argv)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def entry() -> NoReturn:
    """The ``mmad`` program (and ``python -m mmad``): `main`, then the process ends."""
    status = main()
    # The interpreter's last collection would walk every object still alive (a run's benchmark is
    # ~50,000 models: 0.3 s of a 2,944-question run's 13 s); the process is ending, so skip it.
    gc.freeze()
    sys.exit(status)


@functools.cache
def _command() -> Any:
    """The click command behind `app`, built once per process: building reads every command's signature
    (about 0.2 s), which each in-process call (tests, notebooks) would otherwise pay again."""
    return typer.main.get_command(app)


def _main(argv: list[str] | None) -> int:
    try:
        status = _command()(args=argv, standalone_mode=False, prog_name="mmad")
    except NoArgsIsHelpError as exc:
        exc.show()
        return 0
    except UsageError as exc:
        err_console.print(redact(_usage_line(exc, argv)), style="red", highlight=False, markup=False, soft_wrap=True)
        return 2
    except MMADError as exc:
        err_console.print(f"error: {redact(str(exc))}", style="red", highlight=False, markup=False, soft_wrap=True)
        return 2
    except ClickException as exc:
        err_console.print(f"error: {redact(exc.format_message())}", style="red", highlight=False, markup=False)
        return exc.exit_code or 2
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("interrupted")
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:  # the file system's answer (a folder where a file goes, no permission, a full disk)
        err_console.print(
            f"error: {_file_system_message(exc)}",
            style="red",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        return 2
    return status if isinstance(status, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
