"""The hybrid recommender on synthetic topic data: ranking through the one path, feedback,
fold-in, cold start, a frozen state shared by every reader, persistence."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from recommender.cf import AlsParams
from recommender.metrics import intra_list_similarity
from recommender.model import FitConfig, HybridRecommender, Preferences, Request, persist, tuning
from recommender.model.ranking import Options, rank
from recommender.model.training import Trainer
from recommender.types import Paper

VOCAB = {
    "vision": "image convolutional pixel segmentation detection camera visual object photo depth",
    "language": "language token transformer translation sentence parsing grammar corpus word text",
    "robotics": "robot grasping manipulation locomotion actuator trajectory gripper arm motor",
    "biology": "protein gene cell molecular genome enzyme folding dna biology mutation",
}
TOPICS = list(VOCAB)
FILLER = ["novel", "approach", "results", "method", "analysis", "study", "framework"]
DIM = 32
# A small ALS without the hyperparameter grid keeps each fit well under a second.
FAST = FitConfig(als=AlsParams(16, 1.0, 20.0, 10), als_grid=())


@dataclass
class Corpus:
    """Synthetic papers, their topics and embeddings, and interactions."""

    papers: list[Paper]
    topic: np.ndarray
    emb: np.ndarray
    interactions: list[tuple[str, str, float]]
    user_topics: dict[str, list[int]]
    centroids: np.ndarray


def topic_paper(rng: np.random.Generator, pid: str, t: int, **extra) -> Paper:
    """A paper whose title and abstract are drawn from topic t's vocabulary."""
    words = VOCAB[TOPICS[t]].split()
    title = " ".join([*rng.choice(words, 3, replace=False), rng.choice(FILLER)])
    abstract = " ".join([*rng.choice(words, 8), *rng.choice(FILLER, 3)])
    return Paper(id=pid, title=title.capitalize(), abstract=abstract, **extra)


def make_corpus(seed: int = 0, n_papers: int = 300, n_users: int = 60) -> Corpus:
    """~300 papers in 4 topics, 60 users who like one or two topics (plus a few dislikes)."""
    rng = np.random.default_rng(seed)
    centroids = rng.normal(size=(len(TOPICS), DIM))
    papers, topic, emb = [], [], []
    for i in range(n_papers):
        t = i % len(TOPICS)
        stars = int(rng.integers(0, 2000)) if i % 10 == 0 else 0
        papers.append(
            topic_paper(
                rng,
                f"p{i}",
                t,
                authors=[f"Author {i % 23}", f"Author {TOPICS[t]}"],
                upvotes=int(rng.integers(0, 60)),
                github_stars=stars,
            )
        )
        topic.append(t)
        emb.append(centroids[t] + 0.35 * rng.normal(size=DIM))
    topic_arr = np.array(topic)
    interactions: list[tuple[str, str, float]] = []
    user_topics: dict[str, list[int]] = {}
    for u in range(n_users):
        liked = [u % 4] if u % 3 else [u % 4, (u + 1) % 4]
        user_topics[f"u{u}"] = liked
        for t in liked:
            for j in rng.choice(np.flatnonzero(topic_arr == t), 8, replace=False):
                interactions.append((f"u{u}", f"p{j}", 1.0))
        others = np.flatnonzero(~np.isin(topic_arr, liked))
        for j in rng.choice(others, 2, replace=False):
            interactions.append((f"u{u}", f"p{j}", -1.0))
    return Corpus(
        papers, topic_arr, np.asarray(emb, np.float32), interactions, user_topics, centroids
    )


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    """The shared synthetic corpus."""
    return make_corpus()


@pytest.fixture(scope="module")
def fitted(corpus: Corpus) -> HybridRecommender:
    """A model fitted once on the corpus (read-only: copy it before changing it)."""
    return HybridRecommender(FAST).fit(corpus.interactions, corpus.papers, embeddings=corpus.emb)


@pytest.fixture
def model(fitted: HybridRecommender) -> HybridRecommender:
    """A second reader of the same fitted state, with overlays of its own to fold into."""
    return HybridRecommender(fitted.config, fitted.state)


def single_topic_users(corpus: Corpus) -> list[str]:
    """Users who like exactly one topic."""
    return [u for u, ts in corpus.user_topics.items() if len(ts) == 1]


def history(corpus: Corpus, user: str) -> list[tuple[str, float]]:
    """A user's (paper, weight) pairs from the corpus interactions."""
    return [(p, w) for u, p, w in corpus.interactions if u == user]


def ids(recs) -> list[str]:
    """Paper ids of a recommendation list."""
    return [r.paper_id for r in recs]


def topic_of(corpus: Corpus, pid: str) -> int:
    """The topic of a paper id like `p17`."""
    return int(corpus.topic[int(pid[1:])])


def community(paper: Paper) -> float:
    """The community prior the model documents: log upvotes + half log stars."""
    return float(np.log1p(paper.upvotes) + 0.5 * np.log1p(paper.github_stars))


# ---------------------------------------------------------------- fit and recommend


def test_fit_reports_what_it_saw(fitted: HybridRecommender, corpus: Corpus) -> None:
    report = fitted.report
    assert fitted.fitted
    assert report["users"] == 60
    assert report["papers"] == 300
    assert report["interactions"] == len({(u, p) for u, p, _ in corpus.interactions})
    assert report["unknown_papers_skipped"] == 0
    assert report["content"] == "embedding"


@pytest.mark.parametrize("diversify", [False, True])
def test_liked_topic_dominates_top10(
    fitted: HybridRecommender, corpus: Corpus, diversify: bool
) -> None:
    users = single_topic_users(corpus)
    recs = fitted.recommend(users, n=10, diversify=diversify)
    for user, rec in zip(users, recs, strict=True):
        assert len(rec) == 10
        on_topic = sum(topic_of(corpus, pid) == corpus.user_topics[user][0] for pid in ids(rec))
        assert on_topic >= 8, (user, ids(rec))


def test_two_topic_users_rank_both_topics_above_the_rest(
    fitted: HybridRecommender, corpus: Corpus
) -> None:
    users = [u for u, ts in corpus.user_topics.items() if len(ts) == 2]
    scores = fitted.score(users)
    for user, rec, row in zip(users, fitted.recommend(users, n=20), scores, strict=True):
        liked = corpus.user_topics[user]
        topics = [topic_of(corpus, pid) for pid in ids(rec)]
        assert sum(t in liked for t in topics) >= 18
        # Even the weaker of the two interests scores above every topic they never liked.
        weaker = min(row[corpus.topic == t].mean() for t in liked)
        strongest_other = max(row[corpus.topic == t].mean() for t in range(4) if t not in liked)
        assert weaker > strongest_other + 0.5


def test_large_catalogue_validates_on_a_sample_of_papers(corpus: Corpus) -> None:
    """Past `validation_items` papers, held-out papers are ranked among a uniform sample."""
    config = FitConfig(als=FAST.als, als_grid=(), validation_items=120)
    trainer = Trainer(config)
    trainer.fit(corpus.interactions, corpus.papers, embeddings=corpus.emb)
    truth = {0: np.array([5, 250]), 1: np.array([7])}
    sample, ks = tuning.validation_columns(trainer, [truth, {2: np.array([299])}])
    assert sample is not None and 120 <= len(sample) <= 124
    assert {5, 250, 7, 299} <= set(sample.tolist())  # every held-out paper is a candidate
    assert np.all(np.diff(sample) > 0)
    assert ks == (4, 8, 20, 40)  # depths 10..100 of 300 papers, at 120/300 of the papers
    blend_report = trainer.report["blend"]
    assert blend_report["catalog"]["tasks"] == ["held-out", "held-out-rare"]
    assert blend_report["cold"]["tasks"] == ["new-only"]
    assert blend_report["catalog"]["ks"] == [4, 8, 20, 40]
    # The weights chosen on the sample still rank each person's topic first.
    model = HybridRecommender(config).fit(corpus.interactions, corpus.papers, embeddings=corpus.emb)
    users = single_topic_users(corpus)
    for user, rec in zip(users, model.recommend(users, n=10), strict=True):
        on_topic = sum(topic_of(corpus, pid) == corpus.user_topics[user][0] for pid in ids(rec))
        assert on_topic >= 8, (user, ids(rec))
    # A catalogue within the limit is ranked whole.
    whole = Trainer(FAST)
    whole.fit(corpus.interactions, corpus.papers, embeddings=corpus.emb)
    assert tuning.validation_columns(whole, [truth]) == (None, (10, 20, 50, 100))


def test_imc_sums_after_the_held_out_rows_return_match_a_fresh_computation(
    corpus: Corpus,
) -> None:
    """The final fit updates AᵀA and AᵀR⁺X with the changed rows only: same sums."""
    trainer = Trainer(FAST)
    parts = trainer.fit(corpus.interactions, corpus.papers, embeddings=corpus.emb)
    X = parts.dense.astype(np.float64)
    full = parts.user_rows.astype(np.float64)
    A, liked = full @ X, full.multiply(full > 0) @ X
    assert np.allclose(trainer.imc_parts[0], A.T @ A, rtol=1e-4, atol=1e-3)
    assert np.allclose(trainer.imc_parts[1], A.T @ liked, rtol=1e-4, atol=1e-3)
    # Directly: a first call, then one on a matrix with a few rows changed.
    train = parts.user_rows.tolil()
    train[3, :] = 0
    train[7, 10] = 2.0
    train = train.tocsr()
    trainer._imc_last = None
    trainer._imc_fit(train, train.multiply(train > 0).tocsr())
    rows = parts.user_rows
    updated = trainer._imc_fit(rows, rows.multiply(rows > 0).tocsr())
    assert np.allclose(updated, A, atol=1e-4)
    assert np.allclose(trainer.imc_parts[0], A.T @ A, rtol=1e-4, atol=1e-3)
    assert np.allclose(trainer.imc_parts[1], A.T @ liked, rtol=1e-4, atol=1e-3)


def test_imc_sums_with_dislikes_match_their_definition(corpus: Corpus) -> None:
    """AᵀR⁺X leaves out disliked papers (computed from the few rows that have any)."""
    trainer = Trainer(FAST)
    parts = trainer.fit(corpus.interactions, corpus.papers, embeddings=corpus.emb)
    rows = parts.user_rows.tolil()
    rows[2, 5] = -1.0
    rows[9, 40] = -1.0
    rows[9, 41] = -0.5
    rows = rows.tocsr()
    trainer._imc_last = None
    A = trainer._imc_fit(rows, rows.multiply(rows > 0).tocsr())
    X, R = parts.dense.astype(np.float64), rows.astype(np.float64)
    liked = R.multiply(R > 0) @ X
    assert np.allclose(A, R @ X, atol=1e-4)
    assert np.allclose(trainer.imc_parts[1], (R @ X).T @ liked, rtol=1e-4, atol=1e-3)
    assert not np.allclose(trainer.imc_parts[1], trainer.imc_parts[0], rtol=1e-4, atol=1e-3)


def test_default_config_without_embeddings_uses_lsa_and_ranks_topics(corpus: Corpus) -> None:
    model = HybridRecommender().fit(corpus.interactions, corpus.papers, embeddings=None)
    assert model.report["content"] == "lsa"
    assert "als_grid" in model.report  # the default config searches the ALS grid
    users = single_topic_users(corpus)
    for user, rec in zip(users, model.recommend(users, n=10), strict=True):
        on_topic = sum(topic_of(corpus, pid) == corpus.user_topics[user][0] for pid in ids(rec))
        assert on_topic >= 8, (user, ids(rec))


@pytest.mark.parametrize("diversify", [False, True])
def test_batched_ranking_equals_one_person_at_a_time(
    fitted: HybridRecommender, corpus: Corpus, diversify: bool
) -> None:
    users = [*list(corpus.user_topics)[:15], "stranger"]
    state, cands = fitted.state, fitted.candidates()
    options = Options(n=10, diversify=diversify)
    batched = rank(state, fitted.people(users), cands, options)
    small = rank(state, fitted.people(users), cands, options, batch=4)
    for r, user in enumerate(users):
        alone = rank(state, fitted.people([user]), cands, options)
        assert batched.positions[r].tolist() == alone.positions[0].tolist()
        assert small.positions[r].tolist() == alone.positions[0].tolist()
        assert batched.scores[r] == pytest.approx(alone.scores[0], abs=1e-5)


def test_never_returns_own_rated_papers(fitted: HybridRecommender, corpus: Corpus) -> None:
    users = list(corpus.user_topics)
    for user, rec in zip(users, fitted.recommend(users, n=60), strict=True):
        rated = {p for p, _ in history(corpus, user)}  # likes and dislikes alike
        assert len(rec) == 60
        assert not rated & set(ids(rec))


def test_exclude_as_shared_set(fitted: HybridRecommender) -> None:
    plain = ids(fitted.recommend("u1", n=10, diversify=False))
    banned = set(plain[:3])
    again = fitted.recommend(["u1", "u2"], n=10, exclude=banned, diversify=False)
    assert not banned & set(ids(again[0]))
    assert not banned & set(ids(again[1]))
    assert ids(again[0])[:7] == plain[3:]


def test_exclude_per_user_dict_only_affects_that_user(fitted: HybridRecommender) -> None:
    plain = fitted.recommend(["u1", "u2"], n=10, diversify=False)
    banned = ids(plain[0])[:2]
    got = fitted.recommend(["u1", "u2"], n=10, exclude={"u1": banned}, diversify=False)
    assert not set(banned) & set(ids(got[0]))
    assert ids(got[0])[:8] == ids(plain[0])[2:]
    assert ids(got[1]) == ids(plain[1])


def test_muted_authors_and_excluded_phrases_are_hidden_and_counted(
    fitted: HybridRecommender, corpus: Corpus
) -> None:
    plain = fitted.rank(["u1"], corpus.papers, Request(n=10, diversify=False))
    author = plain[0].paper.authors[0]
    by_author = {p.id for p in corpus.papers if author in p.authors}
    muted = fitted.rank(
        ["u1"],
        corpus.papers,
        Request(n=30, diversify=False, prefs=Preferences(muted={author.upper()})),
    )
    assert len(muted) == 30
    assert not by_author & {r.paper.id for r in muted}
    rated = {p for p, _ in history(corpus, "u1")}
    assert muted.hidden == len(by_author)  # counted, rated or not
    assert muted.considered == len(corpus.papers)
    assert [r.paper.id for r in muted][:5] == [
        r.paper.id for r in plain if r.paper.id not in by_author
    ][:5]
    assert not rated & {r.paper.id for r in muted}
    # A phrase hides papers with the whole phrase, not every paper with one of its words.
    word = "camera"
    phrase = f"{word} nonexistentword"
    with_word = {p.id for p in corpus.papers if word in p.text.lower()}
    assert with_word
    kept = fitted.rank(["u1"], corpus.papers, Request(n=300, prefs=Preferences(exclude={phrase})))
    assert kept.hidden == 0
    gone = fitted.rank(["u1"], corpus.papers, Request(n=300, prefs=Preferences(exclude={word})))
    assert gone.hidden == len(with_word)
    assert not with_word & {r.paper.id for r in gone}


def test_candidates_restrict_results(fitted: HybridRecommender, corpus: Corpus) -> None:
    rng = np.random.default_rng(3)
    pool = [f"p{i}" for i in rng.choice(300, 40, replace=False)]
    for diversify in (False, True):
        recs = fitted.recommend(
            ["u1", "stranger"], candidates=[*pool, "not-a-paper"], n=10, diversify=diversify
        )
        for rec in recs:
            assert len(rec) == 10
            assert set(ids(rec)) <= set(pool)


def test_results_sorted_by_score_without_diversify(fitted: HybridRecommender) -> None:
    rec = fitted.recommend("u5", n=25, diversify=False)
    scores = [r.score for r in rec]
    assert scores == sorted(scores, reverse=True)
    # The scores are the model's blended scores, and nothing unrated scores higher.
    state = fitted.state
    row = fitted.score(["u5"])[0]
    for r in rec:
        assert r.score == pytest.approx(float(row[state.pidx[r.paper_id]]), abs=1e-6)
    rated = {state.paper_ids[c] for c in fitted.people(["u5"]).rows.indices}
    unrated = [s for pid, s in zip(state.paper_ids, row, strict=True) if pid not in rated]
    assert sorted(unrated, reverse=True)[:25] == pytest.approx(scores, abs=1e-6)


def test_diversified_list_has_no_repeats_when_few_papers_remain(
    fitted: HybridRecommender, corpus: Corpus
) -> None:
    """Regression: MMR used to repeat the top paper once the unrated candidates ran out."""
    rated = [p for p, _ in history(corpus, "u1")]
    fresh = [p for p in ("p0", "p1", "p2", "p3") if p not in rated][:3]
    for diversify in (True, False):
        rec = fitted.recommend("u1", candidates=rated + fresh, n=10, diversify=diversify)
        assert sorted(ids(rec)) == sorted(fresh)


def test_diversity_reorders_only_the_first_window(fitted: HybridRecommender) -> None:
    """Deeper positions follow the scores, so a long list is the plain one past the top."""
    plain = ids(fitted.recommend("u5", n=60, diversify=False))
    mixed = ids(fitted.recommend("u5", n=60, diversify=True))
    assert set(mixed[:10]) <= set(plain[:40])
    rest = [p for p in plain if p not in set(mixed[:10])]
    assert mixed[10:] == rest[:50]


# ---------------------------------------------------------------- a state every reader shares


def test_the_fitted_state_is_read_only(fitted: HybridRecommender) -> None:
    state = fitted.state
    for array in (state.papers.dense, state.item_factors, state.users.sigma, state.warm):
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 0
    with pytest.raises(AttributeError):
        state.version = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        state.pidx["p0"] = 7  # type: ignore[index]


def test_fold_ins_and_new_papers_never_touch_the_shared_state(
    fitted: HybridRecommender, corpus: Corpus
) -> None:
    """Two readers of one state: what one folds in or adds is invisible to the other."""
    before = fitted.recommend(list(corpus.user_topics), n=10)
    dense = fitted.state.papers.dense.copy()
    reader = HybridRecommender(fitted.config, fitted.state)
    likes = [f"p{j}" for j in np.flatnonzero(corpus.topic == 2)[:12]]
    reader.partial_fit_users(["u0"], [[(p, 1.0) for p in likes]])
    reader.partial_fit_items([Paper(id="late", title="robot gripper")], corpus.emb[:1])
    assert reader.recommend("u0", n=10) != before[0]
    assert fitted.recommend(list(corpus.user_topics), n=10) == before
    assert np.array_equal(fitted.state.papers.dense, dense)
    assert "late" not in fitted.state.pidx


# ---------------------------------------------------------------- feedback and fold-in


def rank_of(model: HybridRecommender, user: str, pids: list[str]) -> np.ndarray:
    """Positions (0 = best) of papers in the user's full score ranking."""
    order = np.argsort(-model.score([user])[0], kind="stable")
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    return position[[model.state.pidx[p] for p in pids]]


@dataclass
class Dups:
    """Near-duplicate corpus: topic 0 is 8 groups of 5 copies, topic 1 is 40 singles."""

    papers: list[Paper]
    emb: np.ndarray
    group: np.ndarray
    model: HybridRecommender


@pytest.fixture(scope="module")
def dups() -> Dups:
    """A model over papers that come in groups of near-identical copies."""
    rng = np.random.default_rng(7)
    centroids = rng.normal(size=(2, 24))
    papers, emb, group = [], [], []
    for g in range(8):
        centre = centroids[0] + 0.8 * rng.normal(size=24)
        words = " ".join(rng.choice(VOCAB["vision"].split(), 4, replace=False))
        for _ in range(5):
            papers.append(Paper(id=f"d{len(papers)}", title=words, abstract=words))
            emb.append(centre + 0.01 * rng.normal(size=24))
            group.append(g)
    for _ in range(40):
        words = " ".join(rng.choice(VOCAB["language"].split(), 4, replace=False))
        papers.append(Paper(id=f"d{len(papers)}", title=words))
        emb.append(centroids[1] + 0.5 * rng.normal(size=24))
        group.append(-1)
    group_arr = np.array(group)
    interactions = []
    for u in range(20):
        pool = np.flatnonzero(group_arr >= 0) if u % 2 == 0 else np.flatnonzero(group_arr < 0)
        interactions += [(f"v{u}", f"d{j}", 1.0) for j in rng.choice(pool, 6, replace=False)]
    emb_arr = np.asarray(emb, np.float32)
    model = HybridRecommender(FAST).fit(interactions, papers, embeddings=emb_arr)
    return Dups(papers, emb_arr, group_arr, model)


def test_mmr_lowers_intra_list_similarity(dups: Dups) -> None:
    model = dups.model
    users = [f"v{u}" for u in range(0, 20, 2)]
    lists = {}
    for diversify in (False, True):
        recs = model.recommend(users, n=10, diversify=diversify)
        lists[diversify] = np.array([[model.state.pidx[r.paper_id] for r in rec] for rec in recs])
    plain = intra_list_similarity(dups.emb, lists[False])
    mmr = intra_list_similarity(dups.emb, lists[True])
    assert mmr < plain - 0.01
    # Variety means more distinct near-duplicate groups per list.
    groups_plain = np.mean([len(set(dups.group[row])) for row in lists[False]])
    groups_mmr = np.mean([len(set(dups.group[row])) for row in lists[True]])
    assert groups_mmr > groups_plain


@pytest.fixture(scope="module")
def with_twins(corpus: Corpus) -> tuple[HybridRecommender, list[tuple[str, str]]]:
    """The corpus plus pairs of near-identical topic-1 papers nobody has touched yet."""
    rng = np.random.default_rng(5)
    papers, emb, pairs = list(corpus.papers), list(corpus.emb), []
    for k, word in enumerate(("zebrafish", "quokka", "axolotl", "narwhal")):
        centre = corpus.centroids[1] + 0.2 * rng.normal(size=DIM)
        title = f"{word} {' '.join(rng.choice(VOCAB['language'].split(), 3, replace=False))}"
        pair = (f"twin{k}a", f"twin{k}b")
        for pid in pair:
            papers.append(Paper(id=pid, title=title, abstract=f"{word} {word} results"))
            emb.append(centre + 0.01 * rng.normal(size=DIM))
        pairs.append(pair)
    model = HybridRecommender(FAST).fit(
        corpus.interactions, papers, embeddings=np.asarray(emb, np.float32)
    )
    return model, pairs


def test_dislike_pushes_similar_papers_down(
    with_twins: tuple[HybridRecommender, list[tuple[str, str]]], corpus: Corpus
) -> None:
    fitted, pairs = with_twins
    user = next(u for u in single_topic_users(corpus) if corpus.user_topics[u] == [1])
    hist = history(corpus, user)
    base = HybridRecommender(fitted.config, fitted.state)
    base.partial_fit_users([user], [hist])
    before = base.score([user])[0]
    moved = []
    for disliked, twin in pairs:
        model = HybridRecommender(fitted.config, fitted.state)
        model.partial_fit_users([user], [[*hist, (disliked, -1.0)]])
        change = model.score([user])[0] - before
        col = base.state.pidx[twin]
        rest = np.delete(change, [col, base.state.pidx[disliked]])
        # The twin of the disliked paper loses more than almost any other paper (how far
        # depends on the blend's share of content-based signals) ...
        assert change[col] < np.percentile(rest, 20)
        assert change[col] < np.median(rest) - 0.05
        # ... and never moves up.
        assert rank_of(model, user, [twin])[0] >= rank_of(base, user, [twin])[0]
        moved.append(rank_of(model, user, [twin])[0] - rank_of(base, user, [twin])[0])
        assert disliked not in ids(model.recommend(user, n=100))
    assert max(moved) >= 2


def test_removing_a_reaction_removes_its_effect(model: HybridRecommender, corpus: Corpus) -> None:
    user = single_topic_users(corpus)[0]
    trained = ids(model.recommend(user, n=10, diversify=False))
    hist = history(corpus, user)
    model.partial_fit_users([user], [hist])
    original = model.recommend(user, n=10, diversify=False)
    # Folding in the same history agrees with what training learned.
    assert len(set(ids(original)) & set(trained)) >= 8
    disliked = original[0].paper_id
    model.partial_fit_users([user], [[*hist, (disliked, -1.0)]])
    with_dislike = model.recommend(user, n=10, diversify=False)
    assert ids(with_dislike) != ids(original)
    assert disliked not in ids(with_dislike)
    model.partial_fit_users([user], [hist])  # the reaction was taken back
    restored = model.recommend(user, n=10, diversify=False)
    assert ids(restored) == ids(original)
    assert [r.score for r in restored] == [r.score for r in original]


def test_fold_in_moves_new_topic_up_without_refit(
    model: HybridRecommender, fitted: HybridRecommender, corpus: Corpus
) -> None:
    user = next(u for u in single_topic_users(corpus) if corpus.user_topics[u] == [0])
    topic_b = 2
    before = [topic_of(corpus, p) for p in ids(model.recommend(user, n=10, diversify=False))]
    assert before.count(topic_b) <= 1
    new_likes = [f"p{j}" for j in np.flatnonzero(corpus.topic == topic_b)[:12]]
    fit_seconds = model.report["fit_seconds"]
    model.partial_fit_users([user], [[*history(corpus, user), *((p, 1.0) for p in new_likes)]])
    after_recs = model.recommend(user, n=10, diversify=False)
    after = [topic_of(corpus, p) for p in ids(after_recs)]
    assert after.count(topic_b) >= 4
    assert not set(new_likes) & set(ids(after_recs))  # freshly liked papers are now "rated"
    assert model.report["fit_seconds"] == fit_seconds  # no refit happened
    # Other users are untouched, and so is the other reader of the same state.
    others = [u for u in corpus.user_topics if u != user]
    assert model.recommend(others, n=10) == fitted.recommend(others, n=10)
    assert fitted.recommend(user, n=10, diversify=False) != after_recs


def test_fold_in_brand_new_user(model: HybridRecommender, corpus: Corpus) -> None:
    assert not model.people(["newcomer"]).known[0]
    cold = ids(model.recommend("newcomer", n=10, diversify=False))
    likes = [f"p{j}" for j in np.flatnonzero(corpus.topic == 3)[:6]]
    model.partial_fit_users(["newcomer"], [[(p, 1.0) for p in likes] + [("no-such-paper", 1.0)]])
    assert model.people(["newcomer"]).known[0]
    rec = ids(model.recommend("newcomer", n=10))
    assert rec != cold
    assert sum(topic_of(corpus, p) == 3 for p in rec) >= 8
    assert not set(likes) & set(rec)
    # Batched calls see the new row too.
    assert ids(model.recommend(["u1", "newcomer"], n=10)[1]) == rec


def test_user_whose_feedback_was_all_removed_gets_community_ranking(
    model: HybridRecommender,
) -> None:
    """Regression: a folded-in empty history used to give all-zero (arbitrary) scores."""
    model.partial_fit_users(["u3", "ghost"], [[], []])
    stranger = model.recommend("stranger", n=10, diversify=False)
    assert ids(model.recommend("u3", n=10, diversify=False)) == ids(stranger)
    assert ids(model.recommend("ghost", n=10, diversify=False)) == ids(stranger)
    assert model.explain("u3", stranger[0].paper_id).liked == ()


# ---------------------------------------------------------------- cold start


def test_unknown_user_gets_community_prior(fitted: HybridRecommender, corpus: Corpus) -> None:
    untouched = [
        p.id for p in corpus.papers if p.id not in {pid for _, pid, _ in corpus.interactions}
    ]
    assert len(untouched) >= 10
    rec = fitted.recommend("stranger", candidates=untouched, n=len(untouched), diversify=False)
    assert len(rec) == len(untouched)
    prior = [community(corpus.papers[int(r.paper_id[1:])]) for r in rec]
    assert prior == pytest.approx(sorted(prior, reverse=True), abs=1e-5)
    # Papers with GitHub stars lead the list of untouched papers.
    assert corpus.papers[int(rec[0].paper_id[1:])].github_stars > 0


def test_new_papers_rank_this_mornings_papers(model: HybridRecommender, corpus: Corpus) -> None:
    rng = np.random.default_rng(11)
    topic_a, topic_c = 1, 3
    fresh, emb = [], []
    for k in range(6):
        t = topic_a if k % 2 == 0 else topic_c
        fresh.append(topic_paper(rng, f"new{k}", t, upvotes=0))
        emb.append(corpus.centroids[t] + 0.35 * rng.normal(size=DIM))
    with pytest.raises(ValueError, match="embeddings"):
        HybridRecommender(model.config, model.state).partial_fit_items(fresh)
    assert model.partial_fit_items(fresh, np.asarray(emb, np.float32)) == 6
    assert model.partial_fit_items(fresh, np.asarray(emb, np.float32)) == 0  # already known
    new_ids = [p.id for p in fresh]
    user = next(u for u in single_topic_users(corpus) if corpus.user_topics[u] == [topic_a])
    rec = model.recommend(user, candidates=new_ids, n=6, diversify=False)
    assert len(rec) == 6
    topics = [topic_a if int(r.paper_id[3:]) % 2 == 0 else topic_c for r in rec]
    assert topics == [topic_a] * 3 + [topic_c] * 3
    # The new papers compete in the whole catalogue too.
    everything = ids(model.recommend(user, n=40, diversify=False))
    assert {"new0", "new2", "new4"} & set(everything)
    assert not {"new1", "new3", "new5"} & set(everything)


def test_fit_with_no_interactions_follows_community_prior(corpus: Corpus) -> None:
    model = HybridRecommender(FAST).fit([], corpus.papers, embeddings=corpus.emb)
    assert model.report["users"] == 0
    assert model.report["interactions"] == 0
    rec = model.recommend("anyone", n=30, diversify=False)
    prior = [community(corpus.papers[int(r.paper_id[1:])]) for r in rec]
    assert prior == pytest.approx(sorted(prior, reverse=True), abs=1e-5)
    assert prior[0] == pytest.approx(max(community(p) for p in corpus.papers), abs=1e-5)
    # Feedback still folds in on a model that was fitted with none.
    likes = [f"p{j}" for j in np.flatnonzero(corpus.topic == 2)[:5]]
    model.partial_fit_users(["anyone"], [[(p, 1.0) for p in likes]])
    rec = ids(model.recommend("anyone", n=10))
    assert sum(topic_of(corpus, p) == 2 for p in rec) >= 8


def test_interactions_with_unknown_papers_are_skipped(corpus: Corpus) -> None:
    extra = [("u1", "ghost-1", 1.0), ("u2", "ghost-2", -1.0), ("nobody", "ghost-3", 1.0)]
    model = HybridRecommender(FAST).fit(
        corpus.interactions + extra, corpus.papers, embeddings=corpus.emb
    )
    assert model.report["unknown_papers_skipped"] == 3
    assert model.report["users"] == 60  # "nobody" had only an unknown paper
    assert not model.people(["nobody"]).known[0]
    assert len(model.recommend("u1", n=10)) == 10


# ---------------------------------------------------------------- explanations


def test_explain_names_close_liked_papers_of_the_same_topic(
    fitted: HybridRecommender, corpus: Corpus
) -> None:
    for user in single_topic_users(corpus)[:6]:
        liked = {p for p, w in history(corpus, user) if w > 0}
        for rec in fitted.recommend(user, n=3, diversify=False):
            why = fitted.explain(user, rec.paper_id)
            assert why.liked, (user, rec)
            for pid, title in why.liked:
                assert pid in liked
                assert title == corpus.papers[int(pid[1:])].title
                assert topic_of(corpus, pid) == topic_of(corpus, rec.paper_id)
            assert why.text().startswith("Because you liked “")


def test_explain_never_names_a_paper_from_another_topic(
    fitted: HybridRecommender, corpus: Corpus
) -> None:
    """A paper far from everything the person liked gets no "because you liked"."""
    user = single_topic_users(corpus)[0]
    mine = corpus.user_topics[user][0]
    for pid in [p.id for p in corpus.papers if topic_of(corpus, p.id) != mine][:20]:
        why = fitted.explain(user, pid)
        for liked, _ in why.liked:
            assert topic_of(corpus, liked) == topic_of(corpus, pid)


def test_explain_for_user_without_history(fitted: HybridRecommender, corpus: Corpus) -> None:
    why = fitted.explain("stranger", "p0")
    assert why.liked == ()
    assert why.text() == why.reason
    assert why.reason == f"Popular on Hugging Face (▲ {corpus.papers[0].upvotes})"


def test_explain_unknown_paper(fitted: HybridRecommender) -> None:
    why = fitted.explain("u1", "no-such-paper")
    assert why.liked == ()
    assert why.text()


def test_a_topic_that_lifted_a_paper_is_its_reason(
    fitted: HybridRecommender, corpus: Corpus
) -> None:
    user = next(u for u in single_topic_users(corpus) if corpus.user_topics[u] == [0])
    robotics = [p for p in corpus.papers if topic_of(corpus, p.id) == 2]
    phrase = "gripper"
    result = fitted.rank(
        [user], robotics, Request(n=5, diversify=False, prefs=Preferences(topics={phrase}))
    )
    assert result.items
    for item in result:
        assert phrase in item.paper.text.lower()
        assert f"On your topic “{phrase}”" in item.explanation.text()
        assert "Because you liked" not in item.explanation.text()


def test_a_team_explanation_names_the_reader_not_you(
    fitted: HybridRecommender, corpus: Corpus
) -> None:
    vision = next(u for u in single_topic_users(corpus) if corpus.user_topics[u] == [0])
    language = next(u for u in single_topic_users(corpus) if corpus.user_topics[u] == [1])
    pool = [p for p in corpus.papers if topic_of(corpus, p.id) in (0, 1)]
    result = fitted.rank(
        [vision, language],
        pool,
        Request(n=10, names={vision: "Ana", language: "Bo"}),
    )
    texts = [r.explanation.text() for r in result]
    assert any("Close to Ana's reading: “" in t for t in texts)
    assert any("Close to Bo's reading: “" in t for t in texts)
    assert not any("you" in t.lower().split() for t in texts)
    for item in result:
        reader = "Ana" if topic_of(corpus, item.paper.id) == 0 else "Bo"
        if item.explanation.liked:
            assert item.explanation.reader == reader


# ---------------------------------------------------------------- persistence


def test_save_load_round_trip(fitted: HybridRecommender, tmp_path) -> None:
    users = ["u0", "u1", "u7", "u30", "stranger"]
    path = tmp_path / "model.npz"
    fitted.save(path)
    loaded = HybridRecommender.load(path)
    assert np.array_equal(loaded.score(users), fitted.score(users))
    some = [f"p{i}" for i in range(0, 300, 7)]
    assert np.array_equal(loaded.score(users, some), fitted.score(users, some))
    for diversify in (False, True):
        assert loaded.recommend(users, n=10, diversify=diversify) == fitted.recommend(
            users, n=10, diversify=diversify
        )
    assert loaded.explain("u1", "p5").liked == fitted.explain("u1", "p5").liked
    assert loaded.report == fitted.report


def test_loaded_model_accepts_feedback_and_new_papers(
    fitted: HybridRecommender, corpus: Corpus, tmp_path
) -> None:
    path = tmp_path / "model.npz"
    fitted.save(path)
    loaded = HybridRecommender.load(path)
    likes = [f"p{j}" for j in np.flatnonzero(corpus.topic == 1)[:6]]
    loaded.partial_fit_users(["newcomer"], [[(p, 1.0) for p in likes]])
    assert sum(topic_of(corpus, p) == 1 for p in ids(loaded.recommend("newcomer"))) >= 8
    assert loaded.partial_fit_items([Paper(id="late", title="Robot gripper")], corpus.emb[:1]) == 1
    assert "late" in ids(loaded.recommend("stranger", candidates=["late", "p1"], n=2))


@pytest.mark.parametrize("blob", [b"definitely not a model" * 20, b"PK\x03\x04broken zip", b""])
def test_load_garbage_raises_clear_error(blob: bytes, tmp_path) -> None:
    with pytest.raises(persist.ModelFormatError, match="not a saved paperbot model"):
        persist.from_bytes(blob)
    path = tmp_path / "model.npz"
    path.write_bytes(blob)
    with pytest.raises(ValueError, match=r"model\.npz: not a saved paperbot model"):
        HybridRecommender.load(path)


def test_load_other_npz_raises_clear_error(tmp_path) -> None:
    path = tmp_path / "other.npz"
    np.savez(path, weights=np.ones(3))
    with pytest.raises(ValueError, match="not a saved paperbot model"):
        HybridRecommender.load(path)
    meta = np.frombuffer(b'{"format": 99}', dtype=np.uint8)
    np.savez(path, meta=meta)
    with pytest.raises(ValueError, match="format 99 is not supported"):
        HybridRecommender.load(path)


def test_a_truncated_model_is_refused_not_half_loaded(fitted: HybridRecommender) -> None:
    blob = persist.to_bytes(fitted.state.parts())
    with pytest.raises(persist.ModelFormatError):
        persist.from_bytes(blob[: len(blob) // 2])


def test_a_newcomer_who_only_disliked_keeps_the_community_ranking_as_base(
    model: HybridRecommender, corpus: Corpus
) -> None:
    """A person whose only feedback is 👎 (nothing on a first card appealed) is ranked by the
    community prior with the disliked topic pushed down, not by distance from a few papers."""
    cold = ids(model.recommend("newcomer", n=20, diversify=False))
    disliked = [f"p{j}" for j in np.flatnonzero(corpus.topic == 2)[:3]]
    model.partial_fit_users(["newcomer"], [[(p, -1.0) for p in disliked]])
    assert model.people(["newcomer"]).known[0]
    after = ids(model.recommend("newcomer", n=20, diversify=False))
    # Still mostly the community's favourites ...
    assert len(set(after) & set(cold)) >= 10
    # ... minus the topic they turned down.
    assert sum(topic_of(corpus, p) == 2 for p in after) < sum(
        topic_of(corpus, p) == 2 for p in cold
    )
    assert not set(disliked) & set(after)


def test_validation_holds_out_both_kinds_of_next_saves(corpus: Corpus) -> None:
    """Half of each validation person's held-out saves at random, half toward rarely
    saved papers: the rare half is part of the held-out set and rarer on average."""
    trainer = Trainer(FAST)
    trainer.paper_ids = [p.id for p in corpus.papers]
    trainer.pidx = {pid: i for i, pid in enumerate(trainer.paper_ids)}
    full, _, _ = trainer._matrix(corpus.interactions)
    train, held, _, _ = trainer._split(full, np.random.default_rng(0))
    rare = trainer._rare_val
    assert rare and set(rare) <= set(held)
    for u, items in rare.items():
        assert set(items.tolist()) <= set(held[u].tolist())
        assert not train[u, items].toarray().any()  # hidden from training
    counts = np.asarray((full > 0).sum(axis=0)).ravel()
    rare_items = np.concatenate(list(rare.values()))
    other = np.concatenate([np.setdiff1d(held[u], rare.get(u, ())) for u in held])
    assert counts[rare_items].mean() < counts[other].mean()


def test_a_side_from_the_source_moment_scores_as_one_from_the_product() -> None:
    """`SignalSide.of_map` (no product formed) gives the same scores and spreads as
    fitting the mapped papers themselves."""
    from recommender.model.signals import SignalSide, second_moment

    rng = np.random.default_rng(4)
    source = rng.standard_normal((500, 16)).astype(np.float32)
    source[:, :3] *= 5  # a few dominant directions, as in sentence embeddings
    linear = (np.eye(16) + 0.3 * rng.standard_normal((16, 16))).astype(np.float32)
    people = rng.standard_normal((7, 16)).astype(np.float32)
    for mapping in (linear, None):
        raw = source if mapping is None else source @ mapping
        direct = SignalSide.fit(raw, mapping)
        moment = SignalSide.of_map(source, second_moment(source), mapping)
        # A person in raw space, put on each side's own axes: same scores, same spread.
        on_direct, on_moment = people @ direct.basis, people @ moment.basis
        np.testing.assert_allclose(
            on_moment @ moment.items.T, on_direct @ direct.items.T, rtol=1e-3, atol=1e-3
        )
        np.testing.assert_allclose(moment.spread(on_moment), direct.spread(on_direct), rtol=1e-3)
        np.testing.assert_allclose(
            source[:5] @ moment.item_map, moment.items[:5], rtol=1e-4, atol=1e-4
        )


def test_a_fit_begun_early_equals_a_fit_from_scratch(corpus: Corpus) -> None:
    """`begin` (split and ALS started from the feedback and the papers' order alone) and
    then `fit` gives the same model as one `fit`."""
    whole = Trainer(FAST).fit(corpus.interactions, corpus.papers, embeddings=corpus.emb)
    early = Trainer(FAST)
    early.begin(corpus.interactions, [p.id for p in corpus.papers])
    parts = early.fit(corpus.interactions, corpus.papers, embeddings=corpus.emb)
    assert parts.paper_ids == whole.paper_ids and parts.user_ids == whole.user_ids
    np.testing.assert_allclose(parts.item_factors, whole.item_factors, rtol=1e-4, atol=1e-5)
    for kind in ("catalog", "cold"):
        np.testing.assert_allclose(parts.weights[kind], whole.weights[kind])
    assert early._pool is None  # the background job was waited for


def test_a_fit_begun_on_papers_that_changed_starts_over(corpus: Corpus) -> None:
    """A paper that vanished between reading the ids and the papers: the early split is
    dropped and the fit covers exactly the papers it was given."""
    ids = [p.id for p in corpus.papers] + ["gone-meanwhile"]
    trainer = Trainer(FAST)
    trainer.begin([*corpus.interactions, ("u1", "gone-meanwhile", 1.0)], ids)
    parts = trainer.fit(corpus.interactions, corpus.papers, embeddings=corpus.emb)
    assert parts.paper_ids == [p.id for p in corpus.papers]
    assert parts.report["unknown_papers_skipped"] == 0
    assert parts.item_factors.shape[0] == len(corpus.papers)
