"""FeedbackMatrix on a real Redis: incremental reads match a full read, forgetting resets."""

from __future__ import annotations

import numpy as np
import pytest
import redis

from recommender.feedback import FeedbackMatrix
from recommender.model import Interactions
from recommender.service import FeedbackWeights
from recommender.store import Store, StoreUnavailable

WEIGHTS = FeedbackWeights()


def as_dict(inter: Interactions) -> dict[str, dict[str, float]]:
    """{user: {paper: weight}} of a matrix, for comparing reads."""
    coo = inter.matrix.tocoo()
    out: dict[str, dict[str, float]] = {}
    for r, c, v in zip(coo.row, coo.col, coo.data, strict=True):
        out.setdefault(inter.users[r], {})[inter.papers[c]] = float(v)
    return out


def fresh(store: Store) -> dict[str, dict[str, float]]:
    """What a brand-new reader sees."""
    return as_dict(FeedbackMatrix(store, WEIGHTS.weight).read())


def test_first_read_is_everyone_then_only_who_changed(store: Store) -> None:
    store.apply_feedback("u1", "p1", "like")
    store.apply_feedback("u1", "p2", "save")
    store.apply_feedback("u2", "p1", "dislike")
    store.apply_feedback("u3", "p3", "like")
    reader = FeedbackMatrix(store, WEIGHTS.weight)
    first = as_dict(reader.read())
    assert first == {"u1": {"p1": 1.0, "p2": 2.0}, "u2": {"p1": -1.0}, "u3": {"p3": 1.0}}
    assert reader.last_read == 3

    assert as_dict(reader.read()) == first
    assert reader.last_read == 0  # nothing changed: nobody re-read

    store.apply_feedback("u2", "p4", "like")  # u2 adds a like
    store.apply_feedback("u1", "p2", "save", removed=True)  # u1 takes a save back
    store.apply_feedback("u4", "p1", "like")  # a newcomer
    store.apply_feedback("u3", "p3", "like", removed=True)  # u3 has nothing left
    second = as_dict(reader.read())
    assert reader.last_read == 4
    assert second == {"u1": {"p1": 1.0}, "u2": {"p1": -1.0, "p4": 1.0}, "u4": {"p1": 1.0}}
    assert second == fresh(store)


def test_forgetting_someone_makes_the_next_read_a_full_one(store: Store) -> None:
    for user in ("u1", "u2", "u3"):
        store.apply_feedback(user, "p1", "like")
    reader = FeedbackMatrix(store, WEIGHTS.weight)
    reader.read()
    store.forget_user("u2")
    # No trace of the person is left for the incremental read to find...
    assert store.r.zscore("pb:feedback:touched", "u2") is None
    after = as_dict(reader.read())
    # ...and the reader drops them all the same, by reading everyone again.
    assert reader.last_read == 2
    assert after == {"u1": {"p1": 1.0}, "u3": {"p1": 1.0}} == fresh(store)


def test_random_edits_always_match_a_full_read(store: Store) -> None:
    rng = np.random.default_rng(0)
    reader = FeedbackMatrix(store, WEIGHTS.weight)
    kinds = ("like", "save", "dislike")
    for step in range(12):
        for _ in range(int(rng.integers(1, 15))):
            user, paper = f"u{rng.integers(8)}", f"p{rng.integers(12)}"
            store.apply_feedback(
                user, paper, kinds[rng.integers(3)], removed=bool(rng.random() < 0.3)
            )
        if step == 6:
            store.forget_user("u3")
        assert as_dict(reader.read()) == fresh(store)


def test_a_dead_redis_is_a_store_error_and_the_reader_keeps_its_rows(store: Store) -> None:
    store.apply_feedback("u1", "p1", "like")
    reader = FeedbackMatrix(store, WEIGHTS.weight)
    assert as_dict(reader.read()) == {"u1": {"p1": 1.0}}
    dead = Store(redis.Redis(port=1, socket_connect_timeout=0.2))
    reader.store = dead
    with pytest.raises(StoreUnavailable):
        reader.read()
    reader.store = store
    store.apply_feedback("u2", "p1", "save")
    assert as_dict(reader.read()) == {"u1": {"p1": 1.0}, "u2": {"p1": 2.0}}


def test_a_full_read_that_fails_half_way_is_redone(store: Store) -> None:
    for user in ("u1", "u2", "u3"):
        store.apply_feedback(user, "p1", "like")
    reader = FeedbackMatrix(store, WEIGHTS.weight)
    real = store.feedback_batches

    def broken(batch: int = 2000):
        batches = real(1)
        yield next(batches)
        raise StoreUnavailable("cannot reach Redis at test: connection reset")

    store.feedback_batches = broken  # type: ignore[method-assign]
    with pytest.raises(StoreUnavailable):
        reader.read()
    store.feedback_batches = real  # type: ignore[method-assign]
    assert as_dict(reader.read()) == fresh(store)
    assert reader.last_read == 3
