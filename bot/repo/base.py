"""What every chat-side repository shares: the Redis client and one-line error messages."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import redis

from recommender.connection import is_cluster
from recommender.store import Store

_T = TypeVar("_T")


class RedisRepo:
    """A repository over the Redis client that the recommender's `Store` also uses.

    `where` and `secrets` feed `translate_errors`, so a lost connection reads the same as
    it does from the store: one line, password masked. `by_slot` is the store's: on a
    Redis Cluster, multi-key commands go one slot at a time (recommender.slots).
    """

    def __init__(
        self, source: Store | redis.Redis, *, where: str = "Redis", secrets: Sequence[str] = ()
    ) -> None:
        if isinstance(source, Store):
            self.r: Any = source.r
            self.where = source.where
            self.secrets = source.secrets
            self.by_slot = source.by_slot
        else:
            self.r = source
            self.where = where
            self.secrets = tuple(secrets)
            self.by_slot = is_cluster(source)

    def _transaction(self, body: Callable[[Any], _T], *keys: str) -> _T:
        """Run `body(pipe)` under WATCH of `keys` (one slot), again whenever they moved."""
        while True:
            with self.r.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(*keys)
                    return body(pipe)
                except redis.WatchError:
                    continue
