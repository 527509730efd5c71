"""The chat core in one object: what every platform adapter is given."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from bot.commands import CommandService
from bot.delivery import Delivery
from bot.digest import DigestBuilder
from bot.feedback import FeedbackHandler, Outcome
from bot.importer import ArxivLookup, Importer
from bot.ports import ChatPort, Context, Reply
from bot.repo import ChatRepo
from recommender.service import PaperService
from recommender.sources import arxiv_api
from recommender.store import Store, StoreUnavailable

log = logging.getLogger(__name__)

UNAVAILABLE = "paperbot cannot reach its database right now; please try again in a minute."
FAILED = "Sorry, something went wrong on my side while answering that. Please try again."


@dataclass
class BotCore:
    """Store, recommender service, commands, feedback and delivery, shared by all adapters."""

    service: PaperService
    ports: dict[str, ChatPort] = field(default_factory=dict)
    # Where `/papers import` looks papers up (ARXIV_API_URL).
    arxiv_url: str = arxiv_api.DEFAULT_BASE_URL

    def __post_init__(self) -> None:
        self.store: Store = self.service.store
        self.chat = ChatRepo(self.store)
        self.commands = CommandService(
            self.service, importer=Importer(self.service, ArxivLookup(self.arxiv_url))
        )
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
                kind, _, paper_id = value.partition("|")
                if kind == "skip":
                    return self.commands.onboarding.skip(ctx, paper_id)
                outcome = self.feedback.button(ctx, value, message_key)
                return self._with_progress(ctx, paper_id, outcome)
        except StoreUnavailable as exc:
            log.error("click not recorded: paperbot cannot reach its database (%s)", exc)
            return Outcome(False, UNAVAILABLE)

    def _with_progress(self, ctx: Context, paper_id: str, outcome: Outcome) -> Outcome:
        """Add the first-use card's progress ("3 of 5 answered") to a rating's answer."""
        if not outcome.ok or outcome.choices:
            return outcome
        line = self.commands.onboarding.after_feedback(ctx.uid, paper_id.partition("|")[0])
        if line:
            outcome.message = f"{outcome.message} {line}"
        return outcome

    def import_file(self, ctx: Context, name: str, data: bytes) -> Reply:
        """Import a shared BibTeX or RIS file for the person who shared it."""
        return self._guarded(lambda: self.commands.import_file(ctx, name, data))

    def welcome(self, ctx: Context) -> Reply | None:
        """The first-use card for someone who arrives without a command (None: not needed)."""
        try:
            with self._lock:
                return self.commands.welcome(ctx)
        except StoreUnavailable as exc:
            log.error("welcome failed: %s", exc)
            return None
        except Exception:
            log.exception("welcome failed")
            return None

    def _guarded(self, work: Callable[[], Reply]) -> Reply:
        """Run a command-like call, turning infrastructure failures into one polite line."""
        try:
            with self._lock:
                return work()
        except StoreUnavailable as exc:
            log.error("command failed: %s", exc)
            return Reply(UNAVAILABLE)
        except Exception:
            log.exception("command failed")
            return Reply(FAILED)

    def react(self, ctx: Context, message_key: str, emoji: str, *, removed: bool) -> Outcome | None:
        """`reaction`, with the whole outcome (it may ask which author to mute)."""
        try:
            with self._lock:
                outcome = self.feedback.reaction(ctx, message_key, emoji, removed=removed)
                record = self.chat.message(message_key) if outcome is not None else None
                if outcome is not None and record and not removed:
                    outcome = self._with_progress(ctx, str(record.get("paper") or ""), outcome)
                return outcome
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
