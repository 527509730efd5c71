"""The outbox: built digests parked until every message of them is posted."""

from __future__ import annotations

import json
from typing import Any

from bot.repo.base import RedisRepo
from recommender.store import PREFIX
from recommender.store import translate_errors as _translate

OUTBOX_TTL = 14 * 86400


def outbox_key(key: str) -> str:
    """Where the digest `key` (`<subscription>:<period>`) waits."""
    return f"{PREFIX}outbox:{key}"


class OutboxRepo(RedisRepo):
    """Parked digests and how far each one got."""

    @_translate
    def put_pending(self, key: str, record: dict[str, Any]) -> None:
        """Park a built digest until it is delivered (so a failure never loses it)."""
        self.r.set(outbox_key(key), json.dumps(record), ex=OUTBOX_TTL)

    @_translate
    def park_new(self, key: str, record: dict[str, Any]) -> bool:
        """Park a digest unless one is parked under `key` already; True if this one was."""
        return bool(self.r.set(outbox_key(key), json.dumps(record), ex=OUTBOX_TTL, nx=True))

    @_translate
    def get_pending(self, key: str) -> dict[str, Any] | None:
        """A parked digest, or None."""
        raw = self.r.get(outbox_key(key))
        return json.loads(raw) if raw else None

    @_translate
    def clear_pending(self, key: str) -> None:
        """Drop a delivered digest from the outbox."""
        self.r.delete(outbox_key(key))
