"""The chat core in one object: what every platform adapter is given."""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, field

from bot.commands import CommandService
from bot.delivery import Delivery
from bot.digest import DigestBuilder
from bot.feedback import FeedbackHandler, Outcome
from bot.ports import ChatPort, Context, Reply
from recommender.service import PaperService
from recommender.store import Store, StoreUnavailable

log = logging.getLogger(__name__)

UNAVAILABLE = "paperbot cannot reach its database right now; please try again in a minute."
FAILED = "Sorry, something went wrong on my side while answering that. Please try again."


@dataclass
class BotCore:
    """Store, recommender service, commands, feedback and delivery, shared by all adapters."""

    service: PaperService
    ports: dict[str, ChatPort] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.store: Store = self.service.store
        self.commands = CommandService(self.service)
        self.feedback = FeedbackHandler(self.service)
        self.builder = DigestBuilder(self.service)
        self.delivery = Delivery(self.store, self.builder, self.ports)
        # Commands run in worker threads; one lock keeps model fold-ins and reads orderly.
        self._lock = threading.RLock()

    def register(self, port: ChatPort) -> None:
        """Make a platform available for digest delivery."""
        self.ports[port.platform] = port

    def answer(self, ctx: Context, text: str) -> Reply:
        """Answer a command, turning infrastructure failures into one polite line."""
        try:
            with self._lock:
                return self.commands.handle(ctx, text)
        except StoreUnavailable as exc:
            log.error("command not answered: paperbot cannot reach its database (%s)", exc)
            return Reply(UNAVAILABLE)
        except Exception:
            log.exception("command failed")
            return Reply(FAILED)

    async def answer_async(self, ctx: Context, text: str) -> Reply:
        """`answer` off the event loop (ranking and Redis calls block)."""
        return await asyncio.to_thread(self.answer, ctx, text)

    def button(self, ctx: Context, value: str, message_key: str | None = None) -> str:
        """Apply a button click; returns the line to show the clicker."""
        return self.click(ctx, value, message_key).message

    def click(self, ctx: Context, value: str, message_key: str | None = None) -> Outcome:
        """Apply a button click or menu choice; the outcome may ask the clicker to choose
        (🔇 on a paper with several authors: `choices`)."""
        try:
            with self._lock:
                return self.feedback.button(ctx, value, message_key)
        except StoreUnavailable as exc:
            log.error("click not recorded: paperbot cannot reach its database (%s)", exc)
            return Outcome(False, UNAVAILABLE)

    def react(self, ctx: Context, message_key: str, emoji: str, *, removed: bool) -> Outcome | None:
        """`reaction`, with the whole outcome (it may ask which author to mute)."""
        try:
            with self._lock:
                return self.feedback.reaction(ctx, message_key, emoji, removed=removed)
        except StoreUnavailable as exc:
            log.error("reaction not recorded: paperbot cannot reach its database (%s)", exc)
            return None

    def reaction(self, ctx: Context, message_key: str, emoji: str, *, removed: bool) -> str | None:
        """Apply a reaction on a sent message; None when it is not feedback on one paper."""
        try:
            with self._lock:
                outcome = self.feedback.reaction(ctx, message_key, emoji, removed=removed)
        except StoreUnavailable as exc:
            log.error("reaction not recorded: paperbot cannot reach its database (%s)", exc)
            return None
        return outcome.message if outcome else None
