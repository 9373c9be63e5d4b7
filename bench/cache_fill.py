"""Response-cache folders already holding other runs' replies, for the cache benches."""

from __future__ import annotations

import json
from pathlib import Path

from mmad.models.base import Completion
from mmad.run.cache import ResponseCache, cache_key


def other_keys(n: int) -> list[str]:
    """The keys of n requests the measured run never makes."""
    return [cache_key({"name": "another-model"}, f"prompt {i}", {}) for i in range(n)]


def fill_with_other_replies(folder: Path, n: int, reply: Completion | None = None) -> None:
    """A cache folder holding n replies to requests the measured run never makes."""
    cache = ResponseCache(folder)
    for key in other_keys(n):
        cache.put(key, reply or Completion(text="B", prompt_tokens=900))
    cache.close()


def fill_old_style(folder: Path, n: int) -> None:
    """The same, as mmad before issue #22 kept it: one `<hash[:2]>/<hash>.json` file per reply."""
    for key in other_keys(n):
        (folder / key[:2]).mkdir(parents=True, exist_ok=True)
        (folder / key[:2] / f"{key}.json").write_text(json.dumps({"text": "B", "prompt_tokens": 900}))
