"""`paperbot worker`: a Dramatiq worker running paperbot's jobs (ingest, retrain, digests)."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from typing import Any

from threadpoolctl import threadpool_limits

from bot.cli_app import App, add_command
from bot.core import BotCore
from bot.jobs.actors import QUEUE, deliver_queue
from bot.jobs.context import loop_thread
from bot.jobs.engine import delivery_ports, start_engine
from recommender.store import StoreUnavailable

log = logging.getLogger("bot")
MAX_BACKOFF = 30.0


def _queues(raw: str | None) -> list[str] | None:
    """`--queues paperbot,deliver_slack` (or `digests`/`slack` shorthands) as queue names."""
    if not raw:
        return None
    short = {"jobs": QUEUE, "slack": deliver_queue("slack"), "discord": deliver_queue("discord")}
    return [short.get(q.strip(), q.strip()) for q in raw.split(",") if q.strip()]


def _wait_for_store(app: App, stop: threading.Event) -> bool:
    """Connect to Redis, retrying with backoff (one line when it is down); False if stopped."""
    delay, said = 1.0, False
    while not stop.is_set():
        try:
            app.store()
            if said:
                log.warning("Redis is reachable again; starting the worker")
            return True
        except StoreUnavailable as exc:
            if not said:
                log.warning("worker waits for Redis (retrying with backoff): %s", exc)
                said = True
            stop.wait(delay)
            delay = min(delay * 2, MAX_BACKOFF)
    return False


def cmd_worker(args: argparse.Namespace, app: App) -> int:
    """Run jobs until SIGTERM or Ctrl-C; running jobs finish or go back to the queue."""
    settings = app.settings
    stop = threading.Event()
    restore = None
    if threading.current_thread() is threading.main_thread():
        restore = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threadpool_limits(1, "blas")
    if not _wait_for_store(app, stop):
        return 0
    service = app.service()
    service.start()  # follows the published model; never trains on its own
    core = BotCore(service, arxiv_url=settings.arxiv_api_url)
    runtime = app.runtime(index=service.index)
    runtime.core = core
    loop = loop_thread()
    ports = delivery_ports(settings, core.store)
    if "slack" in ports:
        import asyncio

        from bot.slack_app import open_session

        asyncio.run_coroutine_threadsafe(open_session(ports["slack"]), loop).result(10)
    engine = start_engine(
        settings,
        core,
        runtime,
        loop=loop,
        ports=ports,
        threads=args.threads,
        queues=_queues(args.queues),
    )
    app.err.print(
        f"paperbot worker: {args.threads or settings.worker_threads} threads on "
        f"{', '.join(sorted(engine.queues))} "
        f"({app.where()}). Ctrl-C to stop."
    )
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        engine.stop()
        service.stop()
        loop.call_soon_threadsafe(loop.stop)
        if restore is not None:
            signal.signal(signal.SIGTERM, restore)
    app.err.print("paperbot worker stopped.")
    return 0


def add_worker(sub: Any) -> None:
    """Register `worker`."""
    p = add_command(
        sub,
        "worker",
        help="run paperbot's jobs (ingest, retrain, ranking, digest delivery) as a worker",
        description="A Dramatiq worker: takes jobs from the broker (PAPERBOT_BROKER_URL, or "
        "paperbot's own Redis) and runs them. Start as many as you like, on any machine that "
        "reaches Redis; digests go out at the platforms' rate limits, shared by all workers.",
    )
    p.add_argument(
        "--threads", type=int, default=None, help="worker threads (PAPERBOT_WORKER_THREADS)"
    )
    p.add_argument(
        "--queues",
        default=None,
        help="comma-separated queues (default: every queue this worker can serve): "
        f"{QUEUE}, {deliver_queue('slack')}, {deliver_queue('discord')}",
    )
    p.set_defaults(handler=cmd_worker)
