"""A grid of runs (``mmad sweep``): models × recipes or protocols × shots × templates × strategies × circular.

Every cell is an ordinary run folder, named after the cell, inside one sweep folder that also
holds ``sweep.json`` (the grid and each cell's state) and, at the end, the combined table. The
cells share one response cache, run a few at a time on the local engine (or on Ray, where each
cell's questions go to its own actor pool on one Ray the sweep joins once), and a sweep resumes
as a whole: complete cells are kept, the others continue with ``--resume`` semantics.

A grid comes from a TOML file (docs/sweeps/paper-ablations.toml) or from the CLI's flags::

    data = "data/MMAD"
    models = ["openai:gpt-4o", {name = "mmad:random", base_url = "http://127.0.0.1:8000/v1"}]
    protocols = ["per-question"]         # or recipes = ["gpt4o", "gemini"]
    shots = [0, 1]
    templates = ["random", "similar"]
    strategies = ["none", "rag", "cot", "agent:expert:bbox"]   # "rag+cot" combines
    circular = [false]
    parallel = 2                         # cells at once
    [settings]                           # flat settings of every cell (mmad eval's flags)
    limit = 500
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import itertools
import json
import logging
import tomllib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from mmad._io import atomic_write_text
from mmad.errors import ConfigError, MMADError, RunError
from mmad.protocol.agent import agent_problem
from mmad.protocol.strategies import parse_strategies
from mmad.records.folder import is_run_folder, open_run
from mmad.run.cache import default_cache_dir
from mmad.run.config import RunConfig
from mmad.run.engine import EngineStats
from mmad.run.finish import RunResult
from mmad.run.naming import slug

logger = logging.getLogger(__name__)

MANIFEST = "sweep.json"
CellStatus = Literal["pending", "running", "complete", "partial", "interrupted", "failed"]
Progress = Callable[[EngineStats], None]
Runner = Callable[[RunConfig, Path, bool, Progress | None], Awaitable[RunResult]]
"""(config, run folder, resume, progress) -> the finished run: `run_async` by default; the CLI's also writes reports."""


def _random_only() -> list[Literal["random", "similar"]]:
    return ["random"]


def _no_strategies() -> list[list[str]]:
    return [[]]


class ModelEntry(BaseModel):
    """A model of the grid, with settings of its own (an endpoint, a key variable, ...)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    label: str | None = Field(default=None, description="its part of the cell names (default: the name)")
    settings: dict[str, Any] = Field(default_factory=dict)


class SweepSpec(BaseModel):
    """The grid."""

    model_config = ConfigDict(extra="forbid")

    data: str
    models: list[ModelEntry]
    recipes: list[str] = Field(default_factory=list, description="official recipes; replace the protocols axis")
    protocols: list[str] = Field(default_factory=lambda: ["per-question"])
    shots: list[int] = Field(default_factory=lambda: [1])
    templates: list[Literal["random", "similar"]] = Field(default_factory=_random_only)
    strategies: list[list[str]] = Field(default_factory=_no_strategies)
    circular: list[bool] = Field(default_factory=lambda: [False])
    settings: dict[str, Any] = Field(default_factory=dict, description="flat settings of every cell")
    parallel: int = Field(default=2, ge=1, le=64, description="cells run at once")

    @field_validator("models", mode="before")
    @classmethod
    def _entries(cls, value: Any) -> Any:
        if not isinstance(value, list) or not value:
            msg = 'must list at least one model, e.g. models = ["random"]'
            raise ValueError(msg)
        out: list[Any] = []
        for entry in value:
            if isinstance(entry, str):
                out.append({"name": entry})
            elif isinstance(entry, dict):
                known = {"name", "label", "settings"}
                out.append({**{k: v for k, v in entry.items() if k in known}, "settings": _model_settings(entry)})
            else:
                out.append(entry)
        return out

    @field_validator("strategies", mode="before")
    @classmethod
    def _strategy_sets(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        sets = []
        for entry in value:
            if isinstance(entry, str):
                words = [] if entry.strip().lower() in {"", "none", "plain"} else entry.split("+")
                sets.append([w.strip() for w in words if w.strip()])
            else:
                sets.append(entry)
        return sets

    @classmethod
    def from_file(cls, path: str | Path) -> SweepSpec:
        """A grid from a TOML file (a ``[sweep]`` table, or the settings at the top level)."""
        source = Path(path)
        try:
            raw = tomllib.loads(source.read_text(encoding="utf-8"))
        except OSError as exc:
            msg = f"cannot read the sweep file {source}: {exc}"
            raise ConfigError(msg) from exc
        except tomllib.TOMLDecodeError as exc:
            msg = f"{source} is not valid TOML: {exc}"
            raise ConfigError(msg) from exc
        table = raw.get("sweep", raw)
        if "settings" in raw and "sweep" in raw:
            table = {**table, "settings": raw["settings"]}
        return cls.parse(table, source=str(source))

    @classmethod
    def parse(cls, raw: dict[str, Any], *, source: str = "the sweep") -> SweepSpec:
        """A grid from a table; errors name the setting."""
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'the grid'}: {e['msg'].removeprefix('Value error, ')}"
                for e in exc.errors()
            )
            msg = f"{source}: {problems}"
            raise ConfigError(msg) from None

    _skipped: dict[str, str] = PrivateAttr(default_factory=dict)

    @property
    def skipped(self) -> dict[str, str]:
        """Cells of the grid that cannot be asked, with the reason (filled by `cells`)."""
        return dict(self._skipped)

    def cells(self) -> list[Cell]:
        """Every cell of the grid, checked; at 0 shots the template kind makes no difference and is asked once,
        and an agent that fits the expert on templates is left out (it has none to fit on)."""
        cells: dict[str, Cell] = {}
        self._skipped = {}
        protocols: list[tuple[str | None, str | None]] = (
            [(r, None) for r in self.recipes] if self.recipes else [(None, p) for p in self.protocols]
        )
        grid = itertools.product(self.models, protocols, self.shots, self.templates, self.strategies, self.circular)
        for model, (recipe, protocol), shots, templates, strategies, circular in grid:
            if shots == 0:
                templates = "random"
            name = "_".join(
                [
                    slug(model.label or model.name),
                    slug(recipe or protocol or ""),
                    f"{shots}shot",
                    templates,
                    "+".join(slug(s) for s in strategies) or "plain",
                    *(["circular"] if circular else []),
                ]
            )
            if name in cells:
                continue
            agent = parse_strategies(list(strategies))
            problem = (
                agent_problem(agent.agent_expert, agent.agent_notation or "bbox", shots) if agent.agent_expert else None
            )
            if problem is not None and shots == 0:  # a grid crossing shots with strategies meets this by design
                self._skipped[name] = problem
                continue
            flat: dict[str, Any] = {**self.settings, **model.settings, "shots": shots}
            flat.update(similar_templates=templates == "similar", strategies=list(strategies), circular=circular)
            if protocol is not None:
                flat["protocol"] = protocol
            own = [k for k in flat if k in model.settings or k not in self.settings]  # the grid's are checked below
            try:
                config = RunConfig.from_flat(model.name, self.data, recipe=recipe, check_unused=own, **flat)
            except ConfigError as exc:
                msg = f"sweep cell {name}: {exc}"
                raise ConfigError(msg) from None
            cells[name] = Cell(name, config)
        self._check_grid_settings(list(cells.values()))
        return list(cells.values())

    def _check_grid_settings(self, cells: list[Cell]) -> None:
        """A [settings] value no cell would use is refused (ray_address only warned about: $RAY_ADDRESS feeds it)."""
        from mmad.run.config import FLAT_NAMES
        from mmad.run.unused import unused_settings

        for name in self.settings:
            if name not in FLAT_NAMES:
                continue
            dotted = ".".join(FLAT_NAMES[name])
            reasons = [unused_settings(c.config, [dotted]) for c in cells]
            if not reasons or not all(reasons):
                continue
            if name == "ray_address":
                logger.warning("the sweep's ray_address is not used: no cell runs on the Ray engine")
                continue
            msg = f"the sweep's [settings] {name}: no cell would use it: {reasons[0][0].message}"
            raise ConfigError(msg)


def _model_settings(entry: dict[str, Any]) -> dict[str, Any]:
    """A model table's settings: its ``settings`` table, and any other key as a flat setting."""
    settings = dict(entry.get("settings") or {})
    settings.update({k: v for k, v in entry.items() if k not in {"name", "label", "settings"}})
    return settings


@dataclass
class Cell:
    """One run of the grid."""

    name: str
    config: RunConfig


@dataclass
class CellOutcome:
    """What became of a cell."""

    name: str
    status: CellStatus
    run_dir: Path
    error: str | None = None


@dataclass
class SweepResult:
    """A finished (or stopped) sweep."""

    folder: Path
    cells: list[CellOutcome]
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """Every cell is complete."""
        return all(c.status == "complete" for c in self.cells)


class Sweep:
    """A sweep folder: its manifest, its lock, its cells."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self._lock: IO[str] | None = None

    @property
    def manifest_file(self) -> Path:
        """sweep.json."""
        return self.folder / MANIFEST

    def read(self) -> dict[str, Any]:
        """sweep.json's content."""
        try:
            data = json.loads(self.manifest_file.read_text())
        except (OSError, ValueError) as exc:
            msg = f"{self.manifest_file} cannot be read ({exc}); is {self.folder} a sweep folder made by `mmad sweep`?"
            raise RunError(msg) from exc
        if not isinstance(data, dict) or not isinstance(data.get("spec"), dict):
            msg = f"{self.manifest_file} holds no sweep grid"
            raise RunError(msg)
        return data

    def write(self, manifest: dict[str, Any]) -> None:
        """Write sweep.json atomically."""
        atomic_write_text(self.manifest_file, json.dumps(manifest, indent=2, default=str))

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the sweep's lock: one driver per sweep."""
        self.folder.mkdir(parents=True, exist_ok=True)
        handle = (self.folder / ".sweep.lock").open("w")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            handle.close()
            msg = f"another mmad sweep is running in {self.folder}; wait for it"
            raise RunError(msg) from exc
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            handle.close()


def preflight_cells(cells: list[Cell]) -> None:
    """Each cell's checks against its benchmark (selection, templates for its shots, the rag knowledge
    file, a price for --max-cost), before any cell runs: a bad cell must not wait behind good ones."""
    from mmad.data.official import load_benchmark
    from mmad.run.preflight import preflight

    loaded: dict[str, Any] = {}
    for cell in cells:
        try:
            if cell.config.data not in loaded:
                loaded[cell.config.data] = load_benchmark(cell.config.data)
            preflight(cell.config, loaded[cell.config.data])
        except MMADError as exc:
            msg = f"sweep cell {cell.name}: {exc}"
            raise ConfigError(msg) from None


def _new_manifest(spec: SweepSpec, cells: list[Cell]) -> dict[str, Any]:
    from mmad._version import __version__

    return {
        "mmad_version": __version__,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "spec": spec.model_dump(mode="json"),
        "status": "running",
        "cells": {c.name: {"folder": c.name, "status": "pending", "error": None} for c in cells},
        "skipped": spec.skipped,
    }


def shared_cache(spec: SweepSpec) -> SweepSpec:
    """The grid with one response cache for every cell (the one its settings name, else the default one)."""
    settings = dict(spec.settings)
    settings.setdefault("cache_dir", str(default_cache_dir()))
    return spec.model_copy(update={"settings": settings})


async def run_sweep(
    spec: SweepSpec | None,
    folder: str | Path,
    *,
    resume: bool = False,
    runner: Runner | None = None,
    on_progress: Callable[[str, EngineStats], None] | None = None,
    on_cell: Callable[[CellOutcome], None] | None = None,
) -> SweepResult:
    """Run (or, with ``resume``, continue) every cell; complete cells are never asked again."""
    sweep = Sweep(folder)
    if resume:
        manifest = sweep.read()
        spec = SweepSpec.parse(manifest["spec"], source=str(sweep.manifest_file))
    elif spec is None:
        msg = "give a sweep grid (a TOML file or flags), or --resume a sweep folder"
        raise ConfigError(msg)
    else:
        if sweep.folder.exists() and any(sweep.folder.iterdir()):
            msg = f"{sweep.folder} is not empty; continue a sweep there with `mmad sweep --resume {sweep.folder}`"
            raise RunError(msg)
        spec = shared_cache(spec)
        manifest = {}
    cells = spec.cells()  # every cell is checked before any is run
    preflight_cells(cells)
    if not resume:
        manifest = _new_manifest(spec, cells)
    ask = runner or _run_cell
    with sweep.locked():
        sweep.write(manifest)
        limit = asyncio.Semaphore(spec.parallel)

        async def one(cell: Cell) -> CellOutcome:
            async with limit:
                outcome = await _cell(cell, sweep, manifest, ask, on_progress)
            if on_cell is not None:
                on_cell(outcome)
            return outcome

        with _ray_for(cells):
            try:
                outcomes = list(await asyncio.gather(*(one(c) for c in cells)))
            except BaseException:
                manifest["status"] = "interrupted"
                sweep.write(manifest)
                raise
        manifest["status"] = "complete" if all(o.status == "complete" for o in outcomes) else "partial"
        manifest["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        sweep.write(manifest)
    return SweepResult(sweep.folder, outcomes, dict(manifest.get("skipped") or spec.skipped))


async def _run_cell(config: RunConfig, out: Path, resume: bool, on_progress: Progress | None) -> RunResult:
    from mmad.run.runner import run_async

    return await run_async(config, out=out, resume=resume, on_progress=on_progress)


async def _cell(
    cell: Cell,
    sweep: Sweep,
    manifest: dict[str, Any],
    ask: Runner,
    on_progress: Callable[[str, EngineStats], None] | None,
) -> CellOutcome:
    entry = manifest["cells"].setdefault(cell.name, {"folder": cell.name, "status": "pending", "error": None})
    run_dir = sweep.folder / entry["folder"]
    if is_run_folder(run_dir) and open_run(run_dir).status == "complete":
        entry.update(status="complete", error=None)
        sweep.write(manifest)
        return CellOutcome(cell.name, "complete", run_dir)
    entry.update(status="running", error=None)
    sweep.write(manifest)
    config = cell.config
    try:
        progress = functools.partial(on_progress, cell.name) if on_progress is not None else None
        result = await ask(config, run_dir, is_run_folder(run_dir), progress)
    except MMADError as exc:  # one broken cell (a missing key, a bad endpoint) does not end the sweep
        logger.error("sweep cell %s failed: %s", cell.name, exc)
        entry.update(status="failed", error=str(exc))
        sweep.write(manifest)
        return CellOutcome(cell.name, "failed", run_dir, str(exc))
    except BaseException:
        entry.update(status="interrupted")
        sweep.write(manifest)
        raise
    entry.update(status=result.status, error=result.stats.stopped_reason)
    sweep.write(manifest)
    return CellOutcome(cell.name, result.status, run_dir, result.stats.stopped_reason)


@contextlib.contextmanager
def _ray_for(cells: list[Cell]) -> Iterator[None]:
    """One Ray for every cell on the Ray engine (joined or started once, not once per cell)."""
    on_ray = [c for c in cells if c.config.execution.engine == "ray"]
    if not on_ray:
        yield
        return
    from mmad.run.ray_session import ray_session

    with ray_session(on_ray[0].config.execution.ray_address):
        yield
