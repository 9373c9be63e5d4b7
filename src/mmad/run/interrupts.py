"""What interrupted a run, for run.json's ``stopped_reason``.

The CLI turns a SIGTERM (a scheduler's stop, ``timeout``, ``kill``) into Ctrl-C's KeyboardInterrupt, so
the run saves what it has and can be resumed; this module keeps the run from recording it as a Ctrl-C.
Kept apart from the runner so that the CLI's signal handler imports nothing heavy.
"""

from __future__ import annotations

_cause = "Ctrl-C"


def note_interrupt_cause(cause: str) -> None:
    """Name what interrupts the run now ('SIGTERM'); 'Ctrl-C' until something else is named."""
    global _cause
    _cause = cause


def interrupt_cause() -> str:
    """What the latest interruption was: 'Ctrl-C' unless a signal handler named another cause."""
    return _cause
