"""Start `mmad serve`'s server on 127.0.0.1 inside a test."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from mmad.models.base import Model
from mmad.models.baselines import RandomModel
from mmad.serve.server import ChatServer, FaultPlan, serve_in_thread


@contextlib.contextmanager
def running_server(
    model: Model | None = None, *, fault_rate: float = 0.0, latency_s: float = 0.0, seed: int = 0, hang_s: float = 2.0
) -> Iterator[ChatServer]:
    """A real HTTP server over a model (the seeded random baseline by default)."""
    plan = FaultPlan(rate=fault_rate, retry_after_s=0.01, hang_s=hang_s, seed=seed)
    # Tests name the served model freely (compat:x, mmad:random): any name is answered.
    server = ChatServer(
        model or RandomModel(seed=3), latency_s=latency_s, faults=plan, model_name="random", any_model=True
    )
    with serve_in_thread(server) as running:
        yield running
