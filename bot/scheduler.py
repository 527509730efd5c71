"""The clock: APScheduler 3.x jobs (ingest per source, retrain, digests) in the lease holder.

Jobs are thin wrappers: each calls one function (`ingest_job`, `retrain_job`,
`digest_job`, `slack_purge_job`). Several processes may share one Redis; only the holder
of the lease (`bot.repo.clock.ClockLease`) runs the clock, the others stand by and take over
when the holder stops renewing. Every job of a lease term carries that term's fence and
checks it before each write, so a holder that lost the lease cannot write any more.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from bot.config import Settings
from bot.repo.clock import ClockLease, Fence, FencedOut, FencedStore, fenced, job_lock, last_runs
from recommender import pipeline
from recommender.embeddings import TextEncoder
from recommender.index import SearchIndex
from recommender.store import Store, StoreUnavailable
from recommender.types import IngestReport

__all__ = [
    "INGEST_JOB_PREFIX",
    "Runtime",
    "SchedulerService",
    "add_ingest_jobs",
    "build_scheduler",
    "embed_safely",
    "first_run_times",
    "ingest_job",
    "ingest_with_settings",
    "source_options",
]

log = logging.getLogger(__name__)

INGEST_JOB_PREFIX = "ingest:"
# How often a standby process tries to take a free lease: takeover within TTL + this.
STANDBY_POLL = 1.0
# A running job's lock outlives a crashed process by at most this long.
JOB_LOCK_TTL = 60.0
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
    fence: Fence | None = None,
    **overrides: Any,
) -> IngestReport:
    """Ingest one source, then embed and index what changed (the whole per-source flow).

    With a `fence` (the clock's jobs) every store write checks it first: FencedOut stops
    the run as soon as the lease it started under has ended.
    """
    options = source_options(runtime.settings, kind, **overrides)
    store = runtime.store if fence is None else _fenced_store(runtime.store, fence, kind)
    report = pipeline.ingest_source(store, kind, progress=progress, **options)
    changed = [*report.new_ids, *report.updated_ids]
    if changed:
        embed_safely(runtime, changed, progress, store=store)
        if runtime.index is not None:
            pipeline.refresh_index(runtime.index, runtime.store, paper_ids=changed)
    runtime.last_reports[kind] = report
    return report


def _fenced_store(store: Store, fence: Fence, kind: str) -> Store:
    """The store as seen by the clock's ingest of `kind`: writes check the fence first."""
    return cast(Store, FencedStore(store, fence, f"ingest {kind}"))


def embed_safely(
    runtime: Runtime,
    paper_ids: Sequence[str],
    progress: pipeline.Progress | None = None,
    *,
    store: Store | None = None,
) -> int:
    """Embed papers into the store's cache; an encoder failure is logged, not raised."""
    try:
        encoder = runtime.get_encoder() if paper_ids else None
        return pipeline.embed_new(store or runtime.store, encoder, paper_ids, progress=progress)
    except (StoreUnavailable, FencedOut):
        raise
    except Exception as exc:  # the papers are stored; missing vectors are computed later
        log.warning("embedding skipped: %s: %s", type(exc).__name__, first_line(exc))
        return 0


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type when it has none), for one line."""
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__


def ingest_job(runtime: Runtime, kind: str, fence: Fence | None = None) -> IngestReport | None:
    """The scheduled ingest of one source: enqueued for a worker when a task engine runs,
    else run here (never raises, logs one line per run)."""
    job_id = f"{INGEST_JOB_PREFIX}{kind}"
    if runtime.jobs is not None:
        return _enqueue(lambda: runtime.jobs.ingest(kind), f"ingest {kind}", fence, job_id)
    report = run_ingest(runtime, kind, fence)
    core = runtime.core
    if report is not None and report.new and core is not None and core.service.state is None:
        # The first papers of a new library: publish a model now, not at the next retrain.
        retrain_job(runtime, fence)
    return report


def _enqueue(
    send: Callable[[], None], what: str, fence: Fence | None = None, job_id: str | None = None
) -> None:
    """Enqueue a job, only under a live lease (an enqueue is the clock's write); a broker
    that cannot be reached costs this tick only (one line)."""
    try:
        fenced(fence, what)()
        send()
        if fence is not None and job_id is not None:
            fence.record_run(job_id)
    except FencedOut as exc:
        log.warning("%s not enqueued: %s", what, exc)
    except Exception as exc:
        log.error("could not enqueue %s: %s: %s", what, type(exc).__name__, first_line(exc))


def run_ingest(runtime: Runtime, kind: str, fence: Fence | None = None) -> IngestReport | None:
    """Ingest one source now: never raises, logs one line per run.

    A Redis lock per source keeps two processes from ingesting it at once: a new lease
    holder (or a worker) waits (up to the lock's TTL) for a running ingest of the source to
    end, or for a crashed process's lock to run out, and skips the run if it stays busy.
    With a `fence` (the clock's own run) every write checks the lease term first.
    """
    job_id = f"{INGEST_JOB_PREFIX}{kind}"

    def waiting() -> None:
        """One line while another process still ingests this source."""
        log.info("ingest %s: running in another process; waiting for it to end", kind)

    try:
        lock = job_lock(runtime.store, job_id, JOB_LOCK_TTL, wait=JOB_LOCK_TTL, on_wait=waiting)
        with lock as mine:
            if not mine:
                log.warning("ingest %s: still running in another process; skipped", kind)
                return None
            report = ingest_with_settings(runtime, kind, fence=fence)
            if fence is not None:
                fence.record_run(job_id)
    except FencedOut as exc:
        log.warning("ingest %s stopped: %s", kind, exc)
        return None
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


def first_run_times(
    jobs: Sequence[tuple[str, float]],
    last: dict[str, float],
    now: float,
    *,
    stagger: float,
    run_now: bool = True,
) -> dict[str, float]:
    """When each (job id, interval seconds) runs first under a new lease holder.

    A job that ran less than an interval ago (by any holder: `last`, from Redis) keeps its
    rhythm; jobs that are due start `stagger` seconds apart rather than all at once.
    Without `run_now`, a job that never ran waits one interval.
    """
    times: dict[str, float] = {}
    due = 0
    for job_id, interval in jobs:
        ran = last.get(job_id)
        if ran is not None and ran + interval > now:
            times[job_id] = ran + interval
        elif ran is None and not run_now:
            times[job_id] = now + interval
        else:
            times[job_id] = now + due * stagger
            due += 1
    return times


def build_scheduler(
    runtime: Runtime, *, run_now: bool = True, fence: Fence | None = None
) -> BackgroundScheduler:
    """A scheduler (not started) with one interval ingest job per configured source.

    `fence` is the lease term the jobs belong to: each checks it before writing. First
    run times follow the last runs stored in Redis (see `first_run_times`).
    """
    interval = timedelta(minutes=runtime.settings.ingest_interval_minutes)
    grace = int(min(MAX_MISFIRE_GRACE, max(60, interval.total_seconds() // 2)))
    scheduler = BackgroundScheduler(
        # One worker: two sources ingesting at once could both merge the same paper
        # (read-modify-write), and one would lose the other's fields.
        executors={"default": ThreadPoolExecutor(max_workers=1)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": grace},
        timezone=UTC,
    )
    starts = _first_runs(runtime, run_now=run_now)
    add_ingest_jobs(scheduler, runtime, run_now=run_now, fence=fence, starts=starts)
    if runtime.core is not None:
        add_chat_jobs(scheduler, runtime, fence=fence, starts=starts)
    return scheduler


def _first_runs(runtime: Runtime, *, run_now: bool) -> dict[str, float]:
    """First run times of the ingest and retrain jobs for a new term (empty if unknown)."""
    ingest_every = runtime.settings.ingest_interval_minutes * 60.0
    jobs = [(f"{INGEST_JOB_PREFIX}{kind}", ingest_every) for kind in runtime.settings.sources]
    if runtime.core is not None:
        jobs.append((RETRAIN_JOB, RETRAIN_MINUTES * 60.0))
    try:
        last = last_runs(runtime.store.r)
    except Exception as exc:  # without the history, stagger everything
        log.warning("last run times unavailable: %s", first_line(exc))
        last = {}
    return first_run_times(
        jobs, last, time.time(), stagger=runtime.settings.clock_stagger_seconds, run_now=run_now
    )


def _at(epoch: float) -> datetime:
    """Epoch seconds as an aware UTC datetime (APScheduler's next_run_time)."""
    return datetime.fromtimestamp(epoch, UTC)


RETRAIN_JOB = "retrain"
DIGEST_JOB = "digests"
SLACK_PURGE_JOB = "slack-purge"
RETRAIN_MINUTES = 30
DIGEST_TICK_SECONDS = 60
SLACK_PURGE_MINUTES = 60


def add_chat_jobs(
    scheduler: BackgroundScheduler,
    runtime: Runtime,
    *,
    fence: Fence | None = None,
    starts: dict[str, float] | None = None,
) -> list[str]:
    """Retraining after new feedback, and the per-minute digest tick (own worker each)."""
    scheduler.add_executor(ThreadPoolExecutor(max_workers=1), alias="train")
    scheduler.add_executor(ThreadPoolExecutor(max_workers=1), alias="digests")
    # Soon when the lease is taken, unless the last holder retrained recently: a library
    # with no published model gets one (only this process trains; the others serve it).
    retrain_at = (starts or {}).get(RETRAIN_JOB, time.time() + 1)
    scheduler.add_job(
        retrain_job,
        "interval",
        minutes=RETRAIN_MINUTES,
        id=RETRAIN_JOB,
        name="retrain after new feedback",
        args=[runtime, fence],
        executor="train",
        replace_existing=True,
        next_run_time=_at(max(retrain_at, time.time() + 1)),
    )
    scheduler.add_job(
        digest_job,
        "interval",
        seconds=DIGEST_TICK_SECONDS,
        id=DIGEST_JOB,
        name="send due digests",
        args=[runtime],
        kwargs={"fence": fence},
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
        kwargs={"fence": fence},
        executor="train",
        replace_existing=True,
    )
    return [RETRAIN_JOB, DIGEST_JOB, SLACK_PURGE_JOB]


def slack_purge_job(
    runtime: Runtime, now: float | None = None, fence: Fence | None = None
) -> dict[str, int]:
    """Delete the data of Slack workspaces past their uninstall grace period; never raises."""
    from bot.slack_purge import purge_due

    try:
        fenced(fence, "slack purge")()
        return purge_due(runtime.store, runtime.settings.slack_uninstall_grace_days, now)
    except Exception as exc:
        log.error("slack purge failed: %s: %s", type(exc).__name__, first_line(exc))
        return {}


def retrain_job(runtime: Runtime, fence: Fence | None = None) -> bool:
    """The scheduled retrain: enqueued when a task engine runs, else run here."""
    if runtime.jobs is not None:
        _enqueue(runtime.jobs.retrain, "retrain", fence, RETRAIN_JOB)
        return False
    return run_retrain(runtime, fence)


def run_retrain(runtime: Runtime, fence: Fence | None = None) -> bool:
    """Fit and publish the recommender if none is published yet, or if feedback changed
    (or the catalogue grew) since the last fit. The publish checks the fence first."""
    service = runtime.core.service
    try:
        model = service.train_if_needed(before_publish=fenced(fence, "retrain"))
        if fence is not None:
            fence.record_run(RETRAIN_JOB)
        if model is None:
            return False
    except FencedOut as exc:
        log.warning("retrain not published: %s", exc)
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


def digest_job(
    runtime: Runtime, now: datetime | None = None, fence: Fence | None = None
) -> dict[str, str]:
    """The per-minute digest tick: enqueues the slot's planning job (workers rank and send).

    Without a task engine (one-process tools and tests) it sends here, on the chat loop.
    Either way only under a live lease (`fence`). Never raises.
    """
    if runtime.jobs is not None:
        _enqueue(lambda: runtime.jobs.plan(now), "the digest plan", fence)
        return {}
    core = runtime.core
    try:
        # Planning digests is a write (outbox, periods): only under a live lease.
        fenced(fence, "digests")()
        coro = core.delivery.run_due(now)
        if runtime.loop is not None and runtime.loop.is_running():
            results = asyncio.run_coroutine_threadsafe(coro, runtime.loop).result(timeout=900)
        else:
            results = asyncio.run(coro)
    except FencedOut as exc:
        log.warning("digest run skipped: %s", exc)
        return {}
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
    scheduler: BackgroundScheduler,
    runtime: Runtime,
    *,
    run_now: bool = True,
    fence: Fence | None = None,
    starts: dict[str, float] | None = None,
) -> list[str]:
    """Add (or replace) the ingest job of every configured source; returns the job ids."""
    settings = runtime.settings
    job_ids = []
    for kind in settings.sources:
        job_id = f"{INGEST_JOB_PREFIX}{kind}"
        extra: dict[str, Any] = {}
        if starts and job_id in starts:
            extra["next_run_time"] = _at(starts[job_id])
        elif run_now:
            # Ingest at start-up rather than an interval later.
            extra["next_run_time"] = datetime.now(UTC)
        job = scheduler.add_job(
            ingest_job,
            "interval",
            minutes=settings.ingest_interval_minutes,
            id=job_id,
            name=f"ingest {kind}",
            args=[runtime, kind, fence],
            replace_existing=True,
            **extra,
        )
        job_ids.append(job.id)
    return job_ids


# -- the service that runs the clock while holding the lease ---------------------------------


class SchedulerService:
    """Runs the clock only while this process holds the lease; stands by otherwise."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        lease_ttl: float | None = None,
        run_now: bool = True,
        scheduler_factory: Callable[..., BackgroundScheduler] = build_scheduler,
    ) -> None:
        """A service for `runtime`; call `run` (blocking) or `tick` repeatedly."""
        self.runtime = runtime
        self.lease_ttl = lease_ttl or runtime.settings.lease_ttl
        self.lease = ClockLease(runtime.store.r, self.lease_ttl)
        self.run_now = run_now
        self.scheduler_factory = scheduler_factory
        self.scheduler: BackgroundScheduler | None = None
        self.fence: Fence | None = None
        # The last term's clock, shutting down (waiting for its running jobs) off this thread.
        self._stopping: threading.Thread | None = None
        self._said_standby = False
        self._said_unreachable = False

    @property
    def is_leader(self) -> bool:
        """Whether this process is scheduling jobs right now."""
        return self.scheduler is not None

    def tick(self) -> bool:
        """Take or renew the lease, start or stop the clock to match; returns is_leader."""
        if not self.is_leader and self._stopping is not None and self._stopping.is_alive():
            # The previous term's jobs are still finishing here: never two clocks at once.
            return False
        try:
            fence = self._renew() if self.is_leader else self.lease.acquire()
            self._said_unreachable = False
        except Exception as exc:  # Redis down: safer to stop scheduling than to risk two
            if not self._said_unreachable:
                log.warning("scheduler lease check failed: %s", first_line(exc))
                self._said_unreachable = True
            fence = None
        if fence is not None and self.scheduler is None:
            self._start(fence)
        elif fence is None and self.scheduler is not None:
            log.warning("scheduler lease lost; stopping the clock until it can be taken again")
            self._stop_in_background()
        elif fence is None and not self._said_standby:
            log.info("another paperbot process holds the scheduler lease; standing by")
            self._said_standby = True
        return self.is_leader

    def _renew(self) -> Fence | None:
        """This term's fence if the lease could be renewed."""
        return self.fence if self.lease.renew() else None

    def _start(self, fence: Fence) -> None:
        """Build and start the clock for a new lease term."""
        self.fence = fence
        log.info("scheduler lease taken (fence %d)", fence.token)
        self.scheduler = self.scheduler_factory(self.runtime, run_now=self.run_now, fence=fence)
        self.scheduler.start()
        self._said_standby = False
        jobs = ", ".join(job.id for job in self.scheduler.get_jobs())
        log.info("holding the scheduler lease; jobs: %s", jobs)

    def run(self, stop: threading.Event) -> None:
        """Renew every third of the TTL (standby: try every second) until `stop` is set."""
        try:
            while not stop.is_set():
                leader = self.tick()
                stop.wait(self.lease_ttl / 3 if leader else min(self.lease_ttl / 3, STANDBY_POLL))
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        """Stop the clock (waiting for a running job) and release the lease."""
        was_leader = self.is_leader
        scheduler, self.scheduler = self.scheduler, None
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=True)
        if self._stopping is not None:
            self._stopping.join()
        if was_leader:
            self.fence = None
            try:
                self.lease.release()
            except Exception as exc:  # it expires by itself within the TTL anyway
                log.warning("could not release the scheduler lease: %s", exc)

    def _stop_in_background(self) -> None:
        """Stop taking new jobs now; let running ones finish (their writes are fenced)."""
        scheduler, self.scheduler = self.scheduler, None
        self.fence = None
        if scheduler is None or not scheduler.running:
            return
        scheduler.pause()

        def stop() -> None:
            """Wait for running jobs, off the tick thread so renewing never blocks."""
            scheduler.shutdown(wait=True)
            log.info("the clock of the lost lease term has stopped")

        self._stopping = threading.Thread(target=stop, name="clock-stop", daemon=True)
        self._stopping.start()
