"""Chat commands: `paperbot console` and `paperbot run` (scheduler + Slack/Discord/console)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import threading
from typing import Any

from threadpoolctl import threadpool_limits

from bot import scheduler as sched
from bot.cli_app import App, CommandError, add_command
from bot.console import Console as ChatConsole
from bot.console import ConsolePort, interactive
from bot.core import BotCore
from bot.jobs.context import loop_thread
from bot.jobs.engine import delivery_ports, start_engine
from recommender.service import PaperService

log = logging.getLogger("bot")


def chat_service(app: App, *, background: bool = False) -> PaperService:
    """The recommender service with its model loaded.

    The console needs papers and waits for the model (training one if none is published
    yet: it is a one-process tool); `run` starts at once on any library, follows the
    published model in the background and never trains on its own at start-up (the
    scheduler's lease holder trains).
    """
    store = app.store()
    empty = store.paper_count() == 0
    if empty and not background:
        raise CommandError(
            "the library is empty: run `paperbot demo` (bundled sample) or `paperbot ingest` first"
        )
    service = app.service()
    if background:
        service.start()
    else:
        with app.err.status("loading the recommender…") as status:
            service.load_or_train(progress=lambda stage: status.update(f"training: {stage}"))
        service.start()
    return service


def start_console(app: App, user: str | None = None) -> int:
    """The terminal chat on the configured store."""
    threadpool_limits(1, "blas")
    console = ChatConsole(chat_service(app), user=user, arxiv_url=app.settings.arxiv_api_url)
    interactive(console)
    return 0


def cmd_console(args: argparse.Namespace, app: App) -> int:
    """`paperbot console`: the chat commands in a terminal, no tokens needed."""
    return start_console(app, args.user)


def add_console(sub: Any) -> None:
    """Register `console`."""
    p = add_command(
        sub,
        "console",
        help="chat with paperbot in the terminal (search, digest, like, save, subscribe)",
        description="The same commands and feedback as in Slack and Discord, in a terminal: "
        "search, ask for a digest, react with `like 2` / `save 1` / `dislike 3`, and watch the "
        "next digest change. Works on the embedded Redis with no tokens.",
    )
    p.add_argument("--user", help="who you are in the console (default: your login name)")
    p.set_defaults(handler=cmd_console)


# -- run ----------------------------------------------------------------------------------------


def _platforms(app: App, core: BotCore) -> list[Any]:
    """The chat adapters the configuration asks for (tokens present)."""
    settings = app.settings
    runtimes: list[Any] = []
    if (
        settings.slack_bot_token
        or settings.slack_signing_secret
        or settings.slack_app_token
        or settings.slack_install_flow
    ):
        from bot.slack_app import build_slack, slack_configured

        if not slack_configured(settings):
            raise CommandError(
                "Slack needs SLACK_BOT_TOKEN plus SLACK_SIGNING_SECRET (HTTP) or "
                "SLACK_APP_TOKEN (Socket Mode); or, for many workspaces, SLACK_CLIENT_ID, "
                "SLACK_CLIENT_SECRET and SLACK_SIGNING_SECRET without SLACK_APP_TOKEN",
                code=2,
            )
        runtimes.append(build_slack(core, settings))
    if settings.discord_token:
        from bot.discord_app import build_discord

        runtimes.append(build_discord(core, settings))
    return runtimes


async def _serve(
    app: App,
    core: BotCore,
    runtime: sched.Runtime,
    stop: threading.Event,
    threads: int | None = None,
) -> None:
    """Start the chat adapters and the scheduler; run until `stop`."""
    runtime.loop = asyncio.get_running_loop()
    adapters = _platforms(app, core)
    started = []
    try:
        for adapter in adapters:
            await adapter.start()
            started.append(adapter)
    except Exception as exc:
        # A bad token or a busy port: one clear line, and stop what already started.
        for adapter in started:
            await adapter.stop()
        raise CommandError(sched.first_line(exc)) from None
    ports = delivery_ports(
        app.settings, core.store, [p for name, p in core.ports.items() if name != "slack"]
    )
    if "slack" in ports:
        from bot.slack_app import open_session

        await open_session(ports["slack"])
    engine = start_engine(
        app.settings, core, runtime, loop=runtime.loop, ports=ports, threads=threads
    )
    scheduler = sched.SchedulerService(runtime)
    thread = threading.Thread(target=scheduler.run, args=(stop,), name="scheduler", daemon=True)
    thread.start()
    names = ", ".join(type(a).__name__.removesuffix("Runtime") for a in adapters) or "no chat"
    app.err.print(
        f"paperbot running ({names}): ingest {', '.join(app.settings.sources)} every "
        f"{app.settings.ingest_interval_minutes} min into {app.where()}. Ctrl-C to stop."
    )
    try:
        while not stop.is_set():
            await asyncio.sleep(0.5)
    finally:
        stop.set()  # also on Ctrl-C, which arrives here as a cancellation
        await asyncio.to_thread(thread.join, 60)
        await asyncio.to_thread(engine.stop)
        for adapter in adapters:
            try:
                await adapter.stop()
            except Exception as exc:  # stopping one adapter must not block the others
                log.warning("stopping %s failed: %s", type(adapter).__name__, exc)


def cmd_run(args: argparse.Namespace, app: App) -> int:
    """`paperbot run`: ingest, retrain and digests on schedule; Slack/Discord when configured.

    With no chat tokens the console chat runs in the foreground (the embedded default).
    """
    settings = app.settings
    stop = threading.Event()
    restore = None
    if threading.current_thread() is threading.main_thread():
        # systemd and docker stop with SIGTERM: treat it like Ctrl-C.
        restore = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        service = chat_service(app, background=True)
        core = BotCore(service, arxiv_url=settings.arxiv_api_url)
        runtime = app.runtime(index=service.index)
        runtime.core = core
        has_chat = bool(
            settings.slack_bot_token
            or settings.slack_app_token
            or settings.slack_install_flow
            or settings.discord_token
        )
        # Chat answers are many small products: one BLAS thread each is much faster than
        # waking a pool for every one of them.
        threadpool_limits(1, "blas")
        if stop.is_set():
            pass  # stopped while loading the model
        elif has_chat or args.no_console or not sys.stdin.isatty():
            asyncio.run(_serve(app, core, runtime, stop, args.threads))
        else:
            _run_with_console(app, core, runtime, stop, args.threads)
    except KeyboardInterrupt:
        stop.set()
    finally:
        stop.set()
        if restore is not None:
            signal.signal(signal.SIGTERM, restore)
    app.err.print("paperbot stopped.")
    return 0


def _run_with_console(
    app: App,
    core: BotCore,
    runtime: sched.Runtime,
    stop: threading.Event,
    threads: int | None = None,
) -> None:
    """Scheduler and worker in the background, the console chat in the foreground."""
    # Console subscribers get their scheduled digests printed here.
    core.register(ConsolePort())
    loop = loop_thread()
    engine = start_engine(
        app.settings, core, runtime, loop=loop, ports=dict(core.ports), threads=threads
    )
    scheduler = sched.SchedulerService(runtime)
    thread = threading.Thread(target=scheduler.run, args=(stop,), name="scheduler", daemon=True)
    thread.start()
    app.err.print(
        "No Slack or Discord tokens set: chatting here instead (the scheduler keeps "
        "ingesting in the background). Type `help`."
    )
    try:
        interactive(ChatConsole(core.service, arxiv_url=core.arxiv_url))
    finally:
        stop.set()
        thread.join(60)
        engine.stop()
        loop.call_soon_threadsafe(loop.stop)


def add_run(sub: Any) -> None:
    """Register `run`."""
    p = add_command(
        sub,
        "run",
        help="run paperbot: scheduled ingest, retraining and digests; Slack/Discord if set",
        description="Ingest PAPERBOT_SOURCES every PAPERBOT_INGEST_INTERVAL_MINUTES, retrain "
        "after new feedback, and send every digest when it falls due in its subscriber's "
        "timezone. Serves Slack when SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET are set and "
        "Discord when DISCORD_TOKEN is set (both at once is fine); with neither, the console "
        "chat runs in the foreground. Several processes may share one Redis: one holds the "
        "scheduler lease, the others stand by.",
    )
    p.add_argument(
        "--no-console",
        action="store_true",
        help="never start the console chat (run headless even without chat tokens)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads of the in-process job worker (PAPERBOT_WORKER_THREADS)",
    )
    p.set_defaults(handler=cmd_run)
