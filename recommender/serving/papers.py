"""Candidates under the served state, with vectors for papers it does not hold.

A paper published after the fit (or whose text changed since, e.g. a new arXiv version)
gets content vectors of its own, computed once per (model version, text) and kept in a
small per-process cache: the shared state is never edited.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from recommender.content import paper_text
from recommender.embeddings import TextEncoder, embed_cached
from recommender.model import paper_vectors, text_key
from recommender.model.ranking import Candidates, candidates
from recommender.model.signals import PaperVectors
from recommender.model.state import FittedState
from recommender.pipeline import StoreVectorCache
from recommender.store import Store
from recommender.types import Paper

log = logging.getLogger(__name__)


class PaperVectorCache:
    """Vectors of papers outside the served state, keyed by model version and text."""

    def __init__(self, store: Store, encoder: TextEncoder | None, size: int = 50_000) -> None:
        self.store = store
        self.encoder = encoder
        self.size = size
        self._cache: OrderedDict[tuple[str, str], PaperVectors] = OrderedDict()
        self._lock = threading.Lock()
        self._warned = False

    def own_rows(self, state: FittedState, papers: Sequence[Paper]) -> list[int]:
        """Positions of papers the state does not hold, or holds with another text."""
        out = []
        for j, paper in enumerate(papers):
            col = state.pidx.get(paper.id)
            if col is None or state.text_keys[col] != text_key(paper):
                out.append(j)
        return out

    def vectors(self, state: FittedState, papers: Sequence[Paper]) -> PaperVectors:
        """Source vectors of papers under `state` (computed once per text)."""
        keys = [(state.version, text_key(p)) for p in papers]
        with self._lock:
            found = [self._cache.get(k) for k in keys]
        missing = [j for j, f in enumerate(found) if f is None]
        if missing:
            fresh = paper_vectors(
                state,
                [papers[j] for j in missing],
                self._embed(state, [papers[j] for j in missing]),
            )
            with self._lock:
                for i, j in enumerate(missing):
                    found[j] = fresh.take(np.array([i]))
                    self._cache[keys[j]] = found[j]
                while len(self._cache) > self.size:
                    self._cache.popitem(last=False)
        rows = [f for f in found if f is not None]
        if not rows:
            dim = state.papers.dense.shape[1], state.papers.lexical.shape[1]
            return PaperVectors(
                np.zeros((0, dim[0]), np.float32),
                np.zeros((0, dim[1]), np.float32),
                np.zeros(0, np.float32),
            )
        return PaperVectors(
            np.vstack([r.dense for r in rows]),
            np.vstack([r.lexical for r in rows]),
            np.concatenate([r.prior for r in rows]),
        )

    def _embed(self, state: FittedState, papers: Sequence[Paper]) -> np.ndarray | None:
        """Sentence embeddings for a state that uses them (cached in Redis by text hash)."""
        if state.content_model.dense_kind != "embedding":
            return None
        dim = state.content_model.mean.shape[0]
        if self.encoder is None or self.encoder.dim != dim:
            if not self._warned:
                log.warning(
                    "the model uses sentence embeddings but this process has no encoder: "
                    "papers newer than the model are ranked on words and popularity only"
                )
                self._warned = True
            return np.zeros((len(papers), dim), np.float32)
        cache = StoreVectorCache(self.store, self.encoder.name, self.encoder.dim)
        return embed_cached(self.encoder, [paper_text(p) for p in papers], cache)

    def candidates(self, state: FittedState, papers: Sequence[Paper]) -> Candidates:
        """Candidates for these papers under `state`."""
        own_rows = self.own_rows(state, papers)
        own = self.vectors(state, [papers[j] for j in own_rows]) if own_rows else None
        return candidates(state, [p.id for p in papers], own, own_rows)
