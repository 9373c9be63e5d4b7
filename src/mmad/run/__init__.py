"""Executing an evaluation: config, engine, run store, cache."""

from mmad.run.config import RunConfig
from mmad.run.evaluate import RunResult, evaluate, evaluate_async
from mmad.run.records import Record, Status

__all__ = ["Record", "RunConfig", "RunResult", "Status", "evaluate", "evaluate_async"]
