"""Posting with retries that never post twice: every post carries an idempotency key.

A 500 or a timeout does not say whether the message went out. Before trying again the
post is looked up by its key (Slack: message metadata in the conversation's history;
Discord enforces the key itself as a message nonce), so a post that did land is reused
instead of sent a second time.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from bot.ports import DeliveryError, Digest, PaperCard

log = logging.getLogger(__name__)

T = TypeVar("T")
ATTEMPTS = 4
BACKOFF = 1.0  # seconds before the first retry; doubled each time
MAX_BACKOFF = 30.0


def post_key(digest: Digest, card: PaperCard | None = None) -> str:
    """The idempotency key of a digest's intro (no card) or of one of its papers."""
    return f"{digest.subscription}|{digest.period}|{card.paper_id if card else 'intro'}"


def nonce(key: str) -> str:
    """A key as a Discord nonce (at most 25 characters)."""
    return hashlib.blake2b(key.encode(), digest_size=12).hexdigest()


async def post_once(
    post: Callable[[], Awaitable[T]],
    *,
    find: Callable[[], Awaitable[T | None]] | None = None,
    what: str = "post",
    attempts: int = ATTEMPTS,
    backoff: float = BACKOFF,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> T:
    """`post()`, retried with exponential backoff on errors worth retrying (5xx, timeouts,
    dropped connections).

    After a failed try, `find()` (when given) looks for the message that try may have
    posted anyway; a found message is returned instead of posting again. A permanent
    error, or the last try's error, is raised.
    """
    attempts = max(1, attempts)
    for attempt in range(1, attempts + 1):
        try:
            return await post()
        except DeliveryError as exc:
            # A rate limit goes back to the outbox with its delay (the platform clients
            # already waited out the short ones); a refusal will not change on retry.
            if exc.permanent or exc.retry_after is not None or attempt == attempts:
                raise
            wait = min(backoff * 2 ** (attempt - 1), MAX_BACKOFF)
            log.info("%s failed (%s); checking and retrying in %.1fs", what, exc, wait)
            await sleep(wait)
            if find is not None:
                found = await _find(find, what)
                if found is not None:
                    log.info("%s had gone through after all; not posting it again", what)
                    return found
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


async def _find(find: Callable[[], Awaitable[T | None]], what: str) -> T | None:
    """Run a lookup; one that fails itself counts as "not found" (logged)."""
    try:
        return await find()
    except DeliveryError as exc:
        log.warning("could not check whether %s went through: %s", what, exc)
        return None
