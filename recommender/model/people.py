"""People under a fitted state: from the state's own table, or folded in from feedback.

A person whose feedback has not changed since the fit is a row of the state's table; anyone
else is folded in from their current feedback (ALS fold-in against the fixed paper factors,
content profiles summed), which costs a few milliseconds and changes nothing shared.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from recommender.model.signals import person_vectors, spreads
from recommender.model.state import FittedState, People

# Paper id -> (dense, lexical) vectors of a paper the state does not hold.
ExtraVectors = Mapping[str, tuple[np.ndarray, np.ndarray]]


def from_table(state: FittedState, uids: Sequence[str]) -> People:
    """The state's own rows for these people (someone it never saw gets an empty row)."""
    index = state.user_index
    rows = [index.get(u, -1) for u in uids]
    if all(r >= 0 for r in rows):
        block = state.users.take(rows)
        return block
    known = [r for r in rows if r >= 0]
    parts = []
    table = state.users.take(known) if known else None
    empty = from_feedback(state, [(u, {}) for u, r in zip(uids, rows, strict=True) if r < 0])
    k = e = 0
    for r in rows:
        if r >= 0:
            parts.append(table.take([k]))
            k += 1
        else:
            parts.append(empty.take([e]))
            e += 1
    return People.concat(parts)


def from_feedback(
    state: FittedState,
    feedback: Sequence[tuple[str, Mapping[str, float]]],
    extra: ExtraVectors | None = None,
) -> People:
    """People folded in from their current feedback: (uid, {paper id: weight}) each.

    Feedback on papers the state does not hold counts through `extra` vectors when given
    (content signals only: they have no ALS factors), and such papers are never
    recommended back to the person.
    """
    n = state.size
    rows, cols, vals = [], [], []
    elsewhere: list[frozenset[str]] = []
    dense_dim = state.papers.dense.shape[1]
    lexical_dim = state.papers.lexical.shape[1]
    extra_dense = np.zeros((len(feedback), dense_dim), np.float32)
    extra_lexical = np.zeros((len(feedback), lexical_dim), np.float32)
    for i, (_uid, papers) in enumerate(feedback):
        outside = []
        for pid, weight in papers.items():
            col = state.pidx.get(pid)
            if col is None:
                outside.append(pid)
                vectors = (extra or {}).get(pid)
                if vectors is not None and weight:
                    extra_dense[i] += weight * vectors[0]
                    extra_lexical[i] += weight * vectors[1]
            elif weight:
                rows.append(i)
                cols.append(col)
                vals.append(weight)
        elsewhere.append(frozenset(outside))
    matrix = sp.csr_matrix(
        (np.asarray(vals, np.float32), (np.asarray(rows, np.int64), np.asarray(cols, np.int64))),
        shape=(len(feedback), n),
    )
    matrix.sum_duplicates()
    has_extra = bool(extra) and (extra_dense.any() or extra_lexical.any())
    active = (np.diff(matrix.indptr) > 0) | (extra_dense != 0).any(axis=1)
    vectors = person_vectors(
        state.sides,
        state.maps,
        state.papers.dense,
        matrix,
        extra=(extra_dense, extra_lexical) if has_extra else None,
    )
    knn_sample = state.knn_sample if "knn" in state.signals else None
    sigma = spreads(state.sides, vectors, matrix, knn_sample)
    return People(
        ids=tuple(uid for uid, _ in feedback),
        rows=matrix,
        vectors=vectors,
        sigma=sigma,
        rated_elsewhere=tuple(elsewhere),
        active=active,
    )
