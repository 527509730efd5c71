"""The chat side's own state in Redis; `recommender/` knows nothing of it.

Key layout (prefix `pb:`; a subscription's keys share its `{id}` hash tag):

    pb:sub:{<subscriber>}           string  JSON of a subscription (personal DM or channel)
    pb:sub:{<subscriber>}:seq       counter orders changes of that subscription
    pb:subs                         set     every subscriber id
    {pb:subs}:seq                   hash    subscriber -> seq of the change the set reflects
    pb:channel:{<channel>}:members  set     people known to be part of a channel's team
    pb:outbox:<sub>:<period>        string  JSON: a built digest and how far it was posted
    pb:msg:<platform message key>   string  JSON: which paper a sent message shows
    pb:once:<key>                   string  idempotency markers (sent digests, seen events)
    pb:lease:<name>                 string  lease token (scheduler, per-digest send lock)
"""

from __future__ import annotations

from bot.repo.leases import LeaseRepo
from bot.repo.markers import MarkerRepo
from bot.repo.messages import MessageRepo
from bot.repo.outbox import OutboxRepo
from bot.repo.subscriptions import SubscriptionRepo

__all__ = [
    "ChatRepo",
    "LeaseRepo",
    "MarkerRepo",
    "MessageRepo",
    "OutboxRepo",
    "SubscriptionRepo",
]


class ChatRepo(SubscriptionRepo, OutboxRepo, MessageRepo, MarkerRepo, LeaseRepo):
    """Every chat-side repository over one Redis client (what the chat core is given)."""
