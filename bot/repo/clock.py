"""The scheduler lease (redis-py `Lock`) with a fencing token, and locks for running jobs.

One process holds the lease and runs the clock. Each acquisition takes a new fencing
token (an INCR'd counter); every write the clock's jobs make first checks that the lease
is still held under that token, so a holder that paused (GC, swap, SIGSTOP) past its TTL
and woke up after another process took over cannot write any more.

All keys share the `{clock}` hash tag, so the check script runs on Redis Cluster too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import redis
from redis.exceptions import LockError
from redis.lock import Lock

from bot.repo.base import RedisRepo
from recommender.store import Store, translate_errors

__all__ = [
    "FENCE_KEY",
    "HOLDER_KEY",
    "LAST_RUN_KEY",
    "LEASE_KEY",
    "ClockLease",
    "Fence",
    "FencedOut",
    "FencedStore",
    "clock_holder",
    "fenced",
    "job_lock",
    "last_runs",
]

log = logging.getLogger(__name__)

LEASE_KEY = "pb:{clock}:lease"
FENCE_KEY = "pb:{clock}:fence"
HOLDER_KEY = "pb:{clock}:holder"
LAST_RUN_KEY = "pb:{clock}:last-run"
RUNNING_PREFIX = "pb:{clock}:running:"

# 1 when KEYS[1] (the lease) holds our lock token and KEYS[2] (the counter) our fence.
_CHECK = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('get', KEYS[2]) ~= ARGV[2] then return 0 end
return 1
"""
# The same check, then HSET KEYS[3] ARGV[3] ARGV[4] in one atomic step.
_FENCED_HSET = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('get', KEYS[2]) ~= ARGV[2] then return 0 end
redis.call('hset', KEYS[3], ARGV[3], ARGV[4])
return 1
"""


class FencedOut(RuntimeError):
    """A write by a process whose lease ended (another process may hold it now)."""


class Fence:
    """The fencing token of one lease term: `check()` before each write of that term."""

    def __init__(self, client: redis.Redis, token: int, lock_token: bytes) -> None:
        """Token `token` of the lease whose lock value is `lock_token`."""
        self.client = client
        self.token = token
        self.lock_token = lock_token
        self._check = client.register_script(_CHECK)
        self._hset = client.register_script(_FENCED_HSET)

    def valid(self) -> bool:
        """Whether the lease is still ours under this token."""
        return bool(self._check(keys=[LEASE_KEY, FENCE_KEY], args=[self.lock_token, self.token]))

    def check(self, what: str) -> None:
        """Raise FencedOut unless the lease is still ours: call it before a write."""
        if not self.valid():
            raise FencedOut(f"{what}: the scheduler lease ended (fence {self.token}); not writing")

    def record_run(self, job_id: str, when: float | None = None) -> bool:
        """Store when `job_id` last ran, atomically with the fence check; False if fenced."""
        when = time.time() if when is None else when
        keys = [LEASE_KEY, FENCE_KEY, LAST_RUN_KEY]
        return bool(self._hset(keys=keys, args=[self.lock_token, self.token, job_id, when]))


def clock_holder(client: redis.Redis) -> dict[str, str] | None:
    """Fence, pid, host and since of the process holding the lease now (None: nobody)."""
    if not client.exists(LEASE_KEY):
        return None
    raw = client.hgetall(HOLDER_KEY)
    return {_text(k): _text(v) for k, v in raw.items()} or None


def _text(value: bytes | str) -> str:
    """A Redis reply as text."""
    return value.decode() if isinstance(value, bytes) else value


def last_runs(client: redis.Redis) -> dict[str, float]:
    """When each clock job last ran (epoch seconds), by job id."""
    raw = client.hgetall(LAST_RUN_KEY)
    return {k.decode() if isinstance(k, bytes) else k: float(v) for k, v in raw.items()}


class ClockLease:
    """The one-scheduler lease: a redis-py Lock plus a fencing token per acquisition."""

    def __init__(self, client: redis.Redis, ttl: float) -> None:
        """A lease on `LEASE_KEY` lasting `ttl` seconds unless renewed."""
        self.client = client
        self.ttl = ttl
        # thread_local=False: the tick thread renews, job threads check the same token.
        self.lock = client.lock(LEASE_KEY, timeout=ttl, thread_local=False)
        self.fence: Fence | None = None

    def acquire(self) -> Fence | None:
        """Take the lease if it is free; returns this term's fence (None: someone holds it)."""
        if self.fence is not None and self.renew():
            return self.fence
        if not self.lock.acquire(blocking=False):
            return None
        try:
            token = int(self.client.incr(FENCE_KEY))
            self.client.hset(
                HOLDER_KEY,
                mapping={
                    "fence": token,
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "since": time.time(),
                },
            )
        except Exception:
            # Without a fence the lease is useless: give it back rather than hold it blind.
            self.release()
            raise
        lock_token = self.lock.local.token
        assert isinstance(lock_token, bytes)
        self.fence = Fence(self.client, token, lock_token)
        return self.fence

    def renew(self) -> bool:
        """Reset the TTL of our lease; False (and no fence) if it expired or was taken."""
        try:
            self.lock.reacquire()
            return True
        except LockError:
            self.fence = None
            return False

    def release(self) -> None:
        """Give the lease up now so a standby process can take over at once."""
        self.fence = None
        # Expired or taken already: then nothing of ours is left to release.
        with contextlib.suppress(LockError):
            self.lock.release()

    def holder(self) -> dict[str, str]:
        """Who holds (or last held) the lease: fence, pid, host, since (diagnostics)."""
        return {_text(k): _text(v) for k, v in self.client.hgetall(HOLDER_KEY).items()}


class _JobLocks(RedisRepo):
    """Taking a running job's lock; a lost connection reads as one StoreUnavailable line."""

    @translate_errors
    def take(
        self, job_id: str, ttl: float, wait: float, on_wait: Callable[[], None] | None
    ) -> Lock | None:
        """The job's lock, held by us; None if another holder kept it for `wait` seconds."""
        lock = self.r.lock(f"{RUNNING_PREFIX}{job_id}", timeout=ttl, thread_local=False)
        if lock.acquire(blocking=False):
            return lock
        if wait <= 0:
            return None
        if on_wait is not None:
            on_wait()
        return lock if lock.acquire(blocking=True, blocking_timeout=wait) else None


@contextmanager
def job_lock(
    source: Store | redis.Redis,
    job_id: str,
    ttl: float,
    *,
    wait: float = 0.0,
    on_wait: Callable[[], None] | None = None,
) -> Iterator[bool]:
    """Hold `pb:{clock}:running:<job_id>` while the block runs; yields False if it stayed
    held by someone else for `wait` seconds.

    The lock lives `ttl` seconds and is extended every third of that while the block runs,
    so a long ingest keeps it and a crashed process's lock runs out by itself.
    """
    lock = _JobLocks(source).take(job_id, ttl, wait, on_wait)
    if lock is None:
        yield False
        return
    done = threading.Event()

    def keep() -> None:
        """Extend the lock until the job ends (or the lock is gone)."""
        while not done.wait(ttl / 3):
            try:
                lock.reacquire()
            except Exception as exc:  # lost or unreachable: the job's own writes are fenced
                log.warning("job lock %s not extended: %s", job_id, exc)
                return

    keeper = threading.Thread(target=keep, name=f"lock-{job_id}", daemon=True)
    keeper.start()
    try:
        yield True
    finally:
        done.set()
        keeper.join(5)
        try:
            lock.release()
        except LockError:
            pass
        except redis.RedisError as exc:  # it expires by itself within the TTL
            log.warning("job lock %s not released: %s", job_id, exc)


# Store methods that change data: the fenced store checks the fence before each of them.
_WRITE_PREFIXES = (
    "write",
    "put",
    "publish",
    "log_",
    "delete",
    "set_",
    "add",
    "record",
    "mark",
    "remove",
    "save",
    "upsert",
)


class FencedStore:
    """A Store whose writing methods check a fence first; reads pass straight through."""

    def __init__(self, store: Any, fence: Fence, what: str) -> None:
        """Wrap `store`; FencedOut names `what` (e.g. `ingest hf`)."""
        self._store = store
        self._fence = fence
        self._what = what

    def __getattr__(self, name: str) -> Any:
        """The store's attribute; a writing method is wrapped in a fence check."""
        value = getattr(self._store, name)
        if not callable(value) or not name.startswith(_WRITE_PREFIXES):
            return value
        fence, what = self._fence, self._what

        def fenced(*args: Any, **kwargs: Any) -> Any:
            """Check the fence, then write."""
            fence.check(what)
            return value(*args, **kwargs)

        return fenced


def fenced(fence: Fence | None, what: str) -> Callable[[], None]:
    """A guard to call before a write: checks `fence` (no-op without one)."""

    def guard() -> None:
        """Raise FencedOut if the lease of `fence` ended."""
        if fence is not None:
            fence.check(what)

    return guard
