"""The fitted model as data: what training produces and every process serves.

`StateParts` holds the arrays training chose (and what is saved); `assemble` derives the
serving form, `FittedState`, from them in one place, so a state built by training and one
loaded in another process are the same. A `FittedState` is frozen and its arrays are
read-only: papers that arrive later and people whose feedback changed get small arrays of
their own (see `People` and `ranking.Candidates`), never edits of the shared ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import scipy.sparse as sp

from recommender.cf import AlsParams, FoldIn
from recommender.content import ContentModel
from recommender.model.config import SIGNALS
from recommender.model.signals import (
    PaperVectors,
    SignalSide,
    UserMaps,
    person_vectors,
    second_moment,
    spreads,
)
from recommender.types import Paper

# Signals whose paper side depends on the papers' text only, not on interactions.
INTERACTION_FREE = ("content", "tfidf", "imc")


@dataclass(slots=True)
class StateParts:
    """Everything a fit decided, as plain arrays (the saved form of a model)."""

    signals: tuple[str, ...]
    paper_ids: list[str]
    text_keys: list[str]  # hash of the text each paper's vectors were computed from
    titles: list[str]
    content_model: ContentModel
    dense: np.ndarray
    lexical: np.ndarray
    community: np.ndarray
    item_count: np.ndarray
    item_factors: np.ndarray
    factor_map: np.ndarray
    whitening: float | None
    imc: np.ndarray
    knn: sp.csr_matrix
    sample: np.ndarray
    weights: dict[str, np.ndarray]
    user_ids: list[str]
    user_rows: sp.csr_matrix
    user_factors: np.ndarray
    als: AlsParams
    trained_feedback_version: int = -1
    version: str = ""
    report: dict[str, Any] = field(default_factory=dict)
    # Paper sides the fit already computed on these very papers (content, tfidf, imc do
    # not depend on interactions): reused by `assemble`, never saved.
    paper_sides: dict[str, SignalSide] = field(default_factory=dict)
    # Every person's history on the dense vectors (user_rows @ dense), when the fit has
    # it: reused by `assemble`, never saved.
    history: np.ndarray | None = None


@dataclass(frozen=True, slots=True, eq=False)
class People:
    """Some people's vectors under one fitted state, row-aligned with `ids`."""

    ids: tuple[str, ...]
    rows: sp.csr_matrix  # feedback on the state's papers (people × papers)
    vectors: Mapping[str, np.ndarray]  # each dense signal, on its principal axes
    sigma: np.ndarray  # spread of each signal's scores over the catalogue (people × signals)
    # Papers each person rated that the state does not hold (ids), also never recommended.
    rated_elsewhere: tuple[frozenset[str], ...]
    # Whether each person has any feedback that counts (else: the community's ranking).
    active: np.ndarray

    @property
    def known(self) -> np.ndarray:
        """Whether each person has any feedback at all."""
        return self.active

    def take(self, rows: Sequence[int] | np.ndarray) -> People:
        """Some of the people, in the given order."""
        idx = np.asarray(rows, dtype=np.int64)
        return People(
            ids=tuple(self.ids[i] for i in idx),
            rows=self.rows[idx],
            vectors={s: v[idx] for s, v in self.vectors.items()},
            sigma=self.sigma[idx],
            rated_elsewhere=tuple(self.rated_elsewhere[i] for i in idx),
            active=self.active[idx],
        )

    @staticmethod
    def concat(blocks: Sequence[People]) -> People:
        """Several blocks as one, in order."""
        if len(blocks) == 1:
            return blocks[0]
        first = blocks[0]
        return People(
            ids=tuple(i for b in blocks for i in b.ids),
            rows=sp.vstack([b.rows for b in blocks]).tocsr(),
            vectors={s: np.vstack([b.vectors[s] for b in blocks]) for s in first.vectors},
            sigma=np.vstack([b.sigma for b in blocks]),
            rated_elsewhere=tuple(r for b in blocks for r in b.rated_elsewhere),
            active=np.concatenate([b.active for b in blocks]),
        )


@dataclass(frozen=True, slots=True, eq=False)
class FittedState:
    """A fitted hybrid model, ready to serve; never changed once built."""

    version: str
    signals: tuple[str, ...]
    paper_ids: tuple[str, ...]
    pidx: Mapping[str, int]
    text_keys: tuple[str, ...]
    titles: tuple[str, ...]
    content_model: ContentModel
    papers: PaperVectors  # dense, lexical and prior of every fitted paper
    sides: Mapping[str, SignalSide]  # each dense signal's paper side on its axes
    maps: UserMaps  # feedback -> person vectors
    als: AlsParams
    item_factors: np.ndarray
    factor_map: np.ndarray
    whitening: float | None
    imc: np.ndarray
    knn: sp.csr_matrix  # item-item co-occurrence similarity
    sample: np.ndarray  # papers the knn spread is estimated on
    knn_sample: sp.csr_matrix
    warm: np.ndarray  # papers with interactions in training
    item_count: np.ndarray
    community: np.ndarray
    prior_stats: tuple[float, float]  # mean and spread of the raw prior, for new papers
    weights: Mapping[str, np.ndarray]  # "catalog" and "cold" blends, indexed like SIGNALS
    users: People  # everyone in the training data, as of `trained_feedback_version`
    user_index: Mapping[str, int]
    user_factors: np.ndarray
    trained_feedback_version: int
    report: Mapping[str, Any]

    @property
    def size(self) -> int:
        """How many papers the state holds."""
        return len(self.paper_ids)

    def blend(self, warm: np.ndarray) -> np.ndarray:
        """The weights for a candidate set: the new-papers blend when no candidate has
        interactions (a digest of this morning's papers), else the catalogue blend."""
        return self.weights["cold"] if not warm.any() else self.weights["catalog"]

    def prior_of(self, papers: Sequence[Paper]) -> np.ndarray:
        """The standardised community prior of papers the fit did not see."""
        mean, std = self.prior_stats
        return ((community(papers) - mean) / std).astype(np.float32)

    def parts(self) -> StateParts:
        """The saved form of this state."""
        return StateParts(
            signals=self.signals,
            paper_ids=list(self.paper_ids),
            text_keys=list(self.text_keys),
            titles=list(self.titles),
            content_model=self.content_model,
            dense=self.papers.dense,
            lexical=self.papers.lexical,
            community=self.community,
            item_count=self.item_count,
            item_factors=self.item_factors,
            factor_map=self.factor_map,
            whitening=self.whitening,
            imc=self.imc,
            knn=self.knn,
            sample=self.sample,
            weights=dict(self.weights),
            user_ids=list(self.users.ids),
            user_rows=self.users.rows,
            user_factors=self.user_factors,
            als=self.als,
            trained_feedback_version=self.trained_feedback_version,
            version=self.version,
            report=dict(self.report),
        )


def community(papers: Sequence[Paper]) -> np.ndarray:
    """Community signal of each paper: Hugging Face upvotes and GitHub stars, log-scaled."""
    return np.array(
        [np.log1p(max(p.upvotes, 0)) + 0.5 * np.log1p(max(p.github_stars, 0)) for p in papers],
        dtype=np.float32,
    )


def prior_of(item_count: np.ndarray, community_: np.ndarray) -> tuple[np.ndarray, float, float]:
    """The standardised community prior of the fitted papers, with its mean and spread."""
    raw = np.log1p(item_count) + community_
    mean = float(raw.mean()) if len(raw) else 0.0
    std = float(raw.std()) + 1e-9 if len(raw) else 1.0
    return ((raw - mean) / std).astype(np.float32), mean, std


def item_sides(
    signals: Sequence[str],
    papers: PaperVectors,
    *,
    whiten: np.ndarray,
    item_factors: np.ndarray,
    factor_map: np.ndarray,
    warm: np.ndarray,
    known: Mapping[str, SignalSide] | None = None,
    gram: np.ndarray | None = None,
) -> dict[str, SignalSide]:
    """Every enabled dense signal's paper side on its principal axes (`known`: sides of
    signals in INTERACTION_FREE already computed on these papers, reused; `gram`: the
    dense vectors' `second_moment`, when the caller has it)."""
    out: dict[str, SignalSide] = {}
    dense = papers.dense
    for s in SIGNALS:
        if s not in signals or s == "knn":
            continue
        if known and s in known:
            out[s] = known[s]
        elif s in ("content", "imc"):
            # Both map from the dense vectors: their one moment serves both.
            if gram is None:
                gram = second_moment(dense)
            out[s] = SignalSide.of_map(dense, gram, whiten if s == "content" else None)
        elif s == "tfidf":
            out[s] = SignalSide.fit(papers.lexical)
        elif s == "als":
            raw = item_factors.copy()
            # Papers nobody has touched get their factors from their content.
            raw[~warm] = dense[~warm] @ factor_map
            out[s] = SignalSide.fit(raw, factor_map)
        elif s == "pop":
            out[s] = SignalSide.fit(papers.prior[:, None])
    return out


def user_maps(sides: Mapping[str, SignalSide], imc: np.ndarray, fold_in: FoldIn | None) -> UserMaps:
    """How feedback becomes person vectors, for these paper sides."""
    content = sides["content"].item_map if "content" in sides else None
    imc_map = (imc @ sides["imc"].basis).astype(np.float32) if "imc" in sides else None
    return UserMaps(content=content, imc=imc_map, fold_in=fold_in)


def _frozen(array: np.ndarray) -> np.ndarray:
    """The array, made read-only (a published state is never edited)."""
    array = np.asarray(array)
    array.flags.writeable = False
    return array


def assemble(parts: StateParts) -> FittedState:
    """The serving form of a fit: paper sides, person vectors, all read-only."""
    item_count = np.asarray(parts.item_count, dtype=np.float32)
    warm = item_count > 0
    prior, mean, std = prior_of(item_count, parts.community)
    papers = PaperVectors(
        np.asarray(parts.dense, dtype=np.float32),
        np.asarray(parts.lexical, dtype=np.float32),
        prior,
    )
    whiten = parts.content_model.whitener(parts.whitening)
    sides = item_sides(
        parts.signals,
        papers,
        whiten=whiten,
        item_factors=parts.item_factors,
        factor_map=parts.factor_map,
        warm=warm,
        known=parts.paper_sides,
    )
    fold_in = FoldIn(parts.item_factors, parts.als) if "als" in parts.signals else None
    maps = user_maps(sides, parts.imc, fold_in)
    knn = parts.knn.tocsr()
    knn_sample = knn[:, parts.sample].tocsr()
    rows = parts.user_rows.tocsr().astype(np.float32)
    vectors = person_vectors(
        sides,
        maps,
        papers.dense,
        rows,
        als_factors=parts.user_factors[: rows.shape[0]],
        history=parts.history,
    )
    sigma = spreads(sides, vectors, rows, knn_sample if "knn" in parts.signals else None)
    users = People(
        ids=tuple(parts.user_ids),
        rows=rows,
        vectors={s: _frozen(v) for s, v in vectors.items()},
        sigma=_frozen(sigma),
        rated_elsewhere=(frozenset(),) * len(parts.user_ids),
        active=_frozen(np.diff(rows.indptr) > 0),
    )
    for side in sides.values():
        for array in (side.basis, side.items, side.mean, side.variances, side.item_map):
            _frozen(array)
    for array in (papers.dense, papers.lexical, papers.prior, warm, item_count):
        _frozen(array)
    return FittedState(
        version=parts.version,
        signals=tuple(parts.signals),
        paper_ids=tuple(parts.paper_ids),
        pidx=MappingProxyType({p: i for i, p in enumerate(parts.paper_ids)}),
        text_keys=tuple(parts.text_keys),
        titles=tuple(parts.titles),
        content_model=parts.content_model,
        papers=papers,
        sides=MappingProxyType(sides),
        maps=maps,
        als=parts.als,
        item_factors=_frozen(parts.item_factors),
        factor_map=_frozen(parts.factor_map),
        whitening=parts.whitening,
        imc=_frozen(parts.imc),
        knn=knn,
        sample=_frozen(parts.sample),
        knn_sample=knn_sample,
        warm=warm,
        item_count=item_count,
        community=_frozen(np.asarray(parts.community, dtype=np.float32)),
        prior_stats=(mean, std),
        weights=MappingProxyType({k: _frozen(v) for k, v in parts.weights.items()}),
        users=users,
        user_index=MappingProxyType({u: i for i, u in enumerate(parts.user_ids)}),
        user_factors=_frozen(parts.user_factors),
        trained_feedback_version=parts.trained_feedback_version,
        report=MappingProxyType(dict(parts.report)),
    )


__all__ = ["FittedState", "People", "StateParts", "assemble", "community"]
