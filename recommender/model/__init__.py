"""The hybrid recommender: collaborative filtering, content and community signals, blended.

The package follows the flow of the data:

    config.py    the signals and the training procedure's knobs
    training.py  interactions + papers -> `StateParts` (split, ALS, signals, final fit)
    tuning.py    validation tasks, content variants and blend weights (`blend.py`: the search)
    signals.py   the arithmetic every signal shares (principal axes, person vectors, spreads)
    state.py     `FittedState`: the frozen, read-only model every process serves
    people.py    people under a state: its own table, or folded in from current feedback
    ranking.py   the one ranking path (scores, filters, topics, boosts, diversity)
    explain.py   why a paper was picked
    persist.py   a fit as bytes and back

`HybridRecommender` is a small façade in implicit's vocabulary (`fit`, `recommend`,
`explain`, `partial_fit_users`, `partial_fit_items`, `save`, `load`). Fold-ins and papers
added after the fit live in small overlays beside the state, which is never edited.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recommender.content import ContentModel, ItemContent
from recommender.model import persist
from recommender.model.config import DENSE, SIGNALS, SPARSE, TUNE_KS, FitConfig
from recommender.model.explain import Explainer, Explanation
from recommender.model.people import from_feedback, from_table
from recommender.model.ranking import (
    Candidates,
    Options,
    Preferences,
    Ranked,
    RankResult,
    Request,
    candidates,
    rank,
    rank_papers,
    score,
)
from recommender.model.signals import PaperVectors
from recommender.model.state import FittedState, People, assemble
from recommender.model.training import Interactions, fit_parts, text_key
from recommender.types import Paper

__all__ = [
    "DENSE",
    "SIGNALS",
    "SPARSE",
    "TUNE_KS",
    "Explanation",
    "FitConfig",
    "FittedState",
    "HybridRecommender",
    "Interactions",
    "People",
    "Preferences",
    "RankResult",
    "Ranked",
    "Recommendation",
    "Request",
]


@dataclass(frozen=True, slots=True)
class Recommendation:
    """One ranked paper for one person."""

    paper_id: str
    score: float


class HybridRecommender:
    """Fit on interactions and papers; recommend, explain, fold in new feedback and papers."""

    def __init__(self, config: FitConfig | None = None, state: FittedState | None = None) -> None:
        self.config = config or FitConfig()
        self.state = state
        # Overlays beside the frozen state: replaced, never edited, so a reader holding
        # one sees a consistent snapshot.
        self._people: dict[str, People] = {}
        self._papers: dict[str, tuple[Paper, PaperVectors]] = {}
        self._fitted_papers: dict[str, Paper] = {}

    # ------------------------------------------------------------------ fit

    def fit(
        self,
        interactions: Iterable[tuple[str, str, float]] | Interactions,
        papers: Sequence[Paper],
        *,
        embeddings: np.ndarray | None = None,
        progress: Callable[[str], None] | None = None,
        content: tuple[ContentModel, ItemContent] | None = None,
        version: str = "",
        feedback_version: int = -1,
    ) -> HybridRecommender:
        """Train every signal and choose the blend on a validation split (see training.py)."""
        parts = fit_parts(
            interactions,
            papers,
            self.config,
            embeddings=embeddings,
            progress=progress,
            content=content,
        )
        parts.version = version
        parts.trained_feedback_version = feedback_version
        self.state = assemble(parts)
        self._people, self._papers = {}, {}
        self._fitted_papers = {p.id: p for p in papers}
        return self

    @property
    def fitted(self) -> bool:
        """Whether there is a state to serve."""
        return self.state is not None

    @property
    def report(self) -> dict:
        """What the fit saw and chose."""
        return dict(self.state.report) if self.state is not None else {}

    def _state(self) -> FittedState:
        """The fitted state, or a clear error before `fit`/`load`."""
        if self.state is None:
            raise RuntimeError("the recommender is not fitted yet")
        return self.state

    # ------------------------------------------------------------------ overlays

    def partial_fit_users(
        self, users: Sequence[str], histories: Sequence[Iterable[tuple[str, float]]]
    ) -> None:
        """Fold in people's current feedback without a refit (papers added with
        `partial_fit_items` count through their content)."""
        state = self._state()
        extra = {pid: (vec.dense[0], vec.lexical[0]) for pid, (_, vec) in self._papers.items()}
        block = from_feedback(
            state, [(u, dict(h)) for u, h in zip(users, histories, strict=True)], extra
        )
        fresh = dict(self._people)
        for i, uid in enumerate(users):
            fresh[uid] = block.take([i])
        self._people = fresh

    def partial_fit_items(
        self, papers: Sequence[Paper], embeddings: np.ndarray | None = None
    ) -> int:
        """Make papers the fit never saw rankable (as cold papers); returns how many."""
        state = self._state()
        keep = [
            i for i, p in enumerate(papers) if p.id not in state.pidx and p.id not in self._papers
        ]
        if not keep:
            return 0
        fresh = [papers[i] for i in keep]
        vectors = paper_vectors(
            state, fresh, None if embeddings is None else np.asarray(embeddings)[keep]
        )
        added = dict(self._papers)
        for i, paper in enumerate(fresh):
            added[paper.id] = (paper, vectors.take(np.array([i])))
        self._papers = added
        return len(fresh)

    def people(self, users: Sequence[str]) -> People:
        """People as the model sees them now (folded-in feedback first)."""
        state = self._state()
        blocks = [self._people[u] if u in self._people else from_table(state, [u]) for u in users]
        if all(u not in self._people for u in users):
            return from_table(state, list(users))
        return People.concat(blocks)

    def candidates(self, ids: Sequence[str] | None = None) -> Candidates:
        """Candidates among the fitted papers and the ones added since (default: all)."""
        state = self._state()
        if ids is None:
            ids = list(state.paper_ids) + list(self._papers)
        ids = [i for i in ids if i in state.pidx or i in self._papers]
        own_rows = [j for j, i in enumerate(ids) if i not in state.pidx]
        own = None
        if own_rows:
            vecs = [self._papers[ids[j]][1] for j in own_rows]
            own = PaperVectors(
                np.vstack([v.dense for v in vecs]),
                np.vstack([v.lexical for v in vecs]),
                np.concatenate([v.prior for v in vecs]),
            )
        return candidates(state, ids, own, own_rows)

    # ------------------------------------------------------------------ serving

    def score(self, users: Sequence[str], ids: Sequence[str] | None = None) -> np.ndarray:
        """Blended scores (people × candidates)."""
        return score(self._state(), self.people(users), self.candidates(ids))

    def recommend(
        self,
        users: str | Sequence[str],
        candidates: Sequence[str] | None = None,
        n: int = 10,
        exclude: dict[str, Iterable[str]] | Iterable[str] | None = None,
        *,
        diversify: bool = True,
    ) -> list[Recommendation] | list[list[Recommendation]]:
        """Top-n papers per person among `candidates` (default: every paper), best first.

        A person's own rated papers and `exclude` (per person or for all) are never
        returned; people without feedback get the community ranking.
        """
        single = isinstance(users, str)
        names = [users] if single else list(users)
        cands = self.candidates(candidates)
        where = {pid: j for j, pid in enumerate(cands.ids)}
        ban = None
        if isinstance(exclude, dict):
            ban = np.zeros((len(names), len(cands)), dtype=bool)
            for r, uid in enumerate(names):
                ban[r, [where[p] for p in exclude.get(uid, ()) if p in where]] = True
        elif exclude is not None:
            ban = np.zeros(len(cands), dtype=bool)
            ban[[where[p] for p in exclude if p in where]] = True
        result = rank(
            self._state(),
            self.people(names),
            cands,
            Options(n=n, diversify=diversify),
            ban=ban,
        )
        out = [
            [
                Recommendation(cands.ids[int(j)], float(v))
                for j, v in zip(result.positions[r], result.scores[r], strict=True)
                if j >= 0
            ]
            for r in range(len(names))
        ]
        return out[0] if single else out

    def rank(self, users: Sequence[str], papers: Sequence[Paper], request: Request) -> RankResult:
        """Rank papers for one person or a team with filters, topics and explanations."""
        known = [p for p in papers if p.id in self._state().pidx or p.id in self._papers]
        cands = self.candidates([p.id for p in known])
        by_id = {p.id: p for p in known}
        return rank_papers(
            self._state(), self.people(list(users)), cands, [by_id[i] for i in cands.ids], request
        )

    def explain(self, user: str, paper_id: str) -> Explanation:
        """Why `paper_id` would be shown to `user`."""
        state = self._state()
        cands = self.candidates([paper_id])
        if not len(cands):
            return Explanation(reason="New in the library")
        paper = self._papers[paper_id][0] if paper_id in self._papers else None
        paper = paper or self._fitted_papers.get(paper_id)
        if paper is None:
            paper = Paper(id=paper_id, title=state.titles[state.pidx[paper_id]])
        return Explainer(state).explain(self.people([user]), cands, 0, paper)

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | Path) -> None:
        """Write the fitted state as one `.npz` (no pickle)."""
        persist.save(self._state().parts(), path)

    @classmethod
    def load(cls, path: str | Path) -> HybridRecommender:
        """Read a model written by `save`."""
        parts = persist.load(path)
        return cls(FitConfig(signals=tuple(parts.signals), als=parts.als), assemble(parts))


def paper_vectors(
    state: FittedState, papers: Sequence[Paper], embeddings: np.ndarray | None
) -> PaperVectors:
    """Source vectors of papers the fit never saw (or whose text changed since)."""
    content = state.content_model.transform(papers, embeddings)
    return PaperVectors(content.dense, content.lexical, state.prior_of(papers))


__all__ += ["paper_vectors", "text_key"]
