"""`mmad` as a process of its own in tests: its command line and environment, started in the background
as a scheduler's script would, waited on with a deadline, and never left running."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path


def process_env(columns: int = 200) -> dict[str, str]:
    """This environment, with output unbuffered (a log read mid-run is current) and a fixed terminal width."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": str(columns)}


def mmad_command(args: Sequence[str]) -> list[str]:
    """The command line of `mmad` with these arguments."""
    return [sys.executable, "-m", "mmad", *args]


def eval_args(mmad_json: Path, out: Path, base_url: str, *, concurrency: int) -> list[str]:
    """`mmad eval`'s arguments for a per-question run of mmad:random against a test server, uncached."""
    return [
        "eval",
        "-m",
        "mmad:random",
        "-d",
        str(mmad_json),
        "--out",
        str(out),
        "--base-url",
        base_url,
        "--concurrency",
        str(concurrency),
        "--no-cache",
        "--protocol",
        "per-question",
    ]


def in_background(command: list[str], log: Path) -> tuple[subprocess.Popen[str], int]:
    """Start `command` with `&` from `bash -c` (no job control: the child inherits SIGINT ignored);
    returns the shell and the command's pid. The shell exits with the command's exit status."""
    quoted = " ".join("'" + part.replace("'", "'\\''") + "'" for part in command)
    shell = subprocess.Popen(
        ["bash", "-c", f"{quoted} 2>'{log}' & echo $!; wait $!"],
        env=process_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert shell.stdout is not None
    pid = int(shell.stdout.readline())
    shell.stdout.close()  # nothing more comes: the command's own output goes to the log
    return shell, pid


@contextlib.contextmanager
def never_left_running(
    process: subprocess.Popen[str] | subprocess.Popen[bytes], pid: int | None = None
) -> Iterator[None]:
    """However the block ends, the process (or, for a background shell, the command ``pid``) is not left
    running: a failed assertion inside must not leave a run writing into the next test's time."""
    try:
        yield
    finally:
        if process.poll() is None:
            os.kill(process.pid if pid is None else pid, signal.SIGKILL)
            process.wait(10)


def sigint_is_ignored(pid: int) -> bool:
    """What /proc says of the process's SIGINT disposition."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)))
    return False


def log_text(path: Path) -> str:
    """A log the background shell is still to create (its `2>` redirection races the test) reads as empty."""
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def wait_until(condition: Callable[[], bool], timeout_s: float) -> bool:
    """Whether ``condition()`` came true before the deadline (polled every 20 ms)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()
