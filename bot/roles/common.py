"""What the long-running roles share: stop on SIGTERM/Ctrl-C, serve adapters until stopped."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from threadpoolctl import threadpool_limits

from bot.cli_app import App, CommandError
from bot.cli_chat import chat_service
from bot.core import BotCore
from bot.scheduler import first_line

log = logging.getLogger("bot")


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGTERM (docker, systemd) or Ctrl-C, for the role's main loop."""
    stop = threading.Event()
    restore = None
    if threading.current_thread() is threading.main_thread():
        restore = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        yield stop
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        if restore is not None:
            signal.signal(signal.SIGTERM, restore)


def chat_core(app: App) -> BotCore:
    """The chat core over the published model (followed in the background; never trains)."""
    # Chat answers are many small products: one BLAS thread each beats waking a pool.
    threadpool_limits(1, "blas")
    service = chat_service(app, background=True)
    return BotCore(service, arxiv_url=app.settings.arxiv_api_url)


async def serve(
    adapters: Sequence[Any],
    stop: threading.Event,
    *,
    started: Callable[[], None] | None = None,
    stopping: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Start every adapter, call `started`, run until `stop`, await `stopping`, then stop
    the adapters (so work that `started` began can still use them while it ends)."""
    running = []
    try:
        for adapter in adapters:
            await adapter.start()
            running.append(adapter)
    except Exception as exc:
        # A bad token or a busy port: one clear line, and stop what already started.
        for adapter in running:
            await adapter.stop()
        raise CommandError(first_line(exc)) from None
    if started is not None:
        started()
    try:
        while not stop.is_set():
            await asyncio.sleep(0.5)
    finally:
        stop.set()  # also on Ctrl-C, which arrives here as a cancellation
        if stopping is not None:
            try:
                await stopping()
            except Exception as exc:  # the adapters must still be stopped
                log.warning("stopping failed: %s", first_line(exc))
        for adapter in running:
            try:
                await adapter.stop()
            except Exception as exc:  # stopping one adapter must not block the others
                log.warning("stopping %s failed: %s", type(adapter).__name__, exc)
