"""Blend-weight tuning on constructed validation sets, and the ranking metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recommender.metrics import hits_matrix, intra_list_similarity, recall_ndcg, top_k
from recommender.model import blend

KS = (5, 10, 20, 50)


def relevance(rng: np.random.Generator, users: int, items: int, per_user: int) -> np.ndarray:
    """A users × items boolean matrix with `per_user` relevant items in each row."""
    relevant = np.zeros((users, items), dtype=bool)
    for u in range(users):
        relevant[u, rng.choice(items, per_user, replace=False)] = True
    return relevant


def validation_set(signals: list[np.ndarray], relevant: np.ndarray) -> blend.ValidationSet:
    """A ValidationSet whose pool is every item, with the given per-signal scores."""
    z = np.stack(signals, axis=1).astype(np.float32)
    z = (z - z.mean(axis=2, keepdims=True)) / z.std(axis=2, keepdims=True)
    n_relevant = relevant.sum(axis=1)
    return blend.ValidationSet([f"s{i}" for i in range(len(signals))], z, relevant, n_relevant, KS)


def single_recalls(val: blend.ValidationSet) -> np.ndarray:
    """Recall at each k of each signal on its own (signals × ks)."""
    n = len(val.signals)
    return np.stack([val.recall(np.eye(n)[s]) for s in range(n)])


# ---------------------------------------------------------------- blend


def test_noise_signal_gets_no_weight() -> None:
    rng = np.random.default_rng(0)
    relevant = relevance(rng, 200, 300, 10)
    informative = relevant * 1.5 + rng.normal(size=relevant.shape)
    noise = rng.normal(size=relevant.shape)
    val = validation_set([informative, noise], relevant)
    weights, evidence = blend.tune_weights([val])
    assert weights[0] == 1.0
    assert weights[1] <= 0.1  # at most a sliver, picked up from chance agreement
    blended = val.recall(weights)
    singles = single_recalls(val)
    assert singles[0].min() > singles[1].max()  # the construction did what it says
    assert (blended >= singles.max(axis=0) * (1 - blend.TOLERANCE) - 1e-9).all()
    assert evidence["ks"] == list(KS)
    assert evidence["task0:blend"] == pytest.approx(blended.round(4).tolist())
    assert evidence["task0:single:s1"] == pytest.approx(singles[1].round(4).tolist())


def test_noise_listed_first_still_gets_no_weight() -> None:
    rng = np.random.default_rng(1)
    relevant = relevance(rng, 200, 300, 10)
    informative = relevant * 1.5 + rng.normal(size=relevant.shape)
    noise = rng.normal(size=relevant.shape)
    val = validation_set([noise, informative], relevant)
    weights, _ = blend.tune_weights([val])
    assert weights[1] == 1.0
    assert weights[0] <= 0.1


def test_complementary_signals_blend_beats_both() -> None:
    rng = np.random.default_rng(2)
    users, items = 150, 300
    relevant = relevance(rng, users, items, 10)
    # Each signal sees half of every user's relevant items, and nothing about the other half.
    first_half = np.zeros_like(relevant)
    for u in range(users):
        first_half[u, np.flatnonzero(relevant[u])[:5]] = True
    second_half = relevant & ~first_half
    a = 3.0 * first_half + rng.normal(size=relevant.shape)
    b = 3.0 * second_half + rng.normal(size=relevant.shape)
    val = validation_set([a, b], relevant)
    weights, _ = blend.tune_weights([val])
    assert weights.min() >= 0.3  # both signals are used
    blended = val.recall(weights)
    singles = single_recalls(val)
    # Alone, each finds about its half (plus a few of the other half by chance, deep down).
    assert singles.max(axis=0)[KS.index(20)] <= 0.55
    best = singles.max(axis=0)
    # Past the depth where one half fits, the blend finds more than either signal ...
    assert (blended[1:] > best[1:] + 0.01).all()
    # ... and far more once there is room for both halves.
    assert (blended[2:] > best[2:] + 0.05).all()
    # At depth 5 no ranking can find more than half, and the blend stays close to the best.
    assert blended[0] >= best[0] - 0.03


def test_tune_weights_over_two_tasks_never_drops_below_either_best_single() -> None:
    rng = np.random.default_rng(3)
    vals = []
    for strength in (1.5, 0.8):
        relevant = relevance(rng, 120, 250, 8)
        informative = relevant * strength + rng.normal(size=relevant.shape)
        partial = relevant * strength * 0.6 + rng.normal(size=relevant.shape)
        vals.append(validation_set([informative, partial], relevant))
    weights, evidence = blend.tune_weights(vals)
    for t, val in enumerate(vals):
        best = single_recalls(val).max(axis=0)
        assert (val.recall(weights) >= best * (1 - blend.TOLERANCE) - 1e-9).all()
        assert f"task{t}:blend" in evidence


def test_per_user_recall_averages_to_recall() -> None:
    rng = np.random.default_rng(4)
    relevant = relevance(rng, 80, 120, 6)
    val = validation_set([relevant * 1.0 + rng.normal(size=relevant.shape)], relevant)
    per_user = val.per_user(np.ones(1))
    assert per_user.shape == (80, len(KS))
    assert per_user.mean(axis=0) == pytest.approx(val.recall(np.ones(1)))
    assert ((per_user >= 0) & (per_user <= 1)).all()


def test_a_gain_within_noise_is_not_taken() -> None:
    """One SE rule: a second signal that only fits validation noise is shrunk away."""
    rng = np.random.default_rng(5)
    relevant = relevance(rng, 60, 200, 5)
    informative = relevant * 1.2 + rng.normal(size=relevant.shape)
    # A weak signal: correlated with relevance so slightly that any gain is noise.
    weak = relevant * 0.05 + rng.normal(size=relevant.shape)
    val = validation_set([informative, weak], relevant)
    objective = blend._Objective([val])
    searched = blend._search(objective, 0, 2)
    weights, _ = blend.tune_weights([val])
    assert weights[0] == 1.0
    assert weights[1] <= searched[1] / searched[0]  # never further from the lead than found
    lead = objective(np.array([1.0, 0.0]))
    assert objective(weights) >= lead - 1e-9  # and never worse than the lead alone


def test_a_better_prior_is_kept_over_a_greedy_path() -> None:
    """When the default blend beats what the search finds, the default is the answer."""
    rng = np.random.default_rng(6)
    users, items = 150, 300
    relevant = relevance(rng, users, items, 12)
    thirds = [np.zeros_like(relevant) for _ in range(3)]
    for u in range(users):
        rel = np.flatnonzero(relevant[u])
        for t in range(3):
            thirds[t][u, rel[t::3]] = True
    signals = [3.0 * third + rng.normal(size=relevant.shape) for third in thirds]
    val = validation_set(signals, relevant)
    prior = np.ones(3)
    weights, _ = blend.tune_weights([val], prior=prior)
    assert weights.min() >= 0.5  # all three signals carry a third each
    objective = blend._Objective([val])
    assert objective(weights) >= objective(np.eye(3)[0])


def test_pool_and_build_validation_mark_excluded_and_padding_dead() -> None:
    scores = [
        np.array([[5.0, 4.0, 3.0, 2.0, 1.0, 0.0, -1.0, -2.0]]),
        np.array([[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]]),
    ]
    excluded = np.zeros((1, 8), dtype=bool)
    excluded[0, 0] = True  # the user's own training item
    pools = blend.pool_candidates(scores, 2, excluded)
    assert set(pools[0][pools[0] >= 0]) == {1, 2, 6, 7}
    val = blend.build_validation(["a", "b"], scores, pools, [np.array([0, 2])], excluded, (2,))
    assert val.relevant.sum() == 1  # item 0 is excluded, so only item 2 can count
    dead = pools[0] < 0
    assert (val.z[0][:, dead] == -1e9).all()
    assert val.n_relevant.tolist() == [2]
    assert val.recall(np.array([1.0, 0.0])).tolist() == [0.5]  # a ranks 1, 2: item 2 found
    assert val.recall(np.array([0.0, 1.0])).tolist() == [0.0]  # b ranks 7, 6


def test_pool_is_every_item_when_pools_would_cover_the_catalogue() -> None:
    scores = [np.zeros((2, 6)), np.zeros((2, 6))]
    pools = blend.pool_candidates(scores, 3, None)
    assert pools.tolist() == [list(range(6))] * 2


# ---------------------------------------------------------------- metrics


def test_top_k_orders_best_first() -> None:
    scores = np.array([[0.1, 0.9, 0.5, 0.7], [3.0, 1.0, 2.0, 0.0]])
    assert top_k(scores, 2).tolist() == [[1, 3], [0, 2]]
    assert top_k(scores, 4).tolist() == [[1, 3, 2, 0], [0, 2, 1, 3]]
    assert top_k(scores, 10).tolist() == [[1, 3, 2, 0], [0, 2, 1, 3]]  # k capped
    assert top_k(scores, 0).shape == (2, 0)


def test_top_k_never_prefers_minus_infinity() -> None:
    scores = np.array([[-np.inf, -5.0, -np.inf, -1.0]])
    assert top_k(scores, 2).tolist() == [[3, 1]]
    assert set(top_k(scores, 3)[0, :2]) == {3, 1}


@pytest.mark.parametrize("case", ["plain", "ties", "minus_inf", "flat_row", "sparse"])
def test_top_k_on_wide_rows_is_exact(case: str) -> None:
    """Wide rows take the prefiltered path: the same k best values as a full sort."""
    rng = np.random.default_rng(3)
    scores = rng.standard_normal((40, 30_000)).astype(np.float32)
    if case == "ties":
        scores = np.round(scores, 1)  # big blocks of equal scores at every threshold
    elif case == "minus_inf":
        scores[:, rng.choice(30_000, 20_000, replace=False)] = -np.inf
        scores[5, :] = -np.inf
        scores[5, :3] = 1.0
    elif case == "sparse":
        # A co-saving signal: a few positive scores per row, zero elsewhere, seen papers
        # masked out.
        dense = scores
        scores = np.zeros_like(dense)
        some = rng.random(dense.shape) < 0.001
        scores[some] = np.abs(dense[some])
        scores[:, :50] = -np.inf
        scores[2, :] = 0.0
    elif case == "flat_row":
        scores[0] = 0.0
        scores[1, :10] = 1.0
        scores[1, 10:] = 0.0
    for k in (1, 10, 300, 1500):
        ranked = top_k(scores, k)
        unordered = top_k(scores, k, ordered=False)
        for row, got, loose in zip(scores, ranked, unordered, strict=True):
            best = np.sort(row)[::-1][:k]
            assert len(set(got.tolist())) == k
            assert np.array_equal(row[got], best)  # best first, exactly the k best values
            assert np.array_equal(np.sort(row[loose])[::-1], best)


def test_recall_counts_users_whose_held_out_papers_left_the_pool() -> None:
    """Users with nothing relevant in their pool score zero but still weigh in the mean."""
    rng = np.random.default_rng(4)
    z = rng.standard_normal((6, 2, 30)).astype(np.float32)
    relevant = np.zeros((6, 30), dtype=bool)
    relevant[0, [1, 2]] = True
    relevant[3, 7] = True
    n_relevant = np.array([2, 4, 1, 1, 3, 2])  # users 1, 2, 4, 5: held-out papers outside
    val = blend.ValidationSet(["a", "b"], z, relevant, n_relevant, (1, 5, 30))
    weights = np.array([1.0, 0.5])
    scores = (z * weights[None, :, None]).sum(axis=1)
    expected = []
    for k in (1, 5, 30):
        per_user = [
            sum(int((scores[u] > scores[u, j]).sum() < k) for j in np.flatnonzero(relevant[u]))
            / n_relevant[u]
            for u in range(6)
        ]
        expected.append(np.mean(per_user))
    assert val.recall(weights) == pytest.approx(expected)
    assert val.recall(weights)[-1] == pytest.approx((1.0 + 1.0) / 6)


def test_recall_ndcg_hand_computed() -> None:
    hits = np.array([[True, False, True], [False, False, False], [False, True, False]])
    n_relevant = np.array([2, 1, 3])
    out = recall_ndcg(hits, n_relevant, (1, 2, 3, 5))
    d2, d3 = 1 / math.log2(3), 1 / math.log2(4)
    assert out["recall@1"].tolist() == pytest.approx([0.5, 0.0, 0.0])
    assert out["recall@2"].tolist() == pytest.approx([0.5, 0.0, 1 / 3])
    assert out["recall@3"].tolist() == pytest.approx([1.0, 0.0, 1 / 3])
    assert out["recall@5"].tolist() == pytest.approx([1.0, 0.0, 1 / 3])  # k beyond the list
    assert out["ndcg@1"].tolist() == pytest.approx([1.0, 0.0, 0.0])
    assert out["ndcg@2"].tolist() == pytest.approx([1 / (1 + d2), 0.0, d2 / (1 + d2)])
    assert out["ndcg@3"].tolist() == pytest.approx([(1 + d3) / (1 + d2), 0.0, d2 / (1 + d2 + d3)])


def test_ndcg_is_one_for_a_perfect_ranking() -> None:
    hits = np.array([[True, True, False, False]])
    out = recall_ndcg(hits, np.array([2]), (1, 2, 4))
    assert [out[f"ndcg@{k}"][0] for k in (1, 2, 4)] == pytest.approx([1.0, 1.0, 1.0])
    assert out["recall@1"][0] == pytest.approx(0.5)


def test_hits_matrix() -> None:
    ranked = np.array([[4, 2, 7], [1, 0, 3]])
    hits = hits_matrix(ranked, [np.array([7, 4]), np.array([], dtype=np.int64)])
    assert hits.tolist() == [[True, False, True], [False, False, False]]


def test_intra_list_similarity() -> None:
    vectors = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    assert intra_list_similarity(vectors, np.array([[0, 1]])) == pytest.approx(1.0)
    assert intra_list_similarity(vectors, np.array([[0, 2]])) == pytest.approx(0.0)
    assert intra_list_similarity(vectors, np.array([[0, 1, 2]])) == pytest.approx(1 / 3)
    # Mean over lists.
    assert intra_list_similarity(vectors, np.array([[0, 1], [0, 2]])) == pytest.approx(0.5)
    assert intra_list_similarity(vectors, np.array([[0, 3]])) == pytest.approx(math.sqrt(0.5))
    assert intra_list_similarity(vectors, np.array([[0], [1]])) == 0.0


def test_intra_list_similarity_of_no_lists_is_zero() -> None:
    """Regression: an empty set of lists (no user had a full list) used to raise."""
    vectors = np.eye(3)
    assert intra_list_similarity(vectors, np.array([])) == 0.0
    assert intra_list_similarity(vectors, np.zeros((0, 10), dtype=np.int64)) == 0.0


def test_robust_weights_give_up_neither_view() -> None:
    """Two views that disagree (a signal strong on one, another on the other): the pick
    keeps at least as much of its worst view as the blend tuned on either view alone."""
    rng = np.random.default_rng(7)
    users, items = 150, 300
    relevant_a = relevance(rng, users, items, 8)
    relevant_b = relevance(rng, users, items, 8)
    # Signal 0 sees view A's future, signal 1 view B's; each is noise on the other view.
    s0 = 3.0 * relevant_a + rng.normal(size=relevant_a.shape)
    s1 = 3.0 * relevant_b + rng.normal(size=relevant_b.shape)
    view_a = validation_set([s0, s1], relevant_a)
    view_b = validation_set([s0, s1], relevant_b)
    weights, evidence = blend.robust_weights([view_a, view_b])
    assert weights.min() > 0  # both signals kept

    def worst(w: np.ndarray) -> float:
        """The smaller share of either view's best single-signal recall."""
        shares = []
        for val in (view_a, view_b):
            best = single_recalls(val).max(axis=0).mean()
            shares.append(val.recall(w).mean() / best)
        return min(shares)

    alone = [blend.tune_weights([v])[0] for v in (view_a, view_b)]
    assert worst(weights) >= max(worst(w) for w in alone) - 1e-9
    assert len(evidence["candidates_worst_view_share"]) == 3
