"""Joining Ray for a run: the cluster named by --ray-address or $RAY_ADDRESS, else a local one.

A Ray this module started is stopped again when the run ends; one that was already running in
the process (a notebook's, a test's, a sweep's) is left as it was.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from mmad.errors import MissingExtraError

logger = logging.getLogger(__name__)


def import_ray() -> ModuleType:
    """The ``ray`` module, or a MissingExtraError that names the ``[ray]`` extra."""
    try:
        import ray
        import ray.data  # the [ray] extra is ray[data]
    except ImportError as exc:
        feature = "The Ray engine (--engine ray)"
        raise MissingExtraError(feature, "ray", "ray[data]") from exc
    return ray


@contextlib.contextmanager
def ray_session(address: str | None = None) -> Iterator[ModuleType]:
    """Ray, initialised for the duration of the block (joined, or started locally when no address is known)."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    options: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    target = address or os.environ.get("RAY_ADDRESS")
    if target:
        logger.info("joining the Ray cluster at %s", target)
        ray.init(address=target, **options)
    else:
        logger.info("starting a local Ray for this run (give --ray-address to use a cluster)")
        ray.init(include_dashboard=False, **options)
    try:
        yield ray
    finally:
        ray.shutdown()


def cluster_summary(ray: ModuleType) -> str:
    """The cluster's CPUs and GPUs, for messages about actors that cannot be placed."""
    try:
        resources = ray.cluster_resources()
    except Exception:  # the cluster may be going away; the message is only advice
        return "the cluster's resources are unknown"
    return f"the cluster has {resources.get('CPU', 0):g} CPUs and {resources.get('GPU', 0):g} GPUs"
