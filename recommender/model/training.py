"""Training: interactions and papers in, a `StateParts` out.

The flow, in order: build the people × papers matrix, carve a validation split from the
training interactions and start ALS on it in the background (`Trainer.begin`: this needs
only the feedback and the papers' order, so it starts before the papers are read); fit
(or reuse) the content features; fit every other signal on the training part; score the
content variants; take ALS's factors; tune the blend on validation (`tuning.py`); refit
on all interactions; hand the arrays to `state.assemble` (`Trainer.fit` runs the rest).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from recommender.cf import AlsParams, FoldIn, content_to_factors, fit_als, item_knn
from recommender.content import ContentModel, ItemContent, paper_text
from recommender.embeddings import text_hash
from recommender.metrics import top_k
from recommender.model import tuning
from recommender.model.config import SIGNALS, SPARSE, TUNE_KS, FitConfig
from recommender.model.signals import (
    PaperVectors,
    SignalSide,
    person_vectors,
    second_moment,
    spreads,
    zscore,
)
from recommender.model.state import (
    INTERACTION_FREE,
    StateParts,
    community,
    item_sides,
    prior_of,
    user_maps,
)
from recommender.types import Paper


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
        target = cols[coo.col] if len(cols) else np.zeros(0, np.int64)
        keep = target >= 0
        matrix = sp.csr_matrix(
            (coo.data[keep].astype(np.float32), (coo.row[keep], target[keep])),
            shape=(len(self.users), len(pidx)),
        )
        matrix.sum_duplicates()
        matrix.eliminate_zeros()
        return matrix, list(self.users), int((~keep).sum())


@dataclass(frozen=True, slots=True)
class Tuning:
    """What a full fit chose on validation, carried over to refits on a little more feedback.

    Tuning is most of a fit's fixed cost and moves little when feedback grows by a few
    percent; the factors seed the refit's ALS so a few sweeps bring them up to date.
    """

    als: AlsParams
    weights: dict[str, np.ndarray]
    whitening: float | None
    imc_ridge: float
    evidence: dict[str, Any]  # the tuned fit's report: what was chosen and why
    user_ids: Sequence[str]
    paper_ids: Sequence[str]
    user_factors: np.ndarray
    item_factors: np.ndarray
    factor_map: np.ndarray


def text_key(paper: Paper) -> str:
    """The hash of the text a paper's content vectors are computed from."""
    return text_hash(paper_text(paper))


class Trainer:
    """One fit: working arrays that end up in a `StateParts` (never served directly)."""

    def __init__(self, config: FitConfig | None = None) -> None:
        self.config = config or FitConfig()
        self.report: dict[str, Any] = {}
        self.sides: dict[str, SignalSide] = {}
        # The last imc statistics (matrix, R X, sums): a refit on a matrix that differs in
        # few rows updates them instead of starting over.
        self._imc_last: tuple | None = None
        # What `begin` started: the ALS job's pool and future, and the matrix and split.
        self._pool: ThreadPoolExecutor | None = None
        self._als_job: Future | None = None
        self._head: tuple | None = None

    # ------------------------------------------------------------------ the flow

    def begin(
        self,
        interactions: Iterable[tuple[str, str, float]] | Interactions,
        paper_ids: Sequence[str],
    ) -> None:
        """Build the matrix, carve the validation split and start ALS on it in the
        background: the steps of a full fit that need only the interactions and the
        papers' order, so they can run while the papers themselves are still being read.

        `fit` with papers in this order carries on from here; `close` waits for the job.
        """
        cfg = self.config
        full = self._start(interactions, paper_ids)
        train, catalog_val, cold_val, cold_items = self._split(
            full, np.random.default_rng(cfg.seed)
        )
        self.report["validation"] = {
            "catalog_users": len(catalog_val),
            "cold_items": len(cold_items),
        }
        # ALS needs only the interactions: it runs (its solver releases the GIL) while the
        # papers are read and the content features, signals and variants are fit.
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="als")
        self._als_job = self._pool.submit(self._collaborative, train, catalog_val)
        self._head = (full, train, catalog_val, cold_val, cold_items)

    def close(self) -> None:
        """Wait for a background ALS job started by `begin` (its result is dropped)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self._pool, self._als_job, self._head = None, None, None

    def fit(
        self,
        interactions: Iterable[tuple[str, str, float]] | Interactions,
        papers: Sequence[Paper],
        *,
        embeddings: np.ndarray | None = None,
        progress: Callable[[str], None] | None = None,
        content: tuple[ContentModel, ItemContent] | None = None,
        reuse: Tuning | None = None,
    ) -> StateParts:
        """Train every signal and choose the blend on a validation split.

        `interactions` are (user, paper id, weight) with negative weight = dislike, or a
        ready `Interactions` matrix; papers not in `papers` are skipped and counted.
        `embeddings` are rows aligned with `papers` (None = no sentence encoder: content
        falls back to TF-IDF). `content` reuses an earlier content fit of the same papers
        (a retrain after new feedback need not re-read every abstract). `reuse` skips
        validation: its choices are kept and its factors seed the ALS refit. After
        `begin` with these papers' order, its split and ALS job are used as they are.
        """
        t0 = time.perf_counter()
        say = progress or (lambda _msg: None)
        ids = [p.id for p in papers]
        if reuse is not None:
            full = self._start(interactions, ids)
            self._content(papers, embeddings, content, say)
            return self._refit(full, reuse, say, t0)
        try:
            if self._head is None or self.paper_ids != ids:
                # Not begun, or a paper vanished while the papers were read: start over.
                say("validation split")
                self.begin(interactions, ids)
            return self._tuned_fit(papers, embeddings, content, say, t0)
        finally:
            self.close()

    def _tuned_fit(
        self,
        papers: Sequence[Paper],
        embeddings: np.ndarray | None,
        content: tuple[ContentModel, ItemContent] | None,
        say: Callable[[str], None],
        t0: float,
    ) -> StateParts:
        """The rest of a full fit after `begin`: signals, variants and blend tuned on the
        split, then every signal refit on all interactions."""
        cfg = self.config
        full, train, catalog_val, cold_val, cold_items = self._head
        # Tuning only ever scores validation users: give only them user-side vectors.
        cap = max(1, int(min(cfg.validation_users, cfg.validation_cells / len(self.paper_ids))))
        cold_users = sorted(cold_val)[:cap]
        val_users = np.array(sorted(set(catalog_val) | set(cold_users)), dtype=np.int64)
        where = {int(u): i for i, u in enumerate(val_users)}
        rare_val = self._rare_val
        next_val = {u: np.setdiff1d(v, rare_val.get(u, ())) for u, v in catalog_val.items()}
        self._content(papers, embeddings, content, say)
        self.shrink, self.imc_ridge = None, cfg.default_imc_ridge
        self.weights = {"catalog": np.zeros(len(SIGNALS)), "cold": np.zeros(len(SIGNALS))}
        self._fit_signals(train, users=val_users)
        plan = tuning.plan(
            self,
            # A person's next saves include this morning's papers: the catalogue task
            # holds out both kinds, in the proportion they occur.
            {
                where[u]: np.union1d(v, cold_val[u]) if u in cold_val else v
                for u, v in next_val.items()
                if len(v) or u in cold_val
            },
            {where[u]: cold_val[u] for u in cold_users},
            cold_items,
            rare_val={where[u]: v for u, v in rare_val.items()},
        )
        say("content variants")
        evidence = tuning.choose_variants(self, plan) if plan is not None else {}
        say("collaborative filtering")
        self.als_params, factors = self._als_job.result()
        self._use_factors(factors, val_users)
        if plan is not None:
            say("blend weights")
            tuning.choose_blend(self, plan, evidence)

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
        self.report["tuned"] = {"interactions": int(full.nnz), "at": round(time.time(), 3)}
        return self._finish(full, factors, t0)

    def _start(
        self,
        interactions: Iterable[tuple[str, str, float]] | Interactions,
        paper_ids: Sequence[str],
    ) -> sp.csr_matrix:
        """A new fit over these papers (any job `begin` started is waited for): the
        interactions as a matrix over them, unknown papers skipped and counted."""
        self.close()
        self.paper_ids = list(paper_ids)
        self.pidx = {pid: i for i, pid in enumerate(self.paper_ids)}
        if isinstance(interactions, Interactions):
            full, self.user_ids, unknown = interactions.aligned(self.pidx)
        else:
            full, self.user_ids, unknown = self._matrix(interactions)
        self.report = {"users": len(self.user_ids), "papers": len(self.paper_ids)}
        self.report["interactions"] = int(full.nnz)
        self.report["unknown_papers_skipped"] = unknown
        return full

    def _content(
        self,
        papers: Sequence[Paper],
        embeddings: np.ndarray | None,
        content: tuple[ContentModel, ItemContent] | None,
        say: Callable[[str], None],
    ) -> None:
        """Content features of every paper (an earlier fit's, when it covers them all)."""
        say("content features")
        if content is not None and len(content[1].dense) == len(papers):
            self.content_model, self.items = content
        else:
            self.content_model = ContentModel()
            self.items = self.content_model.fit(papers, embeddings)
        self.report["content"] = self.content_model.dense_kind
        self.community = community(papers)
        # The dense vectors' moment: every content and imc side, and imc's XᵀX, start here.
        self.gram = second_moment(self.items.dense)

    def _collaborative(
        self, train: sp.csr_matrix, catalog_val: dict[int, np.ndarray]
    ) -> tuple[AlsParams, tuple[np.ndarray, np.ndarray] | None]:
        """ALS settings chosen on validation, and the factors fitted on the training part."""
        params = self._choose_als(train, catalog_val)
        if "als" not in self.config.signals:
            return params, None
        return params, fit_als(train, params, seed=self.config.seed)

    def _refit(
        self, full: sp.csr_matrix, kept: Tuning, say: Callable[[str], None], t0: float
    ) -> StateParts:
        """Refit every signal on all interactions with an earlier fit's tuned choices."""
        cfg = self.config
        self.als_params, self.shrink, self.imc_ridge = kept.als, kept.whitening, kept.imc_ridge
        self.weights = {k: np.array(v, dtype=np.float64) for k, v in kept.weights.items()}
        self.sample = self._spread_sample()
        say("collaborative filtering")
        factors = None
        if "als" in cfg.signals:
            warm = self._aligned_factors(kept)
            # The tuned fit's factors are nearly there: a third of the sweeps settles them.
            iters = max(3, kept.als.iterations // 3)
            factors = fit_als(full, kept.als, seed=cfg.seed, warm=warm, iterations=iters)
        say("final fit")
        for key in ("als_grid", "validation", "whitening", "imc_ridge", "tuned"):
            if key in kept.evidence:
                self.report[key] = kept.evidence[key]
        self.report["blend"] = {
            "note": "tuning kept from the last full fit (little new feedback since)",
            **dict(kept.evidence.get("blend", {})),
        }
        return self._finish(full, factors, t0)

    def _finish(
        self, full: sp.csr_matrix, factors: tuple[np.ndarray, np.ndarray] | None, t0: float
    ) -> StateParts:
        """The fit's arrays on all interactions, with its report and its time."""
        parts = self._parts(full, factors)
        self.report["fit_seconds"] = round(time.perf_counter() - t0, 3)
        parts.report = self.report
        return parts

    def _aligned_factors(self, kept: Tuning) -> tuple[np.ndarray, np.ndarray]:
        """The tuned fit's factors in this fit's row and column order: new people start at
        zero, new papers from their content through the factor map."""
        rank = kept.item_factors.shape[1]
        old_users = {u: i for i, u in enumerate(kept.user_ids)}
        rows = np.array([old_users.get(u, -1) for u in self.user_ids], dtype=np.int64)
        users = np.zeros((len(rows), rank), np.float32)
        users[rows >= 0] = kept.user_factors[rows[rows >= 0]]
        old_papers = {p: i for i, p in enumerate(kept.paper_ids)}
        cols = np.array([old_papers.get(p, -1) for p in self.paper_ids], dtype=np.int64)
        items = np.zeros((len(cols), rank), np.float32)
        items[cols >= 0] = kept.item_factors[cols[cols >= 0]]
        new = cols < 0
        if new.any() and kept.factor_map.shape == (self.items.dense.shape[1], rank):
            items[new] = self.items.dense[new] @ kept.factor_map
        return users, items

    def _spread_sample(self) -> np.ndarray:
        """A fixed sample of papers the spreads of the sparse signals are estimated on."""
        n = len(self.paper_ids)
        sample_rng = np.random.default_rng(self.config.seed + 1)
        return np.sort(sample_rng.choice(n, min(n, 3000), replace=False))

    def _parts(
        self, full: sp.csr_matrix, factors: tuple[np.ndarray, np.ndarray] | None
    ) -> StateParts:
        """Item-side statistics of all interactions, as the arrays a state is built from."""
        cfg = self.config
        full = full.tocsr().astype(np.float32)
        positive = full.multiply(full > 0).tocsr()
        item_count = np.asarray((positive > 0).sum(axis=0)).ravel().astype(np.float32)
        warm = item_count > 0
        history = self._imc_fit(full, positive)
        self._imc_last = None
        self._set_imc()
        knn = self._knn(positive)
        if factors is not None:
            user_factors, item_factors = factors
            factor_map = self._factor_map(item_factors, warm, item_count)
        else:
            user_factors = np.zeros((full.shape[0], 1), np.float32)
            item_factors = np.zeros((full.shape[1], 1), np.float32)
            factor_map = np.zeros((self.items.dense.shape[1], 1), np.float32)
        return StateParts(
            signals=tuple(cfg.signals),
            paper_ids=list(self.paper_ids),
            text_keys=[],  # filled by the caller, who has the papers
            titles=[],
            content_model=self.content_model,
            dense=self.items.dense,
            lexical=self.items.lexical,
            community=self.community,
            item_count=item_count,
            item_factors=item_factors,
            factor_map=factor_map,
            whitening=self.shrink,
            imc=self.imc,
            knn=knn,
            sample=self.sample,
            weights={k: np.asarray(v, dtype=np.float64) for k, v in self.weights.items()},
            user_ids=list(self.user_ids),
            user_rows=full,
            user_factors=user_factors,
            als=self.als_params,
            report=self.report,
            # The tuned text-only sides cover every paper, with the chosen whitening.
            paper_sides={s: v for s, v in self.sides.items() if s in INTERACTION_FREE},
            history=history,
        )

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
        coords = (np.asarray(rows, np.int64), np.asarray(cols, np.int64))
        matrix = sp.csr_matrix(
            (np.asarray(vals, np.float32), coords), shape=(len(users), len(self.pidx))
        )
        matrix.sum_duplicates()
        matrix.eliminate_zeros()
        return matrix, list(users), unknown

    # ------------------------------------------------------------------ validation split

    def _split(
        self, full: sp.csr_matrix, rng: np.random.Generator
    ) -> tuple[sp.csr_matrix, dict[int, np.ndarray], dict[int, np.ndarray], np.ndarray]:
        """Carve the validation split from the training interactions.

        Two tasks, as the bot faces them: rank the catalogue (held-out interactions of
        some users) and rank new papers only (the newest touched papers, with every
        interaction on them held out). Held-out interactions are drawn at random from a
        person's saves, as their next saves arrive; weighting them toward rare papers
        under-rates collaborative filtering wherever co-saving is informative.
        """
        cfg = self.config
        pos = full.multiply(full > 0).tocsr()
        counts = np.asarray((pos > 0).sum(axis=0)).ravel()
        touched = np.flatnonzero(counts)
        n_cold = min(cfg.cold_items, int(len(touched) * cfg.cold_fraction))
        # The catalogue is in arrival order: the newest papers play "this morning's papers".
        cold_items = touched[-n_cold:] if n_cold >= 20 else np.zeros(0, dtype=np.int64)
        is_cold = np.zeros(full.shape[1], dtype=bool)
        is_cold[cold_items] = True
        keep = ~is_cold[full.indices]
        positive = full.data > 0
        cap = int(min(cfg.validation_users, cfg.validation_cells / max(full.shape[1], 1)))
        rows = np.repeat(np.arange(full.shape[0]), np.diff(full.indptr))
        usable = np.bincount(rows, weights=positive & keep, minlength=full.shape[0])
        eligible = np.flatnonzero(usable >= 2)
        held: dict[int, list[np.ndarray]] = {}
        rare: dict[int, np.ndarray] = {}
        for u in rng.permutation(eligible)[:cap]:
            start, end = full.indptr[u], full.indptr[u + 1]
            slots = np.flatnonzero(positive[start:end] & keep[start:end])
            n_out = min(len(slots) - 1, max(1, round(len(slots) * cfg.holdout_fraction)))
            weight = counts[full.indices[start + slots]] ** -cfg.debias_power
            if cfg.holdout == "random":
                out = rng.choice(slots, n_out, replace=False)
            elif cfg.holdout == "newest":
                out = slots[-n_out:]
            elif cfg.holdout == "debiased":
                out = rng.choice(slots, n_out, replace=False, p=weight / weight.sum())
            else:
                # "both": half drawn at random (next saves like the past ones), half
                # weighted toward rarely saved papers (next saves off the beaten track).
                n_rare = n_out // 2
                picked = rng.choice(slots, n_out - n_rare, replace=False)
                rest = np.setdiff1d(slots, picked)
                w = counts[full.indices[start + rest]] ** -cfg.debias_power
                off_track = rng.choice(rest, n_rare, replace=False, p=w / w.sum())
                if n_rare:
                    rare[int(u)] = full.indices[start + off_track]
                out = np.concatenate([picked, off_track])
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
        self._rare_val = {u: np.unique(v) for u, v in rare.items()}
        train = sp.csr_matrix((full.data[keep], (rows[keep], full.indices[keep])), shape=full.shape)
        return train, catalog_val, cold_val, cold_items

    # ------------------------------------------------------------------ collaborative filtering

    def _choose_als(self, train: sp.csr_matrix, catalog_val: dict[int, np.ndarray]) -> AlsParams:
        """Pick ALS hyperparameters on the warm validation users while fits are cheap."""
        cfg = self.config
        if "als" not in cfg.signals or not catalog_val or train.nnz == 0:
            return cfg.als
        affordable = [p for p in cfg.als_grid if train.nnz * p.factors <= cfg.grid_budget]
        if len(affordable) < 2:
            return cfg.als
        users = np.array(sorted(catalog_val))
        depths = [k for k in TUNE_KS if k <= max(10, train.shape[1] // 3)]
        results = {}
        for params in affordable:
            uf, itf = fit_als(train, params, seed=cfg.seed)
            scores = uf[users] @ itf.T
            seen = train[users]
            scores[np.repeat(np.arange(len(users)), np.diff(seen.indptr)), seen.indices] = -np.inf
            ranked = top_k(scores, max(depths))
            # Mean recall over the tuning depths: a setting must rank well at the top of a
            # digest as well as deep in the catalogue.
            hits = [
                [np.isin(ranked[i, :k], catalog_val[u]).sum() / len(catalog_val[u]) for k in depths]
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

    def _factor_map(
        self, item_factors: np.ndarray, warm: np.ndarray, item_count: np.ndarray
    ) -> np.ndarray:
        """Content -> ALS factor map, fitted on papers with interactions."""
        X = self.items.dense
        if not warm.any():
            return np.zeros((X.shape[1], item_factors.shape[1]), np.float32)
        return content_to_factors(X[warm], item_factors[warm], item_count[warm])

    def _knn(self, positive: sp.csr_matrix) -> sp.csr_matrix:
        """Item-item co-occurrence similarity (empty when the signal is off)."""
        n = positive.shape[1]
        if "knn" in self.config.signals and positive.nnz:
            return item_knn(positive, self.config.knn_neighbours)
        return sp.csr_matrix((n, n), dtype=np.float32)

    # ------------------------------------------------------------------ signals on the split

    def _fit_signals(self, matrix: sp.csr_matrix, users: np.ndarray) -> None:
        """Item-side models from the training part, and the vectors of the validation users
        (collaborative filtering's side stays empty until `_use_factors`)."""
        matrix = matrix.tocsr().astype(np.float32)
        positive = matrix.multiply(matrix > 0).tocsr()
        self.item_count = np.asarray((positive > 0).sum(axis=0)).ravel().astype(np.float32)
        self.warm = self.item_count > 0
        A = self._imc_fit(matrix, positive)
        self.R = matrix[users]
        # The users' histories (R X) are rows of A: reused for their vectors.
        self.history = A[users]
        self.knn = self._knn(positive)
        self.user_factors = np.zeros((self.R.shape[0], 1), np.float32)
        self.item_factors = np.zeros((self.R.shape[1], 1), np.float32)
        self.factor_map = np.zeros((self.items.dense.shape[1], 1), np.float32)
        self.sample = self._spread_sample()
        self.knn_sample = self.knn[:, self.sample].tocsr()
        self.prior = prior_of(self.item_count, self.community)[0]
        self._set_imc()
        self.sides = {}
        self.set_item_side(SIGNALS)
        self.refresh_users(SIGNALS)

    def _use_factors(
        self, factors: tuple[np.ndarray, np.ndarray] | None, users: np.ndarray
    ) -> None:
        """Collaborative filtering's side and the validation users' vectors, from ALS."""
        if factors is None:
            return
        self.user_factors, self.item_factors = factors[0][users], factors[1]
        self.factor_map = self._factor_map(self.item_factors, self.warm, self.item_count)
        self.set_item_side(("als",))
        self.refresh_users(("als",))

    def _imc_fit(self, matrix: sp.csr_matrix, positive: sp.csr_matrix) -> np.ndarray:
        """The imc statistics of one interaction matrix; returns every user's history R X.

        imc: W = (AᵀA + λ)⁻¹ Aᵀ R⁺ X (XᵀX + λ)⁻¹ with A = R X: user history -> paper space.
        A second call on a matrix that differs from the first in few rows (the held-out
        interactions put back) updates the d × d sums with just those rows.
        """
        X = self.items.dense
        last = self._imc_last
        changed = None
        if last is not None and last[0].shape == matrix.shape:
            delta = (matrix - last[0]).tocsr()
            delta.eliminate_zeros()
            changed = np.flatnonzero(np.diff(delta.indptr))
            if len(changed) > 0.3 * matrix.shape[0]:
                changed = None
        if changed is None:
            A = np.asarray(matrix @ X, dtype=np.float32)
            gaa = (A.T @ A).astype(np.float64)
            # R⁺ X = A - R⁻ X, where R⁻ (dislikes) is nonzero in few rows: Aᵀ R⁺ X is AᵀA
            # less a product over those rows only (no second pass over every person).
            gar = gaa.copy()
            negative = (matrix - positive).tocsr()
            negative.eliminate_zeros()
            rows = np.flatnonzero(np.diff(negative.indptr))
            if len(rows):
                disliked = np.asarray(negative[rows] @ X, dtype=np.float32)
                gar -= (A[rows].T @ disliked).astype(np.float64)
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
        gxx = self.gram * max(len(X), 1) if last is None else last[2][2]
        self.imc_parts = (gaa, gar, gxx)
        self._imc_last = (matrix, A, self.imc_parts)
        return A

    def imc_matrix(self, ridge: float) -> np.ndarray:
        """The imc map for one ridge strength, from the current statistics."""
        gaa, gar, gxx = self.imc_parts
        d = gaa.shape[0]
        lam1 = ridge * max(np.trace(gaa) / d, 1e-9)
        lam2 = ridge * max(np.trace(gxx) / d, 1e-9)
        left = np.linalg.solve(gaa + lam1 * np.eye(d), gar)
        return (left @ np.linalg.inv(gxx + lam2 * np.eye(d))).astype(np.float32)

    def _set_imc(self) -> None:
        """The imc map for the current ridge choice, and the person maps that use it (the
        paper sides do not depend on the ridge)."""
        self.imc = self.imc_matrix(self.imc_ridge)
        self.maps = user_maps(self.sides, self.imc, None)

    def set_item_side(self, only: Sequence[str]) -> None:
        """Paper sides of some signals for the current whitening / imc ridge choice."""
        papers = PaperVectors(self.items.dense, self.items.lexical, self.prior)
        fresh = item_sides(
            [s for s in self.config.signals if s in only],
            papers,
            whiten=self.content_model.whitener(self.shrink),
            item_factors=self.item_factors,
            factor_map=self.factor_map,
            warm=self.warm,
            gram=self.gram,
        )
        self.sides.update(fresh)
        self.maps = user_maps(self.sides, self.imc, None)

    def refresh_users(self, only: Sequence[str]) -> None:
        """The validation users' vectors and spreads for some signals."""
        sides = {s: side for s, side in self.sides.items() if s in only}
        fresh = person_vectors(
            sides,
            self.maps,
            self.items.dense,
            self.R,
            als_factors=self.user_factors,
            history=self.history,
        )
        knn_sample = self.knn_sample if "knn" in only and "knn" in self.config.signals else None
        sigma = spreads(sides, fresh, self.R, knn_sample)
        if not hasattr(self, "vectors") or set(only) >= set(SIGNALS):
            self.vectors, self.sigma = fresh, sigma
            return
        self.vectors.update(fresh)
        for s in only:
            self.sigma[:, SIGNALS.index(s)] = sigma[:, SIGNALS.index(s)]

    # ------------------------------------------------------------------ scores for tuning

    def sparse_scores(
        self, users: np.ndarray, cols: np.ndarray | None, knn: sp.csr_matrix | None = None
    ) -> sp.csr_matrix:
        """Item-kNN scores (sparse) of users over all papers or the given columns (`knn`:
        those columns of the similarity matrix, when the caller already sliced them)."""
        n_cols = len(self.paper_ids) if cols is None else len(cols)
        if "knn" not in self.config.signals or (cols is not None and not self.warm[cols].any()):
            # Papers nobody has touched have no co-occurrence: the signal is all zero there.
            return sp.csr_matrix((len(users), n_cols), dtype=np.float32)
        if knn is None:
            knn = self.knn if cols is None else self.knn[:, cols]
        return (self.R[users] @ knn).tocsr()

    def signal_scores(
        self,
        users: np.ndarray,
        only: Sequence[str],
        *,
        standardise: bool = True,
        cols: np.ndarray | None = None,
        items: dict[str, Any] | None = None,
    ) -> dict[str, np.ndarray]:
        """Score matrices of some signals for some users over the catalogue (or `cols`, whose
        paper side `items` may already hold, as `column_items` gives it), divided by each
        user's spread (`standardise`) so the blend weights are comparable."""
        sigma = self.sigma[users]
        out = {}
        if items is None:
            items = self.column_items(cols)
        for s in self.config.signals:
            if s not in only or s in SPARSE:
                continue
            raw = self.vectors[s][users] @ items[s].T
            out[s] = zscore(raw, sigma[:, SIGNALS.index(s)]) if standardise else raw
        for s in SPARSE:
            if s in self.config.signals and s in only:
                raw = self.sparse_scores(users, cols, items.get(s)).toarray()
                out[s] = zscore(raw, sigma[:, SIGNALS.index(s)]) if standardise else raw
        return out

    def column_items(self, cols: np.ndarray | None) -> dict[str, Any]:
        """The paper side of every signal on some columns (None: all), sliced once for a
        run of `signal_scores` calls."""
        items: dict[str, Any] = {s: side.items for s, side in self.sides.items()}
        if cols is None:
            return items
        out = {s: v[cols] for s, v in items.items()}
        for s in SPARSE:
            if s in self.config.signals:
                out[s] = self.knn[:, cols].tocsr()
        return out


def fit_parts(
    interactions: Iterable[tuple[str, str, float]] | Interactions,
    papers: Sequence[Paper],
    config: FitConfig | None = None,
    *,
    embeddings: np.ndarray | None = None,
    progress: Callable[[str], None] | None = None,
    content: tuple[ContentModel, ItemContent] | None = None,
    reuse: Tuning | None = None,
    trainer: Trainer | None = None,
) -> StateParts:
    """Fit a model; returns the arrays a `FittedState` is assembled from (`trainer`: one
    that has already begun, see `Trainer.begin`)."""
    parts = (trainer or Trainer(config)).fit(
        interactions,
        papers,
        embeddings=embeddings,
        progress=progress,
        content=content,
        reuse=reuse,
    )
    parts.text_keys = [text_key(p) for p in papers]
    parts.titles = [p.title for p in papers]
    return parts
