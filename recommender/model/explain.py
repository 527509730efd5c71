"""Why a paper was picked, in words that are true and specific.

"Because you liked X" names X only when X is genuinely close to the paper (in content, or
saved by the same people) and pushed it up; "On your topic …" only when one of the
person's topics lifted it; "Liked by N teammates" where teammates' likes are the reason.
In a team digest the reader is never "you": the line says which teammate's reading the
paper is close to, by display name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from recommender.model.config import SIGNALS
from recommender.types import Paper

if TYPE_CHECKING:
    from recommender.model.ranking import Candidates
    from recommender.model.state import FittedState, People

# A liked paper may be named as the reason only when it is closer to the recommended
# paper than this share of random pairs of papers in the library are to each other
# (calibrated per model: embedding and TF-IDF spaces have different scales) ...
CLOSE_PERCENTILE = 97.5
# ... and never below this cosine.
EXPLAIN_MIN_SIMILARITY = 0.15


def _short(title: str, limit: int = 70) -> str:
    """A title cut at a word boundary."""
    title = " ".join(title.split())
    return title if len(title) <= limit else title[: limit - 1].rsplit(" ", 1)[0] + "…"


@dataclass(frozen=True, slots=True)
class Explanation:
    """The reasons behind one recommendation."""

    liked: tuple[tuple[str, str], ...] = ()  # (paper id, title) of close liked papers
    topic: str = ""  # the person's (or team's) topic that lifted the paper
    teammates: int = 0  # teammates who liked or saved it
    team: bool = False  # written for a channel: no "you"
    reader: str = ""  # team digests: whose reading the liked papers are
    reason: str = ""  # when nothing personal applies: the community's reason

    @property
    def papers(self) -> tuple[tuple[str, str], ...]:
        """The liked papers named (id, title)."""
        return self.liked

    def text(self) -> str:
        """The one line shown under a paper."""
        parts = []
        if self.topic:
            where = "a topic this channel follows" if self.team else "your topic"
            parts.append(f"On {where} “{self.topic}”")
        if self.liked:
            titles = " and ".join(f"“{_short(t)}”" for _, t in self.liked[:2])
            if self.team:
                who = f"{self.reader}'s" if self.reader else "a teammate's"
                parts.append(f"Close to {who} reading: {titles}")
            else:
                parts.append(f"Because you liked {titles}")
        if self.teammates and not self.liked:
            s = "s" if self.teammates != 1 else ""
            parts.append(f"Liked by {self.teammates} teammate{s}")
        if not parts:
            return self.reason
        return " · ".join(parts)


def community_reason(paper: Paper, warm: bool) -> str:
    """A reason for someone the model knows nothing about yet."""
    if paper.upvotes > 0:
        return f"Popular on Hugging Face (▲ {paper.upvotes})"
    if paper.github_stars > 0:
        return f"Popular on GitHub (★ {paper.github_stars})"
    return "Read by others here" if warm else "New in the library"


def close_threshold(dense: np.ndarray, pairs: int = 4000) -> float:
    """The cosine above which two papers count as close in this library."""
    if len(dense) < 3:
        return EXPLAIN_MIN_SIMILARITY
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, len(dense), pairs), rng.integers(0, len(dense), pairs)
    keep = i != j
    cosine = (dense[i[keep]] * dense[j[keep]]).sum(axis=1)
    return max(EXPLAIN_MIN_SIMILARITY, float(np.percentile(cosine, CLOSE_PERCENTILE)))


class Explainer:
    """Explanations under one fitted state."""

    def __init__(self, state: FittedState) -> None:
        self.state = state
        self.whiten = state.content_model.whitener(state.whitening)
        self.close = close_threshold(state.papers.dense)

    def explain(
        self,
        people: People,
        cands: Candidates,
        j: int,
        paper: Paper,
        *,
        topic: str | None = None,
        teammates: int = 0,
        member_scores: np.ndarray | None = None,
        names: Mapping[str, str] | None = None,
    ) -> Explanation:
        """Why candidate `j` (`paper`) is shown to these people (one person, or a team)."""
        col = int(cands.cols[j])
        team = len(people.ids) > 1
        reason = community_reason(paper, col >= 0 and bool(self.state.warm[col]))
        reader, liked = "", ()
        if team and member_scores is not None:
            # The member whose taste the paper suits best, among those with a close paper.
            for m in np.argsort(-member_scores[:, j]):
                found = self.liked_close(people, int(m), cands, j)
                if found:
                    uid = people.ids[int(m)]
                    reader = (names or {}).get(uid, "")
                    liked = found
                    break
        elif not team and people.ids:
            liked = self.liked_close(people, 0, cands, j)
        return Explanation(
            liked=liked,
            topic=topic or "",
            teammates=teammates,
            team=team,
            reader=reader,
            reason=reason,
        )

    def liked_close(
        self, people: People, row: int, cands: Candidates, j: int, most: int = 2
    ) -> tuple[tuple[str, str], ...]:
        """The person's liked papers that are close to candidate `j` and pushed it up."""
        state = self.state
        feedback = people.rows[row]
        mask = feedback.data > 0
        liked, weights = feedback.indices[mask], feedback.data[mask]
        if not len(liked):
            return ()
        target = cands.dense[j]
        dense = state.papers.dense[liked]
        cosine = dense @ target
        col = int(cands.cols[j])
        co = np.zeros(len(liked), np.float32)
        if col >= 0 and state.knn.nnz:
            co = state.knn[liked][:, [col]].toarray().ravel()
        sigma = np.maximum(people.sigma[row], 1e-9)
        w = cands.weights
        contrib = np.zeros(len(liked))
        if "content" in state.signals:
            i = SIGNALS.index("content")
            contrib += w[i] / sigma[i] * weights * ((dense @ self.whiten) @ (self.whiten @ target))
        if "imc" in state.signals:
            i = SIGNALS.index("imc")
            contrib += w[i] / sigma[i] * weights * ((dense @ state.imc) @ target)
        if "knn" in state.signals:
            i = SIGNALS.index("knn")
            contrib += w[i] / sigma[i] * weights * co
        # Only a liked paper that is genuinely close (in content, or liked by the same
        # people) may be named: "because you liked X" must read as true to the person.
        close = (cosine >= self.close) | (co > 0)
        # Most responsible first; with a blend that puts no weight on content (e.g. pure
        # collaborative filtering) the closest liked papers are the honest reason.
        order = [i for i in np.lexsort((-cosine, -contrib)) if close[i] and contrib[i] >= 0]
        return tuple((state.paper_ids[liked[i]], state.titles[liked[i]]) for i in order[:most])
