"""Message records: which paper a posted message shows, so a reaction maps back to it."""

from __future__ import annotations

import json
from typing import Any

from bot.repo.base import RedisRepo
from recommender.store import PREFIX
from recommender.store import translate_errors as _translate

MESSAGE_TTL = 90 * 86400


class MessageRepo(RedisRepo):
    """`pb:msg:<platform message key>` records."""

    @_translate
    def remember_message(
        self, message_key: str, record: dict[str, Any], ttl_seconds: int = MESSAGE_TTL
    ) -> None:
        """Which paper a sent message shows (so a later reaction maps back to it)."""
        self.r.set(f"{PREFIX}msg:{message_key}", json.dumps(record), ex=ttl_seconds)

    @_translate
    def message(self, message_key: str) -> dict[str, Any] | None:
        """What `remember_message` stored, or None."""
        raw = self.r.get(f"{PREFIX}msg:{message_key}")
        return json.loads(raw) if raw else None
