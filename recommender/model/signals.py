"""The arithmetic every signal shares, for training and serving alike.

Every dense signal scores a person for a paper as a dot product of a person vector and a
paper vector. Both are kept on the signal's principal axes (eigenvectors of the papers'
second moment), where that moment is diagonal: a person's spread of scores over the whole
catalogue is then an O(d) sum, not an O(d²) quadratic form. The sparse signal (`knn`)
scores through the item-item similarity matrix; its spread is estimated on a fixed sample
of papers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recommender.model.config import SIGNALS, SPARSE

# The paper vector each dense signal is a linear map of (papers added after a fit are
# mapped the same way): content, imc and cold ALS factors come from the dense content
# vector, tfidf from the LSA vector, pop from the community prior.
SOURCES = {"content": "dense", "imc": "dense", "als": "dense", "tfidf": "lexical", "pop": "prior"}

# Rows of people per block when their spreads are computed.
SPREAD_BLOCK = 4096


@dataclass(frozen=True, slots=True)
class SignalSide:
    """One dense signal's paper side on its principal axes."""

    basis: np.ndarray  # raw signal space -> principal axes (d × d, orthogonal)
    items: np.ndarray  # papers on the axes (n × d)
    mean: np.ndarray  # mean paper vector on the axes (d)
    variances: np.ndarray  # second moment per axis (d): diagonal on these axes
    item_map: np.ndarray  # a paper's source vector (see SOURCES) -> this side's axes

    @classmethod
    def fit(cls, raw: np.ndarray, to_raw: np.ndarray | None = None) -> SignalSide:
        """The principal axes of `raw` papers (n × d); `to_raw` maps a source vector to raw."""
        raw = np.asarray(raw, dtype=np.float32)
        vals, basis = _axes(second_moment(raw))
        item_map = basis if to_raw is None else (to_raw @ basis).astype(np.float32)
        return cls._on_axes(vals, basis, raw @ basis, item_map)

    @classmethod
    def of_map(
        cls, source: np.ndarray, gram: np.ndarray, linear: np.ndarray | None = None
    ) -> SignalSide:
        """The side of `source @ linear` papers (None: `source` itself), from the source's
        second moment `gram` (sourceᵀ source / n, float64), without forming that product.

        Every variant of a signal mapped from one source shares the source's moment: a
        variant then costs a d × d eigendecomposition and one projection of the papers.
        """
        source = np.asarray(source, dtype=np.float32)
        second = gram if linear is None else linear.T.astype(np.float64) @ gram @ linear
        vals, basis = _axes(second)
        item_map = basis if linear is None else (linear @ basis).astype(np.float32)
        return cls._on_axes(vals, basis, source @ item_map, item_map)

    @classmethod
    def _on_axes(
        cls, vals: np.ndarray, basis: np.ndarray, items: np.ndarray, item_map: np.ndarray
    ) -> SignalSide:
        """A side from its axes (eigenvalues, eigenvectors) and its papers on them."""
        return cls(
            basis=basis,
            items=items,
            mean=items.mean(axis=0) if len(items) else np.zeros(len(basis), np.float32),
            variances=np.maximum(vals, 0).astype(np.float32),
            item_map=item_map,
        )

    def spread(self, people: np.ndarray) -> np.ndarray:
        """Standard deviation of each person's scores over the catalogue (people on the axes)."""
        out = np.empty(len(people), np.float32)
        # In blocks of rows: a whole team's squared vectors would be a fresh temporary of
        # hundreds of MB, and faulting its pages in costs more than the arithmetic.
        for start in range(0, len(people), SPREAD_BLOCK):
            block = people[start : start + SPREAD_BLOCK]
            var = (block * block) @ self.variances - (block @ self.mean) ** 2
            out[start : start + SPREAD_BLOCK] = np.sqrt(np.maximum(var, 0))
        return out


@dataclass(frozen=True, slots=True)
class PaperVectors:
    """The source vectors of some papers (rows aligned with the papers)."""

    dense: np.ndarray  # centred, L2-normalised sentence embedding (or LSA) rows
    lexical: np.ndarray  # centred, L2-normalised TF-IDF LSA rows
    prior: np.ndarray  # standardised community prior

    def source(self, name: str) -> np.ndarray:
        """The rows a signal maps from (see SOURCES)."""
        if name == "prior":
            return self.prior[:, None]
        return self.dense if name == "dense" else self.lexical

    def take(self, rows: np.ndarray) -> PaperVectors:
        """Some of the rows."""
        return PaperVectors(self.dense[rows], self.lexical[rows], self.prior[rows])


def _axes(second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues and (float32) eigenvectors of a second moment."""
    vals, vecs = np.linalg.eigh(second)
    return vals, vecs.astype(np.float32)


def second_moment(rows: np.ndarray) -> np.ndarray:
    """rowsᵀ rows / n in float64 (the moment `SignalSide.of_map` starts from)."""
    rows = np.asarray(rows, dtype=np.float32)
    return (rows.T @ rows).astype(np.float64) / max(len(rows), 1)


def item_vectors(sides: Mapping[str, SignalSide], papers: PaperVectors) -> dict[str, np.ndarray]:
    """Each dense signal's vectors for papers that were not part of the fit."""
    return {s: papers.source(SOURCES[s]) @ side.item_map for s, side in sides.items()}


@dataclass(frozen=True, slots=True)
class UserMaps:
    """How a person's feedback becomes their vector for each dense signal."""

    content: np.ndarray | None  # history of dense vectors -> content axes
    imc: np.ndarray | None  # history of dense vectors -> imc axes
    # Feedback rows -> ALS user factors (a fold-in against fixed item factors).
    fold_in: Callable[[sp.csr_matrix], np.ndarray] | None


def person_vectors(
    sides: Mapping[str, SignalSide],
    maps: UserMaps,
    dense: np.ndarray,
    rows: sp.csr_matrix,
    *,
    als_factors: np.ndarray | None = None,
    extra: tuple[np.ndarray, np.ndarray] | None = None,
    history: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Vectors of people (rows of feedback over the fitted papers) for every dense signal.

    `als_factors` are their ALS factors when the fit has them (else they are folded in);
    `extra` = (Σ weight × dense, Σ weight × lexical) of feedback on papers the fit never
    saw; `history` = rows @ dense when the caller already has it.
    """
    count = rows.shape[0]
    if history is None:
        history = np.asarray(rows @ dense, dtype=np.float32)
    if extra is not None:
        history = history + extra[0]
    out: dict[str, np.ndarray] = {}
    for s, side in sides.items():
        if s == "content" and maps.content is not None:
            out[s] = (history @ maps.content).astype(np.float32, copy=False)
        elif s == "imc" and maps.imc is not None:
            out[s] = (history @ maps.imc).astype(np.float32, copy=False)
        elif s == "tfidf":
            vec = np.asarray(rows @ side.items, dtype=np.float32)
            if extra is not None:
                vec = vec + extra[1] @ side.item_map
            out[s] = vec
        elif s == "als":
            factors = als_factors
            if factors is None:
                factors = np.zeros((count, side.basis.shape[0]), np.float32)
                active = np.flatnonzero(np.diff(rows.indptr))
                if len(active) and maps.fold_in is not None:
                    factors[active] = maps.fold_in(rows[active])
            out[s] = (np.asarray(factors, dtype=np.float32) @ side.basis).astype(
                np.float32, copy=False
            )
        elif s == "pop":
            out[s] = np.ones((count, 1), np.float32)
    return out


def spreads(
    sides: Mapping[str, SignalSide],
    vectors: Mapping[str, np.ndarray],
    rows: sp.csr_matrix,
    knn_sample: sp.csr_matrix | None,
) -> np.ndarray:
    """Each person's standard deviation of each signal's scores over the catalogue."""
    out = np.zeros((rows.shape[0], len(SIGNALS)), np.float32)
    for s, vec in vectors.items():
        out[:, SIGNALS.index(s)] = sides[s].spread(vec)
    for s in SPARSE:
        if knn_sample is None or not knn_sample.shape[1]:
            continue
        block = rows @ knn_sample
        m = knn_sample.shape[1]
        total = np.asarray(block.sum(axis=1)).ravel()
        sq = np.asarray(block.multiply(block).sum(axis=1)).ravel()
        out[:, SIGNALS.index(s)] = np.sqrt(np.maximum(sq / m - (total / m) ** 2, 0))
    return out


def zscore(raw: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Scores divided by each person's spread (rows with no spread become 0), in place.

    The per-person mean is left in: it shifts all of one person's scores alike, so no
    ranking changes, and skipping it saves a pass over every matrix.
    """
    scale = np.where(sigma > 1e-9, 1.0 / np.maximum(sigma, 1e-9), 0.0).astype(np.float32)
    raw = np.asarray(raw, dtype=np.float32)
    raw *= scale[:, None]
    return raw
