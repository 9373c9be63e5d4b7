"""Metrics as a list: each takes one run's graded answers and returns named cells (see `base`).

The built-in ones are registered on import; `register_metric` adds another without touching any
other module, and every command that scores a run shows it.
"""

from mmad.score.metrics.base import Bootstrap, Cell, Graded, Metric, MetricResult, figure_text
from mmad.score.metrics.builtin import BUILTIN
from mmad.score.metrics.registry import compute_metrics, register_metric, registered_metrics, unregister_metric
from mmad.score.metrics.tools import ToolsVersusDirect, ToolUse

_SHIPPED: tuple[type[Metric], ...] = (*BUILTIN, ToolsVersusDirect, ToolUse)
for _metric in _SHIPPED:
    if _metric.name not in {m.name for m in registered_metrics()}:  # a reload registers nothing twice
        register_metric(_metric)

__all__ = [
    "Bootstrap",
    "Cell",
    "Graded",
    "Metric",
    "MetricResult",
    "compute_metrics",
    "figure_text",
    "register_metric",
    "registered_metrics",
    "unregister_metric",
]
