"""The recommender as the chat side sees it: search, digests, feedback, training.

Owns the live model and the search index for one process and keeps both in step with
the store: papers ingested after the last training are folded in as "cold" papers,
feedback is folded into the person's profile at once, and retraining swaps a new model in
without blocking anyone who is being served.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from recommender.content import ContentModel, ItemContent, paper_text
from recommender.embeddings import TextEncoder, embed_cached
from recommender.feedback import FeedbackMatrix
from recommender.index import Query, SearchIndex, parse_query
from recommender.model import Explanation, FitConfig, HybridRecommender, Interactions
from recommender.pipeline import StoreVectorCache
from recommender.store import Store
from recommender.types import Feedback, Paper

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FeedbackWeights:
    """Training weight of each kind of feedback (mute is a filter, never a weight)."""

    like: float = 1.0
    save: float = 2.0
    dislike: float = -1.0

    def weight(self, kinds: Iterable[str]) -> float:
        """The net weight of a person's current kinds on one paper."""
        table = {"like": self.like, "save": self.save, "dislike": self.dislike}
        return float(sum(table.get(k, 0.0) for k in kinds))


@dataclass(slots=True)
class Ranked:
    """A paper picked for someone, with why."""

    paper: Paper
    score: float
    explanation: Explanation
    teammates: int = 0


@dataclass(slots=True)
class Preferences:
    """What a person asked for explicitly: boosted topics, excluded words, muted authors."""

    topics: set[str] = field(default_factory=set)
    exclude: set[str] = field(default_factory=set)
    muted: set[str] = field(default_factory=set)


_WORD = re.compile(r"\w+", re.UNICODE)
# Seconds of first-seen history re-read on each refresh, for ingests that commit late.
REFRESH_OVERLAP = 3600.0
# A retrain reuses the last content fit while at least this share of papers is unchanged.
REUSE_CONTENT = 0.8
# How much one matching boosted topic adds, in units of a person's score spread.
TOPIC_BOOST = 1.0
# Digest diversity: mostly relevance, with enough variety that ten near-copies never show.
MMR_LAMBDA = 0.85


def _words(text: str) -> set[str]:
    """Lower-case word set of a text."""
    return {w.casefold() for w in _WORD.findall(text)}


def _matches(paper: Paper, phrase: str, words: set[str] | None = None) -> bool:
    """Whether a topic/exclude phrase occurs in a paper's title or abstract."""
    parts = _words(phrase)
    if not parts:
        return False
    bag = words if words is not None else _words(paper_text(paper))
    return parts <= bag


class PaperService:
    """Search and recommendations over the store, personalised per person."""

    def __init__(
        self,
        store: Store,
        *,
        encoder: TextEncoder | None = None,
        model_dir: Path | None = None,
        weights: FeedbackWeights | None = None,
        fit_config: FitConfig | None = None,
    ) -> None:
        self.store = store
        self.encoder = encoder
        self.model_dir = model_dir
        self.weights = weights or FeedbackWeights()
        self.fit_config = fit_config or FitConfig()
        self.index = SearchIndex()
        self.model: HybridRecommender | None = None
        self.model_version: str | None = None
        self.trained_feedback_version = -1
        self._lock = threading.RLock()
        self._content_cache: tuple[ContentModel, ItemContent, list[str]] | None = None
        self._first_model = threading.Lock()
        self._refreshed_until = 0.0
        self._feedback = FeedbackMatrix(store, self.weights.weight)

    # -- keeping up with the store ---------------------------------------------------------

    def refresh(self) -> int:
        """Bring the index (and the model's paper list) up to date; returns papers added.

        Reads only papers first seen since the last look (with an overlap, since two
        ingests may commit out of order), so it is cheap enough to call on every request.
        """
        total = self.store.paper_count()
        if total <= len(self.index) and self._refreshed_until:
            return 0
        since = self._refreshed_until - REFRESH_OVERLAP
        now = time.time()
        ids = self.store.paper_ids_since(since) if since > 0 else []
        fresh_ids = [i for i in ids if i not in self.index]
        if len(self.index) + len(fresh_ids) < total:
            # Papers stored with an older first-seen time (a back-dated dump): full scan.
            fresh_ids = [i for i in self.store.all_paper_ids() if i not in self.index]
        self._refreshed_until = now
        if not fresh_ids:
            return 0
        papers = [p for p in self.store.get_papers(fresh_ids) if p is not None]
        self.index.add(papers)
        with self._lock:
            model = self.model
        if model is not None:
            # Only papers the model has not seen need their embeddings read.
            unseen = [p for p in papers if p.id not in model.pidx]
            if unseen:
                embeddings = self._embeddings(unseen)
                with self._lock:
                    model.add_papers(unseen, embeddings)
        return len(papers)

    def reindex(self, paper_ids: Sequence[str]) -> None:
        """Re-read papers that changed (a new version) into the index."""
        papers = [p for p in self.store.get_papers(list(paper_ids)) if p is not None]
        self.index.add(papers)

    def _embeddings(self, papers: Sequence[Paper]) -> np.ndarray | None:
        """Embeddings of papers (cached in the store by text hash), or None without an encoder."""
        if self.encoder is None or not papers:
            return None
        return embed_cached(self.encoder, [paper_text(p) for p in papers], self._cache())

    def _cache(self) -> StoreVectorCache:
        """The store's embedding cache for this service's encoder."""
        assert self.encoder is not None
        return StoreVectorCache(self.store, self.encoder.name, self.encoder.dim)

    def embed_papers(
        self, papers: Sequence[Paper], progress: Callable[[int], None] | None = None
    ) -> None:
        """Compute and cache embeddings at ingest, so nothing is embedded per request."""
        if self.encoder is not None and papers:
            embed_cached(
                self.encoder, [paper_text(p) for p in papers], self._cache(), progress=progress
            )

    # -- training ----------------------------------------------------------------------------

    def training_data(self) -> list[tuple[str, str, float]]:
        """(person, paper, weight) for every non-zero piece of feedback in the store."""
        rows = []
        for uid, pid, kinds in self.store.all_feedback():
            weight = self.weights.weight(kinds)
            if weight:
                rows.append((uid, pid, weight))
        return rows

    def interactions(self) -> Interactions:
        """All feedback in the store as one sparse matrix (people × papers, net weights).

        Only the people whose feedback changed since the last call are read again.
        """
        return self._feedback.read()

    def _content(self, papers: Sequence[Paper]) -> tuple[ContentModel, ItemContent] | None:
        """Reuse the last content fit when most papers are unchanged (new ones transformed)."""
        if self._content_cache is None:
            return None
        content_model, items, ids = self._content_cache
        row = {pid: i for i, pid in enumerate(ids)}
        known = [row.get(p.id, -1) for p in papers]
        if sum(k >= 0 for k in known) < REUSE_CONTENT * len(papers):
            return None
        fresh = [p for p, k in zip(papers, known, strict=True) if k < 0]
        extra = content_model.transform(fresh, self._embeddings(fresh)) if fresh else None
        order, new_at = [], 0
        base = len(ids)
        for k in known:
            if k >= 0:
                order.append(k)
            else:
                order.append(base + new_at)
                new_at += 1
        stacked = items if extra is None else _stack(items, extra)
        pick = np.asarray(order)
        return content_model, ItemContent(
            stacked.dense[pick], stacked.tfidf[pick], stacked.has_text[pick], stacked.lexical[pick]
        )

    def train(self, progress: Callable[[str], None] | None = None) -> HybridRecommender:
        """Fit a new model from the store and swap it in (serving continues meanwhile)."""
        version_before = self.store.feedback_version()
        # Feedback is read (mostly waiting on Redis) while the catalogue's content is fit.
        with ThreadPoolExecutor(1, thread_name_prefix="feedback-read") as pool:
            reading = pool.submit(self.interactions)
            papers = list(self.store.iter_papers())
            content = self._content(papers)
            if content is None:
                content_model = ContentModel()
                content = content_model, content_model.fit(papers, self._embeddings(papers))
            interactions = reading.result()
        model = HybridRecommender(self.fit_config).fit(
            interactions, papers, progress=progress, content=content
        )
        self._content_cache = (model.content_model, model.items, [p.id for p in papers])
        with self._lock:
            self.model = model
            self.trained_feedback_version = version_before
            self.model_version = uuid.uuid4().hex[:12]
        if self.model_dir is not None:
            self._save(model)
        return model

    def _save(self, model: HybridRecommender) -> None:
        """Write the model next to the data and point the store at it."""
        assert self.model_dir is not None
        self.model_dir.mkdir(parents=True, exist_ok=True)
        path = self.model_dir / f"model-{self.model_version}.npz"
        tmp = path.with_suffix(".tmp.npz")
        model.save(tmp)
        tmp.replace(path)
        self.store.set_model(
            self.model_version,
            str(path),
            {"trained_at": time.time(), "feedback_version": self.trained_feedback_version},
        )
        for old in self.model_dir.glob("model-*.npz"):
            if old != path:
                old.unlink(missing_ok=True)

    def load_or_train(self, progress: Callable[[str], None] | None = None) -> HybridRecommender:
        """The saved model when there is one, else a fresh fit; then catch up on papers."""
        pointer = self.store.current_model()
        if pointer and Path(pointer["path"]).exists():
            try:
                model = HybridRecommender.load(pointer["path"])
            except (OSError, ValueError, KeyError) as exc:
                log.warning("saved model unreadable (%s); retraining", exc)
            else:
                with self._lock:
                    self.model, self.model_version = model, pointer["version"]
                    # The feedback the saved model saw: later feedback still asks for a refit.
                    self.trained_feedback_version = int(pointer.get("feedback_version", -1))
                self.refresh()
                # A retrain after a restart reuses the saved content fit, as one in-process.
                self._content_cache = (model.content_model, model.items, list(model.paper_ids))
                return model
        model = self.train(progress)
        self.refresh()
        return model

    def needs_training(self) -> bool:
        """Whether feedback changed since the model was trained."""
        return self.model is None or self.store.feedback_version() != self.trained_feedback_version

    def ensure_model(self) -> HybridRecommender:
        """The live model, loading or training one first if there is none."""
        if self.model is None:
            with self._first_model:
                # Another thread may have loaded it while this one waited.
                if self.model is None:
                    self.load_or_train()
        assert self.model is not None
        return self.model

    def warm_up(self) -> threading.Thread:
        """Load (or train) the model in the background so start-up is not held up."""
        thread = threading.Thread(target=self._warm_up, name="model-warm-up", daemon=True)
        thread.start()
        return thread

    def _warm_up(self) -> None:
        """Body of `warm_up`: failures are logged; the first request retries."""
        try:
            if self.store.paper_count():
                self.ensure_model()
        except Exception as exc:
            log.warning("model warm-up failed (will retry on first use): %s", exc)

    # -- feedback ------------------------------------------------------------------------

    def record(
        self,
        uid: str,
        paper_id: str,
        kind: Feedback,
        *,
        removed: bool = False,
        toggle: bool = False,
    ) -> set[str]:
        """Store one piece of feedback (`toggle`: flip it, decided atomically in the store)
        and fold it into that person's profile at once."""
        exclusive = {"like": ("dislike",), "dislike": ("like", "save")}.get(kind.value, ())
        kinds = self.store.apply_feedback(
            uid, paper_id, kind.value, removed=removed, toggle=toggle, exclusive=exclusive
        )
        self.fold_in(uid)
        return kinds

    def fold_in(self, uid: str) -> None:
        """Refresh one person's vectors from their stored feedback (no refit)."""
        model = self.model
        if model is None:
            return
        history = [
            (pid, self.weights.weight(kinds))
            for pid, kinds in self.store.user_feedback(uid).items()
        ]
        with self._lock:
            model.recalculate_user(uid, history)

    def preferences(self, uid: str) -> Preferences:
        """A person's explicit preferences."""
        return Preferences(
            topics=self.store.words(uid, "topics"),
            exclude=self.store.words(uid, "exclude"),
            muted=self.store.words(uid, "muted"),
        )

    # -- ranking --------------------------------------------------------------------------

    def rank(
        self,
        members: Sequence[str],
        candidates: Sequence[Paper],
        n: int,
        *,
        prefs: Preferences | None = None,
        diversify: bool = True,
        boost: dict[str, float] | None = None,
        exclude_rated: bool = True,
    ) -> list[Ranked]:
        """Rank candidate papers for one person, or for a team (members' combined taste).

        Hard filters (excluded words, muted authors) drop papers; boosted topics add to the
        score; the result is diversified (MMR) and explained.
        """
        prefs = prefs or Preferences()
        if not candidates:
            return []
        model = self.ensure_model()
        rated: set[str] = set()
        if exclude_rated and len(members) == 1:
            # A digest never offers what the person already reacted to.
            rated = set(self.store.user_feedback(members[0]))
        pool = [p for p in candidates if p.id not in rated and self._allowed(p, prefs)]
        if not pool:
            return []
        missing = [p for p in pool if p.id not in model.pidx]
        if missing:
            with self._lock:
                model.add_papers(missing, self._embeddings(missing))
        cols = np.array([model.pidx[p.id] for p in pool])
        people = list(members) or ["__nobody__"]
        with self._lock:
            raw = model.score(people, cols)
        # Each member counts equally: standardise per member before averaging.
        spread = raw.std(axis=1, keepdims=True)
        z = (raw - raw.mean(axis=1, keepdims=True)) / np.where(spread > 1e-9, spread, 1.0)
        score = z.mean(axis=0)
        if prefs.topics:
            score += self._topic_boost(model, pool, cols, sorted(prefs.topics))
        if boost:
            score += np.array([boost.get(p.id, 0.0) for p in pool])
        order = self._diversified(model, cols, score, n) if diversify else np.argsort(-score)[:n]
        lead = members[0] if len(members) == 1 else None
        out = []
        for j in order:
            paper = pool[j]
            if lead:
                explanation = model.explain(lead, paper.id)
            else:
                explanation = self._team_explanation(model, members, paper)
            out.append(Ranked(paper, float(score[j]), explanation))
        return out

    def _topic_boost(
        self, model: HybridRecommender, pool: Sequence[Paper], cols: np.ndarray, topics: list[str]
    ) -> np.ndarray:
        """Boost for papers on a person's topics: exact words, and meaning when embeddings exist.

        The meaning part lets `segmentation` lift "Segment Anything" although no word matches.
        """
        boost = np.zeros(len(pool), dtype=np.float32)
        for j, paper in enumerate(pool):
            bag = _words(paper_text(paper))
            boost[j] += TOPIC_BOOST * sum(_matches(paper, t, bag) for t in topics)
        if self.encoder is not None and model.content_model.dense_kind == "embedding":
            vectors = embed_cached(self.encoder, topics, self._cache())
            centred = vectors - model.content_model.mean
            centred /= np.maximum(np.linalg.norm(centred, axis=1, keepdims=True), 1e-9)
            sims = model.items.dense[cols] @ centred.T
            z = (sims - sims.mean(axis=0)) / np.maximum(sims.std(axis=0), 1e-9)
            boost += TOPIC_BOOST * np.maximum(z, 0).sum(axis=1)
        return boost

    def _allowed(self, paper: Paper, prefs: Preferences) -> bool:
        """Hard filters: excluded words and muted authors."""
        if prefs.exclude:
            bag = _words(paper_text(paper))
            if any(_matches(paper, phrase, bag) for phrase in prefs.exclude):
                return False
        if prefs.muted:
            authors = {a.casefold() for a in paper.authors}
            if authors & prefs.muted:
                return False
        return True

    @staticmethod
    def _diversified(
        model: HybridRecommender, cols: np.ndarray, score: np.ndarray, n: int
    ) -> list[int]:
        """MMR over the candidates: relevant first, then unlike what is already picked."""
        lam = MMR_LAMBDA
        vec = model.items.dense[cols]
        rel = (score - score.min()) / max(float(score.max() - score.min()), 1e-9)
        picked: list[int] = []
        closest = np.zeros(len(cols), dtype=np.float32)
        available = np.ones(len(cols), dtype=bool)
        for step in range(min(n, len(cols))):
            value = rel.copy() if step == 0 else lam * rel - (1 - lam) * closest
            value[~available] = -np.inf
            j = int(np.argmax(value))
            picked.append(j)
            available[j] = False
            closest = np.maximum(closest, vec @ vec[j])
        return picked

    def _team_explanation(
        self, model: HybridRecommender, members: Sequence[str], paper: Paper
    ) -> Explanation:
        """Why a paper suits a team: the member it suits best, in their words."""
        known = [m for m in members if model.known_user(m)]
        if not known:
            return model.explain("__nobody__", paper.id)
        with self._lock:
            scores = model.score(known, np.array([model.pidx[paper.id]]))[:, 0]
        best = known[int(np.argmax(scores))]
        return model.explain(best, paper.id)

    def search(
        self, uid: str | None, query: str | Query, n: int = 10, *, prefs: Preferences | None = None
    ) -> list[Ranked]:
        """Search the index, then re-rank the top hits for the person asking.

        Text relevance leads; the person's taste reorders papers of similar relevance.
        """
        parsed = parse_query(query) if isinstance(query, str) else query
        # Papers another process ingested since this one last looked are searchable too.
        self.refresh()
        hits = self.index.search(parsed, n=max(50, n * 5))
        if not hits:
            return []
        papers = {p.id: p for p in self.store.get_papers([h.paper_id for h in hits]) if p}
        hits = [h for h in hits if h.paper_id in papers]
        text = np.array([h.score for h in hits], dtype=np.float32)
        text_z = (text - text.mean()) / (text.std() + 1e-9) if text.std() > 1e-9 else text * 0
        boost = {h.paper_id: float(t) for h, t in zip(hits, text_z, strict=True)}
        members = [uid] if uid else []
        # Personal taste counts half as much as text relevance.
        ranked = self.rank(
            members,
            [papers[h.paper_id] for h in hits],
            len(hits),
            prefs=prefs,
            diversify=False,
            boost={k: 2.0 * v for k, v in boost.items()},
            exclude_rated=False,
        )
        return ranked[:n]

    def teammates(self, paper_ids: Sequence[str], workspace: str) -> dict[str, int]:
        """How many people of one workspace liked or saved each paper."""
        prefix = workspace + ":"
        return {
            pid: sum(1 for u in people if u.startswith(prefix))
            for pid, people in self.store.likers(list(paper_ids)).items()
        }


def _stack(first: ItemContent, second: ItemContent) -> ItemContent:
    """Rows of two content blocks, one after the other."""
    return ItemContent(
        np.vstack([first.dense, second.dense]),
        sp.vstack([first.tfidf, second.tfidf]).tocsr(),
        np.concatenate([first.has_text, second.has_text]),
        np.vstack([first.lexical, second.lexical]),
    )
