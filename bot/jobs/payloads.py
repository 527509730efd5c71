"""Job payloads: one JSON object each, checked before an actor runs.

A job whose payload is malformed can never succeed: it is dropped with one log line
instead of being retried into the dead-letter queue.
"""

from __future__ import annotations

import logging
from typing import Any

import dramatiq
from dramatiq.middleware import Middleware, SkipMessage

log = logging.getLogger(__name__)

# Actor name -> the string fields its payload must carry.
REQUIRED: dict[str, tuple[str, ...]] = {
    "ingest": ("source",),
    "retrain": (),
    "plan_digests": ("slot",),
    "rank_batch": ("period_of",),
    "deliver_slack": ("sub", "period"),
    "deliver_discord": ("sub", "period"),
    "deliver_console": ("sub", "period"),
}
MAX_BATCH = 5000


def problem(actor: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    """Why a job's arguments are malformed, or None when they are fine."""
    if actor not in REQUIRED:
        return None
    if kwargs or len(args) != 1 or not isinstance(args[0], dict):
        return "expects one JSON object"
    payload = args[0]
    for name in REQUIRED[actor]:
        value = payload.get(name)
        if actor == "rank_batch" and name == "period_of":
            if not isinstance(value, dict) or not value or len(value) > MAX_BATCH:
                return "`period_of` must map subscription ids to periods"
            if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
                return "`period_of` must map subscription ids to periods"
        elif not isinstance(value, str) or not value or len(value) > 500:
            return f"`{name}` must be a non-empty string"
    return None


class DropMalformed(Middleware):
    """Skips (acknowledges without running) a job whose payload can never be valid."""

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.Message) -> None:
        """Check the payload against the actor's fields."""
        why = problem(message.actor_name, tuple(message.args), dict(message.kwargs))
        if why is not None:
            log.warning("dropped job %s (%s): %s", message.message_id, message.actor_name, why)
            raise SkipMessage()
