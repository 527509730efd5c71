"""Ranking metrics: top-k selection, recall@k and nDCG@k with binary relevance."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def top_k(scores: np.ndarray, k: int, *, ordered: bool = True) -> np.ndarray:
    """Column indices of the k best scores in each row, best first (-inf never wins ties).

    `ordered=False` skips sorting the k winners (for callers that only need the set).
    """
    k = min(k, scores.shape[1])
    if k <= 0:
        return np.zeros((scores.shape[0], 0), dtype=np.int64)
    if k < scores.shape[1]:
        part = _select(scores, k)
    else:
        part = np.tile(np.arange(scores.shape[1]), (scores.shape[0], 1))
    if not ordered:
        return part
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


# Wide rows are prefiltered: a strided sample of this many columns gives each row a
# threshold that a few times k scores clear, and only those are partitioned.
SAMPLE_COLUMNS = 2048


def _select(scores: np.ndarray, k: int) -> np.ndarray:
    """The k best columns of each row, unordered (exact; a prefilter only saves time)."""
    n_rows, n = scores.shape
    if n < 4 * SAMPLE_COLUMNS or 16 * k > n:
        return np.argpartition(-scores, k - 1, axis=1)[:, :k]
    sample = scores[:, :: n // SAMPLE_COLUMNS]
    m = sample.shape[1]
    # The q-th best sampled score is expected to be cleared by about q·n/m scores: aim
    # for twice k, so that almost every row keeps at least k.
    q = min(m, int(np.ceil(2 * k * m / n)) + 8)
    threshold = -np.partition(-sample, q - 1, axis=1)[:, q - 1]
    # Flat indices: far cheaper than a 2-D nonzero on a wide boolean matrix.
    flat = np.flatnonzero(scores >= threshold[:, None])
    r, c = np.divmod(flat, n)
    counts = np.bincount(r, minlength=n_rows)
    ok = (counts >= k) & np.isfinite(threshold)
    out = np.empty((n_rows, k), dtype=np.int64)
    rest = np.flatnonzero(~ok)
    if len(rest):
        out[rest] = np.argpartition(-scores[rest], k - 1, axis=1)[:, :k]
    if not ok.any():
        return out
    # Rows where a quarter of the catalogue ties at the threshold (a sparse signal's
    # zeros): the scores above it, then tied columns in index order to fill k.
    tied = ok & (counts > n // 4)
    for row in np.flatnonzero(tied):
        out[row] = _fill_ties(scores[row], threshold[row], k)
    ok &= ~tied
    if not ok.any():
        return out
    mine = ok[r]
    r, c = r[mine], c[mine]
    rows, inverse = np.unique(r, return_inverse=True)
    width = int(counts[rows].max())
    starts = np.concatenate([[0], np.cumsum(counts[rows])[:-1]])
    slot = np.arange(len(r)) - starts[inverse]
    # Padding is +inf in the negated scores: after every kept score (all finite, since
    # each clears a finite threshold), so it is never picked while a row keeps k.
    vals = np.full((len(rows), width), np.inf, dtype=np.float32)
    cols = np.zeros((len(rows), width), dtype=np.int64)
    vals[inverse, slot] = -scores[r, c]
    cols[inverse, slot] = c
    pick = np.argpartition(vals, k - 1, axis=1)[:, :k]
    out[rows] = np.take_along_axis(cols, pick, axis=1)
    return out


def _fill_ties(row: np.ndarray, threshold: float, k: int) -> np.ndarray:
    """The k best columns of one row whose k-th best score is shared by many columns."""
    above = np.flatnonzero(row > threshold)
    if len(above) >= k:
        return above[np.argpartition(-row[above], k - 1)[:k]]
    tied = np.flatnonzero(row == threshold)[: k - len(above)]
    return np.concatenate([above, tied])


def _discounts(k: int) -> np.ndarray:
    """1 / log2(rank + 1) for ranks 1..k."""
    return 1.0 / np.log2(np.arange(2, k + 2))


def hits_matrix(ranked: np.ndarray, relevant: Sequence[np.ndarray]) -> np.ndarray:
    """Boolean matrix: is the item at rank r of row u relevant for u."""
    out = np.zeros(ranked.shape, dtype=bool)
    for row, items in enumerate(relevant):
        if len(items):
            out[row] = np.isin(ranked[row], items)
    return out


def recall_ndcg(
    hits: np.ndarray, n_relevant: np.ndarray, ks: Sequence[int]
) -> dict[str, np.ndarray]:
    """Per-row recall@k and nDCG@k for every k, from a hits matrix (rows with no relevant
    items must be removed by the caller)."""
    disc = _discounts(hits.shape[1])
    cum_hits = np.cumsum(hits, axis=1)
    cum_dcg = np.cumsum(hits * disc, axis=1)
    ideal = np.cumsum(disc)
    out: dict[str, np.ndarray] = {}
    for k in ks:
        kk = min(k, hits.shape[1])
        if kk == 0:
            out[f"recall@{k}"] = np.zeros(len(n_relevant))
            out[f"ndcg@{k}"] = np.zeros(len(n_relevant))
            continue
        out[f"recall@{k}"] = cum_hits[:, kk - 1] / n_relevant
        best = ideal[np.minimum(n_relevant, kk) - 1]
        out[f"ndcg@{k}"] = cum_dcg[:, kk - 1] / best
    return out


def intra_list_similarity(vectors: np.ndarray, lists: np.ndarray) -> float:
    """Mean pairwise cosine similarity inside each recommendation list (lower = more diverse)."""
    if lists.ndim != 2 or len(lists) == 0 or lists.shape[1] < 2:
        return 0.0  # no lists (or lists too short to have pairs): nothing to measure
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.maximum(norms, 1e-9)
    total = 0.0
    for row in lists:
        v = unit[row]
        sim = v @ v.T
        n = len(row)
        total += (sim.sum() - np.trace(sim)) / (n * (n - 1))
    return float(total / len(lists))
