"""The jobs: ingest a source, retrain, plan a slot's digests, rank a batch, deliver one.

Every actor takes one JSON object (checked by `payloads.DropMalformed`) and is idempotent:
delivery is at least once, so a job may run again after a crash or a lost acknowledgement.
A digest is keyed by (subscription, period); the outbox holds the ids already posted, so a
repeated job resumes it and never posts a message twice.
"""

from __future__ import annotations

import functools
import itertools
import logging
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import dramatiq
import redis

from bot.delivery import serves
from bot.jobs.context import current
from bot.scheduler import first_line
from bot.subscriptions import Subscription, due
from recommender.store import StoreUnavailable

log = logging.getLogger(__name__)

QUEUE = "paperbot"  # ingest, retrain, planning and ranking
PLATFORMS = ("slack", "discord", "console")
# Digests ranked together in one job.
BATCH = 200
# A planned digest is not planned again for this long (its jobs are on their way).
PLANNED_TTL = 300
# Longest an ingest or a fit may hold its lease (a crashed holder's lease runs out then).
WORK_LEASE_MS = 20 * 60 * 1000
MINUTE_MS = 60_000


# How long a job waits for Redis to come back before it fails (and is retried later).
PATIENCE = 300.0
BACKOFF_CAP = 2.0


def patient(fn: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    """Run a job again while Redis cannot be reached, with backoff and one log line.

    A job that failed on a lost connection cannot be sent back to the queue while Redis
    is down (the retry would be lost with it), so it waits here; every job is idempotent,
    so running it again from the start is safe.
    """

    @functools.wraps(fn)
    def wrapper(payload: dict[str, Any]) -> None:
        deadline = time.monotonic() + PATIENCE
        delay = 0.25
        said = False
        while True:
            try:
                return fn(payload)
            except (StoreUnavailable, redis.ConnectionError, redis.TimeoutError) as exc:
                if time.monotonic() > deadline:
                    raise
                if not said:
                    log.warning("%s waits for Redis: %s", fn.__name__, first_line(exc))
                    said = True
                time.sleep(delay)
                delay = min(delay * 2, BACKOFF_CAP)

    return wrapper


class DeliveryRetry(RuntimeError):
    """A digest could not go out yet (a platform error): retried with backoff."""


def deliver_queue(platform: str) -> str:
    """The queue of one platform's deliveries (consumed where that platform's port lives)."""
    return f"deliver_{platform}"


# -- actors -------------------------------------------------------------------------------


def ingest(payload: dict[str, Any]) -> None:
    """Ingest one source (one ingest at a time across all processes)."""
    from bot import scheduler as sched

    ctx = current()
    kind = payload["source"]
    if kind not in ctx.settings.sources:
        log.warning("dropped ingest job: source %r is not configured here", kind[:40])
        return
    token = secrets.token_hex(8)
    # Two sources ingesting at once could both merge the same paper (read-modify-write).
    if not ctx.chat.acquire_lease("ingest", token, WORK_LEASE_MS):
        log.info("ingest %s waits: another ingest is running", kind)
        ctx.jobs.ingest(kind, delay=30.0)
        return
    try:
        report = sched.run_ingest(ctx.runtime, kind)
    finally:
        ctx.chat.release_lease("ingest", token)
    if report is not None and report.new and ctx.service.state is None:
        # The first papers of a new library: publish a model now, not at the next retrain.
        ctx.jobs.retrain()


def retrain(payload: dict[str, Any]) -> None:
    """Fit and publish the recommender when feedback or the catalogue changed."""
    from bot import scheduler as sched

    ctx = current()
    token = secrets.token_hex(8)
    if not ctx.chat.acquire_lease("retrain", token, WORK_LEASE_MS):
        log.info("retrain skipped: another process is fitting")
        return
    try:
        sched.run_retrain(ctx.runtime)
    finally:
        ctx.chat.release_lease("retrain", token)


def plan_digests(payload: dict[str, Any]) -> None:
    """Find the digests due at a slot; personal ones go to ranking in batches."""
    ctx = current()
    try:
        now = datetime.fromisoformat(payload["slot"])
    except ValueError:
        log.warning("dropped plan job: bad slot %r", payload["slot"][:40])
        return
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    personal: list[tuple[Subscription, str]] = []
    planned = 0
    for record in ctx.chat.subscriptions():
        sub = Subscription.from_dict(record)
        port = ctx.delivery.ports.get(sub.platform)
        if port is not None and not serves(port, sub.workspace):
            continue
        slot = due(sub, now)
        if slot is not None:
            period = slot[0]
        elif sub.last_period and ctx.chat.get_pending(f"{sub.id}:{sub.last_period}"):
            period = sub.last_period  # half sent earlier: its jobs may all have failed
        else:
            continue
        if not ctx.chat.once(f"planned:{sub.id}:{period}", PLANNED_TTL):
            continue
        planned += 1
        if sub.kind == "dm":
            personal.append((sub, period))
        else:
            ctx.jobs.deliver(sub.id, sub.platform, period)
    personal = across_workspaces(personal)
    for start in range(0, len(personal), BATCH):
        ctx.jobs.rank({sub.id: period for sub, period in personal[start : start + BATCH]})
    if planned:
        log.info("planned %d digests for %s", planned, now.isoformat(timespec="minutes"))


def across_workspaces(due: list[tuple[Subscription, str]]) -> list[tuple[Subscription, str]]:
    """Due digests taken in turn from each workspace: every batch spans all of them, so no
    worker waits on one workspace's spent budget while another's digests queue."""
    by_workspace: dict[tuple[str, str], list[tuple[Subscription, str]]] = {}
    for item in due:
        by_workspace.setdefault((item[0].platform, item[0].workspace), []).append(item)
    rounds = itertools.zip_longest(*by_workspace.values())
    return [item for row in rounds for item in row if item is not None]


def rank_batch(payload: dict[str, Any]) -> None:
    """Build and park the personal digests of a batch, then hand each to delivery."""
    ctx = current()
    now = datetime.now(UTC)
    subs: list[tuple[Subscription, str]] = []
    for sub_id, period in payload["period_of"].items():
        record = ctx.chat.get_subscription(sub_id)
        if record is None:
            log.info("digest %s:%s dropped: the subscription is gone", sub_id, period)
            continue
        subs.append((Subscription.from_dict(record), period))
    for sub, period in ctx.delivery.park_many(subs, now):
        ctx.jobs.deliver(sub.id, sub.platform, period)


def deliver(payload: dict[str, Any]) -> None:
    """Post (the rest of) one digest; come back later when the channel or platform says so."""
    ctx = current()
    sub_id, period = payload["sub"], payload["period"]
    record = ctx.chat.get_subscription(sub_id)
    if record is None:
        log.info("digest %s:%s dropped: the subscription is gone", sub_id, period)
        return
    sub = Subscription.from_dict(record)
    if sub.platform not in ctx.delivery.ports:
        log.warning("digest %s:%s waits: no %s port in this process", sub_id, period, sub.platform)
        ctx.jobs.deliver(sub.id, sub.platform, period, delay=30.0)
        return
    step = ctx.run(ctx.delivery.step(sub, period))
    if step.outcome in ("later", "skipped") and step.delay > 0:
        ctx.jobs.deliver(sub.id, sub.platform, period, delay=step.delay)
    elif step.outcome == "retry":
        raise DeliveryRetry(f"digest {sub_id}:{period} not delivered yet")
    elif step.outcome == "failed":
        log.error("digest %s:%s given up after repeated failures", sub_id, period)


# -- declaration -------------------------------------------------------------------------


def declare(broker: dramatiq.Broker) -> dict[str, dramatiq.Actor]:
    """Declare every actor on `broker` (each process does this once, before any job)."""
    specs: list[tuple[str, Callable[..., Any], str, int]] = [
        ("ingest", ingest, QUEUE, 30 * MINUTE_MS),
        ("retrain", retrain, QUEUE, 30 * MINUTE_MS),
        ("plan_digests", plan_digests, QUEUE, 5 * MINUTE_MS),
        ("rank_batch", rank_batch, QUEUE, 10 * MINUTE_MS),
    ]
    specs += [(f"deliver_{p}", deliver, deliver_queue(p), 10 * MINUTE_MS) for p in PLATFORMS]
    actors = {}
    for name, fn, queue, limit in specs:
        actors[name] = dramatiq.actor(
            patient(fn), actor_name=name, queue_name=queue, broker=broker, time_limit=limit
        )
    return actors


class Jobs:
    """Enqueues jobs (what the scheduler and the actors themselves call)."""

    def __init__(self, broker: dramatiq.Broker) -> None:
        self.broker = broker
        self.actors = declare(broker)

    def _send(self, name: str, payload: dict[str, Any], delay: float = 0.0) -> None:
        """Enqueue one job, after `delay` seconds."""
        ms = int(delay * 1000)
        self.actors[name].send_with_options(args=(payload,), delay=ms or None)

    def ingest(self, source: str, *, delay: float = 0.0) -> None:
        """Ingest one source."""
        self._send("ingest", {"source": source}, delay)

    def retrain(self) -> None:
        """Retrain if needed."""
        self._send("retrain", {})

    def plan(self, now: datetime | None = None) -> None:
        """Plan the digests due at `now` (the scheduler's per-minute tick)."""
        now = now or datetime.now(UTC)
        self._send("plan_digests", {"slot": now.isoformat()})

    def rank(self, period_of: dict[str, str]) -> None:
        """Rank and park a batch of personal digests."""
        self._send("rank_batch", {"period_of": dict(period_of)})

    def deliver(self, sub_id: str, platform: str, period: str, *, delay: float = 0.0) -> None:
        """Deliver one digest on its platform's queue."""
        name = f"deliver_{platform}" if platform in PLATFORMS else "deliver_slack"
        self._send(name, {"sub": sub_id, "period": period}, delay)

    def queues(self) -> list[str]:
        """Every queue paperbot uses."""
        return [QUEUE, *(deliver_queue(p) for p in PLATFORMS)]
