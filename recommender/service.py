"""The recommender as the chat side sees it: search, ranking, feedback, training.

Every process serves the model version published in Redis (`serving.live`), people's
vectors fresh from their feedback in Redis (`serving.people`), vectors of papers newer than
the model (`serving.papers`) and a search index that follows every process's ingests
(`serving.follow`). A background watcher keeps all of it in step within seconds; nothing a
person is being served waits on it. Only the process that runs the retrain job (or a
one-process command such as `paperbot train` or the console) trains and publishes.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import scipy.sparse as sp

from recommender import phrases
from recommender.content import ContentModel, ItemContent, paper_text
from recommender.embeddings import TextEncoder, embed_cached
from recommender.feedback import FeedbackMatrix
from recommender.index import Query, parse_query
from recommender.model import (
    FitConfig,
    FittedState,
    Interactions,
    Preferences,
    Ranked,
    RankResult,
    Request,
    text_key,
)
from recommender.model.explain import Explainer
from recommender.model.people import from_feedback
from recommender.model.ranking import Options, hidden_by, rank, rank_papers
from recommender.model.state import assemble
from recommender.model.training import Trainer, Tuning, fit_parts
from recommender.pipeline import StoreVectorCache
from recommender.serving.follow import IndexFollower
from recommender.serving.live import GRACE_SECONDS, LiveModel, new_version
from recommender.serving.papers import PaperVectorCache
from recommender.serving.people import PeopleCache
from recommender.store import Store, StoreUnavailable
from recommender.types import Feedback, Paper

log = logging.getLogger(__name__)

__all__ = ["FeedbackWeights", "PaperService", "Preferences", "RankResult", "Ranked"]

# A retrain reuses the served model's content fit while at least this share of papers is
# unchanged (new papers are transformed with it).
REUSE_CONTENT = 0.8
# The catalogue growing by this share since the last fit also asks for a retrain.
REFIT_GROWTH = 0.2
# How often the watcher looks for a new model version and new papers.
WATCH_SECONDS = 2.0
# Search: text relevance leads; personal taste counts half as much.
SEARCH_TASTE = 0.5
# Per-person limits, so one person's lists stay small enough to apply on every ranking.
LIMITS = {"topics": 50, "exclude": 50, "muted": 200}


@dataclasses.dataclass(frozen=True, slots=True)
class FeedbackWeights:
    """Training weight of each kind of feedback (mute is a filter, never a weight)."""

    like: float = 1.0
    save: float = 2.0
    dislike: float = -1.0

    def weight(self, kinds: Iterable[str]) -> float:
        """The net weight of a person's current kinds on one paper."""
        table = {"like": self.like, "save": self.save, "dislike": self.dislike}
        return float(sum(table.get(k, 0.0) for k in kinds))


class PaperService:
    """Search and recommendations over the store, personalised per person."""

    def __init__(
        self,
        store: Store,
        *,
        encoder: TextEncoder | None = None,
        weights: FeedbackWeights | None = None,
        fit_config: FitConfig | None = None,
        grace: float = GRACE_SECONDS,
    ) -> None:
        self.store = store
        self.encoder = encoder
        self.weights = weights or FeedbackWeights()
        self.fit_config = fit_config or FitConfig()
        self.live = LiveModel(store, grace=grace)
        self.papers = PaperVectorCache(store, encoder)
        self.people = PeopleCache(store, self.weights.weight, self.papers)
        self.follower = IndexFollower(store)
        self.index = self.follower.index
        self._feedback = FeedbackMatrix(store, self.weights.weight)
        self._train_lock = threading.RLock()
        self._texts: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._topics: OrderedDict[str, np.ndarray] = OrderedDict()
        self._explainers: dict[str, Explainer] = {}
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._default_lock = threading.Lock()
        self._default_state: FittedState | None = None

    # -- the served model ---------------------------------------------------------------

    @property
    def state(self) -> FittedState | None:
        """The fitted state this process serves, if any."""
        return self.live.state

    @property
    def model_version(self) -> str | None:
        """Its version."""
        return self.live.version

    def check_model(self) -> bool:
        """Swap in the store's current model version if it is newer; True if swapped."""
        return self.live.check()

    def ensure_model(self) -> FittedState | None:
        """The served state: the published one, or until there is one, the content-only
        default (content and community signals, no feedback learned; people's own
        feedback still folds in). Never trains on feedback: the retrain job
        does that and publishes.
        """
        if self.live.state is None:
            self.live.check()
        if self.live.state is None:
            return self._default()
        return self.live.state

    def _default(self) -> FittedState | None:
        """The content-only default for the current catalogue (built once per catalogue size)."""
        with self._default_lock:
            count = self.store.paper_count()
            built = self._default_state
            if built is not None and count <= (1 + REFIT_GROWTH) * max(built.size, 1):
                return built
            if not count:
                return None
            papers = list(self.store.iter_papers())
            config = dataclasses.replace(self.fit_config, als_grid=())
            parts = fit_parts([], papers, config, embeddings=self._embeddings(papers))
            parts.version = f"default-{len(papers)}"
            self._default_state = assemble(parts)
            log.info("serving the content-only default until a trained model is published")
            return self._default_state

    def load_or_train(self, progress: Callable[[str], None] | None = None) -> FittedState | None:
        """The published model, or (for one-process use: console, demo) a fit of our own."""
        state = self.ensure_model()
        if state is None and self.store.paper_count():
            state = self.train(progress)
        self.refresh()
        return state

    def needs_training(self) -> bool:
        """Whether no model is published yet, or feedback changed (or the catalogue grew)
        since the served model's fit."""
        state = self.live.state
        if state is None:
            return self.store.paper_count() > 0
        if self.store.feedback_version() != state.trained_feedback_version:
            return True
        return self.store.paper_count() > (1 + REFIT_GROWTH) * max(state.size, 1)

    def start(self, interval: float = WATCH_SECONDS) -> threading.Thread:
        """Keep the model and the search index in step with Redis in the background."""
        if self._watcher is not None and self._watcher.is_alive():
            return self._watcher
        self._stop.clear()
        self._watcher = threading.Thread(
            target=self._watch, args=(interval,), name="model-watch", daemon=True
        )
        self._watcher.start()
        return self._watcher

    def stop(self) -> None:
        """Stop the background watcher."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(10)

    # Kept for callers that started the model in the background before.
    warm_up = start

    def _watch(self, interval: float) -> None:
        """Body of the watcher: new model versions and new papers, every `interval` s."""
        said = False
        while not self._stop.is_set():
            try:
                self.live.check()
                self.follower.catch_up()
                said = False
            except StoreUnavailable as exc:
                if not said:
                    log.warning("cannot follow the store right now: %s", exc)
                    said = True
            except Exception:
                log.exception("model watcher failed; retrying")
            self._stop.wait(interval)

    def refresh(self) -> int:
        """Bring the search index up to date with every process's ingests."""
        return self.follower.catch_up()

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
        """Reuse the served model's content fit when most papers are unchanged."""
        state = self.live.state
        if state is None:
            return None
        keys = [text_key(p) for p in papers]
        known = [state.pidx.get(p.id, -1) for p in papers]
        known = [
            k if k >= 0 and state.text_keys[k] == key else -1
            for k, key in zip(known, keys, strict=True)
        ]
        if sum(k >= 0 for k in known) < REUSE_CONTENT * len(papers):
            return None
        fresh = [j for j, k in enumerate(known) if k < 0]
        dense = np.zeros((len(papers), state.papers.dense.shape[1]), np.float32)
        lexical = np.zeros((len(papers), state.papers.lexical.shape[1]), np.float32)
        old = np.array([j for j, k in enumerate(known) if k >= 0], dtype=np.int64)
        cols = np.array([known[j] for j in old], dtype=np.int64)
        dense[old] = state.papers.dense[cols]
        lexical[old] = state.papers.lexical[cols]
        if fresh:
            vecs = self.papers.vectors(state, [papers[j] for j in fresh])
            dense[fresh], lexical[fresh] = vecs.dense, vecs.lexical
        has_text = np.array([bool(paper_text(p)) for p in papers])
        empty = sp.csr_matrix((len(papers), 0), dtype=np.float32)
        return state.content_model, ItemContent(dense, empty, has_text, lexical)

    def _embeddings(self, papers: Sequence[Paper]) -> np.ndarray | None:
        """Embeddings of papers (cached in the store by text hash), or None without an encoder."""
        if self.encoder is None or not papers:
            return None
        cache = StoreVectorCache(self.store, self.encoder.name, self.encoder.dim)
        return embed_cached(self.encoder, [paper_text(p) for p in papers], cache)

    def embed_papers(
        self, papers: Sequence[Paper], progress: Callable[[int], None] | None = None
    ) -> None:
        """Compute and cache embeddings at ingest, so nothing is embedded per request."""
        if self.encoder is not None and papers:
            cache = StoreVectorCache(self.store, self.encoder.name, self.encoder.dim)
            embed_cached(self.encoder, [paper_text(p) for p in papers], cache, progress=progress)

    def train_if_needed(
        self,
        progress: Callable[[str], None] | None = None,
        *,
        before_publish: Callable[[], None] | None = None,
    ) -> FittedState | None:
        """`train` when `needs_training` (checked again once no other fit is running)."""
        with self._train_lock:
            if not self.needs_training():
                return None
            return self.train(progress, before_publish=before_publish)

    def train(
        self,
        progress: Callable[[str], None] | None = None,
        *,
        before_publish: Callable[[], None] | None = None,
        retune: bool = False,
    ) -> FittedState:
        """Fit a new model from the store, publish it to every process and serve it here.

        `before_publish` runs just before the publish; raising there publishes nothing
        (the scheduler checks that it still holds its lease). A fit on a little more
        feedback than the served model's keeps its tuning unless `retune`.
        """
        with self._train_lock:
            version_before = self.store.feedback_version()
            ids = self.store.all_paper_ids()
            trainer = Trainer(self.fit_config)
            try:
                # A full fit's ALS needs only the feedback and the papers' order: it starts
                # as soon as the feedback is read, and runs while the papers are read.
                # (Reading both side by side is slower: both parse under the GIL.)
                interactions = self.interactions()
                kept = None if retune else self._kept_tuning(interactions, len(ids))
                if kept is None:
                    trainer.begin(interactions, ids)
                papers = list(self.store.iter_papers(ids=ids))
                content = self._content(papers)
                embeddings = None if content is not None else self._embeddings(papers)
                parts = fit_parts(
                    interactions,
                    papers,
                    self.fit_config,
                    embeddings=embeddings,
                    progress=progress,
                    content=content,
                    reuse=kept,
                    trainer=trainer,
                )
            finally:
                trainer.close()
            parts.version = new_version()
            parts.trained_feedback_version = version_before
            if progress:
                progress("publishing")
            if before_publish is not None:
                before_publish()
            return self.live.publish(parts)

    def _kept_tuning(self, interactions: Interactions, n_papers: int) -> Tuning | None:
        """The served model's tuning, when a refit may keep it: little new feedback and
        catalogue since it was tuned, recently, with the same signals."""
        cfg, state = self.fit_config, self.live.state
        if state is None or set(state.signals) != set(cfg.signals):
            return None
        tuned = state.report.get("tuned")
        nnz = interactions.matrix.nnz
        if not tuned or nnz < cfg.retune_above or cfg.weights is not None:
            return None
        grown = nnz > (1 + cfg.retune_growth) * tuned["interactions"]
        grown |= n_papers > (1 + cfg.retune_growth) * state.size
        if grown or time.time() - tuned["at"] > 3600 * cfg.retune_hours:
            return None
        return Tuning(
            als=state.als,
            weights=dict(state.weights),
            whitening=state.whitening,
            imc_ridge=float(state.report.get("imc_ridge", cfg.default_imc_ridge)),
            evidence=dict(state.report),
            user_ids=state.users.ids,
            paper_ids=state.paper_ids,
            user_factors=state.user_factors,
            item_factors=state.item_factors,
            factor_map=state.factor_map,
        )

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
        """Store one piece of feedback (`toggle`: flip it, decided atomically in the store);
        every process's next ranking for the person uses it (their cached vectors are keyed
        by their feedback version)."""
        exclusive = {"like": ("dislike",), "dislike": ("like", "save")}.get(kind.value, ())
        return self.store.apply_feedback(
            uid, paper_id, kind.value, removed=removed, toggle=toggle, exclusive=exclusive
        )

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
        teammates: dict[str, int] | None = None,
        names: dict[str, str] | None = None,
    ) -> RankResult:
        """Rank candidate papers for one person, or for a team (members' combined taste).

        Hard filters (excluded phrases, muted authors) drop papers and are counted; boosted
        topics and `boost` add to the score; the result is diversified and explained.
        """
        if not candidates:
            return RankResult([], 0, 0)
        state = self.ensure_model()
        if state is None:
            return RankResult([], 0, len(candidates))
        people = (
            self.people.get(state, list(members)) if members else from_feedback(state, [("", {})])
        )
        cands = self.papers.candidates(state, candidates)
        needs_text = prefs is not None and bool(prefs.topics or prefs.exclude)
        texts = self._normalised(candidates) if needs_text else [""] * len(candidates)
        request = Request(
            n=n,
            diversify=diversify,
            exclude_rated=exclude_rated,
            prefs=prefs,
            topic_vectors=self._topic_vectors(prefs) if prefs and prefs.topics else None,
            boost=boost,
            teammates=teammates,
            names=names,
        )
        return rank_papers(
            state, people, cands, candidates, request, texts=texts, explainer=self._explainer(state)
        )

    def rank_many(
        self,
        uids: Sequence[str],
        pools: Sequence[Sequence[Paper]],
        n: int,
        *,
        prefs: Sequence[Preferences],
    ) -> list[RankResult]:
        """Rank each person's own candidates for them alone (as `rank` does for one).

        People without boosted topics are ranked together in one batched product of the one
        ranking path (`ranking.rank`), each person's row banning papers outside their own
        pool; a topic boost rescales a person's scores, so those are ranked one by one.
        """
        out: list[RankResult | None] = [None] * len(uids)
        plain = [i for i, p in enumerate(prefs) if not p.topics and pools[i]]
        for i in range(len(uids)):
            if i not in plain:
                out[i] = self.rank([uids[i]], pools[i], n, prefs=prefs[i])
        state = self.ensure_model() if plain else None
        if state is None:
            return [r or RankResult([], 0, len(pools[i])) for i, r in enumerate(out)]
        union: dict[str, Paper] = {}
        for i in plain:
            for paper in pools[i]:
                union.setdefault(paper.id, paper)
        papers = list(union.values())
        where = {p.id: j for j, p in enumerate(papers)}
        cands = self.papers.candidates(state, papers)
        people = self.people.get(state, [uids[i] for i in plain])
        needs_text = any(prefs[i].exclude for i in plain)
        texts = self._normalised(papers) if needs_text else [""] * len(papers)
        ban = np.ones((len(plain), len(papers)), dtype=bool)
        hidden = []
        for row, i in enumerate(plain):
            own = np.zeros(len(papers), dtype=bool)
            own[[where[p.id] for p in pools[i]]] = True
            by_prefs = hidden_by(prefs[i], papers, texts) & own
            ban[row] = ~own | by_prefs
            hidden.append(int(by_prefs.sum()))
        options = Options(n=n, diversify=True, exclude_rated=True)
        result = rank(state, people, cands, options, ban=ban)
        explainer = self._explainer(state)
        for row, i in enumerate(plain):
            person = people.take([row])
            items = []
            for k, j in enumerate(result.positions[row]):
                if j < 0:
                    break
                paper = papers[int(j)]
                why = explainer.explain(person, cands, int(j), paper)
                items.append(Ranked(paper, float(result.scores[row, k]), why, 0))
            out[i] = RankResult(items, hidden=hidden[row], considered=len(pools[i]))
        return [r if r is not None else RankResult([], 0, 0) for r in out]

    def _explainer(self, state: FittedState) -> Explainer:
        """The explainer of a state (built once per version)."""
        found = self._explainers.get(state.version)
        if found is None:
            found = Explainer(state)
            self._explainers = {state.version: found}
        return found

    def _normalised(self, papers: Sequence[Paper]) -> list[str]:
        """Papers' texts normalised for phrase matching (cached per text)."""
        out = []
        for paper in papers:
            key = (paper.id, text_key(paper))
            text = self._texts.get(key)
            if text is None:
                text = phrases.normalise(paper.text)
                self._texts[key] = text
                if len(self._texts) > 50_000:
                    self._texts.popitem(last=False)
            out.append(text)
        return out

    def _topic_vectors(self, prefs: Preferences) -> np.ndarray | None:
        """Embeddings of a person's topics, in `sorted(prefs.topics)` order (computed once
        per text, cached in Redis by text hash and here in memory)."""
        if self.encoder is None:
            return None
        topics = sorted(prefs.topics)
        missing = [t for t in topics if t not in self._topics]
        if missing:
            cache = StoreVectorCache(self.store, self.encoder.name, self.encoder.dim)
            for topic, vector in zip(
                missing, embed_cached(self.encoder, missing, cache), strict=True
            ):
                self._topics[topic] = vector
            while len(self._topics) > 10_000:
                self._topics.popitem(last=False)
        return np.stack([self._topics[t] for t in topics])

    def search(
        self, uid: str | None, query: str | Query, n: int = 10, *, prefs: Preferences | None = None
    ) -> RankResult:
        """Search the index, then re-rank the top hits for the person asking.

        Text relevance leads; the person's taste reorders papers of similar relevance.
        """
        parsed = parse_query(query) if isinstance(query, str) else query
        # Papers another process ingested since this one last looked are searchable too.
        self.refresh()
        hits = self.index.search(parsed, n=max(50, n * 5))
        if not hits:
            return RankResult([], 0, 0)
        papers = {p.id: p for p in self.store.get_papers([h.paper_id for h in hits]) if p}
        hits = [h for h in hits if h.paper_id in papers]
        if not hits:
            return RankResult([], 0, 0)
        text = np.array([h.score for h in hits], dtype=np.float32)
        spread = float(text.std())
        text_z = (text - text.mean()) / spread if spread > 1e-9 else text * 0
        boost = {h.paper_id: float(t) / SEARCH_TASTE for h, t in zip(hits, text_z, strict=True)}
        result = self.rank(
            [uid] if uid else [],
            [papers[h.paper_id] for h in hits],
            n,
            prefs=prefs,
            diversify=False,
            boost=boost,
            exclude_rated=False,
        )
        return result

    def teammates(self, paper_ids: Sequence[str], workspace: str) -> dict[str, int]:
        """How many people of one workspace liked or saved each paper."""
        prefix = workspace + ":"
        return {
            pid: sum(1 for u in people if u.startswith(prefix))
            for pid, people in self.store.likers(list(paper_ids)).items()
        }

    def names(self, uids: Sequence[str]) -> dict[str, str]:
        """Display names of people (for team explanations; no mention markup)."""
        out = {}
        for uid in uids:
            name = self.store.get_profile(uid).get("name")
            if name:
                out[uid] = name
        return out

    def with_teammates(self, result: RankResult, workspace: str) -> RankResult:
        """The result with each shown paper's teammate count (and its explanation) filled in."""
        counts = self.teammates([r.paper.id for r in result.items], workspace)
        for item in result.items:
            item.teammates = counts.get(item.paper.id, 0)
            item.explanation = dataclasses.replace(item.explanation, teammates=item.teammates)
        return result
