"""run.json as a typed, versioned record: the run manifest.

A run folder's ``run.json`` says how the run was made (its config, benchmark, protocol card, model)
and what became of it (status, counts, spending). Every reader and writer goes through `Manifest`:
a renamed or missing field fails validation here, with the file named, instead of reading as None
somewhere downstream. Only `write_manifest` writes the file.

Versions (``schema_version``):

- 0 (no key): the first runs, whose config was flat (``shots``, ``image_size`` at the top) and whose
  prompt, image and strategy settings were copied into top-level ``protocol``, ``images`` and
  ``strategies``; no protocol card.
- 1 (no key): a nested config (``prompt``, ``images``, ... sections), a protocol card and its hash,
  the benchmark's size; keys such as ``finished_at`` or ``usage`` only once the run finished.
- 2: every field always present (None until known).
- 3: ``usage.judge``, the judge's share of the usage (absent in older files: None).
- 4: this model; ``judge``, the judge's describe() (its endpoint, as ``model`` says the model's; None
  without a judge, and in older files).

`read_manifest` upgrades older versions in memory (the file is rewritten as the current one only when
the run is resumed) and refuses a version newer than this mmad reads, naming the file. Every field
added, renamed or removed is a new version (an older mmad then says "newer" rather than "unknown
field"), with a step in `upgraded` when older files need more than the new version number.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mmad._io import atomic_write_text
from mmad.errors import ConfigError, RunError
from mmad.records.folder import RUN_FILE
from mmad.run.config import RunConfig
from mmad.run.config.base import RECORDED

SCHEMA_VERSION = 4
"""The version this mmad writes, and the newest it reads."""

RunStatus = Literal["running", "complete", "partial", "interrupted", "failed"]


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetInfo(_Part):
    """The benchmark json the run asked, and how many of its questions."""

    source: str
    sha256: str | None = None
    questions_in_benchmark: int | None = Field(default=None, description="None in runs made before it was kept")
    questions_selected: int


class JudgeUsage(_Part):
    """The judge's share of a run's usage (--judge): its calls, and what they spent."""

    requests: int = 0
    """Replies put to the judge, from the cache or sent."""
    cached: int = 0
    failed: int = 0
    """Calls that gave no verdict (retries spent, or the budget reached): their questions failed, for --resume."""
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = 0.0
    """None: not known (no price for the judge)."""

    def plus(self, other: JudgeUsage | None) -> JudgeUsage:
        """This session's judge usage added to an earlier session's."""
        if other is None:
            return self
        return JudgeUsage(
            requests=self.requests + other.requests,
            cached=self.cached + other.cached,
            failed=self.failed + other.failed,
            retries=self.retries + other.retries,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cost_usd=None
            if self.cost_usd is None or other.cost_usd is None
            else round(self.cost_usd + other.cost_usd, 6),
        )


class Usage(_Part):
    """What the run's sessions spent, summed over resumes. The totals (tokens, ``cost_usd``) include the
    judge's calls; ``judge`` is their share, and ``cached`` and ``retries`` are the model's own."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = 0.0
    """None: not known (requests were answered and none had a price: an unpriced model, a server that
    reports no usage). Runs made before it could be None hold 0.0 there, which may mean either."""
    cached: int = 0
    retries: int = 0
    elapsed_s: float = 0.0
    judge: JudgeUsage | None = None
    """The judge's share (None: no reply was put to a judge)."""

    def plus(self, other: Usage) -> Usage:
        """This session's spending added to an earlier session's."""
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            # what one session spent unknown, the run's total is unknown too
            cost_usd=None
            if self.cost_usd is None or other.cost_usd is None
            else round(self.cost_usd + other.cost_usd, 6),
            cached=self.cached + other.cached,
            retries=self.retries + other.retries,
            elapsed_s=round(self.elapsed_s + other.elapsed_s, 3),
            judge=self.judge.plus(other.judge) if self.judge is not None else other.judge,
        )


class LegacySettings(_Part):
    """What a version-0 run kept beside its flat config, in place of a protocol card."""

    protocol: dict[str, Any] = Field(default_factory=dict)
    images: str | dict[str, Any] | None = None
    strategies: list[str] = Field(default_factory=list)


class Manifest(_Part):
    """A run's run.json. Frozen: a change is a new manifest (`with_model`, `started`, `finished`),
    written by `write_manifest`."""

    schema_version: int = Field(default=SCHEMA_VERSION, description="set by `upgraded` to SCHEMA_VERSION")
    mmad_version: str
    created_at: str = Field(description="ISO 8601, UTC, when the run was started (not resumed)")
    finished_at: str | None = None
    python: str
    config: RunConfig
    dataset: DatasetInfo
    card: dict[str, Any] | None = Field(default=None, description="the protocol card; None before cards existed")
    card_hash: str | None = None
    model: dict[str, Any] = Field(default_factory=dict, description="the backend's describe(): name, endpoint, ...")
    judge: dict[str, Any] | None = Field(default=None, description="the judge's describe() (None: no --judge)")
    status: RunStatus = "running"
    missing: int | None = Field(default=None, description="selected questions without a record when it finished")
    failed: int | None = Field(default=None, description="records whose request failed when it finished")
    stopped_reason: str | None = None
    usage: Usage | None = None
    model_snapshots: dict[str, int] = Field(
        default_factory=dict, description="the models the provider says answered, with their counts"
    )
    legacy: LegacySettings | None = Field(default=None, description="version 0 only: settings kept beside the card")

    @field_validator("model", "judge", "card", mode="before")
    @classmethod
    def _plain_json(cls, value: Any) -> Any:
        # A backend's description may hold numpy numbers (fitted thresholds) or paths: kept as json would
        # read them back, so a manifest written and read again is the one that was written.
        return json.loads(json.dumps(value, default=_json_default)) if value is not None else None

    def with_model(self, description: Mapping[str, Any]) -> Manifest:
        """The manifest with the backend's description (set at the start, and by a Ray engine once its
        workers say what they loaded)."""
        return self._with(model=dict(description))

    def started(self, config: RunConfig, model: Mapping[str, Any], judge: Mapping[str, Any] | None = None) -> Manifest:
        """The manifest of a (re)started session: its config (a resume may change how requests are sent,
        and where the judge is), model, judge, and status running, with the previous session's end cleared."""
        described = dict(judge) if judge is not None else None
        return self._with(config=config, model=dict(model), judge=described, status="running", finished_at=None)

    def spending(self, usage: Usage) -> Manifest:
        """The manifest of a running session with what the run has spent so far (earlier sessions included)."""
        return self._with(usage=usage)

    def finished(
        self,
        status: RunStatus,
        *,
        missing: int,
        failed: int,
        stopped_reason: str | None,
        usage: Usage,
        snapshots: Mapping[str, int],
    ) -> Manifest:
        """The manifest of a session that ended; ``usage`` is the whole run's."""
        return self._with(
            status=status,
            finished_at=now(),
            missing=missing,
            failed=failed,
            stopped_reason=stopped_reason,
            usage=usage,
            model_snapshots=dict(snapshots) or self.model_snapshots,
        )

    def _with(self, **changes: Any) -> Manifest:
        # validated, unlike model_copy(update=...): a changed field is checked as a read one is
        return Manifest.model_validate({**dict(self), **changes}, context=RECORDED)


def _json_default(value: Any) -> Any:
    item = getattr(value, "item", None)  # a numpy scalar
    return item() if callable(item) else str(value)


def now() -> str:
    """The time as run.json records it."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_manifest(folder: Path, manifest: Manifest, *, create: bool = True) -> bool:
    """Write run.json atomically (a crash leaves the old file or the new one, never half of one).

    With ``create=False`` only a run.json that is there is replaced, and no folder is made: a run
    folder deleted mid-run is not made again by a save of the spending so far. False: nothing written.
    """
    if not create and not (folder / RUN_FILE).exists():
        return False
    try:
        atomic_write_text(folder / RUN_FILE, manifest.model_dump_json(indent=2) + "\n", make_folder=create)
    except FileNotFoundError:
        if create or folder.exists():
            raise
        return False  # the folder went in the meantime
    return True


def read_manifest(folder: Path) -> Manifest:
    """A run folder's run.json, upgraded to the current version; a RunError names the file and what is wrong."""
    path = folder / RUN_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        msg = f"{path} cannot be read ({exc}); the run folder is damaged"
        raise RunError(msg) from exc
    if not isinstance(raw, dict):
        msg = f"{path} is not a json object; the run folder is damaged"
        raise RunError(msg)
    return parse_manifest(raw, path)


def parse_manifest(raw: dict[str, Any], path: Path) -> Manifest:
    """A run.json's content as a Manifest (``path`` names it in errors)."""
    try:
        return Manifest.model_validate(upgraded(raw, path), context=RECORDED)
    except ValidationError as exc:
        raise RunError(_unreadable(path, exc, raw)) from None


def recorded_config(raw: dict[str, Any], path: Path) -> RunConfig:
    """Only the config of a run.json's content (a run file may be a run.json, or just its config and version)."""
    config = upgraded(raw, path).get("config")
    try:
        return RunConfig.model_validate(config, context=RECORDED)
    except ValidationError as exc:
        raise RunError(_unreadable(path, exc, raw, "config.")) from None


def upgraded(raw: dict[str, Any], path: Path) -> dict[str, Any]:
    """A run.json's content in the current version's shape; a newer version than this mmad reads is refused."""
    version = raw.get("schema_version", 0 if _flat_config(raw) else 1)
    if not isinstance(version, int) or isinstance(version, bool):
        msg = f"{path}: schema_version {version!r} is not a number; the run folder is damaged"
        raise RunError(msg)
    if version > SCHEMA_VERSION:
        msg = (
            f"{path} was written by a newer mmad (run.json schema_version {version}; this mmad reads up to "
            f"{SCHEMA_VERSION}): upgrade mmad (pip install -U mmad) to read it"
        )
        raise RunError(msg)
    if version == 0:
        raw = _upgrade_0(raw, path)
    if version <= 1:
        raw = _upgrade_1(raw)
    # Each step above turns a version into the next (2 to 3 added usage.judge and 3 to 4 judge, whose defaults
    # read an older file as it was); what is left is the current layout.
    return {**_blank_names_left_out(raw), "schema_version": SCHEMA_VERSION}


def _blank_names_left_out(raw: dict[str, Any]) -> dict[str, Any]:
    """A blank judge or solver, which an older mmad took and ran without (no judge, the default solver), read
    as left out: the config refuses a blank one now, and the run must stay readable."""
    config = raw.get("config")
    if not isinstance(config, dict) or not isinstance(answers := config.get("answers"), dict):
        return raw
    blank = {k: None for k in ("judge", "solver") if isinstance(answers.get(k), str) and not answers[k].strip()}
    if not blank:
        return raw
    return {**raw, "config": {**config, "answers": {**answers, **blank}}}


def _unreadable(path: Path, exc: ValidationError, raw: dict[str, Any], prefix: str = "") -> str:
    from mmad._version import __version__

    problems = "; ".join(
        f"{prefix}{'.'.join(str(p) for p in error['loc']) or 'top level'}: {error['msg']}" for error in exc.errors()[:3]
    )
    written = raw.get("mmad_version")
    # A setting a later mmad added reads as an unknown field here: say which mmad wrote the file.
    by = f"; it was written by mmad {written}, this is mmad {__version__}" if written and written != __version__ else ""
    return f"{path} is not a run.json this mmad can read ({problems}){by}; the run folder is damaged or not a run"


def _upgrade_1(raw: dict[str, Any]) -> dict[str, Any]:
    """Version 1 in version 2's shape (the same keys, the absent ones left to their defaults)."""
    upgraded = dict(raw)
    if isinstance(upgraded.get("model"), str):  # a bare name, before backends described themselves
        upgraded["model"] = {"name": upgraded["model"]}
    return upgraded


def _flat_config(raw: dict[str, Any]) -> bool:
    config = raw.get("config")
    return isinstance(config, dict) and "prompt" not in config and "shots" in config


def _upgrade_0(raw: dict[str, Any], path: Path) -> dict[str, Any]:
    """A version-0 run.json in version 1's shape: its flat config nested, its copied settings kept aside."""
    flat = dict(raw["config"])
    identity = {key: flat.pop(key) for key in ("model", "data") if key in flat}
    try:
        config = RunConfig.from_nested_with_flat(identity, flat, source=str(path), explicit=())
    except ConfigError as exc:
        msg = f"{path} is a run.json of the first version whose config cannot be read ({exc})"
        raise RunError(msg) from None
    upgraded = {k: v for k, v in raw.items() if k not in {"config", "protocol", "images", "strategies"}}
    upgraded["config"] = config.model_dump(mode="json")
    upgraded["legacy"] = {
        "protocol": raw.get("protocol") or {},
        "images": raw.get("images"),
        "strategies": raw.get("strategies") or [],
    }
    return upgraded
