"""A grid of runs (``mmad sweep``): models × recipes or protocols × shots × templates × strategies × circular.

Each axis is named as the setting it varies (``protocol``, ``similar_templates``, ``recipe``), so a
setting is written the same in a run file, ``mmad.evaluate()``, a sweep's axis and its settings. The
grid's names from before (``protocols``, ``templates = ["random", "similar"]``, ``recipes``) are still
read, each with a FutureWarning.

Every cell is an ordinary run folder, named after the cell, inside one sweep folder that also
holds ``sweep.json`` (the grid and each cell's state) and, at the end, the combined table. The
cells share one response cache, run a few at a time on the local engine (or on Ray, where each
cell's questions go to its own actor pool on one Ray the sweep joins once), and a sweep resumes
as a whole: complete cells are kept, the others continue with ``--resume`` semantics.

A grid comes from a TOML file (docs/sweeps/paper-ablations.toml) or from the CLI's flags::

    data = "data/MMAD"
    models = ["openai:gpt-4o", {name = "mmad:random", base_url = "http://127.0.0.1:8000/v1"}]
    protocol = ["per-question"]          # or recipe = ["gpt4o", "gemini"]
    shots = [0, 1]
    similar_templates = [false, true]
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
import warnings
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from mmad._io import atomic_write_text
from mmad.errors import ConfigError, MMADError, RunError, TooFewTemplatesError
from mmad.protocol.agent import agent_problem
from mmad.protocol.strategies import parse_strategies
from mmad.records.folder import is_run_folder
from mmad.run.cache import default_cache_dir
from mmad.run.config import (
    FLAT_NAMES,
    OLD_NAMES,
    PATH_SETTINGS,
    Bool,
    Int,
    RunConfig,
    canonical_name,
    did_you_mean,
    flag_of,
    plain_reason,
)
from mmad.run.engine import EngineStats
from mmad.run.finish import RunResult
from mmad.run.folder import open_run
from mmad.run.naming import slug

logger = logging.getLogger(__name__)

MANIFEST = "sweep.json"
CellStatus = Literal["pending", "running", "complete", "partial", "interrupted", "failed"]
Progress = Callable[[EngineStats], None]
Runner = Callable[[RunConfig, Path, bool, Progress | None], Awaitable[RunResult]]
"""(config, run folder, resume, progress) -> the finished run: `run_async` by default; the CLI's also writes reports."""


# The grid's keys (SweepSpec's fields) and each axis written out, for messages.
GRID_KEYS = ("data", "models", "recipe", "protocol", "shots", "similar_templates", "strategies", "circular", "parallel")
_EXAMPLES = {
    "protocol": 'protocol = ["per-question"]',
    "shots": "shots = [0, 1]",
    "similar_templates": "similar_templates = [false, true]",
    "strategies": 'strategies = ["none", "rag"]',
    "circular": "circular = [false]",
}
# The grid's keys before each axis took its setting's name, and a setting's old name given as an axis:
# still read, with a FutureWarning (users' sweep files and recorded sweep.json files say them).
OLD_AXES = {
    "protocols": "protocol",
    "templates": "similar_templates",
    "recipes": "recipe",
    "similar": "similar_templates",
    "strategy": "strategies",
}
# Cell settings that are axes of the grid: each cell sets them, so a value in [settings] would be overwritten.
# An axis's setting by its name or by its old one (similar, strategy: the old axes that are old setting names).
_AXES = {
    **{axis: axis for axis in ("protocol", "shots", "similar_templates", "strategies", "circular", "recipe")},
    **{old: new for old, new in OLD_AXES.items() if old in OLD_NAMES},
}
TEMPLATE_KINDS = {"random": False, "similar": True}


def _old_axis(old: str, value: Any, where: str, *, warn: bool) -> Any:
    """An axis given by its old name, as its one name takes it: ``templates`` held "random"/"similar"."""
    new = OLD_AXES[old]
    if warn:
        example = _EXAMPLES.get(new, new + " = [...]")
        warnings.warn(
            f"{where}: {old!r} is the old name of the grid's axis {new!r}; write {example} "
            "(the old name will stop working)",
            FutureWarning,
            stacklevel=2,
        )
    if old != "templates" or not isinstance(value, list):
        return value
    bad = [v for v in value if not isinstance(v, str) or v.strip().lower() not in TEMPLATE_KINDS]
    if bad:
        msg = f"templates holds {bad[0]!r}: its values are random and similar (as similar_templates, false and true)"
        raise ValueError(msg)
    return [TEMPLATE_KINDS[v.strip().lower()] for v in value]


def setting_problem(name: str) -> str | None:
    """Why ``name`` cannot be a flat setting of the grid's cells, or None."""
    if name in _AXES:
        axis = _AXES[name]
        return (
            f"{name} is an axis of the grid, set by each cell, so this value would be overwritten; "
            f"write it in [sweep] as {_EXAMPLES.get(axis, axis + ' = [...]')}"
        )
    if name in FLAT_NAMES:
        return None
    positive = name.removeprefix("no_").removeprefix("no-")
    if name in {"data", "model", "models"}:
        hint = "it belongs in [sweep] (data = ..., models = [...])"
    elif name == "out":
        hint = "give the sweep folder with --out DIR"
    elif name != positive and positive in FLAT_NAMES:  # the --no-cache style of a flag
        hint = f"it is the flag --{name.replace('_', '-')}; in a sweep file write {positive} = false"
    else:
        known = sorted(n for n in FLAT_NAMES if n not in _AXES)
        hint = f"{did_you_mean(name, known)}the settings are mmad eval's: {', '.join(known)}"
    return f"{name!r} is not a setting; {hint}"


def _grid_problem(error: Any) -> str:
    """One pydantic error of a grid, in the words of a run file's errors."""
    location = [str(p) for p in error["loc"]]
    where = ".".join(location)
    if error["type"] == "extra_forbidden" and len(location) == 1:
        name = location[0]
        if _AXES.get(name, name) != name:  # protocol, similar_templates, strategy: the setting an axis varies
            axis = _AXES[name]
            return f"{name!r} is the grid's {axis} axis; write it as {_EXAMPLES.get(axis, axis + ' = [...]')}"
        if name in FLAT_NAMES:
            return f"{name!r} is a setting of every cell, not a key of the grid; write it under [sweep.settings]"
        if name != "sweep" and did_you_mean(name, ["sweep"]):  # [sweeps]: the grid's own table misspelt
            return f"[{name}] is not a table of a sweep file; did you mean [sweep]?"
        return f"{name!r} is not a key of the grid; {did_you_mean(name, list(GRID_KEYS))}known: {', '.join(GRID_KEYS)}"
    if error["type"] == "extra_forbidden":
        return f"{where} is not a key of a model entry; known: name, label, settings, and any setting of mmad eval"
    if error["type"] == "value_error" and location in ([], ["settings"]):  # the message names the key
        return ("[settings] " if location else "") + plain_reason(str(error["msg"]))
    if error["type"] == "missing" and len(location) == 1:
        example = {"data": 'data = "data/MMAD"', "models": 'models = ["openai:gpt-4o"]'}.get(where, where + " = ...")
        return f"{where} is missing: give it in [sweep], e.g. {example}"
    value = error.get("input")
    if location[:1] == ["similar_templates"] and isinstance(value, str) and value.lower() in TEMPLATE_KINDS:
        # the old templates axis's words under the setting's name, which is a yes/no
        return f"{where}: is true or false, not {value!r}; write {_EXAMPLES['similar_templates']}"
    shown = "" if error["type"] in {"missing", "value_error"} or isinstance(value, dict | list) else f" (got {value!r})"
    return f"{where}: {plain_reason(str(error['msg']))}{shown}"


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
    recipe: list[str] = Field(default_factory=list, description="official recipes; replace the protocol axis")
    protocol: list[str] = Field(default_factory=lambda: ["per-question"])
    shots: list[Int] = Field(default_factory=lambda: [1])
    similar_templates: list[Bool] = Field(default_factory=lambda: [False])
    strategies: list[list[str]] = Field(default_factory=_no_strategies)
    circular: list[Bool] = Field(default_factory=lambda: [False])
    settings: dict[str, Any] = Field(default_factory=dict, description="flat settings of every cell")
    parallel: Int = Field(default=2, ge=1, le=64, description="cells run at once")

    @model_validator(mode="before")
    @classmethod
    def _one_name_each(cls, raw: Any, info: ValidationInfo) -> Any:
        """An axis by its old name read as its one name; both names at once refused (which would win?)."""
        if not isinstance(raw, dict):
            return raw
        context = info.context or {}
        out = dict(raw)
        for old, new in OLD_AXES.items():
            if old not in out:
                continue
            if new in out:
                msg = f"{new} is given twice, as {new} and by its old name {old}; keep {new}"
                raise ValueError(msg)
            where = str(context.get("source", "the sweep"))
            out[new] = _old_axis(old, out.pop(old), where, warn=not context.get("recorded", False))
        return out

    @field_validator("shots", "similar_templates", "strategies", "circular")
    @classmethod
    def _not_empty(cls, value: list[Any], info: ValidationInfo) -> list[Any]:
        if not value:  # an empty axis is an empty grid: nothing would run, and nothing would say so
            msg = f"is empty, so the grid has no cell; list at least one value, e.g. {_EXAMPLES[str(info.field_name)]}"
            raise ValueError(msg)
        return value

    @field_validator("settings")
    @classmethod
    def _known_settings(cls, value: dict[str, Any]) -> dict[str, Any]:
        value = _by_one_name(value, "[settings]")
        for name in value:
            problem = setting_problem(name)
            if problem is not None:
                raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _one_axis_each(self) -> SweepSpec:
        if not self.recipe and not self.protocol:
            msg = f"protocol is empty, so the grid has no cell; list at least one value, e.g. {_EXAMPLES['protocol']}"
            raise ValueError(msg)
        if self.recipe and self.protocol != ["per-question"]:
            msg = (
                f"protocol {self.protocol} would be ignored: each recipe sets its own protocol; give recipe or "
                "protocol, not both (mmad models --recipes shows each recipe's protocol)"
            )
            raise ValueError(msg)
        named: dict[str, str] = {}
        for model in self.models:
            cell_name = slug(model.label or model.name)
            if cell_name in named:
                msg = (
                    f"models: {named[cell_name]!r} and {model.label or model.name!r} would both name their cells "
                    f"{cell_name!r}, and one would be dropped; give each its own label, e.g. "
                    f'{{ name = "{model.name}", label = "{cell_name}-2", ... }}'
                )
                raise ValueError(msg)
            named[cell_name] = model.label or model.name
        return self

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
                settings = _by_one_name(_model_settings(entry), f"the model {entry.get('name', '')!r}")
                for name in settings:
                    problem = setting_problem(name)
                    if problem is not None:
                        msg = f"the model {entry.get('name', '')!r}: {problem}"
                        raise ValueError(msg)
                out.append({**{k: v for k, v in entry.items() if k in known}, "settings": settings})
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
    def from_file(cls, path: str | Path, fill: dict[str, Any] | None = None) -> SweepSpec:
        """A grid from a TOML file (a ``[sweep]`` table, or the settings at the top level); ``fill`` gives
        keys the file leaves out (``data`` and ``models`` from -d and -m)."""
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
        return cls.parse({**(fill or {}), **table}, source=str(source))

    @classmethod
    def parse(cls, raw: dict[str, Any], *, source: str = "the sweep", recorded: bool = False) -> SweepSpec:
        """A grid from a table; errors name the setting. A ``recorded`` grid (sweep.json) reads old names
        without a warning: the user did not write them."""
        try:
            spec = cls.model_validate(raw, context={"source": source, "recorded": recorded})
        except ValidationError as exc:
            # an unknown key first: it is often why a required one looks missing ([sweeps] for [sweep])
            errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
            msg = f"{source}: " + "; ".join(_grid_problem(e) for e in errors)
            raise ConfigError(msg) from None
        spec._source = source
        return spec

    _skipped: dict[str, str] = PrivateAttr(default_factory=dict)
    _source: str = PrivateAttr(default="the sweep")

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
            [(r, None) for r in self.recipe] if self.recipe else [(None, p) for p in self.protocol]
        )
        grid = itertools.product(
            self.models, protocols, self.shots, self.similar_templates, self.strategies, self.circular
        )
        for model, (recipe, protocol), shots, similar, strategies, circular in grid:
            similar = similar and shots != 0
            # the cell's name says random/similar, as before the axis took its setting's name: resumes find it
            templates = "similar" if similar else "random"
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
            flat.update(similar_templates=similar, strategies=list(strategies), circular=circular)
            if protocol is not None:
                flat["protocol"] = protocol
            own = [k for k in flat if k in model.settings or k not in self.settings]  # the grid's are checked below
            try:
                config = RunConfig.from_flat(
                    model.name, self.data, recipe=recipe, check_unused=own, by_name=True, **flat
                )
            except ConfigError as exc:
                msg = f"{self._source}: sweep cell {name}: {exc}"
                raise ConfigError(msg) from None
            cells[name] = Cell(name, config)
        self._check_grid_settings(list(cells.values()))
        return list(cells.values())

    def _check_grid_settings(self, cells: list[Cell]) -> None:
        """A [settings] value no cell would use is refused (ray_address only warned about: $RAY_ADDRESS feeds it)."""
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
            why = reasons[0][0].message.replace(flag_of(*FLAT_NAMES[name]), name)  # the key written, not a flag
            msg = f"{self._source}: [settings] {name}: no cell would use it: {why}"
            raise ConfigError(msg)


def _by_one_name(settings: dict[str, Any], where: str) -> dict[str, Any]:
    """Flat settings by their one names; an old name (similar, timeout) is read with a FutureWarning."""
    out: dict[str, Any] = {}
    for name, value in settings.items():
        new = canonical_name(name, source=where) if isinstance(name, str) else name
        if new in out:
            msg = f"{where}: {new} is given twice, as {new} and by its old name {name}; keep {new}"
            raise ValueError(msg)
        out[new] = value
    return out


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


def preflight_cells(cells: list[Cell]) -> dict[str, str]:
    """Each cell's checks: its model's provider, and against its benchmark (selection, templates for its
    shots, the rag knowledge file, a price for --max-cost, the [ray] extra for the Ray engine), before any
    cell runs: a bad cell must not wait behind good ones. A cell whose shots the benchmark's templates
    cannot fill is returned (name -> reason) to be skipped: a grid of shot counts meets it by design."""
    from mmad.data.official import load_benchmark
    from mmad.models.registry import check_model_name
    from mmad.run.preflight import preflight

    loaded: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for cell in cells:
        try:
            check_model_name(cell.config.model)  # an unknown provider is named now, not after the good cells ran
            if cell.config.data not in loaded:
                loaded[cell.config.data] = load_benchmark(cell.config.data)
            preflight(cell.config, loaded[cell.config.data])
        except TooFewTemplatesError as exc:
            skipped[cell.name] = str(exc)
        except MMADError as exc:
            msg = f"sweep cell {cell.name}: {exc}"
            raise ConfigError(msg) from None
    return skipped


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


def with_absolute_paths(spec: SweepSpec) -> SweepSpec:
    """The grid with its data and file settings made absolute (from the current folder), as sweep.json
    records them: `--resume` may be run from any folder."""

    files = {name for name, target in FLAT_NAMES.items() if target in PATH_SETTINGS}

    def absolute(settings: dict[str, Any]) -> dict[str, Any]:
        return {
            k: str(Path(v).expanduser().absolute()) if k in files and isinstance(v, str) and v.strip() else v
            for k, v in settings.items()
        }

    models = [m.model_copy(update={"settings": absolute(m.settings)}) for m in spec.models]
    update = {"data": str(Path(spec.data).expanduser().absolute()), "settings": absolute(spec.settings)}
    return spec.model_copy(update={**update, "models": models})  # keeps _source: private attributes are copied


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
        spec = SweepSpec.parse(manifest["spec"], source=str(sweep.manifest_file), recorded=True)
    elif spec is None:
        msg = "give a sweep grid (a TOML file or flags), or --resume a sweep folder"
        raise ConfigError(msg)
    else:
        if sweep.folder.exists() and any(sweep.folder.iterdir()):
            msg = f"{sweep.folder} is not empty; continue a sweep there with `mmad sweep --resume {sweep.folder}`"
            raise RunError(msg)
        spec = with_absolute_paths(shared_cache(spec))
        manifest = {}
    cells = spec.cells()  # every cell is checked before any is run
    unfilled = preflight_cells(cells)
    cells = [c for c in cells if c.name not in unfilled]
    if not cells:
        reasons = "; ".join(f"{name}: {why}" for name, why in unfilled.items())
        msg = f"no cell of the sweep can be asked: {reasons}"
        raise ConfigError(msg)
    if not resume:
        manifest = _new_manifest(spec, cells)
        manifest["skipped"] = {**manifest["skipped"], **unfilled}
    ask = runner or _run_cell
    # Ray is joined before the folder is made: a sweep refused there leaves nothing behind.
    with _ray_for(cells), sweep.locked():
        sweep.write(manifest)
        limit = asyncio.Semaphore(spec.parallel)

        async def one(cell: Cell) -> CellOutcome:
            async with limit:
                outcome = await _cell(cell, sweep, manifest, ask, on_progress)
            if on_cell is not None:
                on_cell(outcome)
            return outcome

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
