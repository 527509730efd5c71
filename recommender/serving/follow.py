"""A process's search index, following every process's ingests through a Redis stream.

Every write of papers appends one entry to `pb:papers:changes` (which ids were written,
which were retired). Each process reads the stream from the last entry it applied, so a
paper ingested anywhere is searchable everywhere within one poll, updated papers replace
their old entry, and retired `title:` ids disappear.
"""

from __future__ import annotations

import logging
import threading

from recommender.index import SearchIndex
from recommender.store import Store

log = logging.getLogger(__name__)


class IndexFollower:
    """Keeps one search index in step with the store's paper-change stream."""

    def __init__(self, store: Store, index: SearchIndex | None = None) -> None:
        self.store = store
        self.index = index if index is not None else SearchIndex()
        self.last: str | None = None
        self._lock = threading.Lock()

    def catch_up(self) -> int:
        """Apply every change since the last call; returns how many papers changed."""
        with self._lock:
            if self.last is None:
                return self._rebuild()
            changed = 0
            while True:
                rows, complete = self.store.paper_changes(self.last, 1000)
                if not complete:
                    log.info("search index fell behind the change stream; rebuilding")
                    return self._rebuild()
                if not rows:
                    return changed
                changed += self._apply(rows)
                self.last = rows[-1][0]
                if len(rows) < 1000:
                    return changed

    def _rebuild(self) -> int:
        """Index every stored paper (changes during the read are re-applied next time)."""
        head = self.store.paper_changes_head()
        count = self.index.replace(self.store.iter_papers())
        self.last = head
        return count

    def _apply(self, rows: list[tuple[str, str, list[str]]]) -> int:
        """Apply a run of change entries in order."""
        changed = 0
        pending: list[str] = []
        for _rid, op, ids in rows:
            if op == "rm":
                if pending:
                    changed += self._upsert(pending)
                    pending = []
                changed += self.index.remove(ids)
            else:
                pending.extend(ids)
        if pending:
            changed += self._upsert(pending)
        return changed

    def _upsert(self, ids: list[str]) -> int:
        """Add or replace papers by id (ids since retired are skipped)."""
        unique = list(dict.fromkeys(ids))
        papers = self.store.get_papers(unique)
        found = [p for i, p in zip(unique, papers, strict=True) if p is not None and p.id == i]
        return self.index.add(found)
