"""What the response cache costs per request, alone: a folder already holding 24,000 other replies,
then 3,000 requests that miss and store their reply, then the same 3,000 hits after a reopen.

Issue #22 measured the one-file-per-reply cache at 0.9 ms a miss (a file that is not there,
opened in a folder of 24,000 files) plus a file written per reply. Targets: a miss and a put
together well under 0.1 ms of the caller's time, a hit under 0.05 ms.

    python bench/bench_cache.py [--old-src DIR]

--old-src runs the same against another mmad's cache module (e.g. `git archive 06f9ed3 src`).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from cache_fill import fill_old_style, fill_with_other_replies
from mmad.models.base import Completion
from mmad.run.cache import ResponseCache, cache_key

OTHERS = 24_000
REQUESTS = 3_000
REPLY = Completion(text="B. The screw is bent.", prompt_tokens=900, completion_tokens=7, finish_reason="stop")


def _old_module(src: Path) -> Any:
    spec = importlib.util.spec_from_file_location("old_cache", src / "mmad" / "run" / "cache.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fill(folder: Path, old: bool) -> None:
    if old:
        fill_old_style(folder, OTHERS)
    else:
        fill_with_other_replies(folder, OTHERS, REPLY)


def measure(make: Any, old: bool, tag: str) -> None:
    folder = Path(tempfile.mkdtemp(prefix="mmad-bench-cache-"))
    _fill(folder, old)
    keys = [cache_key({"name": "mine"}, f"prompt {i}", {}) for i in range(REQUESTS)]
    started = time.perf_counter()
    cache = make(folder)
    opened = time.perf_counter() - started
    started = time.perf_counter()
    for key in keys:
        assert cache.get(key) is None
        cache.put(key, REPLY)
    asked = time.perf_counter() - started
    if hasattr(cache, "close"):
        cache.close()  # the last batch written: the writer thread's time is not the caller's
    cache = make(folder)
    started = time.perf_counter()
    assert all(cache.get(key) == REPLY for key in keys)
    hit = time.perf_counter() - started
    if hasattr(cache, "close"):
        cache.close()
    print(
        f"{tag}: open {opened * 1e3:.0f} ms; miss + put {asked / REQUESTS * 1e3:.3f} ms per request; "
        f"hit {hit / REQUESTS * 1e3:.3f} ms per request"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--old-src", type=Path, default=None)
    args = parser.parse_args()
    print(f"a folder of {OTHERS:,} other replies, {REQUESTS:,} requests; the caller's wall time")
    for _ in range(2):
        measure(ResponseCache, False, "SQLite cache")
        if args.old_src:
            old = _old_module(args.old_src)
            measure(old.ResponseCache, True, "one file per reply")


if __name__ == "__main__":
    main()
