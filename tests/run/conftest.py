"""One local Ray for the distributed tests: two CPUs, no dashboard, shut down after the session."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# Ray's processes listen on 127.0.0.1 only (the loopback IP Ray uses where clusters are off), for
# this process, the drivers it starts and Ray's workers alike.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[str]:
    """Start Ray with exactly two CPUs in this process; yields its address for other drivers to join."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    context = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield str(context.address_info["address"])
    finally:
        ray.shutdown()
