"""Every command paperbot sends in cluster mode keeps to one slot: recorded and checked.

The store runs its cluster code path (`by_slot=True`) on one real server through a client
that records every command, every pipelined transaction (with the keys it WATCHed) and
every script call. The server itself names each command's keys (`COMMAND GETKEYS`), so
nothing is guessed; a multi-key command, transaction or script over two slots fails here
with the call that issued it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
from redis.client import Pipeline

from recommender.slots import slot_of
from recommender.store import Store
from tests.support.store_slice import exercise

# Commands with no key arguments (GETKEYS refuses them).
KEYLESS = frozenset({"PING", "SCAN", "TIME", "INFO", "MULTI", "EXEC", "UNWATCH", "SCRIPT"})


@dataclass
class Recorder:
    """Every call sent: (what, the command names, its arguments for key lookup)."""

    calls: list[tuple[str, list[tuple[Any, ...]]]] = field(default_factory=list)

    def add(self, what: str, commands: list[tuple[Any, ...]]) -> None:
        """Remember one call (a command, or a transaction of several)."""
        self.calls.append((what, [tuple(c) for c in commands]))


class RecordingPipeline(Pipeline):
    """A pipeline that reports each command (or its whole MULTI block) to a recorder."""

    recorder: Recorder
    watched: list[Any]

    def watch(self, *names: Any) -> Any:
        """WATCH joins the transaction that follows: its keys must share that slot."""
        self.watched = [*getattr(self, "watched", []), *names]
        return super().watch(*names)

    def immediate_execute_command(self, *args: Any, **options: Any) -> Any:
        """A command run at once (after WATCH): one call of its own."""
        if str(args[0]).upper() != "WATCH":
            self.recorder.add(str(args[0]), [args])
        return super().immediate_execute_command(*args, **options)

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        """A transaction is one call; a plain pipeline is one call per command."""
        stack = [args for args, _options in self.command_stack]
        if self.transaction or self.explicit_transaction:
            self.recorder.add("MULTI", [("WATCH", *getattr(self, "watched", [])), *stack])
        else:
            for args in stack:
                self.recorder.add(str(args[0]), [args])
        self.watched = []
        return super().execute(raise_on_error)


class RecordingRedis(redis.Redis):
    """A single-server client that records what it sends."""

    recorder: Recorder

    def execute_command(self, *args: Any, **options: Any) -> Any:
        """One direct command: one call."""
        self.recorder.add(str(args[0]), [args])
        return super().execute_command(*args, **options)

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Pipeline:
        """Pipelines record through the same recorder."""
        pipe = RecordingPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )
        pipe.recorder = self.recorder
        pipe.watched = []
        return pipe


@pytest.fixture
def recorded(store: Store, redis_url: str) -> Iterator[tuple[Store, Store, Recorder]]:
    """Two stores in cluster mode on the test server, sharing one recorder."""
    recorder = Recorder()
    clients = []
    for _ in range(2):
        client = RecordingRedis.from_url(redis_url)
        client.recorder = recorder
        clients.append(client)
    yield Store(clients[0], by_slot=True), Store(clients[1], by_slot=True), recorder
    for client in clients:
        client.close()


def keys_of(lookup: redis.Redis, commands: list[tuple[Any, ...]]) -> list[list[bytes]]:
    """The keys of each command, as the server reads them (one pipelined round trip)."""
    pipe = lookup.pipeline(transaction=False)
    asked = []
    for args in commands:
        name = str(args[0]).upper()
        keyless = name in KEYLESS or (name in ("EVAL", "EVALSHA") and int(args[2]) == 0)
        if not keyless and name != "WATCH":
            pipe.command_getkeys(*args)
        asked.append(not keyless and name != "WATCH")
    answers = iter(pipe.execute(raise_on_error=False))
    out = []
    for args, was_asked in zip(commands, asked, strict=True):
        if str(args[0]).upper() == "WATCH":
            out.append([a if isinstance(a, bytes) else str(a).encode() for a in args[1:]])
            continue
        got = next(answers) if was_asked else []
        if isinstance(got, redis.ResponseError):
            # Commands whose every argument is optional report "no key arguments".
            assert "key" in str(got) or "Invalid arguments" in str(got), (args, got)
            got = []
        out.append([k if isinstance(k, bytes) else str(k).encode() for k in got])
    return out


def test_every_command_of_the_slice_keeps_to_one_slot(
    recorded: tuple[Store, Store, Recorder], redis_url: str
) -> None:
    """The full pass: no command, transaction or script spans two slots."""
    store, other, recorder = recorded
    exercise(store, other)
    lookup = redis.Redis.from_url(redis_url)
    try:
        flat = [args for _what, commands in recorder.calls for args in commands]
        found_keys = iter(keys_of(lookup, flat))
    finally:
        lookup.close()
    spanning, multi_key = [], 0
    for what, commands in recorder.calls:
        found = [k for _ in commands for k in next(found_keys)]
        multi_key += len(set(found)) > 1
        if len({slot_of(k) for k in found}) > 1:
            spanning.append((what, sorted({k.decode() for k in found})[:6]))
    assert spanning == [], spanning
    # The audit did see the multi-key forms it is there to check (split per slot).
    seen = {what.upper() for what, _ in recorder.calls}
    assert {"MGET", "MSET", "DEL", "EVAL", "MULTI"} <= seen, seen
    assert multi_key > 100
    assert len(recorder.calls) > 1000


def test_the_recorder_catches_a_command_over_two_slots(
    recorded: tuple[Store, Store, Recorder], redis_url: str
) -> None:
    """The check itself: one-server MGET over two papers spans two slots and is caught."""
    store, _other, recorder = recorded
    store.r.mget(["pb:paper:a", "pb:paper:b"])
    lookup = redis.Redis.from_url(redis_url)
    try:
        [found] = keys_of(lookup, recorder.calls[-1][1])
    finally:
        lookup.close()
    assert len({slot_of(k) for k in found}) == 2
