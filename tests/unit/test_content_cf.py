"""Content features (embeddings, TF-IDF, LSA fallback) and the collaborative-filtering pieces."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recommender.cf import AlsParams, content_to_factors, fit_als, fold_in_users, item_knn
from recommender.content import ContentModel, paper_text
from recommender.types import Paper

WORDS = (
    ["graph", "node", "edge", "message", "passing", "spectral", "neighbour"],
    ["protein", "gene", "folding", "enzyme", "genome", "molecule", "cell"],
    ["robot", "gripper", "grasping", "trajectory", "actuator", "legged", "arm"],
)


def make_papers(n: int = 90, seed: int = 0, dim: int = 12) -> tuple[list[Paper], np.ndarray]:
    """Papers in three topics with topic-clustered embeddings (one paper has no text)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, dim))
    papers, emb = [], []
    for i in range(n):
        t = i % 3
        words = rng.choice(WORDS[t], 5)
        papers.append(Paper(id=f"c{i}", title=" ".join(words[:3]), abstract=" ".join(words)))
        emb.append(centres[t] + 0.3 * rng.normal(size=dim))
    papers[-1] = Paper(id="blank", title="")
    return papers, np.asarray(emb, np.float32)


# ---------------------------------------------------------------- content


def test_paper_text() -> None:
    assert paper_text(Paper(id="a", title=" T ", abstract=" A ")) == "T. A"
    assert paper_text(Paper(id="a", title="T")) == "T"
    assert paper_text(Paper(id="a", title="", abstract="A")) == "A"
    assert paper_text(Paper(id="a", title="")) == ""


@pytest.mark.parametrize("use_embeddings", [True, False])
def test_fit_then_transform_same_papers_agrees(use_embeddings: bool) -> None:
    papers, emb = make_papers()
    vectors = emb if use_embeddings else None
    model = ContentModel()
    fitted = model.fit(papers, vectors)
    again = model.transform(papers, vectors)
    assert model.dense_kind == ("embedding" if use_embeddings else "lsa")
    assert fitted.dense.shape[0] == fitted.tfidf.shape[0] == len(papers)
    np.testing.assert_allclose(again.dense, fitted.dense, atol=1e-5)
    np.testing.assert_allclose(again.tfidf.toarray(), fitted.tfidf.toarray(), atol=1e-6)
    assert np.array_equal(again.has_text, fitted.has_text)
    # Rows are unit length, except the paper with no text, which is all zeros.
    norms = np.linalg.norm(fitted.dense, axis=1)
    np.testing.assert_allclose(norms[:-1], 1.0, atol=1e-5)
    assert norms[-1] == 0.0 and not fitted.has_text[-1]
    assert fitted.has_text[:-1].all()


@pytest.mark.parametrize("use_embeddings", [True, False])
def test_dense_vectors_cluster_by_topic(use_embeddings: bool) -> None:
    papers, emb = make_papers()
    dense = ContentModel().fit(papers, emb if use_embeddings else None).dense[:-1]
    topic = np.arange(len(dense)) % 3
    sim = dense @ dense.T
    same = sim[topic[:, None] == topic[None, :]].mean()
    other = sim[topic[:, None] != topic[None, :]].mean()
    assert same > other + 0.5


def test_lsa_of_a_large_catalogue_is_fitted_on_a_sample(monkeypatch) -> None:
    """Past LSA_FIT_ROWS papers the directions come from a sample; all papers are projected
    and still cluster by topic, and a paper transforms the same as at fit time."""
    from recommender import content

    monkeypatch.setattr(content, "LSA_FIT_ROWS", 40)
    papers, _ = make_papers(n=150)
    model = ContentModel()
    fitted = model.fit(papers, None)
    assert model.lsa is not None and model.lsa.components_.shape[1] == fitted.tfidf.shape[1]
    dense = fitted.dense[:-1]
    topic = np.arange(len(dense)) % 3
    sim = dense @ dense.T
    assert (
        sim[topic[:, None] == topic[None, :]].mean()
        > sim[topic[:, None] != topic[None, :]].mean() + 0.5
    )
    np.testing.assert_allclose(model.transform(papers, None).dense, fitted.dense, atol=1e-5)


def test_transform_new_papers_lands_near_their_topic() -> None:
    papers, _ = make_papers()
    model = ContentModel()
    fitted = model.fit(papers, None)
    new = [Paper(id="n1", title="protein folding enzyme"), Paper(id="n2", title="unseenword")]
    out = model.transform(new, None)
    sims = out.dense[0] @ fitted.dense[:-1].T
    assert np.argmax(sims) % 3 == 1  # a protein paper
    assert out.has_text.tolist() == [True, True]
    assert out.tfidf[1].nnz == 0  # no known word: no TF-IDF weight


def test_transform_needs_embeddings_when_fitted_with_them() -> None:
    papers, emb = make_papers()
    model = ContentModel()
    model.fit(papers, emb)
    with pytest.raises(ValueError, match="needs embeddings"):
        model.transform(papers[:2], None)


@pytest.mark.parametrize("use_embeddings", [True, False])
def test_state_round_trip(use_embeddings: bool) -> None:
    papers, emb = make_papers()
    vectors = emb if use_embeddings else None
    model = ContentModel()
    model.fit(papers, vectors)
    copy = ContentModel.from_state(model.state())
    new = [Paper(id="n", title="gene genome cell", abstract="graph")]
    all_emb = None if vectors is None else np.vstack([emb, emb[:1] + 0.1])
    expected = model.transform(papers + new, all_emb)
    assert copy.dense_kind == model.dense_kind
    got = copy.transform(papers + new, all_emb)
    np.testing.assert_allclose(got.dense, expected.dense, atol=1e-6)
    np.testing.assert_allclose(got.tfidf.toarray(), expected.tfidf.toarray(), atol=1e-6)
    assert np.array_equal(got.has_text, expected.has_text)
    for shrink in (None, 0.0, 1.0):
        np.testing.assert_allclose(copy.whitener(shrink), model.whitener(shrink), atol=1e-6)


def test_whitener_shapes_and_effect() -> None:
    papers, emb = make_papers(dim=12)
    model = ContentModel()
    items = model.fit(papers, emb)
    dim = items.dense.shape[1]
    assert dim == 12
    identity = model.whitener(None)
    assert identity.shape == (dim, dim)
    assert np.array_equal(identity, np.eye(dim, dtype=np.float32))
    for shrink in (0.0, 1.0, 4.0):
        w = model.whitener(shrink)
        assert w.shape == (dim, dim) and w.dtype == np.float32
        np.testing.assert_allclose(w, w.T, atol=1e-5)
    # Full whitening (no shrink) makes the centred training vectors isotropic.
    centred = emb[:-1] - model.mean
    cov = np.cov((centred @ model.whitener(0.0)).T)
    eig = np.linalg.eigvalsh(cov)
    assert eig.max() / eig.min() < 1.5
    raw = np.linalg.eigvalsh(np.cov(centred.T))
    assert raw.max() / raw.min() > 5
    # Shrinkage interpolates: the spread is between raw and fully whitened.
    half = np.linalg.eigvalsh(np.cov((centred @ model.whitener(1.0)).T))
    assert eig.max() / eig.min() < half.max() / half.min() < raw.max() / raw.min()


def test_lsa_fallback_on_small_corpora() -> None:
    papers = [Paper(id=str(i), title=t) for i, t in enumerate(["graph nodes", "protein gene"])]
    items = ContentModel().fit(papers, None)
    assert items.dense.shape == (2, 1)


@pytest.mark.parametrize(
    "titles", [["", ""], ["the", "of"], ["Transformers", "transformers", ""], ["solo"]]
)
def test_lsa_fallback_with_a_tiny_vocabulary(titles: list[str]) -> None:
    """Regression: fewer than two distinct terms used to crash TruncatedSVD."""
    papers = [Paper(id=str(i), title=t) for i, t in enumerate(titles)]
    model = ContentModel()
    items = model.fit(papers, None)
    assert items.dense.shape[0] == len(papers)
    assert np.isfinite(items.dense).all()
    assert np.array_equal(items.has_text, np.array([bool(t) for t in titles]))
    again = ContentModel.from_state(model.state()).transform(papers, None)
    np.testing.assert_allclose(again.dense, items.dense, atol=1e-6)


# ---------------------------------------------------------------- collaborative filtering


def interactions(seed: int = 0, users: int = 40, items: int = 30) -> sp.csr_matrix:
    """A block-structured user×item matrix: users in group g like items of group g."""
    rng = np.random.default_rng(seed)
    dense = np.zeros((users, items), np.float32)
    for u in range(users):
        g = u % 3
        block = np.arange(g, items, 3)
        dense[u, rng.choice(block, 5, replace=False)] = 1.0
    return sp.csr_matrix(dense)


def test_item_knn_is_symmetric_cosine_and_bounded() -> None:
    matrix = interactions()
    k = 3
    knn = item_knn(matrix, neighbours=k)
    n = matrix.shape[1]
    assert knn.shape == (n, n)
    assert abs(knn - knn.T).max() == 0
    assert knn.diagonal().max() == 0
    # Entries are cosine co-occurrence: co(i, j) / sqrt(count_i * count_j).
    binary = (matrix > 0).astype(np.float32)
    co = (binary.T @ binary).toarray()
    counts = np.diag(co).copy()
    np.fill_diagonal(co, 0)
    cosine = co / np.sqrt(np.outer(counts, counts))
    rows, cols = knn.nonzero()
    np.testing.assert_allclose(knn[rows, cols].A1, cosine[rows, cols], rtol=1e-5)
    # Each entry is among the top k of its row or of its column (kept for symmetry) ...
    kth = -np.sort(-cosine, axis=1)[:, k - 1]
    assert (
        (cosine[rows, cols] >= kth[rows] - 1e-6) | (cosine[rows, cols] >= kth[cols] - 1e-6)
    ).all()
    # ... so no item keeps more than k of its own plus those who chose it.
    assert knn.nnz <= 2 * k * n
    # Items of different groups never co-occur, so they are never neighbours.
    assert all((r - c) % 3 == 0 for r, c in zip(rows, cols, strict=True))


def test_item_knn_keeps_everything_with_many_neighbours() -> None:
    matrix = interactions()
    knn = item_knn(matrix, neighbours=100)
    binary = (matrix > 0).astype(np.float32)
    co = (binary.T @ binary).toarray()
    np.fill_diagonal(co, 0)
    assert knn.nnz == np.count_nonzero(co)


def test_fit_als_and_fold_in_shapes() -> None:
    matrix = interactions()
    params = AlsParams(factors=8, regularization=0.1, alpha=10.0, iterations=8)
    users, items = fit_als(matrix, params, seed=1)
    assert users.shape == (40, 8) and items.shape == (30, 8)
    assert users.dtype == np.float32 and items.dtype == np.float32
    folded = fold_in_users(matrix[:5], items, params)
    assert folded.shape == (5, 8)
    # Folding in a training user recovers (nearly) the factors training learned.
    scores_fit = users[:5] @ items.T
    scores_fold = folded @ items.T
    for a, b in zip(scores_fit, scores_fold, strict=True):
        assert np.corrcoef(a, b)[0, 1] > 0.98
        assert np.abs(a - b).max() < 0.15
    one = fold_in_users(matrix[7], items, params)
    assert one.shape == (1, 8)


def test_fit_als_is_seeded_and_warm_start_is_used() -> None:
    matrix = interactions()
    params = AlsParams(factors=8, regularization=0.1, alpha=10.0, iterations=5)
    first = fit_als(matrix, params, seed=3)
    second = fit_als(matrix, params, seed=3)
    np.testing.assert_allclose(first[0], second[0])
    # Zero warm-start iterations return the warm factors untouched.
    warm = fit_als(matrix, params, seed=9, warm=first, iterations=0)
    np.testing.assert_allclose(warm[1], first[1])


def test_als_learns_the_groups() -> None:
    matrix = interactions()
    params = AlsParams(factors=8, regularization=0.1, alpha=10.0, iterations=10)
    users, items = fit_als(matrix, params)
    scores = users @ items.T
    group = np.arange(30) % 3
    for u in range(40):
        mine = scores[u][group == u % 3]
        # The user's own group of items outscores the others on average and at the top.
        assert mine.mean() > scores[u][group != u % 3].mean() + 0.2
        assert np.argmax(scores[u]) % 3 == u % 3


def test_fold_in_accepts_negative_weights() -> None:
    matrix = interactions()
    params = AlsParams(factors=8, regularization=0.1, alpha=20.0, iterations=10)
    _, items = fit_als(matrix, params)
    likes = [0, 3, 6]

    def scores(item: int, dislike: float) -> np.ndarray:
        """Fold in the likes plus a dislike of `item` with this weight; score every item."""
        row = sp.csr_matrix((np.r_[np.ones(3), dislike], ([0] * 4, [*likes, item])), shape=(1, 30))
        row.eliminate_zeros()
        return fold_in_users(row, items, params)[0] @ items.T

    plain = scores(0, 0.0)
    # Dislike the unrated item the user would have been shown first.
    target = max(set(range(30)) - set(likes), key=lambda i: plain[i])
    assert plain[target] > 0.1
    mild, strong = scores(target, -1.0), scores(target, -5.0)
    assert np.isfinite(strong).all()
    # A dislike means "not wanted" with confidence alpha·|weight|: the item's score is pulled
    # towards zero, the harder the stronger the dislike.
    assert strong[target] < mild[target] < plain[target]
    assert strong[target] < plain[target] - 0.05
    # Training on a matrix with dislikes works as well.
    disliked = matrix.tolil()
    disliked[0, 1] = -1.0
    users, items2 = fit_als(disliked.tocsr(), params)
    assert np.isfinite(users).all() and np.isfinite(items2).all()


def test_content_to_factors_recovers_a_linear_map() -> None:
    rng = np.random.default_rng(5)
    content = rng.normal(size=(400, 10))
    true_map = rng.normal(size=(10, 4))
    factors = content @ true_map + 0.01 * rng.normal(size=(400, 4))
    weights = rng.integers(1, 5, size=400).astype(np.float32)
    learned = content_to_factors(content, factors, weights, ridge=1e-4)
    assert learned.shape == (10, 4) and learned.dtype == np.float32
    np.testing.assert_allclose(learned, true_map, atol=0.02)
    # The default ridge shrinks the map towards zero but keeps its direction.
    shrunk = content_to_factors(content, factors, weights)
    assert np.linalg.norm(shrunk) < np.linalg.norm(true_map)
    cos = (shrunk * true_map).sum() / np.linalg.norm(shrunk) / np.linalg.norm(true_map)
    assert cos > 0.99


def test_content_to_factors_weights_matter() -> None:
    rng = np.random.default_rng(6)
    content = rng.normal(size=(200, 3))
    good = rng.normal(size=(3, 2))
    factors = content @ good
    factors[:20] = rng.normal(size=(20, 2)) * 5  # noisy targets of rarely-seen items
    weights = np.full(200, 50.0)
    weights[:20] = 1.0
    weighted = content_to_factors(content, factors, weights, ridge=1e-4)
    flat = content_to_factors(content, factors, np.ones(200), ridge=1e-4)
    assert np.abs(weighted - good).max() < np.abs(flat - good).max()
