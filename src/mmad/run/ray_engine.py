"""Stage two on Ray: a pool of actors asks, the driver writes (``mmad eval --engine ray``).

The driver keeps everything a local run keeps: the plan, the run folder and its lock, the stop
rules (--max-cost, --max-errors, fatal errors), the progress counters. It sends the prompts of one
image at a time to the least loaded actor (`mmad.run.ray_worker`), never more than twice
``--concurrency`` prompts at once, and appends each image's records to records.jsonl as they come
back, so an interrupted run keeps what was answered and ``--resume`` asks only the rest.

An actor that dies (its node lost, killed, out of memory) is replaced and the images it held are
sent again; a key already written in this session is never written twice. An image whose actor
died three times is recorded as failed (error class ``worker_died``) rather than retried forever.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import os
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from mmad.errors import ConfigError, RunError
from mmad.models.base import Model
from mmad.protocol.images import ImageEncoder
from mmad.protocol.messages import Prompt
from mmad.records.record import Status
from mmad.run.caller import judge_allowance
from mmad.run.ledger import (
    JUDGE_FIELDS,
    EngineSettings,
    EngineStats,
    Ledger,
    PlanFailure,
    Scheduler,
    Work,
    aiter_of,
    plan_failure_records,
)
from mmad.run.prepare import PreparedRun
from mmad.run.ray_session import cluster_summary, ray_session
from mmad.run.ray_worker import USAGE_FIELDS, PromptWorker
from mmad.run.secrets import redact
from mmad.run.solving import judge_price
from mmad.solvers import question_record

logger = logging.getLogger(__name__)

Key = tuple[str, str]
DEATHS_PER_IMAGE = 3
"""An image whose actor died this many times is recorded as failed instead of being sent again."""
ACTOR_CPUS = 1.0


@dataclass
class _Job:
    prompts: list[Prompt]
    deaths: int = 0
    reserved_usd: float = 0.0

    @property
    def size(self) -> int:
        return len(self.prompts)


CLOSE_TIMEOUT_S = 10.0
"""How long the actors may take to write their caches and close their connections at the end of a run."""


@dataclass
class _Actor:
    name: str
    handle: Any
    ready: bool = False
    dead: bool = False
    load: int = 0
    startup: asyncio.Future[Any] | None = None
    jobs: set[asyncio.Future[Any]] = field(default_factory=set)


class RayEngine(Scheduler):
    """A Ray actor pool asks; the driver's ledger writes."""

    def __init__(
        self,
        prepared: PreparedRun,
        settings: EngineSettings,
        *,
        actors: int,
        gpus: float = 0.0,
        address: str | None = None,
        model: Model | None = None,
        judge: Model | None = None,
        describe_from_actors: bool = False,
        ready_timeout_s: float = 1800.0,
        on_progress: Any = None,
    ) -> None:
        self.images = ImageEncoder(prepared.config.image_settings())
        # once: an image whose actor died is sent again, and its records must not be written twice.
        self.ledger = Ledger(
            prepared.store, settings, self.images, on_progress=on_progress, once=True, manifest_holder=prepared
        )
        self.settings = settings
        self.prepared = prepared
        self.n_actors = actors
        self.gpus = gpus
        self.address = address
        self.shipped_model = model
        self.shipped_judge = judge
        self.describe_from_actors = describe_from_actors
        self.ready_timeout_s = ready_timeout_s
        self.max_in_flight = 2 * settings.concurrency
        self.actor_settings = dataclasses.replace(settings, concurrency=math.ceil(settings.concurrency / actors))
        self.prefix = f"mmad-{uuid.uuid4().hex[:8]}"
        self.actors: list[_Actor] = []
        self.replaced = 0
        self._usage: dict[str, dict[str, float]] = {}
        self._running: dict[asyncio.Future[Any], tuple[_Job, _Actor]] = {}
        self._queue: deque[_Job] = deque()
        self._ray: ModuleType | None = None
        self._refs: dict[str, Any] = {}
        self._judge_price = (
            judge_price(prepared.config, prepared.judge)
            if prepared.judge is not None and settings.max_cost is not None
            else None
        )
        """The price the actors' judges are paid at, under --max-cost: each job sets aside its possible judge
        calls at it."""

    # The run
    async def run(self, work: AsyncIterator[Work] | Iterable[Work], total_questions: int) -> EngineStats:
        """Ask every prompt on the actor pool; returns the counters, as `Engine.run` does."""
        self.ledger.begin(total_questions)
        watcher = asyncio.create_task(self.ledger.flush_often())  # a deleted run folder stops the run
        try:
            with ray_session(self.address) as ray:
                self._ray = ray
                self._check_local_gpus(ray)
                try:
                    await self._drive(_image_batches(aiter_of(work)))
                finally:
                    self._stop_actors()
        finally:
            watcher.cancel()
            self.ledger.close()
        return self.stats

    def _check_local_gpus(self, ray: Any) -> None:
        """A Ray on this machine never gains GPUs: actors asking for more than it has would wait for ever."""
        if not self.gpus or self.address or os.environ.get("RAY_ADDRESS"):
            return  # a cluster may add GPU nodes (autoscaling): its actors are given ready_timeout_s
        available = float(ray.cluster_resources().get("GPU", 0))
        if available < self.gpus:
            msg = (
                f"--ray-gpus {self.gpus:g}: the local Ray of this run has {available:g} GPUs, so no actor could be "
                "placed; give --ray-address of a cluster with GPUs, or leave --ray-gpus out"
            )
            raise RunError(msg)

    async def _drive(self, batches: AsyncIterator[list[Prompt] | PlanFailure]) -> None:
        self._ship_models()
        for _ in range(self.n_actors):
            self._start_actor()
        exhausted = False
        waiting_since = time.monotonic()
        ledger = self.ledger
        while True:
            while not ledger.should_stop() and ledger.in_flight < self.max_in_flight:
                actor = self._least_loaded()
                if actor is None:
                    break
                if self._queue:
                    job = self._queue.popleft()
                elif exhausted:
                    break
                else:
                    item = await anext(batches, None)
                    if item is None:
                        exhausted = True
                        break
                    if isinstance(item, PlanFailure):
                        ledger.write(plan_failure_records(item))
                        continue
                    wanted = [p for p in item if ledger.wants(p)]
                    if not wanted:
                        continue
                    if any(p.carries_history for p in wanted):  # the earlier questions' replies are its history
                        wanted = list(item)
                    job = _Job(wanted)
                if not await self._reserve_job(job, actor):
                    break  # over --max-cost: its questions stay unasked, --resume asks them
                self._submit(job, actor)
            if not self._running and (ledger.should_stop() or (exhausted and not self._queue)):
                return
            if any(a.ready for a in self.actors):
                waiting_since = time.monotonic()
            elif time.monotonic() - waiting_since > self.ready_timeout_s:
                msg = (
                    f"no Ray actor could be placed within {self.ready_timeout_s:.0f} s: each asks for "
                    f"{ACTOR_CPUS:g} CPU and {self.gpus:g} GPUs and {cluster_summary(self._ray_module)}; "
                    "lower --ray-actors or --ray-gpus, or add nodes"
                )
                raise RunError(msg)
            waitables = set(self._running) | {a.startup for a in self.actors if a.startup is not None}
            done, _ = await asyncio.wait(waitables, timeout=5.0, return_when=asyncio.FIRST_COMPLETED)
            for future in done:
                if future in self._running:
                    self._finished(future)
                else:
                    self._started(future)

    # Actors
    @property
    def _ray_module(self) -> ModuleType:
        if self._ray is None:
            msg = "the Ray engine is not running"
            raise RunError(msg)
        return self._ray

    def _ship_models(self) -> None:
        """Models given as objects travel to the actors pickled; otherwise each actor builds the config's."""
        ray = self._ray_module
        for role, model in (("model", self.shipped_model), ("judge", self.shipped_judge)):
            if model is None:
                continue
            try:
                self._refs[role] = ray.put(model)
            except Exception as exc:
                msg = (
                    f"the {role} object given to the Ray engine cannot be sent to the actors ({exc}); "
                    f"name it in the config instead (-m {self.prepared.config.model}), so each actor builds its own"
                )
                raise ConfigError(msg) from exc

    def _start_actor(self) -> _Actor:
        ray = self._ray_module
        name = f"{self.prefix}-{len(self.actors) + self.replaced}"
        remote = ray.remote(PromptWorker).options(
            name=name,
            num_cpus=ACTOR_CPUS,
            num_gpus=self.gpus,
            max_concurrency=max(64, 4 * self.actor_settings.concurrency),
            max_restarts=0,
        )
        handle = remote.remote(
            self.prepared.config.model_dump(mode="json"),
            self.actor_settings,
            str(self.prepared.run_dir),
            self._refs.get("model"),
            self._refs.get("judge"),
        )
        actor = _Actor(name, handle)
        actor.startup = asyncio.wrap_future(handle.ready.remote().future())
        actor.startup.add_done_callback(_mark_retrieved)
        self.actors.append(actor)
        return actor

    def _started(self, future: asyncio.Future[Any]) -> None:
        actor = next(a for a in self.actors if a.startup is future)
        actor.startup = None
        try:
            answer = future.result()
        except Exception as exc:
            logger.warning("the Ray actor %s died while starting: %s", actor.name, exc)
            self._replace(actor)
            return
        if "error" in answer:
            msg = f"a Ray actor could not build {self.prepared.config.model}: {redact(str(answer['error']))}"
            raise RunError(msg)
        actor.ready = True
        if self.describe_from_actors and isinstance(answer.get("model"), dict):
            self.ledger.describe_model(answer["model"])
        logger.info("Ray actor %s is ready", actor.name)

    def _least_loaded(self) -> _Actor | None:
        ready = [a for a in self.actors if a.ready and not a.dead]
        return min(ready, key=lambda a: a.load) if ready else None

    def _replace(self, actor: _Actor) -> None:
        if actor.dead:
            return
        actor.dead = True
        self.actors.remove(actor)
        self.replaced += 1
        if self.replaced > 10 * self.n_actors and not any(a.ready for a in self.actors):
            msg = f"Ray actors keep dying ({self.replaced} replaced) and none is working; see the Ray logs"
            raise RunError(msg)
        try:
            self._ray_module.kill(actor.handle)
        except Exception:  # already gone
            logger.debug("the Ray actor %s was already gone", actor.name)
        logger.warning("the Ray actor %s died; starting another and asking its questions again", actor.name)
        self._start_actor()

    def _stop_actors(self) -> None:
        ray = self._ray_module
        # ray.kill runs no atexit handler in the actor: what its response cache still holds in memory
        # (up to WRITE_INTERVAL_S of replies) is written by close() first, or lost.
        ready = [a for a in self.actors if a.ready]
        try:
            ray.get([a.handle.close.remote() for a in ready], timeout=CLOSE_TIMEOUT_S)
        except Exception:  # a dead or stuck actor (Ctrl-C reaches Ray's processes too): killed below
            logger.debug("not every Ray actor closed within %.0f s", CLOSE_TIMEOUT_S)
        for actor in self.actors:
            try:
                ray.kill(actor.handle)
            except Exception:  # Ray itself may be shutting down (Ctrl-C reaches its processes too)
                logger.debug("could not stop the Ray actor %s", actor.name)
        self.actors = []

    # Work
    async def _reserve_job(self, job: _Job, actor: _Actor) -> bool:
        """Set aside what a job's requests are expected to cost; False when that passes --max-cost.

        Nothing for a request the actor's response cache answers (it costs nothing: a cached rerun under a
        small budget was refused), as the local engine does; the actor's judge cannot reserve from this
        ledger, so the job sets aside a judge call per question that may need one."""
        if self.settings.max_cost is None:
            return True
        costs = await self._costs(job, actor)
        sent = [p for p, (asked, _) in zip(job.prompts, costs, strict=True) if asked]
        judged = [p for p, (_, may_judge) in zip(job.prompts, costs, strict=True) if may_judge]
        allowance = judge_allowance(judged, self._judge_price) or 0.0
        reserved = await self.ledger.reserve(sent, "the next requests", extra_usd=allowance)
        if reserved is None:
            return False
        job.reserved_usd = reserved
        return True

    async def _costs(self, job: _Job, actor: _Actor) -> list[tuple[bool, bool]]:
        """What the actor that will ask the job says each prompt may cost (`PromptWorker.costs`); all of it
        where the actor cannot say (it died: the job goes to another, reserved anew)."""
        try:
            costs: list[tuple[bool, bool]] = await asyncio.wrap_future(actor.handle.costs.remote(job.prompts).future())
        except Exception as exc:
            logger.debug("the Ray actor %s could not look in its cache: %s", actor.name, exc)
            return [(True, True)] * job.size
        return costs

    def _submit(self, job: _Job, actor: _Actor) -> None:
        future = asyncio.wrap_future(actor.handle.ask.remote(job.prompts).future())
        future.add_done_callback(_mark_retrieved)
        self._running[future] = (job, actor)
        actor.load += job.size
        actor.jobs.add(future)
        self.ledger.sent(job.size)

    def _finished(self, future: asyncio.Future[Any]) -> None:
        job, actor = self._running.pop(future)
        actor.load -= job.size
        actor.jobs.discard(future)
        self.ledger.returned(job.size, job.reserved_usd)
        job.reserved_usd = 0.0  # a job asked again (its actor died) is reserved anew
        ray = self._ray_module
        lost = (ray.exceptions.RayActorError, ray.exceptions.OutOfMemoryError, ray.exceptions.ObjectLostError)
        try:
            answers, usage = future.result()
        except lost as exc:
            self._replace(actor)
            job.deaths += 1
            if job.deaths >= DEATHS_PER_IMAGE:
                message = f"the Ray actor asking it died {job.deaths} times (last: {type(exc).__name__})"
                self._write_errors(job, "worker_died", message)
            else:
                self._queue.appendleft(job)
            return
        except Exception as exc:  # a bug in an actor: the questions fail, the run goes on
            logger.error("a Ray actor failed on %s: %s", job.prompts[0].image, exc)
            self._write_errors(job, type(exc).__name__, redact(str(exc))[-2000:])
            return
        self._usage[actor.name] = latest_usage(self._usage.get(actor.name, {}), usage)
        names = [*USAGE_FIELDS, *(f"judge_{name}" for name in JUDGE_FIELDS)]
        totals = {name: sum(u.get(name, 0.0) for u in self._usage.values()) for name in names}
        self.ledger.add_usage_totals(totals)
        for records in answers:
            self.ledger.write(records)

    def _write_errors(self, job: _Job, error_class: str, message: str) -> None:
        for prompt in job.prompts:
            self.ledger.write(
                [
                    question_record(q, status=Status.ERROR, error_class=error_class, error_message=message)
                    for q in prompt.questions
                ]
            )


def latest_usage(known: dict[str, float], reported: dict[str, float]) -> dict[str, float]:
    """An actor's counters from the snapshot a job brought back and the ones known before: each only grows,
    and two of an actor's jobs may come back in either order, so an earlier snapshot read after a later one
    must not take counts back (the judge's calls went missing from run.json so)."""
    return {name: max(value, known.get(name, 0.0)) for name, value in reported.items()}


async def _image_batches(source: AsyncIterator[Work]) -> AsyncIterator[list[Prompt] | PlanFailure]:
    """The plan's prompts grouped by image (consecutive in the plan).

    An image's prompts travel together, so one actor asks its chain-of-thought turn once, as locally.
    """
    batch: list[Prompt] = []
    async for item in source:
        if isinstance(item, PlanFailure):
            if batch:
                yield batch
                batch = []
            yield item
            continue
        if batch and batch[-1].image != item.image:
            yield batch
            batch = []
        batch.append(item)
    if batch:
        yield batch


def _mark_retrieved(future: asyncio.Future[Any]) -> None:
    """Read a finished call's error so asyncio does not log it as never retrieved: the calls still
    pending when the run stops end with ActorDiedError once their actors are killed, as they should;
    the driver reads the result of every call it still waits for itself."""
    if not future.cancelled():
        future.exception()
