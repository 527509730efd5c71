"""What the actors of one process work with: set once at start-up, read by every job."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bot.config import Settings
from bot.delivery import Delivery
from bot.digest import DigestBuilder
from bot.repo import ChatRepo
from recommender.service import PaperService
from recommender.store import Store

_T = TypeVar("_T")
# How long one job may wait on a coroutine (a digest pass posts a few messages at most).
COROUTINE_TIMEOUT = 300.0


@dataclass
class JobContext:
    """The store, the recommender, the delivery (with its rate gate) and an event loop."""

    settings: Settings
    store: Store
    service: PaperService
    delivery: Delivery
    # Where the chat ports' coroutines run (the chat adapters' loop in `paperbot run`).
    loop: asyncio.AbstractEventLoop
    # The scheduler's job runtime (ingest needs the encoder and the live index).
    runtime: Any = None
    # Enqueues follow-up jobs (`actors.Jobs`).
    jobs: Any = None
    chat: ChatRepo = field(init=False)
    builder: DigestBuilder = field(init=False)

    def __post_init__(self) -> None:
        self.chat = ChatRepo(self.store)
        self.builder = self.delivery.builder

    def run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Run a coroutine on the ports' loop from a worker thread and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(COROUTINE_TIMEOUT)


_current: JobContext | None = None
_lock = threading.Lock()


def install(context: JobContext) -> None:
    """Make `context` the one every actor of this process uses."""
    global _current
    with _lock:
        _current = context


def current() -> JobContext:
    """The installed context (a worker always installs one before it starts)."""
    if _current is None:
        raise RuntimeError("no job context installed in this process")
    return _current


def loop_thread(name: str = "paperbot-ports") -> asyncio.AbstractEventLoop:
    """A new event loop running in a daemon thread (the ports' loop of a worker process)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name=name, daemon=True)
    thread.start()
    return loop
