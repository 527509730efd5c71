"""`paperbot scheduler`: only the clock. The lease holder runs it; other copies stand by."""

from __future__ import annotations

import argparse
from typing import Any

from bot.cli_app import App, add_command
from bot.roles.common import chat_core, stop_on_signals
from bot.scheduler import SchedulerService


def cmd_scheduler(args: argparse.Namespace, app: App) -> int:
    """Run the clock while holding the lease; stand by otherwise; stop on SIGTERM/Ctrl-C."""
    settings = app.settings
    with stop_on_signals() as stop:
        runtime = app.runtime()
        # Retraining needs the recommender service; no chat platform is served here.
        runtime.core = chat_core(app)
        service = SchedulerService(runtime)
        app.err.print(
            f"paperbot scheduler: ingest {', '.join(settings.sources)} every "
            f"{settings.ingest_interval_minutes} min, retrain, digest ticks; lease TTL "
            f"{settings.lease_ttl:g} s on {app.where()}. Ctrl-C to stop."
        )
        service.run(stop)
    app.err.print("paperbot scheduler stopped.")
    return 0


def add_scheduler(sub: Any) -> None:
    """Register `scheduler`."""
    p = add_command(
        sub,
        "scheduler",
        help="run only the clock: scheduled ingest, retraining and digest ticks",
        description="Run only the clock (APScheduler): ingest PAPERBOT_SOURCES every "
        "PAPERBOT_INGEST_INTERVAL_MINUTES, retrain after new feedback, and tick the digest "
        "plan every minute. Serves no chat platform. Start one or more: the holder of the "
        "Redis lease runs the clock, the others stand by and take over within "
        "PAPERBOT_LEASE_TTL seconds (plus one) when it dies. Each lease term carries a "
        "fencing token that every write of its jobs checks first.",
        epilog="example:\n  REDIS_URL=redis://redis:6379/0 paperbot scheduler",
    )
    p.set_defaults(handler=cmd_scheduler)
