"""People's vectors under the served state, fresh from their feedback in Redis.

A person whose feedback has not changed since the fit is served from the state's table;
anyone else is folded in from their current feedback. Either way the result is cached per
process under (model version, that person's feedback version), so any process answers
with the person's latest reactions and nothing is lost when a new model is swapped in.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from recommender.model import people as build
from recommender.model.state import FittedState, People
from recommender.serving.papers import PaperVectorCache
from recommender.store import Store


class PeopleCache:
    """Person vectors per (model version, feedback version), bounded in size."""

    def __init__(
        self,
        store: Store,
        weight: Callable[[Iterable[str]], float],
        papers: PaperVectorCache,
        size: int = 100_000,
    ) -> None:
        self.store = store
        self.weight = weight
        self.papers = papers
        self.size = size
        self._cache: OrderedDict[str, tuple[str, int | None, People]] = OrderedDict()
        self._lock = threading.Lock()
        self.folded = 0  # fold-ins done (for tests and stats)

    def get(self, state: FittedState, uids: Sequence[str]) -> People:
        """These people, as the state sees them with their current feedback."""
        if not uids:
            return build.from_feedback(state, [])
        versions = self.store.feedback_versions(uids)
        hits: dict[int, People] = {}
        table, fold = [], []
        with self._lock:
            for i, (uid, version) in enumerate(zip(uids, versions, strict=True)):
                hit = self._cache.get(uid)
                if hit is not None and hit[0] == state.version and hit[1] == version:
                    self._cache.move_to_end(uid)
                    hits[i] = hit[2]
                elif uid in state.user_index and (
                    version is not None and version <= state.trained_feedback_version
                ):
                    table.append(i)
                elif version is None and uid not in state.user_index:
                    table.append(i)  # nobody to fold in: an empty row
                else:
                    fold.append(i)
        parts: list[People] = []
        order: list[int] = []
        if table:
            parts.append(build.from_table(state, [uids[i] for i in table]))
            order += table
        if fold:
            folded = self._fold(state, [uids[i] for i in fold])
            self.folded += len(fold)
            with self._lock:
                for k, i in enumerate(fold):
                    self._cache[uids[i]] = (state.version, versions[i], folded.take([k]))
                while len(self._cache) > self.size:
                    self._cache.popitem(last=False)
            parts.append(folded)
            order += fold
        if hits:
            parts.extend(hits.values())
            order += list(hits)
        block = People.concat(parts)
        if order == list(range(len(uids))):
            return block
        # Back to the order asked for, in one gather.
        where = np.empty(len(order), dtype=np.int64)
        where[np.asarray(order)] = np.arange(len(order))
        return block.take(where)

    def _fold(self, state: FittedState, uids: list[str]) -> People:
        """Fold people in from their feedback as stored now."""
        raws = self.store.feedback_rows_of(uids)
        feedback = []
        outside: set[str] = set()
        for uid, raw in zip(uids, raws, strict=True):
            mine = {}
            for pid, kinds in zip(raw[::2], raw[1::2], strict=True):
                paper = pid.decode()
                mine[paper] = self.weight(kinds.decode().split(","))
                if paper not in state.pidx:
                    outside.add(paper)
            feedback.append((uid, mine))
        extra = {}
        if outside:
            papers = [p for p in self.store.get_papers(sorted(outside)) if p is not None]
            if papers:
                vecs = self.papers.vectors(state, papers)
                for i, paper in enumerate(papers):
                    extra[paper.id] = (vecs.dense[i], vecs.lexical[i])
        return build.from_feedback(state, feedback, extra)
