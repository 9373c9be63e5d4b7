"""Joining Ray for a run: the cluster named by --ray-address or $RAY_ADDRESS, else a local one.

A Ray this module started is stopped again when the run ends; one that was already running in
the process (a notebook's, a test's, a sweep's) is left as it was.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from mmad.errors import MissingExtraError, RunError

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


REACH_TIMEOUT_S = 5.0
"""How long a cluster's address may take to accept a connection before the run gives up on it."""
DEFAULT_GCS_PORT = 6379
DEFAULT_CLIENT_PORT = 10001


def check_ray_address(address: str | None) -> None:
    """Refuse a Ray address that accepts no connection, naming it.

    ``ray.init`` retries a dead address for minutes before its own error; a plain connection
    says in seconds whether anything listens there. ``auto`` and ``local`` are Ray's to resolve.
    """
    if not address or address in {"auto", "local"}:
        return
    client = address.startswith("ray://")
    hostport = address.removeprefix("ray://").split("/", 1)[0]
    host, _, port_text = hostport.rpartition(":") if ":" in hostport else (hostport, "", "")
    host = host.strip("[]") or hostport
    try:
        port = int(port_text) if port_text else (DEFAULT_CLIENT_PORT if client else DEFAULT_GCS_PORT)
    except ValueError:
        msg = f"--ray-address {address}: the port {port_text!r} is not a number; give HOST:PORT (e.g. 10.0.0.5:6379)"
        raise RunError(msg) from None
    try:
        socket.create_connection((host, port), timeout=REACH_TIMEOUT_S).close()
    except OSError as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or type(exc).__name__)
        msg = (
            f"cannot reach the Ray cluster at {address} ({host}:{port}: {reason}); is Ray running there "
            "(`ray start --head`), and is --ray-address (or $RAY_ADDRESS) right?"
        )
        raise RunError(msg) from exc


@contextlib.contextmanager
def _sigterm_kept() -> Iterator[None]:
    """Put back the SIGTERM handler ``ray.init`` replaces with its own ``sys.exit(15)`` in the driver:
    mmad's turns a scheduler's stop into an interrupt (records saved, run.json marked, exit 130)."""
    on_main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if on_main else None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def ray_session(address: str | None = None) -> Iterator[ModuleType]:
    """Ray, initialised for the duration of the block (joined, or started locally when no address is known)."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    options: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    target = address or os.environ.get("RAY_ADDRESS")
    with _sigterm_kept():
        if target:
            check_ray_address(target)
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
