"""`paperbot scheduler`: only the clock. The lease holder runs it; other copies stand by.

The clock only enqueues (ingest per source, retrain, the digest plan): `paperbot worker`
processes run the jobs.
"""

from __future__ import annotations

import argparse
from typing import Any

from bot.cli_app import App, add_command
from bot.jobs.context import loop_thread
from bot.jobs.engine import start_engine
from bot.roles.common import chat_core, stop_on_signals
from bot.scheduler import SchedulerService


def cmd_scheduler(args: argparse.Namespace, app: App) -> int:
    """Run the clock while holding the lease; stand by otherwise; stop on SIGTERM/Ctrl-C."""
    settings = app.settings
    with stop_on_signals() as stop:
        runtime = app.runtime()
        runtime.core = chat_core(app)
        loop = loop_thread("paperbot-clock")
        # Senders only (consume=False): the jobs go to the broker, workers run them.
        engine = start_engine(settings, runtime.core, runtime, loop=loop, ports={}, consume=False)
        service = SchedulerService(runtime)
        app.err.print(
            f"paperbot scheduler: enqueues ingest of {', '.join(settings.sources)} every "
            f"{settings.ingest_interval_minutes} min, retrain and the digest plan; lease TTL "
            f"{settings.lease_ttl:g} s on {app.where()}. Ctrl-C to stop."
        )
        try:
            service.run(stop)
        finally:
            engine.stop()
            runtime.core.service.stop()
            loop.call_soon_threadsafe(loop.stop)
    app.err.print("paperbot scheduler stopped.")
    return 0


def add_scheduler(sub: Any) -> None:
    """Register `scheduler`."""
    p = add_command(
        sub,
        "scheduler",
        help="run only the clock: enqueue ingest, retraining and digest planning on time",
        description="Run only the clock (APScheduler): every PAPERBOT_INGEST_INTERVAL_MINUTES "
        "enqueue the ingest of each source in PAPERBOT_SOURCES, enqueue a retrain after new "
        "feedback, and every minute the plan of the digests that fall due; `paperbot worker` "
        "processes run them. Serves no chat platform. Start one or more: the holder of the "
        "Redis lease runs the clock, the others stand by and take over within "
        "PAPERBOT_LEASE_TTL seconds (plus one) when it dies. Each lease term carries a "
        "fencing token that every write of its jobs checks first.",
        epilog="example:\n  REDIS_URL=redis://redis:6379/0 paperbot scheduler",
    )
    p.set_defaults(handler=cmd_scheduler)
