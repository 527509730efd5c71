"""The one ranking path: every digest, team digest, search re-ranking, evaluation and
benchmark ranks papers through `rank` (arrays) or `rank_papers` (papers, filters, topics,
explanations), which calls `rank`.

Scores are the blend of per-person standardised signals (`score`). For a team, each
member's scores are standardised over the candidates and averaged, so every member counts
equally. Boosts (a person's topics, search relevance, teammates' likes) are added in units
of the person's score spread. The first `mmr_window` positions are diversified with
maximal marginal relevance; deeper positions follow the scores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from recommender import phrases
from recommender.metrics import top_k
from recommender.model.config import DENSE, SIGNALS, SPARSE
from recommender.model.explain import Explainer, Explanation
from recommender.model.signals import PaperVectors, item_vectors
from recommender.model.state import FittedState, People
from recommender.types import Paper

# Digest diversity: mostly relevance, with enough variety that ten near-copies never show.
MMR_LAMBDA = 0.85
# How many of the first positions are diversified (a digest's length), and from how deep.
MMR_WINDOW = 10
MMR_DEPTH = 4
# How much one matching boosted topic adds, in units of a person's score spread.
TOPIC_BOOST = 1.0
# A topic "lifted" a paper (and may be named as its reason) above this boost.
TOPIC_REASON = 1.0


@dataclass(frozen=True, slots=True, eq=False)
class Candidates:
    """Papers to rank under one state, with the paper side of every signal.

    Papers the fit saw are rows of the state; papers it never saw (or whose text changed
    since) bring vectors of their own, computed once per text.
    """

    ids: tuple[str, ...]
    cols: np.ndarray  # state column of each candidate, -1 for papers with their own vectors
    dense: np.ndarray  # content vectors (diversity, explanations, topics)
    prior: np.ndarray  # standardised community prior
    warm: np.ndarray  # has interactions in the fit
    weights: np.ndarray  # the blend these candidates are ranked with
    signals: tuple[str, ...]  # dense signals with weight, in the order of `stacked`
    stacked: np.ndarray  # their paper vectors side by side (candidates × dims)
    widths: tuple[int, ...]  # each signal's dimensions in `stacked`
    knn: sp.csr_matrix | None  # state papers × candidates co-occurrence (None: no weight)

    def __len__(self) -> int:
        return len(self.ids)


def candidates(
    state: FittedState,
    ids: Sequence[str],
    own: PaperVectors | None = None,
    own_rows: Sequence[int] = (),
) -> Candidates:
    """Candidates from paper ids: `own` holds vectors for the positions `own_rows` (papers
    the state does not hold, or holds with stale text); every other id must be in the state.
    """
    ids = tuple(ids)
    own_rows = np.asarray(own_rows, dtype=np.int64)
    cols = np.array([state.pidx.get(i, -1) for i in ids], dtype=np.int64)
    cols[own_rows] = -1
    if (cols < 0).sum() != len(own_rows):
        missing = [i for i, c in zip(ids, cols, strict=True) if c < 0][:3]
        raise KeyError(f"no vectors for papers {missing}")
    in_state = np.flatnonzero(cols >= 0)
    every = len(ids) == state.size and np.array_equal(cols, np.arange(state.size))
    warm = np.zeros(len(ids), dtype=bool)
    warm[in_state] = state.warm[cols[in_state]]
    weights = state.blend(warm)
    dense = _gather(state.papers.dense, cols, in_state, own, own_rows, "dense", every)
    prior = _gather(state.papers.prior, cols, in_state, own, own_rows, "prior", every)
    extra = item_vectors(state.sides, own) if own is not None and len(own_rows) else {}
    active = [s for s in DENSE if s in state.sides and weights[SIGNALS.index(s)]]
    blocks = []
    for s in active:
        side = state.sides[s].items
        if every:
            blocks.append(side)
            continue
        block = np.zeros((len(ids), side.shape[1]), np.float32)
        block[in_state] = side[cols[in_state]]
        if len(own_rows):
            block[own_rows] = extra[s]
        blocks.append(block)
    stacked = (
        np.hstack(blocks).astype(np.float32, copy=False)
        if blocks
        else np.zeros((len(ids), 0), np.float32)
    )
    knn = None
    if "knn" in state.signals and weights[SIGNALS.index("knn")] and warm.any():
        if every:
            knn = state.knn
        else:
            select = sp.csr_matrix(
                (np.ones(len(in_state), np.float32), (cols[in_state], in_state)),
                shape=(state.size, len(ids)),
            )
            knn = (state.knn @ select).tocsr()
    return Candidates(
        ids=ids,
        cols=cols,
        dense=dense,
        prior=prior,
        warm=warm,
        weights=weights,
        signals=tuple(active),
        stacked=stacked,
        widths=tuple(b.shape[1] for b in blocks),
        knn=knn,
    )


def _gather(
    table: np.ndarray,
    cols: np.ndarray,
    in_state: np.ndarray,
    own: PaperVectors | None,
    own_rows: np.ndarray,
    name: str,
    every: bool,
) -> np.ndarray:
    """Rows of a state table for state papers, and the caller's own rows for the rest."""
    if every:
        return table
    out = np.zeros((len(cols), *table.shape[1:]), dtype=np.float32)
    out[in_state] = table[cols[in_state]]
    if own is not None and len(own_rows):
        out[own_rows] = getattr(own, name)
    return out


def catalogue(state: FittedState, cols: np.ndarray | None = None) -> Candidates:
    """Candidates that are papers of the state (all of them by default)."""
    ids = state.paper_ids if cols is None else [state.paper_ids[c] for c in cols]
    return candidates(state, ids)


# ---------------------------------------------------------------------------------------
# Scores and arrays
# ---------------------------------------------------------------------------------------


def score(state: FittedState, people: People, cands: Candidates) -> np.ndarray:
    """Blended scores (people × candidates); people without any feedback get the prior."""
    out = np.zeros((len(people.ids), len(cands)), np.float32)
    known = people.known
    if (~known).any():
        # No history at all: community signals are all there is.
        out[~known] = cands.prior[None, :]
    rows = np.flatnonzero(known)
    if not len(rows):
        return out
    sigma = people.sigma[rows]
    coef = (cands.weights[None, :] / np.maximum(sigma, 1e-9)).astype(np.float32)
    coef[sigma <= 1e-9] = 0.0
    if cands.signals:
        parts = [people.vectors[s][rows] * coef[:, [SIGNALS.index(s)]] for s in cands.signals]
        out[rows] = np.hstack(parts) @ cands.stacked.T
    for s in SPARSE:
        c = coef[:, SIGNALS.index(s)]
        if cands.knn is not None and c.any():
            out[rows] += (sp.diags(c) @ (people.rows[rows] @ cands.knn)).toarray()
    # Someone who has only said 👎 (a new person who liked nothing on their first card) has
    # vectors that point away from a few papers, which alone ranks the rest of the catalogue
    # at random: the community prior stays their base, and their 👎 push down what is close.
    liked = np.asarray((people.rows[rows] > 0).sum(axis=1)).ravel() > 0
    if (~liked).any():
        out[rows[~liked]] += cands.prior[None, :]
    return out


@dataclass(frozen=True, slots=True)
class Options:
    """How to rank: how many, diversified or not, excluding what people already rated."""

    n: int = 10
    diversify: bool = True
    exclude_rated: bool = True
    # The people are one team: rank once for all of them (each member counts equally).
    together: bool = False
    mmr_lambda: float = MMR_LAMBDA
    mmr_window: int = MMR_WINDOW


@dataclass(frozen=True, slots=True, eq=False)
class Ranking:
    """Candidate positions per person (rows × n, -1 where fewer were left) and scores."""

    positions: np.ndarray
    scores: np.ndarray
    member_scores: np.ndarray | None = None  # each member's scores (teams; explanations)


def rank(
    state: FittedState,
    people: People,
    cands: Candidates,
    options: Options,
    *,
    ban: np.ndarray | None = None,
    boost: np.ndarray | None = None,
    batch: int = 2000,
) -> Ranking:
    """Top-n candidates for each person (or, `together`, for the team), best first.

    `ban` (candidates, or people × candidates) marks papers nobody may be shown; `boost`
    (same shapes) is added to scores standardised over the candidates.
    """
    if options.together:
        return _rank_team(state, people, cands, options, ban, boost)
    width = min(options.n, len(cands))
    positions = np.full((len(people.ids), width), -1, dtype=np.int64)
    scores = np.full((len(people.ids), width), -np.inf, dtype=np.float32)
    sim = _pair_similarity(cands, options)
    for start in range(0, len(people.ids), batch):
        part = people.take(np.arange(start, min(start + batch, len(people.ids))))
        raw = score(state, part, cands)
        if boost is not None:
            raw = _standardise(raw)
            raw += boost if boost.ndim == 1 else boost[start : start + len(part.ids)]
        _ban(raw, part, cands, options, ban, start)
        pos, val = _top(raw, cands, options, sim)
        positions[start : start + len(part.ids)] = pos
        scores[start : start + len(part.ids)] = val
    return Ranking(positions, scores)


def _rank_team(
    state: FittedState,
    people: People,
    cands: Candidates,
    options: Options,
    ban: np.ndarray | None,
    boost: np.ndarray | None,
) -> Ranking:
    """One ranking for a team: members' standardised scores, averaged."""
    members = score(state, people, cands)
    raw = _standardise(members.copy()).mean(axis=0, keepdims=True)
    if boost is not None:
        raw += boost
    solo = Options(
        n=options.n,
        diversify=options.diversify,
        exclude_rated=False,
        mmr_lambda=options.mmr_lambda,
        mmr_window=options.mmr_window,
    )
    _ban(raw, None, cands, solo, ban, 0)
    pos, val = _top(raw, cands, solo, _pair_similarity(cands, solo))
    return Ranking(pos, val, members)


def _standardise(raw: np.ndarray) -> np.ndarray:
    """Each row as z-scores over the candidates (flat rows become zeros), in place."""
    if raw.shape[1] == 0:
        return raw
    raw -= raw.mean(axis=1, keepdims=True)
    spread = raw.std(axis=1, keepdims=True)
    raw /= np.where(spread > 1e-9, spread, 1.0)
    return raw


def _ban(
    raw: np.ndarray,
    people: People | None,
    cands: Candidates,
    options: Options,
    ban: np.ndarray | None,
    start: int,
) -> None:
    """Set -inf where a person must not be shown a paper (rated, banned)."""
    if ban is not None:
        if ban.ndim == 1:
            raw[:, ban] = -np.inf
        else:
            raw[ban[start : start + raw.shape[0]]] = -np.inf
    if people is None or not options.exclude_rated:
        return
    rows = people.rows
    if rows.nnz:
        in_state = np.flatnonzero(cands.cols >= 0)
        position = np.full(rows.shape[1], -1, dtype=np.int64)
        position[cands.cols[in_state]] = in_state
        r = np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr))
        c = position[rows.indices]
        raw[r[c >= 0], c[c >= 0]] = -np.inf
    if any(people.rated_elsewhere):
        where = {pid: j for j, pid in enumerate(cands.ids)}
        for i, rated in enumerate(people.rated_elsewhere):
            hit = [where[p] for p in rated if p in where]
            if hit:
                raw[i, hit] = -np.inf


def _pair_similarity(cands: Candidates, options: Options) -> np.ndarray | None:
    """Content similarity of every pair of a small candidate set, computed once for MMR."""
    if not options.diversify or len(cands) > 4000:
        return None
    return cands.dense @ cands.dense.T


def _top(
    raw: np.ndarray, cands: Candidates, options: Options, sim: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """The n best positions per row (the first `mmr_window` diversified) and their scores."""
    n = min(options.n, raw.shape[1])
    window = min(options.mmr_window, n)
    depth = min(raw.shape[1], max(n, MMR_DEPTH * window))
    diversify = options.diversify and window > 1 and depth > window
    ranked = top_k(raw, depth if diversify else n)
    top_scores = np.take_along_axis(raw, ranked, axis=1)
    if diversify:
        block = min(depth, MMR_DEPTH * window)
        picked = _mmr(ranked[:, :block], top_scores[:, :block], cands, sim, window, options)
        taken = np.zeros((raw.shape[0], block), dtype=bool)
        np.put_along_axis(taken, picked, True, axis=1)
        rest = np.argsort(taken, axis=1, kind="stable")[:, : block - window]
        order = np.concatenate([picked, rest], axis=1)
        ranked[:, :block] = np.take_along_axis(ranked[:, :block], order, axis=1)
        top_scores[:, :block] = np.take_along_axis(top_scores[:, :block], order, axis=1)
        # MMR may move a paper with -inf (banned) ahead only when nothing else was left;
        # keep scores aligned with what is shown.
        ranked, top_scores = ranked[:, :n], top_scores[:, :n]
    valid = np.isfinite(top_scores)
    return np.where(valid, ranked, -1), np.where(valid, top_scores, -np.inf).astype(np.float32)


def _mmr(
    ranked: np.ndarray,
    scores: np.ndarray,
    cands: Candidates,
    sim: np.ndarray | None,
    n: int,
    options: Options,
) -> np.ndarray:
    """Maximal marginal relevance for a batch: indices into `ranked`'s columns, picked in order.

    Greedy: each next paper maximises λ·relevance − (1−λ)·(similarity to those picked).
    """
    lam = options.mmr_lambda
    b, d = ranked.shape
    if sim is not None:
        pair = sim[ranked[:, :, None], ranked[:, None, :]]
    else:
        vec = cands.dense[ranked]
        pair = np.einsum("bid,bjd->bij", vec, vec)
    finite = np.isfinite(scores)
    lo = np.where(finite, scores, np.inf).min(axis=1, keepdims=True)
    hi = np.where(finite, scores, -np.inf).max(axis=1, keepdims=True)
    rel = np.where(finite, (scores - lo) / np.maximum(hi - lo, 1e-9), -np.inf)
    order = np.zeros((b, n), dtype=np.int64)
    taken = np.zeros((b, d), dtype=bool)
    closest = np.zeros((b, d), dtype=np.float32)
    rows = np.arange(b)
    for step in range(n):
        value = lam * rel - (1 - lam) * closest if step else rel.copy()
        value[taken] = -np.inf
        # Once a row runs out of rankable papers, fall back to its next untaken slot.
        value = np.where(taken, -np.inf, np.where(np.isfinite(value), value, -1e30))
        pick = np.argmax(value, axis=1)
        order[:, step] = pick
        taken[rows, pick] = True
        closest = np.maximum(closest, pair[rows, pick])
    return order


# ---------------------------------------------------------------------------------------
# Papers: filters, topics, boosts, explanations
# ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class Preferences:
    """What a person (or a team) asked for: boosted topics, excluded phrases, muted authors."""

    topics: set[str] = field(default_factory=set)
    exclude: set[str] = field(default_factory=set)
    muted: set[str] = field(default_factory=set)


@dataclass(slots=True)
class Ranked:
    """A paper picked for someone, with why."""

    paper: Paper
    score: float
    explanation: Explanation
    teammates: int = 0


@dataclass(slots=True)
class RankResult:
    """What a ranking shows, and how many candidates the person's filters hid."""

    items: list[Ranked]
    hidden: int = 0
    considered: int = 0

    def __iter__(self):
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


@dataclass(frozen=True, slots=True)
class Request:
    """One ranking of papers for a person or a team."""

    n: int = 10
    diversify: bool = True
    exclude_rated: bool = True
    prefs: Preferences | None = None
    # Raw topic embeddings, one row per topic in `sorted(prefs.topics)` (None: words only).
    topic_vectors: np.ndarray | None = None
    boost: Mapping[str, float] | None = None  # extra score per paper id, in spread units
    teammates: Mapping[str, int] | None = None  # teammates who liked each paper
    names: Mapping[str, str] | None = None  # display names of team members (by uid)
    explain: bool = True


def hidden_by(
    prefs: Preferences | None, papers: Sequence[Paper], texts: Sequence[str]
) -> np.ndarray:
    """Which papers a person's excluded phrases or muted authors hide (`texts`: normalised)."""
    out = np.zeros(len(papers), dtype=bool)
    if prefs is None or not (prefs.exclude or prefs.muted):
        return out
    muted = {m.casefold() for m in prefs.muted}
    excluded = sorted(prefs.exclude)
    for j, (paper, text) in enumerate(zip(papers, texts, strict=True)):
        if (muted and any(a.casefold() in muted for a in paper.authors)) or (
            excluded and phrases.first_match(text, excluded)
        ):
            out[j] = True
    return out


def topic_boost(
    state: FittedState,
    cands: Candidates,
    texts: Sequence[str],
    topics: list[str],
    vectors: np.ndarray | None,
) -> tuple[np.ndarray, list[str | None]]:
    """Boost for papers on a person's topics (by the phrase, and by meaning when topic
    embeddings are given), and the topic that lifted each paper most (None: none did).

    The meaning part lets `segmentation` lift "Segment Anything" although no word matches.
    """
    boost = np.zeros((len(cands), len(topics)), dtype=np.float32)
    for j, text in enumerate(texts):
        for t, topic in enumerate(topics):
            if phrases.matches(text, topic):
                boost[j, t] += TOPIC_BOOST
    model = state.content_model
    if vectors is not None and len(vectors) == len(topics) and model.dense_kind == "embedding":
        centred = np.asarray(vectors, dtype=np.float32) - model.mean
        centred /= np.maximum(np.linalg.norm(centred, axis=1, keepdims=True), 1e-9)
        sims = cands.dense @ centred.T
        z = (sims - sims.mean(axis=0)) / np.maximum(sims.std(axis=0), 1e-9)
        boost += TOPIC_BOOST * np.maximum(z, 0)
    best = boost.argmax(axis=1) if topics else np.zeros(len(cands), dtype=np.int64)
    lifted = [
        topics[int(t)] if topics and boost[j, t] >= TOPIC_REASON else None
        for j, t in enumerate(best)
    ]
    return boost.sum(axis=1), lifted


def rank_papers(
    state: FittedState,
    people: People,
    cands: Candidates,
    papers: Sequence[Paper],
    request: Request,
    *,
    texts: Sequence[str] | None = None,
    explainer: Explainer | None = None,
) -> RankResult:
    """Rank papers for one person (or a team: several people), through `rank`.

    Hard filters (excluded phrases, muted authors) drop papers and are counted; boosted
    topics and `request.boost` add to the score; the result is diversified and explained.
    `texts` are the papers' `phrases.normalise`d texts when the caller caches them.
    """
    if not len(cands):
        return RankResult([], 0, 0)
    prefs = request.prefs
    needs_text = prefs is not None and (prefs.topics or prefs.exclude)
    if texts is None:
        texts = [phrases.normalise(p.text) if needs_text else "" for p in papers]
    banned = hidden_by(prefs, papers, texts)
    boost = None
    lifted: list[str | None] = [None] * len(cands)
    if prefs is not None and prefs.topics:
        topics = sorted(prefs.topics)
        boost, lifted = topic_boost(state, cands, texts, topics, request.topic_vectors)
    if request.boost:
        extra = np.array([request.boost.get(i, 0.0) for i in cands.ids], dtype=np.float32)
        boost = extra if boost is None else boost + extra
    team = len(people.ids) > 1
    options = Options(
        n=request.n,
        diversify=request.diversify,
        exclude_rated=request.exclude_rated,
        together=team,
    )
    result = rank(state, people, cands, options, ban=banned if banned.any() else None, boost=boost)
    row = result.positions[0]
    items = []
    for k, j in enumerate(row):
        if j < 0:
            break
        paper = papers[int(j)]
        count = (request.teammates or {}).get(paper.id, 0)
        if request.explain:
            why = (explainer or Explainer(state)).explain(
                people,
                cands,
                int(j),
                paper,
                topic=lifted[int(j)],
                teammates=count,
                member_scores=result.member_scores,
                names=request.names,
            )
        else:
            why = Explanation()
        items.append(Ranked(paper, float(result.scores[0, k]), why, count))
    return RankResult(items, hidden=int(banned.sum()), considered=len(cands))
