"""Solvers: how a posed question is answered, turn by turn, given a model (see `mmad.solvers.base`).

Importing this package registers the built-in solvers: ``plain``, ``cot``, ``agent-render``,
``judge`` and ``tools``.
"""

from __future__ import annotations

from mmad.solvers import agent as agent
from mmad.solvers import cot as cot
from mmad.solvers import judge as judge
from mmad.solvers import plain as plain
from mmad.solvers import tools as tools
from mmad.solvers.base import (
    SOLVERS,
    Answer,
    ModelCaller,
    Reply,
    Solver,
    SolverSettings,
    SolverSetup,
    build_solver,
    question_record,
    register_solver,
    unregister_solver,
)

__all__ = [
    "SOLVERS",
    "Answer",
    "ModelCaller",
    "Reply",
    "Solver",
    "SolverSettings",
    "SolverSetup",
    "build_solver",
    "question_record",
    "register_solver",
    "unregister_solver",
]
