"""HybridRecommender: collaborative filtering, content and community signals, blended per data.

Signals (each a score of user u for paper i):
  content  whitened sentence-embedding profile (TF-IDF LSA when no encoder is installed)
  tfidf    TF-IDF profile
  imc      a bilinear content model learned from the team's interactions (what people who
           liked papers like these went on to like)
  knn      item-item co-occurrence (people who liked this also liked)
  als      implicit ALS; papers nobody has touched get factors mapped from their content
  pop      community prior: interactions in training, Hugging Face upvotes, GitHub stars

Each signal is z-scored per user over the catalogue, then summed with weights chosen on a
validation split carved from the training interactions: one weight vector for papers that
have interactions ("warm") and one for papers nobody has touched yet ("cold", e.g. this
morning's arXiv listing). Every signal is bilinear in (user vector, paper vector) except the
two sparse ones, so scoring new papers for many users is one matrix product.
"""

from __future__ import annotations

import io
import json
import logging
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from recommender import blend
from recommender.cf import (
    ALS_GRID,
    AlsParams,
    FoldIn,
    content_to_factors,
    fit_als,
    item_knn,
)
from recommender.content import ContentModel, ItemContent
from recommender.metrics import top_k
from recommender.types import Paper

log = logging.getLogger(__name__)

SIGNALS = ("content", "tfidf", "imc", "knn", "als", "pop")
DENSE = ("content", "tfidf", "imc", "als", "pop")
SPARSE = ("knn",)
TUNE_KS = (10, 20, 50, 100, 300)
FORMAT_VERSION = 1
# Cosine (centred embeddings) above which a liked paper may be named in an explanation.
EXPLAIN_MIN_SIMILARITY = 0.3
# TF-IDF cosine between a paper and a person's liked papers above which shared words are shown.
EXPLAIN_MIN_WORD_OVERLAP = 0.1


@dataclass(slots=True)
class FitConfig:
    """Knobs of the training procedure (the same procedure for every dataset)."""

    signals: tuple[str, ...] = SIGNALS
    als: AlsParams = field(default_factory=AlsParams)
    als_grid: tuple[AlsParams, ...] = ALS_GRID
    # The ALS grid is only searched while one fit stays cheap (interactions × factors).
    grid_budget: float = 4e7
    validation_users: int = 2000
    min_validation_users: int = 20
    validation_cells: float = 3e7  # cap on validation users × catalogue size
    # Above this many papers, validation ranks held-out papers among a uniform sample
    # of this many (depths scaled to match): the ranking is the same in expectation.
    validation_items: int = 20000
    holdout_fraction: float = 0.2
    debias_power: float = 2.0
    # Used only when no validation split can be carved (every user has a single paper):
    # content leads and the community prior breaks ties for people with little history.
    default_weights: dict[str, float] = field(default_factory=lambda: {"content": 1.0, "pop": 0.1})
    holdout: str = "debiased"  # which interactions validation hides: "debiased" or "random"
    cold_items: int = 2000
    cold_fraction: float = 0.1
    whitening: tuple[float | None, ...] = (None, 4.0, 1.0)
    imc_ridge: tuple[float, ...] = (0.1, 0.3, 1.0)
    knn_neighbours: int = 100
    mmr_lambda: float = 0.75
    seed: int = 0


@dataclass(slots=True)
class Interactions:
    """Feedback already in matrix form: rows are `users`, columns are `papers`."""

    users: list[str]
    papers: list[str]
    matrix: sp.csr_matrix

    def aligned(self, pidx: dict[str, int]) -> tuple[sp.csr_matrix, list[str], int]:
        """The matrix with columns in the model's paper order; unknown papers dropped."""
        cols = np.array([pidx.get(p, -1) for p in self.papers], dtype=np.int64)
        coo = self.matrix.tocoo()
        target = cols[coo.col]
        keep = target >= 0
        matrix = sp.csr_matrix(
            (coo.data[keep].astype(np.float32), (coo.row[keep], target[keep])),
            shape=(len(self.users), len(pidx)),
        )
        matrix.sum_duplicates()
        matrix.eliminate_zeros()
        return matrix, list(self.users), int((~keep).sum())


@dataclass(slots=True)
class _Task:
    """One validation task: users, their held-out papers, and what those are ranked among."""

    name: str
    users: np.ndarray
    truth: dict[int, np.ndarray]
    cands: np.ndarray | None  # candidate columns, sorted (None: the whole catalogue)
    exclude_seen: bool  # a user's own training papers are not candidates
    ks: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Recommendation:
    """One ranked paper for one user."""

    paper_id: str
    score: float


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why a paper was recommended: the liked papers (and words) most responsible."""

    papers: tuple[tuple[str, str], ...] = ()  # (paper id, title)
    words: tuple[str, ...] = ()
    reason: str = ""

    def text(self) -> str:
        """The one line shown under a paper in a digest."""
        if self.papers:
            titles = " and ".join(f"“{_short(t)}”" for _, t in self.papers[:2])
            return f"Because you liked {titles}"
        if self.words:
            return "Matches your interest in " + ", ".join(self.words)
        return self.reason


def _short(title: str, limit: int = 70) -> str:
    """A title cut at a word boundary."""
    title = " ".join(title.split())
    return title if len(title) <= limit else title[: limit - 1].rsplit(" ", 1)[0] + "…"


class _Rows:
    """A growable float32 matrix (users added after fit append here without copying all)."""

    def __init__(self, data: np.ndarray) -> None:
        self.data = np.ascontiguousarray(data, dtype=np.float32)
        self.n = len(data)

    def append(self, row: np.ndarray) -> int:
        """Add one row; returns its index."""
        if self.n == len(self.data):
            grown = np.zeros((max(8, 2 * len(self.data)), self.data.shape[1]), np.float32)
            grown[: self.n] = self.data[: self.n]
            self.data = grown
        self.data[self.n] = row
        self.n += 1
        return self.n - 1

    @property
    def view(self) -> np.ndarray:
        """The filled rows."""
        return self.data[: self.n]


class HybridRecommender:
    """Fit on interactions and papers; recommend, explain, fold in new feedback."""

    def __init__(self, config: FitConfig | None = None) -> None:
        self.config = config or FitConfig()
        self.report: dict[str, Any] = {}
        self.fitted = False

    # ------------------------------------------------------------------ fit

    def fit(
        self,
        interactions: Iterable[tuple[str, str, float]],
        papers: Sequence[Paper],
        *,
        embeddings: np.ndarray | None = None,
        progress: Callable[[str], None] | None = None,
        content: tuple[ContentModel, ItemContent] | None = None,
    ) -> HybridRecommender:
        """Train every signal and choose the blend on a validation split.

        `interactions` are (user, paper id, weight) with negative weight = dislike, or a
        ready `Interactions` matrix; papers not in `papers` are skipped and counted.
        `embeddings` are rows aligned with `papers` (None = no sentence encoder: content
        falls back to TF-IDF). `content` reuses an earlier content fit of the same papers
        (a retrain after new feedback need not re-read every abstract).
        """
        t0 = time.perf_counter()
        say = progress or (lambda _msg: None)
        cfg = self.config
        rng = np.random.default_rng(cfg.seed)
        self.paper_ids = [p.id for p in papers]
        self.pidx = {pid: i for i, pid in enumerate(self.paper_ids)}
        self.titles = [p.title for p in papers]
        self.authors = [list(p.authors) for p in papers]
        if isinstance(interactions, Interactions):
            full, self.user_ids, unknown = interactions.aligned(self.pidx)
        else:
            full, self.user_ids, unknown = self._matrix(interactions)
        self.uidx = {u: i for i, u in enumerate(self.user_ids)}
        self.report = {"users": len(self.user_ids), "papers": len(papers)}
        self.report["interactions"] = int(full.nnz)
        self.report["unknown_papers_skipped"] = unknown
        say("content features")
        if content is not None and len(content[1].dense) == len(papers):
            self.content_model, self.items = content
        else:
            self.content_model = ContentModel()
            self.items = self.content_model.fit(papers, embeddings)
        self.report["content"] = self.content_model.dense_kind
        self.community = _community(papers)

        say("validation split")
        train, catalog_val, cold_val, cold_items = self._split(full, rng)
        self.report["validation"] = {
            "catalog_users": len(catalog_val),
            "cold_items": len(cold_items),
        }
        say("collaborative filtering")
        self.als_params = self._choose_als(train, catalog_val)
        factors = fit_als(train, self.als_params, seed=cfg.seed) if "als" in cfg.signals else None
        self.shrink, self.imc_ridge = None, cfg.imc_ridge[len(cfg.imc_ridge) // 2]
        self.weights_catalog = np.zeros(len(SIGNALS))
        self.weights_cold = np.zeros(len(SIGNALS))
        # Tuning only ever scores validation users: give only them user-side vectors.
        cap = max(1, int(min(cfg.validation_users, cfg.validation_cells / len(self.paper_ids))))
        cold_users = sorted(cold_val)[:cap]
        val_users = np.array(sorted(set(catalog_val) | set(cold_users)), dtype=np.int64)
        where = {int(u): i for i, u in enumerate(val_users)}
        self._fit_signals(train, factors, users=val_users)
        say("blend weights")
        self._tune(
            {where[u]: v for u, v in catalog_val.items()},
            {where[u]: cold_val[u] for u in cold_users},
            cold_items,
        )

        say("final fit")
        held = full.nnz - train.nnz
        if factors is not None and held:
            if held <= 0.05 * full.nnz:
                # Few held-out interactions: re-solve just the touched rows, no refit.
                factors = self._patch_factors(full, factors, val_users, cold_items)
            else:
                # Warm start: held-out interactions only nudge factors that are nearly there.
                iters = max(3, self.als_params.iterations // 3)
                factors = fit_als(
                    full, self.als_params, seed=cfg.seed, warm=factors, iterations=iters
                )
        # The paper side of content and TF-IDF does not depend on who liked what.
        self._fit_signals(full, factors, item_side=("imc", "als", "pop"))
        self.__dict__.pop("_imc_last", None)
        self.fitted = True
        self.report["fit_seconds"] = round(time.perf_counter() - t0, 3)
        return self

    def _matrix(
        self, interactions: Iterable[tuple[str, str, float]]
    ) -> tuple[sp.csr_matrix, list[str], int]:
        """Users × papers matrix of summed weights; unknown papers are counted, not fatal."""
        users: dict[str, int] = {}
        rows, cols, vals = [], [], []
        unknown = 0
        for user, pid, weight in interactions:
            col = self.pidx.get(pid)
            if col is None:
                unknown += 1
                continue
            rows.append(users.setdefault(user, len(users)))
            cols.append(col)
            vals.append(weight)
        matrix = sp.csr_matrix(
            (np.asarray(vals, np.float32), (np.asarray(rows), np.asarray(cols))),
            shape=(len(users), len(self.pidx)),
        )
        matrix.sum_duplicates()
        matrix.eliminate_zeros()
        return matrix, list(users), unknown

    def _split(
        self, full: sp.csr_matrix, rng: np.random.Generator
    ) -> tuple[sp.csr_matrix, dict[int, np.ndarray], dict[int, np.ndarray], np.ndarray]:
        """Carve the validation split from the training interactions.

        Two tasks, as the bot faces them: rank the catalogue (held-out interactions of
        some users, mixed with papers nobody has seen yet) and rank new papers only (the
        newest touched papers, with every interaction on them held out). Held-out
        interactions favour rarely-saved papers (probability ∝ 1/count), because what a
        person will want next is mostly what few have found yet, not what everyone has.
        """
        cfg = self.config
        pos = full.multiply(full > 0).tocsr()
        counts = np.asarray((pos > 0).sum(axis=0)).ravel()
        touched = np.flatnonzero(counts)
        n_cold = min(cfg.cold_items, int(len(touched) * cfg.cold_fraction))
        if n_cold < 20:
            cold_items = np.zeros(0, dtype=np.int64)
        elif cfg.holdout == "random":
            cold_items = np.sort(rng.choice(touched, n_cold, replace=False))
        else:
            # The catalogue is in arrival order: the newest papers play "this morning's papers".
            cold_items = touched[-n_cold:]
        is_cold = np.zeros(full.shape[1], dtype=bool)
        is_cold[cold_items] = True
        keep = ~is_cold[full.indices]
        positive = full.data > 0
        cap = int(min(cfg.validation_users, cfg.validation_cells / max(full.shape[1], 1)))
        rows = np.repeat(np.arange(full.shape[0]), np.diff(full.indptr))
        usable = np.bincount(rows, weights=positive & keep, minlength=full.shape[0])
        eligible = np.flatnonzero(usable >= 2)
        held: dict[int, list[np.ndarray]] = {}
        for u in rng.permutation(eligible)[:cap]:
            start, end = full.indptr[u], full.indptr[u + 1]
            slots = np.flatnonzero(positive[start:end] & keep[start:end])
            n_out = min(len(slots) - 1, max(1, round(len(slots) * cfg.holdout_fraction)))
            if cfg.holdout == "random":
                out = rng.choice(slots, n_out, replace=False)
            elif cfg.holdout == "newest":
                out = slots[-n_out:]
            else:
                weight = counts[full.indices[start + slots]] ** -cfg.debias_power
                out = rng.choice(slots, n_out, replace=False, p=weight / weight.sum())
            keep[start + out] = False
            held[int(u)] = [full.indices[start + out]]
        cold_val: dict[int, np.ndarray] = {}
        remaining = np.bincount(rows, weights=positive & keep, minlength=full.shape[0])
        on_cold = positive & is_cold[full.indices]
        for u in np.unique(rows[on_cold]):
            # Only users who keep some history can be scored on unseen papers.
            if remaining[u] > 0:
                start, end = full.indptr[u], full.indptr[u + 1]
                cold_val[int(u)] = full.indices[start:end][on_cold[start:end]]
        catalog_val = {u: np.unique(np.concatenate(parts)) for u, parts in held.items()}
        train = sp.csr_matrix((full.data[keep], (rows[keep], full.indices[keep])), shape=full.shape)
        return train, catalog_val, cold_val, cold_items

    def _choose_als(self, train: sp.csr_matrix, catalog_val: dict[int, np.ndarray]) -> AlsParams:
        """Pick ALS hyperparameters on the warm validation users while fits are cheap."""
        cfg = self.config
        if "als" not in cfg.signals or not catalog_val or train.nnz == 0:
            return cfg.als
        affordable = [p for p in cfg.als_grid if train.nnz * p.factors <= cfg.grid_budget]
        if len(affordable) < 2:
            return cfg.als
        users = np.array(sorted(catalog_val))
        results = {}
        for params in affordable:
            uf, itf = fit_als(train, params, seed=cfg.seed)
            scores = uf[users] @ itf.T
            seen = train[users]
            scores[np.repeat(np.arange(len(users)), np.diff(seen.indptr)), seen.indices] = -np.inf
            ranked = top_k(scores, 100)
            hits = [
                np.isin(ranked[i], catalog_val[u]).sum() / len(catalog_val[u])
                for i, u in enumerate(users)
            ]
            results[params] = float(np.mean(hits))
        best = max(results, key=results.get)
        self.report["als_grid"] = {
            f"{p.factors}/{p.regularization}/{p.alpha}": round(v, 4) for p, v in results.items()
        }
        return best

    def _patch_factors(
        self,
        full: sp.csr_matrix,
        factors: tuple[np.ndarray, np.ndarray],
        users: np.ndarray,
        items: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Re-solve the factors of held-out papers, then of validation users, on all data."""
        user_f, item_f = factors[0].copy(), factors[1].copy()
        if len(items):
            by_item = full.T.tocsr()[items]
            item_f[items] = FoldIn(user_f, self.als_params)(by_item)
        if len(users):
            user_f[users] = FoldIn(item_f, self.als_params)(full[users])
        return user_f, item_f

    # ------------------------------------------------------------------ signals

    def _fit_signals(
        self,
        matrix: sp.csr_matrix,
        factors: tuple[np.ndarray, np.ndarray] | None,
        users: np.ndarray | None = None,
        *,
        item_side: tuple[str, ...] = SIGNALS,
    ) -> None:
        """Item-side models from one interaction matrix, and the vectors of `users` (all).

        `item_side` names the signals whose paper side depends on this matrix (content
        and TF-IDF do not: a second call on more interactions may keep theirs).
        """
        cfg = self.config
        matrix = matrix.tocsr().astype(np.float32)
        positive = matrix.multiply(matrix > 0).tocsr()
        self.item_count = np.asarray((positive > 0).sum(axis=0)).ravel().astype(np.float32)
        self.warm = self.item_count > 0
        X = self.items.dense
        A = self._imc_fit(matrix, positive)
        self.R = matrix if users is None else matrix[users]
        # The users' histories (R X) are rows of A: reused by `_refresh_users`.
        self._history = A if users is None else A[users]
        self.knn = (
            item_knn(positive, cfg.knn_neighbours)
            if "knn" in cfg.signals and positive.nnz
            else sp.csr_matrix((len(self.warm), len(self.warm)), dtype=np.float32)
        )
        self._fold_in = None
        if factors is not None:
            self.user_factors, self.item_factors = factors
            if users is not None:
                self.user_factors = self.user_factors[users]
            mapping = (
                content_to_factors(
                    X[self.warm], self.item_factors[self.warm], self.item_count[self.warm]
                )
                if self.warm.any()
                else np.zeros((X.shape[1], self.item_factors.shape[1]), np.float32)
            )
            self.factor_map = mapping
        else:
            self.user_factors = np.zeros((self.R.shape[0], 1), np.float32)
            self.item_factors = np.zeros((self.R.shape[1], 1), np.float32)
            self.factor_map = np.zeros((X.shape[1], 1), np.float32)
        # Spreads of the sparse signals are estimated on a fixed sample of papers.
        sample_rng = np.random.default_rng(cfg.seed + 1)
        n = len(self.paper_ids)
        self._sample = np.sort(sample_rng.choice(n, min(n, 3000), replace=False))
        self._knn_sample = self.knn[:, self._sample].tocsr()
        self._set_item_side(item_side)
        self._refresh_users()
        self._history = None

    def _imc_fit(self, matrix: sp.csr_matrix, positive: sp.csr_matrix) -> np.ndarray:
        """The imc statistics of one interaction matrix; returns every user's history R X.

        imc: W = (AᵀA + λ)⁻¹ Aᵀ R⁺ X (XᵀX + λ)⁻¹ with A = R X: user history -> paper space.
        A second call on a matrix that differs from the first in few rows (the held-out
        interactions put back) updates the d × d sums with just those rows.
        """
        X = self.items.dense
        last = self.__dict__.pop("_imc_last", None)
        changed = None
        if last is not None and last[0].shape == matrix.shape:
            delta = (matrix - last[0]).tocsr()
            delta.eliminate_zeros()
            changed = np.flatnonzero(np.diff(delta.indptr))
            if len(changed) > 0.3 * matrix.shape[0]:
                changed = None
        if changed is None:
            A = np.asarray(matrix @ X, dtype=np.float32)
            # Without dislikes the positive part is the matrix itself: skip a second product.
            liked = A if positive.nnz == matrix.nnz else np.asarray(positive @ X, np.float32)
            gaa, gar = (A.T @ A).astype(np.float64), (A.T @ liked).astype(np.float64)
        else:
            old_matrix, A, (gaa, gar, _) = last
            old_a = A[changed]
            old_l = np.asarray(old_matrix[changed].multiply(old_matrix[changed] > 0) @ X)
            new_a = np.asarray(matrix[changed] @ X, dtype=np.float32)
            new_l = np.asarray(positive[changed] @ X, dtype=np.float32)
            gaa = gaa - old_a.T.astype(np.float64) @ old_a + new_a.T.astype(np.float64) @ new_a
            gar = gar - old_a.T.astype(np.float64) @ old_l + new_a.T.astype(np.float64) @ new_l
            A = A.copy()
            A[changed] = new_a
        gxx = (X.T @ X).astype(np.float64) if last is None else last[2][2]
        self._imc_parts = (gaa, gar, gxx)
        self._imc_last = (matrix, A, self._imc_parts)
        return A

    def _set_item_side(self, only: tuple[str, ...] = SIGNALS) -> None:
        """Paper-side matrices for the current whitening / imc ridge choice."""
        self._projections: dict[str, np.ndarray] = {}
        X = self.items.dense
        if "content" in only:
            self.whiten = self.content_model.whitener(self.shrink)
            self.item_content = X @ self.whiten
        if "imc" in only:
            gaa, gar, gxx = self._imc_parts
            d = gaa.shape[0]
            lam1 = self.imc_ridge * max(np.trace(gaa) / d, 1e-9)
            lam2 = self.imc_ridge * max(np.trace(gxx) / d, 1e-9)
            left = np.linalg.solve(gaa + lam1 * np.eye(d), gar)
            self.imc = (left @ np.linalg.inv(gxx + lam2 * np.eye(d))).astype(np.float32)
        if "als" in only:
            mapped = X @ self.factor_map
            self.item_als = self.item_factors.copy()
            # Papers nobody has touched get their factors from their content.
            self.item_als[~self.warm] = mapped[~self.warm]
        if "pop" in only:
            prior = np.log1p(self.item_count) + self.community
            self.prior = ((prior - prior.mean()) / (prior.std() + 1e-9)).astype(np.float32)
        self._set_moments(only)

    def _set_moments(self, only: tuple[str, ...] = SIGNALS) -> None:
        """Each dense signal's principal axes over the catalogue, and its papers on them.

        Users and papers are stored in the signal's principal axes (eigenvectors of the
        papers' second moment), where that moment is diagonal: a user's spread of scores
        over the whole catalogue is then an O(d) sum, not an O(d²) quadratic form.
        """
        if not hasattr(self, "_basis") or only == SIGNALS:
            self._basis, self._moments, self._item_rot = {}, {}, {}
        for s, ivec in self._raw_item_vectors().items():
            if s in only or s not in self._basis:
                ivec = np.asarray(ivec, dtype=np.float32)
                second = (ivec.T @ ivec).astype(np.float64) / max(len(ivec), 1)
                vals, vecs = np.linalg.eigh(second)
                basis = vecs.astype(np.float32)
                rotated = ivec @ basis
                self._basis[s] = basis
                self._item_rot[s] = rotated
                self._moments[s] = (rotated.mean(axis=0), np.maximum(vals, 0).astype(np.float32))

    def _item_vectors(self) -> dict[str, np.ndarray]:
        """Paper-side matrix of each dense signal, on the signal's principal axes."""
        return self._item_rot

    def _raw_item_vectors(self) -> dict[str, np.ndarray]:
        """Paper-side matrix of each dense signal, as the signal defines it."""
        vectors = {
            "content": self.item_content,
            "tfidf": self.items.lexical,
            "imc": self.items.dense,
            "als": self.item_als,
            "pop": self.prior[:, None],
        }
        return {k: v for k, v in vectors.items() if k in self.config.signals}

    def _refresh_users(self, only: tuple[str, ...] = SIGNALS) -> None:
        """Per-user vectors and per-signal spreads for every user in `self.R`."""
        history = getattr(self, "_history", None)
        if history is None or len(history) != self.R.shape[0]:
            history = np.asarray(self.R @ self.items.dense, dtype=np.float32)
        if "content" in only:
            self.u_content = _Rows(history @ self._projection("content"))
        if "imc" in only:
            self.u_imc = _Rows(history @ self._projection("imc"))
        if "tfidf" in only:
            self.u_tfidf = _Rows(self._tfidf_users(self.R))
        if "als" in only:
            self.u_als = _Rows(self._als_users(self.user_factors[: self.R.shape[0]]))
        if only == SIGNALS:
            self.overrides: dict[int, sp.csr_matrix] = {}
            self.sigma = _Rows(self._spreads(None))
        else:
            fresh = self._spreads(None, only)
            for s in only:
                self.sigma.data[: self.R.shape[0], SIGNALS.index(s)] = fresh[:, SIGNALS.index(s)]

    def _projection(self, signal: str) -> np.ndarray:
        """History (sum of liked papers' dense vectors) -> user vector on principal axes."""
        mapping = self.whiten if signal == "content" else self.imc
        basis = self._basis.get(signal)
        if basis is None:
            return mapping
        cache = self.__dict__.setdefault("_projections", {})
        if signal not in cache:
            # A fold-in must not pay a d³ product: computed once per model state.
            cache[signal] = (mapping @ basis).astype(np.float32)
        return cache[signal]

    def _tfidf_users(self, rows: sp.csr_matrix) -> np.ndarray:
        """TF-IDF (LSA) user vectors on principal axes."""
        if "tfidf" not in self._item_rot:
            return np.asarray(rows @ self.items.lexical, dtype=np.float32)
        return np.asarray(rows @ self._item_rot["tfidf"], dtype=np.float32)

    def _als_users(self, factors: np.ndarray) -> np.ndarray:
        """ALS user factors on principal axes."""
        basis = self._basis.get("als")
        return factors if basis is None else (factors @ basis).astype(np.float32)

    def _spreads(self, users: np.ndarray | None, only: tuple[str, ...] = SIGNALS) -> np.ndarray:
        """Standard deviation of each signal's scores over the catalogue, per user (None: all)."""
        count = self.u_content.n if users is None else len(users)
        out = np.zeros((count, len(SIGNALS)), np.float32)
        for s, uvec in self._user_vectors(users, only).items():
            if s not in only:
                continue
            mean, variances = self._moments[s]
            var = (uvec * uvec) @ variances - (uvec @ mean) ** 2
            out[:, SIGNALS.index(s)] = np.sqrt(np.maximum(var, 0))
        for s in SPARSE:
            if s not in only or s not in self.config.signals:
                continue
            rows = (
                self.R
                if users is None and not self.overrides
                else self._rows(np.arange(count) if users is None else users)
            )
            block = rows @ self._knn_sample
            m = len(self._sample)
            total = np.asarray(block.sum(axis=1)).ravel()
            sq = np.asarray(block.multiply(block).sum(axis=1)).ravel()
            out[:, SIGNALS.index(s)] = np.sqrt(np.maximum(sq / m - (total / m) ** 2, 0))
        return out

    def _user_vectors(
        self, users: np.ndarray | None, only: Sequence[str] = SIGNALS
    ) -> dict[str, np.ndarray]:
        """User-side matrix of each dense signal, for some users (None: all, no copy)."""
        tables = {
            "content": self.u_content,
            "tfidf": self.u_tfidf,
            "imc": self.u_imc,
            "als": self.u_als,
        }
        count = self.u_content.n if users is None else len(users)
        out: dict[str, np.ndarray] = {}
        for name in SIGNALS:
            if name not in self.config.signals or name not in only or name == "knn":
                continue
            if name == "pop":
                out[name] = np.ones((count, 1), np.float32)
            else:
                view = tables[name].view
                out[name] = view if users is None else view[users]
        return out

    def _row(self, u: int) -> sp.csr_matrix:
        """The interaction row of a user (folded-in feedback included)."""
        if u in self.overrides:
            return self.overrides[u]
        if u < self.R.shape[0]:
            return self.R[u]
        return sp.csr_matrix((1, self.R.shape[1]), dtype=np.float32)

    def _rows(self, users: np.ndarray) -> sp.csr_matrix:
        """Interaction rows of several users."""
        if not self.overrides and (len(users) == 0 or users.max() < self.R.shape[0]):
            return self.R[users]
        return sp.vstack([self._row(int(u)) for u in users]).tocsr()

    def _sparse_scores(
        self,
        name: str,
        users: np.ndarray,
        cols: np.ndarray | None,
        knn: sp.csr_matrix | None = None,
    ) -> sp.csr_matrix:
        """Item-kNN scores (sparse) of users over all papers or the given columns (`knn`:
        those columns of the similarity matrix, when the caller already sliced them)."""
        n_cols = len(self.paper_ids) if cols is None else len(cols)
        if name not in self.config.signals or (cols is not None and not self.warm[cols].any()):
            # Papers nobody has touched have no co-occurrence: the signal is all zero there.
            return sp.csr_matrix((len(users), n_cols), dtype=np.float32)
        if knn is None:
            knn = self.knn if cols is None else self.knn[:, cols]
        return (self._rows(users) @ knn).tocsr()

    # ------------------------------------------------------------------ tuning

    def _signal_scores(
        self,
        users: np.ndarray,
        only: Sequence[str],
        *,
        standardise: bool = True,
        cols: np.ndarray | None = None,
        items: dict[str, np.ndarray] | None = None,
    ) -> dict[str, np.ndarray]:
        """Score matrices of some signals for some users over the catalogue (or `cols`, whose
        paper side `items` may already hold, as `_column_items` gives it), divided by each
        user's spread (`standardise`) so the blend weights are comparable."""
        sigma = self.sigma.view[users]
        out = {}
        if items is None:
            items = self._column_items(cols)
        for s, uvec in self._user_vectors(users, only).items():
            raw = uvec @ items[s].T
            out[s] = _zscore(raw, sigma[:, SIGNALS.index(s)]) if standardise else raw
        for s in SPARSE:
            if s in self.config.signals and s in only:
                raw = self._sparse_scores(s, users, cols, items.get(s)).toarray()
                out[s] = _zscore(raw, sigma[:, SIGNALS.index(s)]) if standardise else raw
        return out

    def _column_items(self, cols: np.ndarray | None) -> dict[str, Any]:
        """The paper side of every signal on some columns (None: all), sliced once for a
        run of `_signal_scores` calls."""
        items: dict[str, Any] = self._item_vectors()
        if cols is None:
            return items
        out = {s: v[cols] for s, v in items.items()}
        for s in SPARSE:
            if s in self.config.signals:
                out[s] = self.knn[:, cols].tocsr()
        return out

    def _tune(self, catalog_val: dict, cold_val: dict, cold_items: np.ndarray) -> None:
        """Choose whitening, imc ridge and the warm / cold blend weights on validation."""
        cfg = self.config
        names = [s for s in SIGNALS if s in cfg.signals]
        evidence: dict[str, Any] = {}
        # The catalogue blend must serve both futures: likes on papers others already
        # know, and likes on papers nobody has seen yet, ranked against the whole catalogue.
        cold_users = np.array(sorted(cold_val))
        sample, ks = self._validation_columns([catalog_val, cold_val])
        catalog_tasks = []
        if catalog_val:
            users = np.array(sorted(catalog_val))
            catalog_tasks.append(_Task("held-out", users, catalog_val, sample, True, ks))
        if cold_val:
            catalog_tasks.append(_Task("new-in-catalogue", cold_users, cold_val, sample, True, ks))
        cold_ks = tuple(k for k in TUNE_KS if k <= max(10, len(cold_items) // 3))
        cold_tasks = (
            [_Task("new-only", cold_users, cold_val, cold_items, False, cold_ks)]
            if cold_val
            else []
        )
        # A blend chosen on a handful of people says more about them than about the data.
        catalog_tasks = [t for t in catalog_tasks if len(t.users) >= cfg.min_validation_users]
        cold_tasks = [t for t in cold_tasks if len(t.users) >= cfg.min_validation_users]
        sets = catalog_tasks + cold_tasks
        if not sets:
            # Nothing to validate on (one paper per user): content leads, the rest help a little.
            default = cfg.default_weights
            w = np.array([default.get(s, 0.0) if s in names else 0.0 for s in SIGNALS])
            if "content" not in names and "tfidf" in names:
                w[SIGNALS.index("tfidf")] = 1.0
            self.weights_catalog = self.weights_cold = w
            self.report["blend"] = {
                "note": "too little feedback to validate a blend yet; default weights",
                "catalog": _named(w),
                "cold": _named(w),
            }
            return
        # Variants of content (whitening) and imc (ridge) compete as single signals first.
        best_variant: dict[str, Any] = {}
        for signal, attr, options in (
            ("content", "shrink", cfg.whitening),
            ("imc", "imc_ridge", cfg.imc_ridge),
        ):
            if signal not in names:
                continue
            scores = {option: self._variant_score(signal, option, sets) for option in options}
            best_variant[attr] = max(scores, key=scores.get)
            setattr(self, attr, best_variant[attr])
            evidence[f"{signal} variants"] = {str(k): round(v, 4) for k, v in scores.items()}
            self._set_item_side((signal,))
            self._refresh_users((signal,))
        # Every task is scored in one pass over the validation users.
        every = self._validations(names, catalog_tasks + cold_tasks)
        split = {"catalog": every[: len(catalog_tasks)], "cold": every[len(catalog_tasks) :]}
        for kind, tasks in (("catalog", catalog_tasks), ("cold", cold_tasks)):
            if not tasks:
                continue
            weights, ev = blend.tune_weights(split[kind])
            full = np.zeros(len(SIGNALS))
            for i, s in enumerate(names):
                full[SIGNALS.index(s)] = weights[i]
            if kind == "catalog":
                self.weights_catalog = full
            else:
                self.weights_cold = full
            evidence[kind] = {"tasks": [t.name for t in tasks], "weights": _named(full), **ev}
        if not cold_tasks:
            self.weights_cold = self.weights_catalog.copy()
        if not catalog_tasks:
            self.weights_catalog = self.weights_cold.copy()
        self.report["blend"] = evidence
        self.report["whitening"] = self.shrink
        self.report["imc_ridge"] = self.imc_ridge

    def _validation_columns(
        self, truths: list[dict[int, np.ndarray]]
    ) -> tuple[np.ndarray | None, tuple[int, ...]]:
        """Papers the catalogue tasks rank among, and the depths that match `TUNE_KS`.

        A large catalogue is sampled uniformly (every held-out paper kept): a paper's rank
        among the sample, scaled by the sampling rate, estimates its rank in the catalogue.
        """
        n = len(self.paper_ids)
        limit = self.config.validation_items
        if n <= limit:
            return None, tuple(k for k in TUNE_KS if k <= max(10, n // 3))
        rng = np.random.default_rng(self.config.seed + 2)
        held = [np.asarray(v, dtype=np.int64) for truth in truths for v in truth.values()]
        sample = np.union1d(rng.choice(n, limit, replace=False), np.concatenate([[], *held]))
        scale = limit / n
        ks = tuple(dict.fromkeys(max(1, round(k * scale)) for k in TUNE_KS if k <= n // 3))
        return sample.astype(np.int64), ks

    @staticmethod
    def _columns(tasks: list[_Task]) -> np.ndarray | None:
        """Every column some task ranks (None: the whole catalogue)."""
        if any(t.cands is None for t in tasks):
            return None
        return np.unique(np.concatenate([t.cands for t in tasks]))

    @staticmethod
    def _positions_in(cols: np.ndarray | None, cands: np.ndarray | None) -> np.ndarray | None:
        """Where a task's candidates sit among the scored columns (None: they are all)."""
        if cands is None:
            return None
        return cands if cols is None else np.searchsorted(cols, cands)

    def _task_batches(
        self, tasks: list[_Task], cols: np.ndarray | None, matrices: int
    ) -> Iterator[tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray | None]]]]:
        """Every validation user once, in batches sized so `matrices` score matrices of a
        batch stay small: (batch users, per task: its rows in the batch, and where its
        candidates sit among the scored columns, None = all)."""
        everyone = np.unique(np.concatenate([t.users for t in tasks]))
        width = len(self.paper_ids) if cols is None else len(cols)
        batch = max(50, int(2e7 / max(width, 1) / max(matrices, 1)))
        where = [self._positions_in(cols, t.cands) for t in tasks]
        for start in range(0, len(everyone), batch):
            ub = everyone[start : start + batch]
            rows = [np.flatnonzero(np.isin(ub, t.users)) for t in tasks]
            yield ub, list(zip(rows, where, strict=True))

    @staticmethod
    def _task_rows(scores: np.ndarray, rows: np.ndarray, where: np.ndarray | None) -> np.ndarray:
        """A task's rows of a batch's scores, on its candidates only (a copy)."""
        return scores[rows] if where is None else scores[np.ix_(rows, where)]

    def _validations(self, names: list[str], tasks: list[_Task]) -> list[blend.ValidationSet]:
        """Pooled z-scores for several tasks, scoring each validation user once for all."""
        cols = self._columns(tasks)
        items = self._column_items(cols)
        parts: list[list[blend.ValidationSet]] = [[] for _ in tasks]
        for ub, per_task in self._task_batches(tasks, cols, len(names)):
            scores = self._signal_scores(ub, names, cols=cols, items=items)
            for task, part, (mine, where) in zip(tasks, parts, per_task, strict=True):
                if len(mine):
                    mats = [self._task_rows(scores[s], mine, where) for s in names]
                    part.append(self._task_part(names, ub[mine], mats, task))
        out = []
        for task_parts in parts:
            width = max(p.z.shape[2] for p in task_parts)
            z = np.concatenate([_pad(p.z, width, -1e9) for p in task_parts])
            relevant = np.concatenate([_pad(p.relevant, width, False) for p in task_parts])
            n_rel = np.concatenate([p.n_relevant for p in task_parts])
            out.append(blend.ValidationSet(names, z, relevant, n_rel, task_parts[0].ks))
        return out

    def _task_view(
        self, users: np.ndarray, task: _Task
    ) -> tuple[tuple[np.ndarray, np.ndarray] | None, list[np.ndarray]]:
        """(cells of the users' own training papers among the task's candidates, or None;
        each user's held-out papers as candidate positions)."""
        n = len(self.paper_ids)
        position = np.full(n, -1, dtype=np.int64)
        cands = np.arange(n) if task.cands is None else task.cands
        position[cands] = np.arange(len(cands))
        seen = None
        if task.exclude_seen:
            rows = self.R[users]
            r = np.repeat(np.arange(len(users)), np.diff(rows.indptr))
            c = position[rows.indices]
            seen = (r[c >= 0], c[c >= 0])
        truth = []
        for u in users:
            pos = position[np.asarray(task.truth[int(u)], dtype=np.int64)]
            truth.append(pos[pos >= 0])
        return seen, truth

    def _task_part(
        self, names: list[str], users: np.ndarray, mats: list[np.ndarray], task: _Task
    ) -> blend.ValidationSet:
        """One task's pooled z-scores for a batch of its users (`mats`: their own copies)."""
        seen, truth_cols = self._task_view(users, task)
        excluded = None
        if seen is not None:
            excluded = np.zeros(mats[0].shape, dtype=bool)
            excluded[seen] = True
            for m in mats:
                # The copies are this task's own: mask seen papers in place, not per pool.
                m[seen] = -np.inf
        pools = blend.pool_candidates(mats, max(task.ks), None)
        return blend.build_validation(names, mats, pools, truth_cols, excluded, task.ks)

    def _variant_vectors(
        self, signal: str, option: Any, cols: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(projection of a user's history, paper matrix of `cols` or all) for one variant of
        a signal. Built straight from the content vectors, so trying one changes no state.
        """
        X = self.items.dense if cols is None else self.items.dense[cols]
        if signal == "content":
            mapping = self.content_model.whitener(option)
            return mapping, X @ mapping
        gaa, gar, gxx = self._imc_parts
        d = gaa.shape[0]
        lam1 = option * max(np.trace(gaa) / d, 1e-9)
        lam2 = option * max(np.trace(gxx) / d, 1e-9)
        left = np.linalg.solve(gaa + lam1 * np.eye(d), gar)
        return (left @ np.linalg.inv(gxx + lam2 * np.eye(d))).astype(np.float32), X

    def _variant_score(self, signal: str, option: Any, tasks: list[_Task]) -> float:
        """Summed mean recall (over tuning depths) of one signal variant alone on every task.

        One signal needs no pools or standardising: a held-out paper's rank is the number
        of eligible papers that outscore it in the raw scores. Each user is scored once.
        """
        cols = self._columns(tasks)
        mapping, papers = self._variant_vectors(signal, option, cols)
        totals = [np.zeros(0) for _ in tasks]
        counts = [0 for _ in tasks]
        for ub, per_task in self._task_batches(tasks, cols, 1):
            history = np.asarray(self.R[ub] @ self.items.dense, dtype=np.float32)
            raw_all = (history @ mapping) @ papers.T
            for i, (task, (mine, where)) in enumerate(zip(tasks, per_task, strict=True)):
                if not len(mine):
                    continue
                raw = self._task_rows(raw_all, mine, where)
                part = self._single_task_recall(raw, ub[mine], task)
                totals[i] = part if not len(totals[i]) else totals[i] + part
                counts[i] += len(mine)
        return float(
            sum(t.mean() / max(c, 1) for t, c in zip(totals, counts, strict=True) if len(t))
        )

    def _single_task_recall(self, raw: np.ndarray, users: np.ndarray, task: _Task) -> np.ndarray:
        """Summed recall at each tuning depth over a batch of one task's users (`raw`: their
        scores on the task's candidates, a copy this may change)."""
        ks = np.array(task.ks)
        seen, targets = self._task_view(users, task)
        if seen is not None:
            raw[seen] = -np.inf
        total = np.zeros(len(ks))
        for j, t in enumerate(targets):
            if len(t) == 0:
                continue
            mine = raw[j, t]
            above = (raw[j][None, :] > mine[:, None]).sum(axis=1)
            tied = (raw[j][None, :] == mine[:, None]).sum(axis=1)
            # Random tie-breaking, as in the blend search.
            chance = np.clip(ks[:, None] - above[None, :], 0, tied) / tied
            total += chance.sum(axis=1) / len(t)
        return total

    # ------------------------------------------------------------------ serving

    def known_user(self, user: str) -> bool:
        """Whether the model has any history for `user`."""
        return user in self.uidx

    def _user_index(self, user: str) -> int | None:
        """Row of a user, or None for someone the model has never seen."""
        return self.uidx.get(user)

    def score(
        self,
        users: Sequence[str],
        cols: np.ndarray | None = None,
        prepared: tuple[np.ndarray, dict[str, np.ndarray]] | None = None,
    ) -> np.ndarray:
        """Blended scores (users × papers, or × `cols`); unknown users get the prior only."""
        cols = np.arange(len(self.paper_ids)) if cols is None else np.asarray(cols)
        prepared = prepared or self._prepare(cols)
        rows = np.array([self.uidx.get(u, -1) for u in users], dtype=np.int64)
        out = np.zeros((len(users), len(cols)), np.float32)
        # A user whose feedback was all taken back (folded in with an empty history) has
        # no signal left either: treat them like someone the model has never seen.
        known = rows >= 0
        nnz = np.zeros(len(rows), dtype=np.int64)
        in_r = known & (rows < self.R.shape[0])
        nnz[in_r] = np.diff(self.R.indptr)[rows[in_r]]
        for j in np.flatnonzero(known) if self.overrides else ():
            if int(rows[j]) in self.overrides:
                nnz[j] = self.overrides[int(rows[j])].count_nonzero()
        known &= nnz > 0
        if (~known).any():
            # No history at all: community signals are all there is.
            out[~known] = self.prior[cols][None, :]
        if known.any():
            out[known] = self._score_known(rows[known], cols, prepared)
        return out

    def _prepare(self, cols: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The blend weights and per-signal paper vectors for one candidate set."""
        items = self._item_vectors()
        return self.weights_for(cols), {s: items[s][cols] for s in items}

    def weights_for(self, cols: np.ndarray) -> np.ndarray:
        """The blend for a candidate set: the new-papers blend when no candidate has
        interactions (a digest of this morning's papers), else the catalogue blend."""
        return self.weights_cold if not self.warm[cols].any() else self.weights_catalog

    def _score_known(
        self, users: np.ndarray, cols: np.ndarray, prepared: tuple[np.ndarray, dict]
    ) -> np.ndarray:
        """Blend for users with rows in the model: one matrix product plus sparse terms."""
        sigma = self.sigma.view[users]
        weights, items = prepared
        coef = (weights[None, :] / np.maximum(sigma, 1e-9)).astype(np.float32)
        coef[sigma <= 1e-9] = 0.0
        uparts, iparts = [], []
        active = [s for s in items if coef[:, SIGNALS.index(s)].any()]
        for s, uvec in self._user_vectors(users, active).items():
            uparts.append(uvec * coef[:, [SIGNALS.index(s)]])
            iparts.append(items[s])
        if uparts:
            out = np.hstack(uparts) @ np.hstack(iparts).T
        else:
            out = np.zeros((len(users), len(cols)), np.float32)
        for s in SPARSE:
            c = coef[:, SIGNALS.index(s)]
            if c.any():
                out += (sp.diags(c) @ self._sparse_scores(s, users, cols)).toarray()
        return out

    def recommend(
        self,
        users: str | Sequence[str],
        candidates: Sequence[str] | None = None,
        n: int = 10,
        exclude: dict[str, Iterable[str]] | Iterable[str] | None = None,
        *,
        diversify: bool = True,
        muted_authors: dict[str, Iterable[str]] | None = None,
        batch: int = 2000,
    ) -> list[Recommendation] | list[list[Recommendation]]:
        """Top-n papers per user among `candidates` (default: every paper), best first.

        A user's own rated papers, `exclude` (per user or for all) and papers by muted
        authors are never returned. Unknown users get cold-start (community) rankings.
        """
        single = isinstance(users, str)
        names = [users] if single else list(users)
        cols, ranked, scores = self.recommend_indices(
            names,
            candidates,
            n,
            exclude,
            diversify=diversify,
            muted_authors=muted_authors,
            batch=batch,
        )
        results = [
            [
                Recommendation(self.paper_ids[cols[c]], float(v))
                for c, v in zip(ranked[j], scores[j], strict=True)
                if np.isfinite(v)
            ]
            for j in range(len(names))
        ]
        return results[0] if single else results

    def recommend_indices(
        self,
        users: Sequence[str],
        candidates: Sequence[str] | None = None,
        n: int = 10,
        exclude: dict[str, Iterable[str]] | Iterable[str] | None = None,
        *,
        diversify: bool = True,
        muted_authors: dict[str, Iterable[str]] | None = None,
        batch: int = 2000,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`recommend` as arrays, for many users at once: (candidate columns, positions into
        them per user (users × n), scores (users × n, -inf where fewer were left))."""
        names = list(users)
        if candidates is None:
            cols = np.arange(len(self.paper_ids))
        else:
            cols = np.array([self.pidx[c] for c in candidates if c in self.pidx], dtype=np.int64)
        position = np.full(len(self.paper_ids), -1, dtype=np.int64)
        position[cols] = np.arange(len(cols))
        shared_ban = None
        if exclude is not None and not isinstance(exclude, dict):
            shared_ban = self._positions(exclude, position)
        width = min(len(cols), n)
        depth = min(len(cols), n * 4 if diversify else n)
        # Pairwise similarity of a small shared candidate set is computed once for MMR.
        cand_sim = None
        if diversify and len(cols) <= 4000:
            vec = self.items.dense[cols]
            cand_sim = vec @ vec.T
        prepared = self._prepare(cols)
        all_ranked = np.zeros((len(names), width), dtype=np.int64)
        all_scores = np.full((len(names), width), -np.inf, dtype=np.float32)
        for start in range(0, len(names), batch):
            chunk = names[start : start + batch]
            scores = self.score(chunk, cols, prepared)
            self._ban(scores, chunk, position, shared_ban, exclude, muted_authors)
            ranked = top_k(scores, depth)
            top_scores = np.take_along_axis(scores, ranked, axis=1)
            if diversify and depth > n:
                ranked, top_scores = self._mmr(ranked, top_scores, cols, cand_sim, n)
            all_ranked[start : start + len(chunk)] = ranked[:, :width]
            all_scores[start : start + len(chunk)] = top_scores[:, :width]
        return cols, all_ranked, all_scores

    def _positions(self, ids: Iterable[str], position: np.ndarray) -> np.ndarray:
        """Candidate positions of paper ids (unknown or non-candidate ids dropped)."""
        found = np.array([self.pidx[p] for p in ids if p in self.pidx], dtype=np.int64)
        pos = position[found] if len(found) else found
        return pos[pos >= 0]

    def _ban(self, scores, chunk, position, shared_ban, exclude, muted_authors) -> None:
        """Set -inf where a user must not be shown a paper (own history, excluded, muted)."""
        rows = np.array([self.uidx.get(u, -1) for u in chunk])
        known = np.flatnonzero(rows >= 0)
        if len(known):
            history = self._rows(rows[known])
            r = np.repeat(known, np.diff(history.indptr))
            c = position[history.indices]
            scores[r[c >= 0], c[c >= 0]] = -np.inf
        if shared_ban is not None and len(shared_ban):
            scores[:, shared_ban] = -np.inf
        for j, user in enumerate(chunk):
            if isinstance(exclude, dict) and exclude.get(user):
                scores[j, self._positions(exclude[user], position)] = -np.inf
            if muted_authors and muted_authors.get(user):
                scores[j, self._positions(self._papers_by(muted_authors[user]), position)] = -np.inf

    def _papers_by(self, authors: Iterable[str]) -> list[str]:
        """Ids of papers with any of these authors (case-insensitive)."""
        if getattr(self, "_author_index", None) is None or len(self._author_ids) != len(
            self.authors
        ):
            index: dict[str, list[str]] = {}
            for pid, names in zip(self.paper_ids, self.authors, strict=True):
                for name in names:
                    index.setdefault(name.casefold(), []).append(pid)
            self._author_index, self._author_ids = index, list(self.paper_ids)
        out: list[str] = []
        for author in authors:
            out.extend(self._author_index.get(author.casefold(), ()))
        return out

    def _mmr(
        self, ranked: np.ndarray, scores: np.ndarray, cols: np.ndarray, cand_sim, n: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Maximal marginal relevance for a batch: trade a little score for variety.

        Greedy: each next paper maximises λ·relevance − (1−λ)·(similarity to those picked).
        """
        lam = self.config.mmr_lambda
        b, d = ranked.shape
        if cand_sim is not None:
            sim = cand_sim[ranked[:, :, None], ranked[:, None, :]]
        else:
            vec = self.items.dense[cols[ranked]]
            sim = np.einsum("bid,bjd->bij", vec, vec)
        finite = np.isfinite(scores)
        lo = np.where(finite, scores, np.inf).min(axis=1, keepdims=True)
        hi = np.where(finite, scores, -np.inf).max(axis=1, keepdims=True)
        rel = np.where(finite, (scores - lo) / np.maximum(hi - lo, 1e-9), -np.inf)
        order = np.zeros((b, min(n, d)), dtype=np.int64)
        valid = np.zeros((b, min(n, d)), dtype=bool)
        taken = np.zeros((b, d), dtype=bool)
        closest = np.zeros((b, d), dtype=np.float32)
        rows = np.arange(b)
        for step in range(order.shape[1]):
            value = lam * rel - (1 - lam) * closest if step else rel.copy()
            value[taken] = -np.inf
            pick = np.argmax(value, axis=1)
            order[:, step] = pick
            # Once a row runs out of rankable papers argmax returns a taken one: void it.
            valid[:, step] = np.isfinite(value[rows, pick])
            taken[rows, pick] = True
            closest = np.maximum(closest, sim[rows, pick])
        picked = np.where(valid, np.take_along_axis(scores, order, 1), -np.inf)
        return np.take_along_axis(ranked, order, 1), picked

    # ------------------------------------------------------------------ feedback and new papers

    def recalculate_user(self, user: str, history: Iterable[tuple[str, float]]) -> None:
        """Fold in a user's current feedback at once, without a refit (unknown papers skipped)."""
        cols, vals = [], []
        for pid, weight in history:
            c = self.pidx.get(pid)
            if c is not None and weight != 0:
                cols.append(c)
                vals.append(weight)
        row = sp.csr_matrix(
            (np.asarray(vals, np.float32), (np.zeros(len(cols), int), np.asarray(cols, int))),
            shape=(1, len(self.paper_ids)),
        )
        row.sum_duplicates()
        u = self.uidx.get(user)
        hist = np.asarray(row @ self.items.dense, dtype=np.float32)[0]
        content, imc = hist @ self._projection("content"), hist @ self._projection("imc")
        lexical = self._tfidf_users(row)[0]
        if "als" in self.config.signals and row.nnz:
            if getattr(self, "_fold_in", None) is None:
                self._fold_in = FoldIn(self.item_factors, self.als_params)
            als = self._als_users(self._fold_in(row))[0]
        else:
            als = np.zeros(self.u_als.data.shape[1], np.float32)
        if u is None:
            u = self.u_content.append(content)
            self.u_imc.append(imc)
            self.u_tfidf.append(lexical)
            self.u_als.append(als)
            self.sigma.append(np.zeros(len(SIGNALS), np.float32))
            self.uidx[user] = u
            self.user_ids.append(user)
        else:
            self.u_content.data[u], self.u_imc.data[u], self.u_als.data[u] = content, imc, als
            self.u_tfidf.data[u] = lexical
        self.overrides[u] = row
        self.sigma.data[u] = self._spreads(np.array([u]))[0]

    def add_papers(self, papers: Sequence[Paper], embeddings: np.ndarray | None = None) -> int:
        """Make papers published after the fit rankable (cold: content and community only).

        `embeddings` are rows aligned with `papers` (ignored for papers already known).
        """
        keep = [i for i, p in enumerate(papers) if p.id not in self.pidx]
        if not keep:
            return 0
        fresh = [papers[i] for i in keep]
        extra = self.content_model.transform(
            fresh, None if embeddings is None else np.asarray(embeddings)[keep]
        )
        base = len(self.paper_ids)
        for i, p in enumerate(fresh):
            self.pidx[p.id] = base + i
        self.paper_ids += [p.id for p in fresh]
        self.titles += [p.title for p in fresh]
        self.authors += [list(p.authors) for p in fresh]
        self.items = ItemContent(
            np.vstack([self.items.dense, extra.dense]),
            sp.vstack([self.items.tfidf, extra.tfidf]).tocsr(),
            np.concatenate([self.items.has_text, extra.has_text]),
            np.vstack([self.items.lexical, extra.lexical]),
        )
        self.community = np.concatenate([self.community, _community(fresh)])
        self.item_count = np.concatenate([self.item_count, np.zeros(len(fresh), np.float32)])
        self.warm = np.concatenate([self.warm, np.zeros(len(fresh), bool)])
        zeros = np.zeros((len(fresh), self.item_factors.shape[1]), np.float32)
        self.item_factors = np.vstack([self.item_factors, zeros])
        if getattr(self, "_fold_in", None) is not None:
            self._fold_in.set_items(self.item_factors, same_gram=True)
        n = len(self.paper_ids)
        self.R.resize((self.R.shape[0], n))
        for row in self.overrides.values():
            row.resize((1, n))
        self.knn.resize((n, n))
        self._knn_sample.resize((n, len(self._sample)))
        new_rows = {
            "content": extra.dense @ self.whiten,
            "tfidf": extra.lexical,
            "imc": extra.dense,
            "als": extra.dense @ self.factor_map,
        }
        self.item_content = np.vstack([self.item_content, new_rows["content"]])
        self.item_als = np.vstack([self.item_als, new_rows["als"]])
        # Principal axes stay those of the fit, so every user's spread stays valid.
        for signal, block in new_rows.items():
            if signal in self._basis:
                rotated = (block @ self._basis[signal]).astype(np.float32)
                self._item_rot[signal] = np.vstack([self._item_rot[signal], rotated])
        prior = np.log1p(self.item_count) + self.community
        self.prior = ((prior - prior.mean()) / (prior.std() + 1e-9)).astype(np.float32)
        if "pop" in self._basis:
            self._item_rot["pop"] = self.prior[:, None] @ self._basis["pop"]
        return len(fresh)

    # ------------------------------------------------------------------ explanations

    def explain(self, user: str, paper_id: str, max_papers: int = 3) -> Explanation:
        """The liked papers (or words) most responsible for recommending `paper_id` to `user`."""
        col = self.pidx.get(paper_id)
        u = self.uidx.get(user)
        if col is None:
            return Explanation(reason="New paper")
        if u is None or self._row(u).nnz == 0:
            return Explanation(reason=self._community_reason(col))
        row = self._row(u)
        liked = row.indices[row.data > 0]
        if len(liked) == 0:
            return Explanation(reason=self._community_reason(col))
        weights = row.data[row.data > 0]
        sigma = np.maximum(self.sigma.view[u], 1e-9)
        w = self.weights_catalog if self.warm[col] else self.weights_cold
        target = self.items.dense[col]
        contrib = np.zeros(len(liked))
        contrib += (
            w[0]
            / sigma[0]
            * weights
            * ((self.items.dense[liked] @ self.whiten) @ self.item_content[col])
        )
        contrib += w[2] / sigma[2] * weights * ((self.items.dense[liked] @ self.imc) @ target)
        contrib += (
            w[1]
            / sigma[1]
            * weights
            * (self.items.tfidf[liked] @ self.items.tfidf[col].T).toarray().ravel()
        )
        if self.knn.shape[0]:
            contrib += w[3] / sigma[3] * weights * self.knn[liked][:, [col]].toarray().ravel()
        # Only name a liked paper that is genuinely close (in content, or liked by the
        # same people): "because you liked X" must read as true to the person.
        close = self.items.dense[liked] @ target >= EXPLAIN_MIN_SIMILARITY
        if self.knn.shape[0]:
            close |= self.knn[liked][:, [col]].toarray().ravel() > 0
        order = [i for i in np.argsort(-contrib) if contrib[i] > 0 and close[i]][:max_papers]
        papers = tuple((self.paper_ids[liked[i]], self.titles[liked[i]]) for i in order)
        words = self._shared_words(row, col)
        return Explanation(papers=papers, words=words, reason=self._community_reason(col))

    def _shared_words(self, row: sp.csr_matrix, col: int, k: int = 3) -> tuple[str, ...]:
        """Terms that weigh most in both the paper and the user's liked papers."""
        profile = (row.multiply(row > 0) @ self.items.tfidf).toarray().ravel()
        paper = self.items.tfidf[col].toarray().ravel()
        joint = profile * paper
        norm = float(np.linalg.norm(profile) * np.linalg.norm(paper))
        # Only for a paper that really shares vocabulary with the person's papers, and only
        # words that weigh in both: a list of generic words explains nothing.
        if norm <= 0 or joint.sum() / norm < EXPLAIN_MIN_WORD_OVERLAP:
            return ()
        vocab = self.__dict__.get("_vocab")
        if vocab is None:
            vocab = self._vocab = self.content_model.vectorizer.get_feature_names_out()
        floor = 0.2 * float(joint.max())
        top = [int(i) for i in np.argsort(-joint)[: k * 3] if joint[i] > max(floor, 0.0)]
        return tuple(str(vocab[i]) for i in top if len(str(vocab[i])) >= 4)[:k]

    def _community_reason(self, col: int) -> str:
        """A reason for users without history."""
        if self.community[col] > 0:
            return "Popular with the community"
        if self.item_count[col] > 0:
            return "Popular with your team"
        return "New in the library"

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | Path | io.BytesIO) -> None:
        """Write the model as one `.npz` (no pickle)."""
        arrays: dict[str, Any] = {
            "R_data": self.R.data,
            "R_indices": self.R.indices,
            "R_indptr": self.R.indptr,
            "R_shape": np.array(self.R.shape),
            "knn_data": self.knn.data,
            "knn_indices": self.knn.indices,
            "knn_indptr": self.knn.indptr,
            "dense": self.items.dense,
            "lexical": self.items.lexical,
            "has_text": self.items.has_text,
            "tf_data": self.items.tfidf.data,
            "tf_indices": self.items.tfidf.indices,
            "tf_indptr": self.items.tfidf.indptr,
            "tf_cols": np.array([self.items.tfidf.shape[1]]),
            "user_factors": self.user_factors,
            "item_factors": self.item_factors,
            "factor_map": self.factor_map,
            "community": self.community,
            "weights_catalog": self.weights_catalog,
            "weights_cold": self.weights_cold,
            "gaa": self._imc_parts[0],
            "gar": self._imc_parts[1],
            "gxx": self._imc_parts[2],
            "sample": self._sample,
        }
        state = self.content_model.state()
        arrays["cm_terms"] = np.array(state["terms"], dtype=str)
        for key in ("idf", "mean", "eigvals", "eigvecs", "lsa_mean"):
            arrays[f"cm_{key}"] = state[key]
        if "lsa_components" in state:
            arrays["cm_lsa"] = state["lsa_components"]
        meta = {
            "format": FORMAT_VERSION,
            "paper_ids": self.paper_ids,
            "titles": self.titles,
            "authors": self.authors,
            "user_ids": self.user_ids[: self.R.shape[0]],
            "shrink": self.shrink,
            "imc_ridge": self.imc_ridge,
            "dense_kind": state["dense_kind"],
            "stop_words": state["stop_words"],
            "als": [
                self.als_params.factors,
                self.als_params.regularization,
                self.als_params.alpha,
                self.als_params.iterations,
            ],
            "signals": list(self.config.signals),
            "report": self.report,
        }
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        np.savez(path, **arrays)

    @classmethod
    def load(cls, path: str | Path | io.BytesIO) -> HybridRecommender:
        """Read a model written by `save`."""
        where = path if isinstance(path, str | Path) else "model stream"
        try:
            data = np.load(path, allow_pickle=False)
            meta = json.loads(bytes(data["meta"]).decode())
        except FileNotFoundError:
            raise
        except (OSError, EOFError, ValueError, LookupError, TypeError, zipfile.BadZipFile) as exc:
            # np.load's own message for a stray file talks about pickles; say what it is.
            raise ValueError(f"{where}: not a saved HybridRecommender model ({exc})") from exc
        version = meta.get("format") if isinstance(meta, dict) else None
        if version != FORMAT_VERSION:
            raise ValueError(f"{where}: model format {version} is not supported")
        model = cls(FitConfig(signals=tuple(meta["signals"]), als=AlsParams(*meta["als"])))
        model.als_params = AlsParams(*meta["als"])
        model.paper_ids, model.titles, model.authors = (
            meta["paper_ids"],
            meta["titles"],
            meta["authors"],
        )
        model.pidx = {p: i for i, p in enumerate(model.paper_ids)}
        model.user_ids = meta["user_ids"]
        model.uidx = {u: i for i, u in enumerate(model.user_ids)}
        model.shrink, model.imc_ridge, model.report = (
            meta["shrink"],
            meta["imc_ridge"],
            meta["report"],
        )
        n = len(model.paper_ids)
        tf_shape = (n, int(data["tf_cols"][0]))
        model.items = ItemContent(
            data["dense"],
            sp.csr_matrix((data["tf_data"], data["tf_indices"], data["tf_indptr"]), shape=tf_shape),
            data["has_text"],
            data["lexical"],
        )
        model.content_model = ContentModel.from_state(
            {
                "terms": data["cm_terms"],
                "idf": data["cm_idf"],
                "mean": data["cm_mean"],
                "eigvals": data["cm_eigvals"],
                "eigvecs": data["cm_eigvecs"],
                "dense_kind": meta["dense_kind"],
                "stop_words": meta["stop_words"],
                "lsa_mean": data["cm_lsa_mean"],
                **({"lsa_components": data["cm_lsa"]} if "cm_lsa" in data else {}),
            }
        )
        model.R = sp.csr_matrix(
            (data["R_data"], data["R_indices"], data["R_indptr"]), shape=tuple(data["R_shape"])
        )
        model.knn = sp.csr_matrix(
            (data["knn_data"], data["knn_indices"], data["knn_indptr"]), shape=(n, n)
        )
        model.user_factors, model.item_factors = data["user_factors"], data["item_factors"]
        model.factor_map, model.community = data["factor_map"], data["community"]
        model.weights_catalog, model.weights_cold = data["weights_catalog"], data["weights_cold"]
        model._sample = data["sample"]
        model._knn_sample = model.knn[:, model._sample].tocsr()
        model._imc_parts = (data["gaa"], data["gar"], data["gxx"])
        positive = model.R.multiply(model.R > 0).tocsr()
        model.item_count = np.asarray((positive > 0).sum(axis=0)).ravel().astype(np.float32)
        model.warm = model.item_count > 0
        model._set_item_side()
        model._refresh_users()
        model.fitted = True
        return model


def _community(papers: Sequence[Paper]) -> np.ndarray:
    """Community signal of each paper: Hugging Face upvotes and GitHub stars, log-scaled."""
    return np.array(
        [np.log1p(max(p.upvotes, 0)) + 0.5 * np.log1p(max(p.github_stars, 0)) for p in papers],
        dtype=np.float32,
    )


def _zscore(raw: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Scores divided by each user's spread (rows with no spread become 0).

    The per-user mean is left in: it shifts all of one user's scores alike, so no ranking
    changes, and skipping it saves a pass over every matrix.
    """
    scale = np.where(sigma > 1e-9, 1.0 / np.maximum(sigma, 1e-9), 0.0).astype(np.float32)
    raw = np.asarray(raw, dtype=np.float32)
    raw *= scale[:, None]
    return raw


def _pad(array: np.ndarray, width: int, value: Any) -> np.ndarray:
    """Pad the last axis of `array` to `width`."""
    extra = width - array.shape[-1]
    if extra <= 0:
        return array
    pad = [(0, 0)] * (array.ndim - 1) + [(0, extra)]
    return np.pad(array, pad, constant_values=value)


def _named(weights: np.ndarray) -> dict[str, float]:
    """Weights keyed by signal name."""
    return {s: round(float(w), 3) for s, w in zip(SIGNALS, weights, strict=True) if w}
