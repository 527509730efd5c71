"""Everyone's feedback as one sparse matrix, re-reading only the people who changed."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from itertools import chain

import numpy as np
import scipy.sparse as sp

from recommender.model import Interactions
from recommender.store import Store

_EMPTY = (np.zeros(0, np.int32), np.zeros(0, np.float32))


class FeedbackMatrix:
    """Keeps the last read of the store's feedback and brings it up to date on each read.

    The first read (and any read after someone was forgotten) reads every person's
    feedback; later reads ask the store who changed since and re-read only them.
    """

    def __init__(self, store: Store, weight: Callable[[Iterable[str]], float]) -> None:
        self.store = store
        self.weight = weight
        self._lock = threading.Lock()
        self._version = -1
        self._forgets = -1
        self._rows: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._columns: dict[bytes, int] = {}
        self._weights: dict[bytes, float] = {}
        self.last_read = 0  # people read from the store by the last `read()`

    def read(self) -> Interactions:
        """All current feedback: people × papers, net weights (people with none left out)."""
        with self._lock:
            version, forgets, changed = self.store.feedback_changes(max(self._version, 0))
            if self._version < 0 or forgets != self._forgets:
                self._full(version, forgets)
            else:
                self._put(changed, self.store.feedback_rows_of(changed))
                self._version = version
                self.last_read = len(changed)
            return self._matrix()

    def _full(self, version: int, forgets: int) -> None:
        """Read everyone (the counters were taken first: later changes are re-read next time).

        Until it completes the reader counts as never having read, so a read that fails
        half-way is started over by the next one.
        """
        self._version = -1
        self._rows, self._columns = {}, {}
        count = 0
        batches = iter(self.store.feedback_batches())
        # The next batch is fetched (Redis runs its script meanwhile) while this one is
        # turned into rows; one fetch at a time, so the generator is never re-entered.
        with ThreadPoolExecutor(1, thread_name_prefix="feedback-fetch") as pool:
            ahead = pool.submit(next, batches, None)
            while (batch := ahead.result()) is not None:
                ahead = pool.submit(next, batches, None)
                self._put(*batch)
                count += len(batch[0])
        self._version, self._forgets, self.last_read = version, forgets, count

    def _put(self, users: list[str], raws: list[list[bytes]]) -> None:
        """Replace some people's rows from their raw feedback hashes (flat: id, kinds, ...).

        Vectorised over the batch: per-pair Python work is two C-level `map`s.
        """
        flat = list(chain.from_iterable(raws))
        pids, kinds = flat[0::2], flat[1::2]
        columns, weights = self._columns, self._weights
        for pid in set(pids).difference(columns):
            columns[pid] = len(columns)
        for kind in set(kinds).difference(weights):
            weights[kind] = self.weight(kind.decode().split(","))
        cols = np.fromiter(map(columns.__getitem__, pids), dtype=np.int32, count=len(pids))
        vals = np.fromiter(map(weights.__getitem__, kinds), dtype=np.float32, count=len(kinds))
        owner = np.repeat(np.arange(len(users)), [len(r) // 2 for r in raws])
        keep = vals != 0
        cols, vals, owner = cols[keep], vals[keep], owner[keep]
        ends = np.cumsum(np.bincount(owner, minlength=len(users)))
        start = 0
        for uid, end in zip(users, ends.tolist(), strict=True):
            if end > start:
                self._rows[uid] = (cols[start:end], vals[start:end])
            else:
                self._rows.pop(uid, None)
            start = end

    def _matrix(self) -> Interactions:
        """The kept rows as a CSR matrix, people in sorted order."""
        users = sorted(self._rows)
        rows = [self._rows[u] for u in users]
        lengths = np.fromiter((len(r[0]) for r in rows), dtype=np.int64, count=len(rows))
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        indices = np.concatenate([r[0] for r in rows]) if rows else _EMPTY[0]
        data = np.concatenate([r[1] for r in rows]) if rows else _EMPTY[1]
        papers = [b"" for _ in self._columns]
        for pid, col in self._columns.items():
            papers[col] = pid
        matrix = sp.csr_matrix((data, indices, indptr), shape=(len(users), len(papers)))
        return Interactions(users, [p.decode() for p in papers], matrix)
