"""APScheduler 3.x jobs (ingest per source) and the Redis lease that keeps one scheduler.

Jobs are thin wrappers around `recommender.pipeline`. Several `paperbot run` processes may
share one Redis; only the holder of the lease schedules, the others stand by and take
over when the holder stops renewing.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from bot.config import Settings
from bot.repo import LeaseRepo
from recommender import pipeline
from recommender.embeddings import TextEncoder
from recommender.index import SearchIndex
from recommender.store import PREFIX, Store, StoreUnavailable
from recommender.types import IngestReport

__all__ = [
    "INGEST_JOB_PREFIX",
    "Lease",
    "Runtime",
    "SchedulerService",
    "add_ingest_jobs",
    "build_scheduler",
    "embed_safely",
    "ingest_job",
    "ingest_with_settings",
    "source_options",
]

log = logging.getLogger(__name__)

INGEST_JOB_PREFIX = "ingest:"
LEASE_NAME = "scheduler"
LEASE_TTL = 30.0
# Longest a late run may still start: an ingest an hour late is still worth running once,
# but not past half an interval, when the next regular run is near anyway.
MAX_MISFIRE_GRACE = 15 * 60


@dataclass
class Runtime:
    """What jobs need at run time: settings, the store, the encoder and the live index."""

    settings: Settings
    store: Store
    encoder: TextEncoder | None = None
    index: SearchIndex | None = None
    # Builds the encoder on first use: importing it costs seconds that a run with nothing
    # new to embed should not pay.
    encoder_factory: Callable[[], TextEncoder | None] | None = None
    # Reports of the most recent run per source, for status output and tests.
    last_reports: dict[str, IngestReport] = field(default_factory=dict)
    # The chat side, when one runs: digests are sent through it, on its event loop.
    core: Any = None
    loop: asyncio.AbstractEventLoop | None = None
    # The task engine (`bot.jobs.actors.Jobs`): when set, scheduled jobs only enqueue.
    jobs: Any = None

    def get_encoder(self) -> TextEncoder | None:
        """The encoder, built by `encoder_factory` the first time it is needed."""
        if self.encoder is None and self.encoder_factory is not None:
            factory, self.encoder_factory = self.encoder_factory, None
            self.encoder = factory()
        return self.encoder


def source_options(settings: Settings, kind: str, **overrides: Any) -> dict[str, Any]:
    """`pipeline.ingest_source` keyword arguments for source `kind` from the settings.

    Overrides with a None value are ignored, so CLI options that were not given fall back
    to the configuration.
    """
    options: dict[str, Any] = {"timeout": settings.http_timeout}
    base_url = settings.base_url(kind)
    if base_url:
        options["base_url"] = base_url
    if kind in ("arxiv", "rss"):
        options["categories"] = list(settings.categories)
    if kind == "arxiv" and settings.arxiv_query:
        options["query"] = settings.arxiv_query
    if kind == "jsonl" and settings.jsonl_path is not None:
        options["path"] = settings.jsonl_path
    options.update({k: v for k, v in overrides.items() if v is not None})
    return options


def ingest_with_settings(
    runtime: Runtime,
    kind: str,
    *,
    progress: pipeline.Progress | None = None,
    **overrides: Any,
) -> IngestReport:
    """Ingest one source, then embed and index what changed (the whole per-source flow)."""
    options = source_options(runtime.settings, kind, **overrides)
    report = pipeline.ingest_source(runtime.store, kind, progress=progress, **options)
    changed = [*report.new_ids, *report.updated_ids]
    if changed:
        embed_safely(runtime, changed, progress)
        if runtime.index is not None:
            pipeline.refresh_index(runtime.index, runtime.store, paper_ids=changed)
    runtime.last_reports[kind] = report
    return report


def embed_safely(
    runtime: Runtime, paper_ids: Sequence[str], progress: pipeline.Progress | None = None
) -> int:
    """Embed papers into the store's cache; an encoder failure is logged, not raised."""
    try:
        encoder = runtime.get_encoder() if paper_ids else None
        return pipeline.embed_new(runtime.store, encoder, paper_ids, progress=progress)
    except StoreUnavailable:
        raise
    except Exception as exc:  # the papers are stored; missing vectors are computed later
        log.warning("embedding skipped: %s: %s", type(exc).__name__, first_line(exc))
        return 0


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type when it has none), for one line."""
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__


def ingest_job(runtime: Runtime, kind: str) -> IngestReport | None:
    """The scheduled ingest of one source: enqueued for a worker when a task engine runs,
    else run here (never raises, logs one line per run)."""
    if runtime.jobs is not None:
        return _enqueue(lambda: runtime.jobs.ingest(kind), f"ingest {kind}")
    report = run_ingest(runtime, kind)
    core = runtime.core
    if report is not None and report.new and core is not None and core.service.state is None:
        # The first papers of a new library: publish a model now, not at the next retrain.
        retrain_job(runtime)
    return report


def _enqueue(send: Callable[[], None], what: str) -> None:
    """Enqueue a job; a broker that cannot be reached costs this tick only (one line)."""
    try:
        send()
    except Exception as exc:
        log.error("could not enqueue %s: %s: %s", what, type(exc).__name__, first_line(exc))


def run_ingest(runtime: Runtime, kind: str) -> IngestReport | None:
    """Ingest one source now: never raises, logs one line per run."""
    try:
        report = ingest_with_settings(runtime, kind)
    except StoreUnavailable as exc:
        log.error("ingest %s: %s", kind, exc)
        return None
    except Exception as exc:
        log.error("ingest %s failed: %s: %s", kind, type(exc).__name__, first_line(exc))
        log.debug("ingest %s traceback", kind, exc_info=True)
        return None
    if report.error:
        log.error("ingest %s: %s", report.source, report.error)
    else:
        log.info("ingest %s", report.summary())
    return report


def build_scheduler(runtime: Runtime, *, run_now: bool = True) -> BackgroundScheduler:
    """A scheduler (not started) with one interval ingest job per configured source."""
    interval = timedelta(minutes=runtime.settings.ingest_interval_minutes)
    grace = int(min(MAX_MISFIRE_GRACE, max(60, interval.total_seconds() // 2)))
    scheduler = BackgroundScheduler(
        # One worker: two sources ingesting at once could both merge the same paper
        # (read-modify-write), and one would lose the other's fields.
        executors={"default": ThreadPoolExecutor(max_workers=1)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": grace},
        timezone=UTC,
    )
    add_ingest_jobs(scheduler, runtime, run_now=run_now)
    if runtime.core is not None:
        add_chat_jobs(scheduler, runtime)
    return scheduler


RETRAIN_JOB = "retrain"
DIGEST_JOB = "digests"
SLACK_PURGE_JOB = "slack-purge"
RETRAIN_MINUTES = 30
DIGEST_TICK_SECONDS = 60
SLACK_PURGE_MINUTES = 60


def add_chat_jobs(scheduler: BackgroundScheduler, runtime: Runtime) -> list[str]:
    """Retraining after new feedback, and the per-minute digest tick (own worker each)."""
    scheduler.add_executor(ThreadPoolExecutor(max_workers=1), alias="train")
    scheduler.add_executor(ThreadPoolExecutor(max_workers=1), alias="digests")
    scheduler.add_job(
        retrain_job,
        "interval",
        minutes=RETRAIN_MINUTES,
        id=RETRAIN_JOB,
        name="retrain after new feedback",
        args=[runtime],
        executor="train",
        replace_existing=True,
        # At once when the lease is taken: a library with no published model gets one
        # (only this process trains; the others serve what it publishes).
        next_run_time=datetime.now(UTC) + timedelta(seconds=1),
    )
    scheduler.add_job(
        digest_job,
        "interval",
        seconds=DIGEST_TICK_SECONDS,
        id=DIGEST_JOB,
        name="send due digests",
        args=[runtime],
        executor="digests",
        replace_existing=True,
        next_run_time=datetime.now(UTC) + timedelta(seconds=5),
    )
    if not runtime.settings.slack_install_flow:
        return [RETRAIN_JOB, DIGEST_JOB]
    # Many Slack workspaces: delete the data of those uninstalled longer than the grace period.
    scheduler.add_job(
        slack_purge_job,
        "interval",
        minutes=SLACK_PURGE_MINUTES,
        id=SLACK_PURGE_JOB,
        name="delete data of uninstalled Slack workspaces",
        args=[runtime],
        executor="train",
        replace_existing=True,
    )
    return [RETRAIN_JOB, DIGEST_JOB, SLACK_PURGE_JOB]


def slack_purge_job(runtime: Runtime, now: float | None = None) -> dict[str, int]:
    """Delete the data of Slack workspaces past their uninstall grace period; never raises."""
    from bot.slack_purge import purge_due

    try:
        return purge_due(runtime.store, runtime.settings.slack_uninstall_grace_days, now)
    except Exception as exc:
        log.error("slack purge failed: %s: %s", type(exc).__name__, first_line(exc))
        return {}


def retrain_job(runtime: Runtime) -> bool:
    """The scheduled retrain: enqueued when a task engine runs, else run here."""
    if runtime.jobs is not None:
        _enqueue(runtime.jobs.retrain, "retrain")
        return False
    return run_retrain(runtime)


def run_retrain(runtime: Runtime) -> bool:
    """Fit and publish the recommender if none is published yet, or if feedback changed
    (or the catalogue grew) since the last fit."""
    service = runtime.core.service
    try:
        model = service.train_if_needed()
        if model is None:
            return False
    except Exception as exc:
        log.error("retrain failed: %s: %s", type(exc).__name__, first_line(exc))
        return False
    log.info(
        "retrained on %s interactions from %s people in %.1fs",
        model.report.get("interactions"),
        model.report.get("users"),
        model.report.get("fit_seconds", 0.0),
    )
    return True


def digest_job(runtime: Runtime, now: datetime | None = None) -> dict[str, str]:
    """The per-minute digest tick: enqueues the slot's planning job (workers rank and send).

    Without a task engine (one-process tools and tests) it sends here, on the chat loop.
    Never raises.
    """
    if runtime.jobs is not None:
        _enqueue(lambda: runtime.jobs.plan(now), "the digest plan")
        return {}
    core = runtime.core
    try:
        coro = core.delivery.run_due(now)
        if runtime.loop is not None and runtime.loop.is_running():
            results = asyncio.run_coroutine_threadsafe(coro, runtime.loop).result(timeout=900)
        else:
            results = asyncio.run(coro)
    except StoreUnavailable as exc:
        # Due digests stay due (and a half-sent one stays in the outbox): the next run
        # after the database is back sends them.
        log.error("digest run skipped: paperbot cannot reach its database (%s)", exc)
        return {}
    except Exception as exc:
        log.error("digest run failed: %s: %s", type(exc).__name__, first_line(exc))
        return {}
    for sub_id, outcome in results.items():
        log.info("digest %s: %s", sub_id, outcome)
    return results


def add_ingest_jobs(
    scheduler: BackgroundScheduler, runtime: Runtime, *, run_now: bool = True
) -> list[str]:
    """Add (or replace) the ingest job of every configured source; returns the job ids."""
    settings = runtime.settings
    job_ids = []
    for kind in settings.sources:
        extra: dict[str, Any] = {}
        if run_now:
            # Ingest at start-up rather than an interval later.
            extra["next_run_time"] = datetime.now(UTC)
        job = scheduler.add_job(
            ingest_job,
            "interval",
            minutes=settings.ingest_interval_minutes,
            id=f"{INGEST_JOB_PREFIX}{kind}",
            name=f"ingest {kind}",
            args=[runtime, kind],
            replace_existing=True,
            **extra,
        )
        job_ids.append(job.id)
    return job_ids


# -- the lease ---------------------------------------------------------------------------


class Lease:
    """A Redis lock with a random token and a TTL, renewed while held (see `Store`).

    Renew and release compare the token first, so a process whose lease expired can never
    extend or delete the lease another process took since.
    """

    def __init__(self, store: Store, name: str = LEASE_NAME, ttl: float = LEASE_TTL) -> None:
        """A lease on `pb:lease:<name>` lasting `ttl` seconds unless renewed."""
        self.leases = LeaseRepo(store)
        self.name = name
        self.key = f"{PREFIX}lease:{name}"
        self.ttl_ms = max(1, int(ttl * 1000))
        self.token = secrets.token_hex(16)

    def acquire(self) -> bool:
        """Take the lease if nobody holds it (or it is already ours, which renews it)."""
        return self.leases.acquire_lease(self.name, self.token, self.ttl_ms)

    def renew(self) -> bool:
        """Extend our lease; False if it expired and is gone or held by someone else."""
        return self.leases.renew_lease(self.name, self.token, self.ttl_ms)

    def release(self) -> bool:
        """Give the lease up now so a standby process can take over at once."""
        return self.leases.release_lease(self.name, self.token)

    def holder(self) -> str | None:
        """The current token, whoever holds it (for diagnostics)."""
        return self.leases.lease_holder(self.name)


class SchedulerService:
    """Runs the scheduler only while this process holds the lease; stands by otherwise."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        lease_ttl: float = LEASE_TTL,
        run_now: bool = True,
        scheduler_factory: Callable[..., BackgroundScheduler] = build_scheduler,
    ) -> None:
        """A service for `runtime`; call `run` (blocking) or `tick` repeatedly."""
        self.runtime = runtime
        self.lease = Lease(runtime.store, ttl=lease_ttl)
        self.lease_ttl = lease_ttl
        self.run_now = run_now
        self.scheduler_factory = scheduler_factory
        self.scheduler: BackgroundScheduler | None = None
        self._said_standby = False
        self._said_unreachable = False

    @property
    def is_leader(self) -> bool:
        """Whether this process is scheduling jobs right now."""
        return self.scheduler is not None

    def tick(self) -> bool:
        """Take or renew the lease, start or stop the scheduler to match; returns is_leader."""
        try:
            held = self.lease.renew() if self.is_leader else self.lease.acquire()
            self._said_unreachable = False
        except Exception as exc:  # Redis down: safer to stop scheduling than to risk two
            if not self._said_unreachable:
                log.warning("scheduler lease check failed: %s", first_line(exc))
                self._said_unreachable = True
            held = False
        if held and self.scheduler is None:
            self.scheduler = self.scheduler_factory(self.runtime, run_now=self.run_now)
            self.scheduler.start()
            self._said_standby = False
            jobs = ", ".join(job.id for job in self.scheduler.get_jobs())
            log.info("holding the scheduler lease; jobs: %s", jobs)
        elif not held and self.scheduler is not None:
            log.warning("scheduler lease lost; stopping jobs until it can be taken again")
            self._stop_scheduler(wait=False)
        elif not held and not self._said_standby:
            log.info("another paperbot process holds the scheduler lease; standing by")
            self._said_standby = True
        return self.is_leader

    def run(self, stop: threading.Event) -> None:
        """Tick every third of the lease TTL until `stop` is set, then shut down cleanly."""
        try:
            while not stop.is_set():
                self.tick()
                stop.wait(self.lease_ttl / 3)
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        """Stop the scheduler (waiting for a running job) and release the lease."""
        was_leader = self.is_leader
        self._stop_scheduler(wait=True)
        if was_leader:
            try:
                self.lease.release()
            except Exception as exc:  # it expires by itself within the TTL anyway
                log.warning("could not release the scheduler lease: %s", exc)

    def _stop_scheduler(self, *, wait: bool) -> None:
        """Shut the scheduler down if it runs."""
        scheduler, self.scheduler = self.scheduler, None
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=wait)
