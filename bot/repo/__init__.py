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
    pb:lease:<name>                 string  lease token (per-digest send lock)

The clock's keys (`bot.repo.clock`; one `{clock}` hash tag, so its scripts run on a cluster):

    pb:{clock}:lease                string  the scheduler lease (redis-py Lock token)
    pb:{clock}:fence                counter fencing token, increased at every acquisition
    pb:{clock}:holder               hash    fence, pid, host, since of the current holder
    pb:{clock}:last-run             hash    job id -> epoch seconds of its last run
    pb:{clock}:running:<job>        string  lock of a running job (one ingest per source)
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
