"""Personal digests ranked in one batch are the digests each person gets on their own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.digest import DigestBuilder
from bot.subscriptions import Subscription, subscription_id
from recommender import pipeline
from recommender.service import PaperService
from recommender.store import Store
from recommender.types import Feedback
from tests.support import fanout


def sub_for(user: str, size: int = 5) -> Subscription:
    """A daily DM subscription of `user` in workspace T1."""
    return Subscription(
        id=subscription_id("dm", "slack", "T1", user),
        kind="dm",
        platform="slack",
        workspace="T1",
        target=user,
        owner=f"slack:T1:{user}",
        size=size,
        created=(datetime.now(UTC) - timedelta(days=3)).timestamp(),
    )


def test_a_batch_ranks_like_one_by_one(store: Store) -> None:
    pipeline.ingest_source(store, "jsonl", body=fanout.SEED.read_bytes(), label="seed")
    service = PaperService(store, encoder=None)
    ids = store.all_paper_ids()
    subs = [sub_for(f"U{i}", size=4 + i % 3) for i in range(6)]
    # Different tastes, a paper already sent, an excluded word and a boosted topic.
    for i, sub in enumerate(subs):
        for pid in ids[i * 7 : i * 7 + 3]:
            service.record(sub.owner, pid, Feedback.LIKE)
    service.record(subs[1].owner, ids[40], Feedback.DISLIKE)
    store.mark_seen(subs[2].owner, ids[50:60])
    store.add_words(subs[3].owner, "exclude", ["diffusion"])
    store.add_words(subs[4].owner, "topics", ["retrieval"])
    builder = DigestBuilder(service)
    now = datetime.now(UTC).timestamp()
    batch = builder.digests_for([(s, "p") for s in subs], now)
    for sub, together in zip(subs, batch, strict=True):
        alone = builder.digest_for(sub, "p", now)
        assert alone is not None and together is not None
        assert [c.paper_id for c in together.cards] == [c.paper_id for c in alone.cards]
        assert [c.reason for c in together.cards] == [c.reason for c in alone.cards]
        assert together.intro == alone.intro
