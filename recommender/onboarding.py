"""The first-use card: a few papers that together cover the library's areas.

A new person rates these papers before anything else is known about them. Eight of the
most popular papers tend to sit in one or two busy areas, so a 👎 on one says little about
the rest; papers spread over the areas of the catalogue make each answer tell the model
something new. The areas are k-means clusters of the papers' content vectors (the same
vectors the ranking uses); from each area the card shows the paper that is both typical
of it and well regarded by the community.
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans

from recommender.model.ranking import Candidates

CARD_SIZE = 8
# Within an area: how much being typical of it counts against the community prior.
TYPICAL_WEIGHT = 1.0
PRIOR_WEIGHT = 1.0


def card_picks(cands: Candidates, n: int = CARD_SIZE, *, seed: int = 0) -> list[int]:
    """Positions (into `cands`) of `n` papers, one per content area, biggest area first."""
    count = len(cands)
    if count <= n:
        return list(range(count))
    vectors = np.asarray(cands.dense, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    usable = norms[:, 0] > 1e-9
    if usable.sum() < n:
        # Too few papers with text to cluster: the community prior alone decides.
        return [int(j) for j in np.argsort(-cands.prior, kind="stable")[:n]]
    unit = np.where(usable[:, None], vectors / np.maximum(norms, 1e-9), 0.0)
    rows = np.flatnonzero(usable)
    labels = KMeans(n_clusters=n, n_init=3, random_state=seed).fit_predict(unit[rows])
    prior = _z(np.asarray(cands.prior, dtype=np.float64)[rows])
    picks: list[tuple[int, int]] = []
    for cluster in range(n):
        members = np.flatnonzero(labels == cluster)
        if not len(members):
            continue
        centre = unit[rows[members]].mean(axis=0)
        centre /= max(float(np.linalg.norm(centre)), 1e-9)
        typical = _z(unit[rows[members]] @ centre)
        best = members[int(np.argmax(TYPICAL_WEIGHT * typical + PRIOR_WEIGHT * prior[members]))]
        picks.append((len(members), int(rows[best])))
    picks.sort(key=lambda t: -t[0])
    chosen = [j for _, j in picks]
    if len(chosen) < n:
        rest = [int(j) for j in np.argsort(-cands.prior, kind="stable") if int(j) not in chosen]
        chosen += rest[: n - len(chosen)]
    return chosen


def popular_picks(cands: Candidates, n: int = CARD_SIZE) -> list[int]:
    """The `n` papers with the highest community prior (the baseline a card is measured by)."""
    return [int(j) for j in np.argsort(-np.asarray(cands.prior), kind="stable")[:n]]


def _z(values: np.ndarray) -> np.ndarray:
    """Standardised values (zeros when they do not vary)."""
    spread = float(values.std())
    return (values - values.mean()) / spread if spread > 1e-12 else np.zeros_like(values)


__all__ = ["CARD_SIZE", "card_picks", "popular_picks"]
