"""Image workers are spawned only when they cannot run the caller's script again: a spawned worker runs
the script's top-level code, so `mmad.evaluate` at the top of a script, above a ``__main__`` guard kept for
other code, was run again by each worker (every question asked three times on two cores)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """\
import threading
from mmad.protocol.images import spawn_is_safe

def ask(where):
    print(where, spawn_is_safe())

ask("top")
{guard}
    ask("guard")
    worker = threading.Thread(target=ask, args=("thread",))
    worker.start()
    worker.join()
"""


def _answers(tmp_path: Path, guard: str) -> dict[str, str]:
    script = tmp_path / "job.py"
    script.write_text(SCRIPT.format(guard=guard))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, check=True)
    return dict(line.split() for line in done.stdout.splitlines())


@pytest.mark.subprocess
def test_only_code_inside_the_main_guard_may_spawn_workers(tmp_path: Path) -> None:
    # top-level code above the guard runs again in each worker; what the guard runs does not
    assert _answers(tmp_path, 'if __name__ == "__main__":') == {"top": "False", "guard": "True", "thread": "True"}
    assert _answers(tmp_path, "if '__main__' == __name__:")["guard"] == "True"
    # no guard at all: the same code, every line of it at the top level
    assert set(_answers(tmp_path, "if True:").values()) == {"False"}
