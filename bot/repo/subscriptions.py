"""Subscriptions (personal and channel digests) and the members of channel teams."""

from __future__ import annotations

import json
from typing import Any

import redis

from bot.repo.base import RedisRepo
from recommender import slots
from recommender.store import NEXT_SEQ_SCRIPT, PREFIX, SEQ_FUNCTION, index_set, order_key
from recommender.store import translate_errors as _translate

# Delete a subscription record; returns {1 if it existed, seq}.
_DELETE_RECORD = (
    SEQ_FUNCTION + "local gone = redis.call('del', KEYS[1]) return {gone, next_seq(KEYS[2])}"
)
SUBS = f"{PREFIX}subs"


def sub_key(sub_id: str, suffix: str = "") -> str:
    """A subscription's key (`pb:sub:{id}`) or a companion in its slot (`pb:sub:{id}:seq`)."""
    return f"{PREFIX}sub:{{{sub_id}}}" + (f":{suffix}" if suffix else "")


def members_key(channel: str) -> str:
    """The set of people known to be part of a channel's team."""
    return f"{PREFIX}channel:{{{channel}}}:members"


class SubscriptionRepo(RedisRepo):
    """Who gets which digest, and who belongs to a channel's team."""

    @_translate
    def put_subscription(
        self, sub_id: str, record: dict[str, Any], *, keep: tuple[str, ...] | list[str] = ()
    ) -> bool:
        """Create or replace a subscription in one step; True if it existed before.

        Fields named in `keep` keep their stored value when the stored record has one (a
        schedule edit must not reset when the last digest went out).
        """
        key = sub_key(sub_id)
        seq_key = sub_key(sub_id, "seq")

        def write(pipe: redis.client.Pipeline) -> tuple[bool, int]:
            """Merge with the stored record and write, retried if it changed meanwhile."""
            old_raw = pipe.get(key)
            merged = dict(record)
            if old_raw and keep:
                old = json.loads(old_raw)
                merged.update({f: old[f] for f in keep if old.get(f) is not None})
            pipe.multi()
            pipe.set(key, json.dumps(merged))
            slots.queue_eval(pipe, NEXT_SEQ_SCRIPT, [seq_key])
            return bool(old_raw), int(pipe.execute()[-1])

        existed, seq = self._transaction(write, key, seq_key)
        self._index(sub_id, seq, present=True)
        return existed

    @_translate
    def update_subscription(self, sub_id: str, changes: dict[str, Any]) -> dict[str, Any] | None:
        """Change some fields of a stored subscription in one step; None if it is gone."""
        key = sub_key(sub_id)

        def write(pipe: redis.client.Pipeline) -> dict[str, Any] | None:
            """Read, merge and write, retried if the record changed meanwhile."""
            raw = pipe.get(key)
            if not raw:
                pipe.reset()
                return None
            merged = {**json.loads(raw), **changes}
            pipe.multi()
            pipe.set(key, json.dumps(merged))
            pipe.execute()
            return merged

        return self._transaction(write, key)

    def _index(self, sub_id: str, seq: int, *, present: bool) -> None:
        """Bring the `subs` index in line with a record change numbered `seq`."""
        index_set(self.r, SUBS, sub_id, seq, present=present)

    @_translate
    def get_subscription(self, sub_id: str) -> dict[str, Any] | None:
        """One subscription, or None."""
        raw = self.r.get(sub_key(sub_id))
        return json.loads(raw) if raw else None

    @_translate
    def delete_subscription(self, sub_id: str) -> bool:
        """Remove a subscription in one step; True if it existed."""
        gone, seq = self.r.eval(_DELETE_RECORD, 2, sub_key(sub_id), sub_key(sub_id, "seq"))
        self._index(sub_id, int(seq), present=False)
        return bool(gone)

    @_translate
    def subscriptions(self) -> list[dict[str, Any]]:
        """Every subscription."""
        ids = sorted(m.decode() for m in self.r.smembers(SUBS))
        if not ids:
            return []
        raw = slots.mget(self.r, [sub_key(i) for i in ids], split=self.by_slot)
        return [json.loads(r) for r in raw if r]

    @_translate
    def add_channel_member(self, channel: str, uid: str) -> None:
        """Remember that a person is part of a channel's team."""
        self.r.sadd(members_key(channel), uid)

    @_translate
    def channel_members(self, channel: str) -> set[str]:
        """People known to be part of a channel's team."""
        return {m.decode() for m in self.r.smembers(members_key(channel))}

    @_translate
    def forget_subscriber(self, uid: str) -> int:
        """Delete a person's subscriptions and channel memberships; returns how many went."""
        deleted = 0
        pipe = self.r.pipeline(transaction=False)
        for sub in self.subscriptions():
            if sub.get("owner") == uid or sub.get("target") == uid:
                keys = [sub_key(sub["id"]), sub_key(sub["id"], "seq")]
                slots.queue_delete(pipe, keys, split=self.by_slot)
                pipe.srem(SUBS, sub["id"])
                pipe.hdel(order_key(SUBS), sub["id"])
                deleted += 1
        for key in self.r.scan_iter(match=f"{PREFIX}channel:*:members", count=500):
            pipe.srem(key, uid)
        pipe.execute()
        return deleted
