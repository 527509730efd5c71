"""Sending digests: idempotent per subscriber and period, resumable, never lost.

A digest is built once and parked in the outbox; papers are posted one message at a
time and progress is recorded after each, so a crash or a platform error resumes where
it stopped instead of re-sending. A `sent` marker per subscriber and period makes a
retry, a restart or a second process a no-op.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bot.digest import DigestBuilder
from bot.ports import ChatPort, DeliveryError, Digest, Image, PaperCard, Sent, Target
from bot.repo import ChatRepo
from bot.repo.leases import lease_key
from bot.subscriptions import Subscription, due
from recommender.store import Store

if TYPE_CHECKING:
    from bot.jobs.limits import RateGate

log = logging.getLogger(__name__)

SENT_TTL = 40 * 86400  # longer than any period, so a period is never sent twice
# One sender per digest at a time. Renewed after every message, so it outlives a crashed
# sender by at most this long (a redelivered job resumes the digest soon after), and it is
# far shorter than a job may run.
LOCK_TTL = 20
MAX_ATTEMPTS = 8
INTRO = "intro"  # the outbox's name for a digest's first message


@dataclass(slots=True)
class Step:
    """What one delivery pass did, and when the digest wants the next one (seconds)."""

    outcome: str
    delay: float = 0.0


class Later(Exception):
    """Stop posting for now: the channel (or the platform) takes the next message later."""

    def __init__(self, delay: float) -> None:
        super().__init__(f"later ({delay:.1f}s)")
        self.delay = delay


def target_of(sub: Subscription) -> Target:
    """Where a subscription's digests go."""
    return Target(sub.platform, sub.workspace, sub.kind, sub.target)


def serves(port: ChatPort, workspace: str) -> bool:
    """Whether a port can deliver to `workspace` now; a port may say no through an optional
    `serves(workspace)` (Slack for many workspaces: not after an uninstall)."""
    check = getattr(port, "serves", None)
    return check is None or bool(check(workspace))


class Delivery:
    """Runs due digests through the right platform adapter."""

    def __init__(
        self,
        store: Store,
        builder: DigestBuilder,
        ports: dict[str, ChatPort],
        *,
        gate: RateGate | None = None,
    ) -> None:
        self.store = store
        self.chat = ChatRepo(store)
        self.builder = builder
        self.ports = ports
        # Shared rate limits (task workers); None posts as fast as the port allows.
        self.gate = gate
        # This process's lock token: a lock it could not release (Redis went away mid-send)
        # is its own to take again as soon as Redis is back, not only after LOCK_TTL; within
        # the process `_sending` keeps one pass per digest.
        self._token = secrets.token_hex(8)
        self._sending: set[str] = set()

    def due_subscriptions(self, now: datetime) -> list[tuple[Subscription, str]]:
        """(subscription, period) for every digest due at `now`."""
        out = []
        for record in self.chat.subscriptions():
            sub = Subscription.from_dict(record)
            port = self.ports.get(sub.platform)
            if port is None or not serves(port, sub.workspace):
                continue
            slot = due(sub, now)
            if slot is not None:
                out.append((sub, slot[0]))
            elif self.chat.get_pending(f"{sub.id}:{sub.last_period}"):
                # A digest that failed earlier is retried until it goes out.
                out.append((sub, sub.last_period or ""))
        return out

    async def run_due(self, now: datetime | None = None) -> dict[str, str]:
        """Send every due digest; returns subscription id -> outcome."""
        now = now or datetime.now(UTC)
        results = {}
        for sub, period in self.due_subscriptions(now):
            results[sub.id] = await self.send(sub, period, now=now)
        return results

    async def send(self, sub: Subscription, period: str, *, now: datetime | None = None) -> str:
        """Build (or resume) and post one digest: `sent`, `empty`, `skipped`, `retry`, `failed`
        (or `later`, with a rate gate, when the rest must wait)."""
        return (await self.step(sub, period, now=now)).outcome

    async def step(self, sub: Subscription, period: str, *, now: datetime | None = None) -> Step:
        """`send`, also saying when to come back: a digest another sender holds (`skipped`
        with a delay) or one whose channel takes its next message later (`later`)."""
        now = now or datetime.now(UTC)
        key = f"{sub.id}:{period}"
        if self.chat.is_marked(f"sent:{key}"):
            # A digest parked again after it went out (a late duplicate job) is never sent.
            self.chat.clear_pending(key)
            return Step("skipped")
        lock = f"sending:{key}"
        token = self._token
        if key in self._sending or not self.chat.acquire_lease(lock, token, LOCK_TTL * 1000):
            return Step("skipped", self._lock_left(lock))
        self._sending.add(key)
        try:
            return await self._send_locked(sub, period, key, now, (lock, token))
        except Later as later:
            return Step("later", later.delay)
        finally:
            self._sending.discard(key)
            self.chat.release_lease(lock, token)

    def park_many(
        self, subs: list[tuple[Subscription, str]], now: datetime
    ) -> list[tuple[Subscription, str]]:
        """Build (ranked in one batch) and park the digests of many subscriptions; returns
        those with something to send.

        A digest already parked (or sent) is left as it is, so a repeated job changes nothing.
        """
        todo = []
        for sub, period in subs:
            key = f"{sub.id}:{period}"
            if not self.chat.is_marked(f"sent:{key}") and self.chat.get_pending(key) is None:
                todo.append((sub, period))
        digests = self.builder.digests_for(todo, now.timestamp()) if todo else []
        for (sub, period), digest in zip(todo, digests, strict=True):
            key = f"{sub.id}:{period}"
            if digest is None:
                self._finish(sub, period, key, [], now)
                continue
            record = {"digest": _digest_dict(digest), "done": [], "thread": None, "attempts": 0}
            if self.chat.park_new(key, record):
                self.chat.update_subscription(sub.id, {"last_period": period})
        out = []
        for sub, period in subs:
            key = f"{sub.id}:{period}"
            if not self.chat.is_marked(f"sent:{key}") and self.chat.get_pending(key) is not None:
                out.append((sub, period))
        return out

    def _lock_left(self, lock: str) -> float:
        """Seconds until another sender's lock on a digest runs out (if it never renews)."""
        left = self.chat.r.pttl(lease_key(lock))
        return max(0.5, (left if left and left > 0 else 1000) / 1000)

    async def _send_locked(
        self, sub: Subscription, period: str, key: str, now: datetime, lock: tuple[str, str]
    ) -> Step:
        """The body of `step`, with the per-digest lock held."""
        pending = self.chat.get_pending(key)
        if pending is None:
            digest = await asyncio.to_thread(self.builder.digest_for, sub, period, now.timestamp())
            if digest is None:
                self._finish(sub, period, key, [], now)
                return Step("empty")
            pending = {"digest": _digest_dict(digest), "done": [], "thread": None, "attempts": 0}
            self.chat.put_pending(key, pending)
            # Record the period at once: a failure now resumes this digest, not a new one.
            sub.last_period = period
            self.chat.update_subscription(sub.id, {"last_period": period})
        digest = _digest_from(pending["digest"])
        port = self.ports[sub.platform]
        target = target_of(sub)
        try:
            if pending["thread"] is None:
                intro = await self._post(port, pending, key, target, digest, None)
                pending["thread"] = intro.message_key
                pending["inflight"] = None
                self.chat.put_pending(key, pending)
                self._keep(lock)
            if digest.image is not None and not pending.get("image_done"):
                await post_image(port, target, digest.image, pending["thread"])
                pending["image_done"] = True
                self.chat.put_pending(key, pending)
            for card in [*digest.cards, *digest.top]:
                if card.paper_id in pending["done"]:
                    continue
                sent = await self._post(port, pending, key, target, digest, card)
                self.chat.remember_message(
                    sent.message_key,
                    {"paper": card.paper_id, "sub": sub.id, "workspace": sub.workspace},
                )
                pending["done"].append(card.paper_id)
                pending["inflight"] = None
                self.chat.put_pending(key, pending)
                self._keep(lock)
                # Posted is sent: a later digest must not offer it again, even if this one
                # never completes.
                self.store.mark_seen(sub.subscriber, [card.paper_id], now.timestamp())
        except DeliveryError as exc:
            if exc.retry_after is not None and self.gate is not None:
                # A 429: the platform names the wait; the job comes back after it.
                pending["inflight"] = None
                self.chat.put_pending(key, pending)
                log.info("digest %s rate limited; resuming in %.1fs", key, exc.retry_after)
                return Step("later", max(exc.retry_after, 0.1))
            pending["attempts"] += 1
            pending["error"] = str(exc)
            self.chat.put_pending(key, pending)
            log.warning("digest %s not delivered yet: %s", key, exc)
            if exc.permanent and pending["attempts"] == 1:
                await self._tell_owner(sub, exc)
            if pending["attempts"] >= MAX_ATTEMPTS:
                # Tell once when giving up hope, not again on every later retry.
                if pending["attempts"] == MAX_ATTEMPTS:
                    await self._tell_owner(sub, exc)
                return Step("failed")
            return Step("retry")
        self._finish(sub, period, key, pending["done"], now)
        return Step("sent")

    def _keep(self, lock: tuple[str, str]) -> None:
        """Renew the digest's lock after progress; stop if another sender took it meanwhile."""
        if not self.chat.renew_lease(lock[0], lock[1], LOCK_TTL * 1000):
            raise Later(self._lock_left(lock[0]))

    async def _post(
        self,
        port: ChatPort,
        pending: dict[str, Any],
        key: str,
        target: Target,
        digest: Digest,
        card: PaperCard | None,
    ) -> Sent:
        """Post the intro (no card) or one paper, never twice.

        The outbox names the message being posted before it goes out; if that try posted
        it but could not record it (Redis lost, process killed), the next try looks for it
        first (ports with `find_sent`), so resuming never repeats a message.
        """
        name = card.paper_id if card else INTRO
        if self.gate is not None:
            delay = await self.gate.clear(target)
            if delay > 0:
                raise Later(delay)
        find = getattr(port, "find_sent", None)
        if pending.get("inflight") == name:
            if find is not None:
                found = await find(target, digest, card, pending["thread"])
                if found is not None:
                    return found
        else:
            pending["inflight"] = name
            self.chat.put_pending(key, pending)
        if card is None:
            return await port.post_intro(target, digest)
        return await port.post_card(target, digest, card, pending["thread"])

    def _finish(
        self, sub: Subscription, period: str, key: str, papers: list[str], now: datetime
    ) -> None:
        """Bookkeeping after a digest went out (or had nothing to say)."""
        self.store.mark_seen(sub.subscriber, papers, now.timestamp())
        self.chat.mark(f"sent:{key}", SENT_TTL)
        self.chat.clear_pending(key)
        # One atomic step: the subscriber may change or cancel it while this digest goes out.
        self.chat.update_subscription(sub.id, {"last_period": period, "last_sent": now.timestamp()})

    async def _tell_owner(self, sub: Subscription, exc: DeliveryError) -> None:
        """Let the person who set up a digest know why it is stuck (by DM, best effort)."""
        if sub.kind != "channel":
            return
        port = self.ports[sub.platform]
        owner_user = sub.owner.split(":")[-1]
        text = (
            f"I could not post the team digest to channel {sub.target} ({exc}). "
            "Invite me to the channel (or check it still exists); I will keep the digest "
            "and try again."
        )
        try:
            await port.send_text(Target(sub.platform, sub.workspace, "dm", owner_user), text)
        except DeliveryError as inner:
            log.warning("could not notify %s either: %s", sub.owner, inner)


async def post_image(port: ChatPort, target: Target, image: Image, thread: str | None) -> None:
    """Post a digest's chart through a port that can upload images (others skip it)."""
    upload = getattr(port, "post_image", None)
    if upload is not None:
        await upload(target, image, thread)


def _digest_dict(digest: Digest) -> dict:
    """JSON-ready digest for the outbox (an image's bytes as base64)."""
    data = asdict(digest)
    if digest.image is not None:
        data["image"] = {
            "filename": digest.image.filename,
            "title": digest.image.title,
            "data": base64.b64encode(digest.image.data).decode(),
        }
    return data


def _digest_from(data: dict) -> Digest:
    """Inverse of `_digest_dict`."""
    cards = [PaperCard(**c) for c in data["cards"]]
    raw = data.get("image")
    image = (
        Image(raw["filename"], base64.b64decode(raw["data"]), raw.get("title", "")) if raw else None
    )
    return Digest(
        subscription=data["subscription"],
        title=data["title"],
        intro=data["intro"],
        cards=cards,
        period=data["period"],
        image=image,
        top=[PaperCard(**c) for c in data.get("top", [])],
    )
