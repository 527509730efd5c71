"""Idempotency markers (`pb:once:<key>`): a digest period sent, an event already seen."""

from __future__ import annotations

from bot.repo.base import RedisRepo
from recommender.store import PREFIX
from recommender.store import translate_errors as _translate


class MarkerRepo(RedisRepo):
    """Set-once and set-always markers with a time to live."""

    @_translate
    def once(self, key: str, ttl_seconds: int) -> bool:
        """True the first time `key` is claimed within `ttl_seconds` (idempotency marker)."""
        return bool(self.r.set(f"{PREFIX}once:{key}", b"1", nx=True, ex=ttl_seconds))

    @_translate
    def release_once(self, key: str) -> None:
        """Drop an idempotency marker so a failed action can be retried."""
        self.r.delete(f"{PREFIX}once:{key}")

    @_translate
    def mark(self, key: str, ttl_seconds: int) -> None:
        """Set a marker (e.g. "this digest period was sent") for `ttl_seconds`."""
        self.r.set(f"{PREFIX}once:{key}", b"1", ex=ttl_seconds)

    @_translate
    def is_marked(self, key: str) -> bool:
        """Whether a marker or idempotency key is set."""
        return bool(self.r.exists(f"{PREFIX}once:{key}"))
