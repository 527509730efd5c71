"""Collaborative filtering: implicit ALS, item-item co-occurrence kNN, content->factor map."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from threadpoolctl import ThreadpoolController

log = logging.getLogger(__name__)

_THREADS: ThreadpoolController | None = None


def one_blas_thread():
    """A context holding BLAS to one thread: OpenBLAS and implicit's own threads otherwise
    fight over the cores. The loaded libraries are found once, not on every call (that
    scan alone took ~3 ms, as long as a whole fold-in)."""
    global _THREADS
    if _THREADS is None:
        _THREADS = ThreadpoolController()
    return _THREADS.limit(limits=1, user_api="blas")


@dataclass(frozen=True, slots=True)
class AlsParams:
    """Hyperparameters of one ALS model."""

    factors: int = 128
    regularization: float = 10.0
    alpha: float = 40.0
    iterations: int = 15


# Candidates tried on the validation split; ordered cheapest first.
ALS_GRID = (
    AlsParams(64, 0.1, 20.0),
    AlsParams(64, 1.0, 20.0),
    AlsParams(128, 10.0, 40.0),
    AlsParams(256, 30.0, 30.0),
)


def _new_als(params: AlsParams, seed: int):
    """A CPU ALS model (the top-level implicit name is a factory)."""
    from implicit.cpu.als import AlternatingLeastSquares

    return AlternatingLeastSquares(
        factors=params.factors,
        regularization=params.regularization,
        alpha=params.alpha,
        iterations=params.iterations,
        random_state=seed,
        calculate_training_loss=False,
    )


def fit_als(
    matrix: sp.csr_matrix,
    params: AlsParams,
    *,
    seed: int = 0,
    warm: tuple[np.ndarray, np.ndarray] | None = None,
    iterations: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Fit ALS on a user×item confidence matrix; returns (user factors, item factors).

    `warm` starts from given factors (a refit after validation needs few iterations).
    """
    with one_blas_thread():
        model = _new_als(params, seed)
        if iterations is not None:
            model.iterations = iterations
        if warm is not None:
            model.user_factors = warm[0].astype(np.float32, copy=True)
            model.item_factors = warm[1].astype(np.float32, copy=True)
        model.fit(matrix.astype(np.float32), show_progress=False)
    return np.asarray(model.user_factors), np.asarray(model.item_factors)


class FoldIn:
    """Solves user factors against fixed item factors; Y'Y is computed once, not per call."""

    def __init__(self, item_factors: np.ndarray, params: AlsParams) -> None:
        with one_blas_thread():
            self.model = _new_als(params, 0)
        self.model.num_threads = 1
        self.set_items(item_factors)

    def set_items(self, item_factors: np.ndarray, *, same_gram: bool = False) -> None:
        """New item factors; `same_gram` when only all-zero rows were appended."""
        gram = self.model._YtY if same_gram else None
        # A private, writable copy: implicit's solver needs a writable buffer, and the
        # factors it is given may belong to a read-only published model.
        self.model.item_factors = np.array(item_factors, dtype=np.float32, order="C", copy=True)
        self.model._YtY = gram

    def __call__(self, rows: sp.csr_matrix) -> np.ndarray:
        """User factors for rows of confidences (one row per user)."""
        with one_blas_thread():
            out = self.model.recalculate_user(np.arange(rows.shape[0]), rows.astype(np.float32))
        return np.atleast_2d(np.asarray(out, dtype=np.float32))


def fold_in_users(rows: sp.csr_matrix, item_factors: np.ndarray, params: AlsParams) -> np.ndarray:
    """User factors for rows of confidences, given fixed item factors (no refit)."""
    return FoldIn(item_factors, params)(rows)


def content_to_factors(
    content: np.ndarray, factors: np.ndarray, weights: np.ndarray, ridge: float = 1.0
) -> np.ndarray:
    """Ridge map from content vectors to ALS item factors, fitted on items with interactions.

    Weighted by how many interactions each item has, since a factor learned from many
    interactions is a more reliable target than one from a single click.
    """
    # The products over every paper in float32 (half the time; the ridge keeps the d × d
    # system well conditioned), the solve in float64.
    w = np.sqrt(weights.astype(np.float32))[:, None]
    a = content.astype(np.float32) * w
    b = factors.astype(np.float32) * w
    gram = (a.T @ a).astype(np.float64)
    lam = ridge * max(np.trace(gram) / max(gram.shape[0], 1), 1e-6)
    rhs = (a.T @ b).astype(np.float64)
    return np.linalg.solve(gram + lam * np.eye(gram.shape[0]), rhs).astype(np.float32)


def item_knn(positive: sp.csr_matrix, neighbours: int = 100) -> sp.csr_matrix:
    """Cosine item-item similarity from co-occurrence, keeping each item's top neighbours."""
    binary = positive.copy()
    binary.data = np.ones_like(binary.data, dtype=np.float32)
    counts = np.asarray(binary.sum(axis=0)).ravel().astype(np.float32)
    co = (binary.T @ binary).tocsr().astype(np.float32)
    co.setdiag(0)
    co.eliminate_zeros()
    norm = np.sqrt(np.maximum(counts, 1.0))
    co = sp.diags(1.0 / norm) @ co @ sp.diags(1.0 / norm)
    return _keep_top(co.tocsr(), neighbours)


def _keep_top(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the k largest entries of each row (vectorised: one sort of all entries)."""
    coo = matrix.tocoo()
    # Rows ascending, values descending within a row; then rank entries inside each row.
    order = np.lexsort((-coo.data, coo.row))
    rows = coo.row[order]
    starts = np.searchsorted(rows, np.arange(matrix.shape[0]))
    rank = np.arange(len(rows)) - starts[rows]
    keep = order[rank < k]
    out = sp.csr_matrix(
        (coo.data[keep].astype(np.float32), (coo.row[keep], coo.col[keep])), shape=matrix.shape
    )
    # Symmetric use (user row × similarity) wants "who lists me as a neighbour" too.
    return out.maximum(out.T).tocsr().astype(np.float32)
