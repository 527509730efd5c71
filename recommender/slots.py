"""Multi-key commands that never span Redis Cluster slots.

On one server a multi-key command over many keys is one command and one round trip. On a
cluster every command (and every transaction and script) must keep to one slot, so with
`split` the keys are grouped by slot and each group becomes its own command, all queued
on one non-transactional pipeline (a cluster client sends that per node, in parallel).
The split form runs on a single server too, which is how the tests check it there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from redis.cluster import PipelineStrategy
from redis.crc import key_slot

KeyT = str | bytes


def slot_of(key: KeyT) -> int:
    """The cluster slot a key hashes to (its `{hash tag}` if it has one)."""
    return key_slot(key.encode() if isinstance(key, str) else key)


def _routed(pipe: Any, key: KeyT) -> dict[str, Any]:
    """Options that send a queued command straight to the node owning `key`'s slot.

    A non-transactional cluster pipeline otherwise asks the server for the keys of every
    queued command it has no routing rule for (EVAL among them): one extra round trip
    per command. A slot that moved meanwhile is still followed (MOVED is retried).
    """
    if isinstance(getattr(pipe, "_execution_strategy", None), PipelineStrategy):
        return {"target_nodes": pipe.get_node_from_key(key)}
    return {}


def group_by_slot(keys: Sequence[KeyT]) -> dict[int, list[int]]:
    """Positions of `keys`, grouped by slot, in first-seen order."""
    groups: dict[int, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(slot_of(key), []).append(i)
    return groups


def mget(client: Any, keys: Sequence[KeyT], *, split: bool) -> list[bytes | None]:
    """MGET, one command per slot when `split`; values in the order of `keys`."""
    if not keys:
        return []
    if not split:
        return client.mget(keys)
    groups = group_by_slot(keys)
    pipe = client.pipeline(transaction=False)
    for where in groups.values():
        pipe.execute_command("MGET", *(keys[i] for i in where), **_routed(pipe, keys[where[0]]))
    out: list[bytes | None] = [None] * len(keys)
    for where, values in zip(groups.values(), pipe.execute(), strict=True):
        for i, value in zip(where, values, strict=True):
            out[i] = value
    return out


def queue_mset(pipe: Any, mapping: Mapping[KeyT, Any], *, split: bool) -> None:
    """Queue an MSET on `pipe`, one per slot when `split`."""
    if not mapping:
        return
    if not split:
        pipe.mset(mapping)
        return
    keys = list(mapping)
    for where in group_by_slot(keys).values():
        flat: list[Any] = []
        for i in where:
            flat += [keys[i], mapping[keys[i]]]
        pipe.execute_command("MSET", *flat, **_routed(pipe, flat[0]))


def queue_delete(pipe: Any, keys: Sequence[KeyT], *, split: bool) -> None:
    """Queue a DEL of `keys` on `pipe`, one per slot when `split` (replies: counts)."""
    if not keys:
        return
    if not split:
        pipe.delete(*keys)
        return
    for where in group_by_slot(keys).values():
        pipe.execute_command("DEL", *(keys[i] for i in where), **_routed(pipe, keys[where[0]]))


def delete(client: Any, keys: Sequence[KeyT], *, split: bool) -> int:
    """Delete `keys`; how many existed."""
    if not keys:
        return 0
    if not split:
        return int(client.delete(*keys))
    pipe = client.pipeline(transaction=False)
    queue_delete(pipe, keys, split=True)
    return sum(int(n) for n in pipe.execute())


def queue_eval(pipe: Any, script: str, keys: Sequence[KeyT], *args: Any) -> None:
    """Queue a script on `pipe` (a cluster pipeline has no `eval` method, only the command)."""
    options = _routed(pipe, keys[0]) if keys else {}
    pipe.execute_command("EVAL", script, len(keys), *keys, *args, **options)


def eval_each_slot(
    client: Any, script: str, keys: Sequence[KeyT], *, split: bool
) -> list[list[Any]]:
    """Run a script that returns one reply per key over `keys`, once per slot when
    `split` (else once); the replies in the order of `keys`."""
    if not keys:
        return []
    if not split:
        return list(client.eval(script, len(keys), *keys))
    groups = group_by_slot(keys)
    pipe = client.pipeline(transaction=False)
    for where in groups.values():
        queue_eval(pipe, script, [keys[i] for i in where])
    out: list[Any] = [None] * len(keys)
    for where, replies in zip(groups.values(), pipe.execute(), strict=True):
        for i, reply in zip(where, replies, strict=True):
            out[i] = reply
    return out
