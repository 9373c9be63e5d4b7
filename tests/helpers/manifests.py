"""run.json files as earlier versions of mmad wrote them, built in the test from today's config.

Version 1 is what `run/prepare.py`'s ``_new_meta`` and `run/finish.py` wrote before the manifest was typed
(commit 967169a): no ``schema_version``, the finish keys only once a session ended. Version 0 is what
``run/evaluate.py`` wrote before the config had sections (commit ce05dcd): a flat config, and the prompt,
image and strategy settings copied beside it.
"""

from __future__ import annotations

from typing import Any


def v1_config(model: str, data: str, *, shots: int = 1, limit: int | None = None) -> dict[str, Any]:
    """A config as version 1 recorded it: `RunConfig.from_flat(model, data).model_dump(mode="json")` at
    commit 967169a, kept as written then (``images.size``, not today's name) so that renaming a field
    without teaching the reader its old name fails here."""
    return {
        "model": model,
        "data": data,
        "recipe": None,
        "overridden": [],
        "prompt": {
            "protocol": "per-question",
            "shots": shots,
            "similar_templates": False,
            "blind": False,
            "circular": False,
            "strategies": [],
            "knowledge": None,
            "cot_history": False,
        },
        "decoding": {"max_tokens": 128, "temperature": 0.0},
        "images": {
            "size": 512,
            "format": "jpeg",
            "detail": "low",
            "original": False,
            "resize": "mmad",
            "mime": "content",
        },
        "answers": {"parser": "mmad", "judge": None, "likelihood": False, "answer_from": "text"},
        "selection": {"limit": limit, "subset": None, "datasets": [], "categories": [], "subtasks": [], "seed": 0},
        "execution": {
            "concurrency": 16,
            "max_retries": 5,
            "timeout_s": 120.0,
            "retry_base_s": 1.0,
            "retry_max_s": 60.0,
            "max_cost": None,
            "max_errors": 20,
            "prices": None,
            "cache": True,
            "cache_dir": None,
            "engine": "local",
            "ray_address": None,
            "ray_actors": 2,
            "ray_gpus": 0.0,
        },
        "connection": {
            "base_url": None,
            "key_env": None,
            "extra_body": {},
            "text_only": False,
            "device": None,
            "dtype": None,
            "batch_size": None,
            "model_args": {},
        },
    }


def v1_run_json(
    config: dict[str, Any],
    *,
    sha256: str = "0" * 64,
    selected: int = 4,
    in_benchmark: int = 10,
    finished: bool = True,
    status: str = "complete",
) -> dict[str, Any]:
    """A run.json of version 1 (no schema_version), as a run of ``config`` (`v1_config`) wrote it."""
    card = {"protocol": config["prompt"]["protocol"], "shots": config["prompt"]["shots"], "hash": "c" * 64}
    meta: dict[str, Any] = {
        "mmad_version": "0.9.0",
        "created_at": "2026-12-01T10:00:00+00:00",
        "python": "3.11.7",
        "config": config,
        "dataset": {
            "source": config["data"],
            "sha256": sha256,
            "questions_in_benchmark": in_benchmark,
            "questions_selected": selected,
        },
        "card": card,
        "card_hash": card["hash"],
        "status": "running",
        "model": {"name": config["model"], "endpoint": None},
    }
    if finished:
        meta.update(
            status=status,
            finished_at="2026-12-01T10:05:00+00:00",
            missing=0,
            failed=0,
            stopped_reason=None,
            usage={
                "prompt_tokens": 100,
                "completion_tokens": 20,
                "cost_usd": 0.5,
                "cached": 0,
                "retries": 1,
                "elapsed_s": 3.0,
            },
        )
    return meta


def v0_run_json(
    model: str, data: str, *, shots: int = 1, limit: int | None = None, selected: int = 4
) -> dict[str, Any]:
    """A run.json of version 0 (a flat config), as the first runner wrote it for a finished run."""
    flat = {
        "model": model,
        "data": data,
        "protocol": "per-question",
        "shots": shots,
        "similar_templates": False,
        "blind": False,
        "circular": False,
        "max_tokens": 128,
        "temperature": 0.0,
        "strategies": [],
        "knowledge": None,
        "image_size": 512,
        "image_format": "jpeg",
        "detail": "low",
        "original_images": False,
        "parser": "mmad",
        "judge": None,
        "likelihood": False,
        "limit": limit,
        "datasets": [],
        "categories": [],
        "subtasks": [],
        "seed": 0,
        "concurrency": 16,
        "max_retries": 5,
        "timeout_s": 120.0,
        "retry_base_s": 1.0,
        "retry_max_s": 60.0,
        "max_cost": None,
        "prices": None,
        "cache": True,
        "cache_dir": None,
        "base_url": None,
        "key_env": None,
        "extra_body": {},
        "text_only": False,
    }
    return {
        "mmad_version": "0.1.0",
        "created_at": "2026-11-28T04:00:00+00:00",
        "python": "3.11.7",
        "config": flat,
        "dataset": {"source": data, "sha256": "0" * 64, "questions_selected": selected},
        "model": {"name": model, "endpoint": None},
        "protocol": {"variant": "per-question", "shots": shots, "max_tokens": 128},
        "images": "longest side 512px, JPEG q95, detail=low",
        "strategies": [],
        "status": "complete",
        "finished_at": "2026-11-28T04:01:00+00:00",
        "missing": 0,
        "failed": 0,
        "stopped_reason": None,
        "usage": {"prompt_tokens": 10, "completion_tokens": 2, "cost_usd": 0.0, "cached": 0, "retries": 0},
    }
