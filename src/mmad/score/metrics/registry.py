"""The metrics every command shows, in order: the built-in ones, then any a program or plugin registers.

`register_metric` adds one (an instance, or a class with a no-argument constructor, so that it can be
used as a class decorator); every command that opens and scores a run (`score`, `compare`,
`leaderboard`, `report`, `sweep`) computes all registered metrics through `mmad.score.scored`, so a
new metric needs no change anywhere else.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TypeVar

from mmad.errors import ConfigError
from mmad.score.metrics.base import Graded, Metric, MetricResult

logger = logging.getLogger(__name__)
_REGISTRY: dict[str, Metric] = {}
M = TypeVar("M", Metric, type[Metric])


def register_metric(metric: M, *, replace: bool = False) -> M:
    """Add a metric to every command's list; returns its argument (usable as a class decorator).

    A second metric of the same name is refused unless ``replace``: two cells under one key would
    hide one of them in --json.
    """
    instance = metric() if isinstance(metric, type) else metric
    if not instance.name or not instance.name.replace("_", "").replace("-", "").isalnum():
        msg = f"metric {type(instance).__name__}: give it a name of letters, digits, - and _ (got {instance.name!r})"
        raise ConfigError(msg)
    if instance.name in _REGISTRY and not replace:
        msg = f"a metric named {instance.name!r} is registered already; pick another name or pass replace=True"
        raise ConfigError(msg)
    _REGISTRY[instance.name] = instance
    return metric


def unregister_metric(name: str) -> None:
    """Remove a metric (a no-op for a name that is not registered)."""
    _REGISTRY.pop(name, None)


def registered_metrics() -> list[Metric]:
    """The metrics in the order they were registered."""
    return list(_REGISTRY.values())


def compute_metrics(graded: Graded, metrics: Iterable[Metric] | None = None) -> list[MetricResult]:
    """Every metric's result for one run, the ones that apply (registered metrics by default)."""
    results = []
    for metric in registered_metrics() if metrics is None else metrics:
        result = metric.compute(graded)
        if result is not None:
            results.append(result)
    return results
