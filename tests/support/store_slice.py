"""One end-to-end pass over everything paperbot keeps in Redis, for any store.

Ingest (with a cross-source merge), feedback from many people (clicks, a reaction on a
delivered message, an import), a retrain published to Redis and loaded by a second
process, a fold-in of fresh feedback, search, a digest through the chat core, the
outbox, markers and leases, stats, forget-me, and a full flush. The Redis Cluster tests
run it on a real cluster; the slot audit runs it on one server with every command
recorded.
"""

from __future__ import annotations

import asyncio
import io
import json
from datetime import UTC, datetime
from pathlib import Path

from bot.console import ConsolePort
from bot.core import BotCore
from bot.ports import Context
from bot.repo import ChatRepo
from recommender.ingest import ingest
from recommender.service import PaperService
from recommender.sources import parse_body
from recommender.store import PREFIX, Store
from recommender.types import Feedback

SEED = Path(__file__).resolve().parents[1] / "fixtures" / "seed_papers.jsonl"
T0 = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)
T1 = datetime(2026, 3, 1, 7, 0, tzinfo=UTC)
PEOPLE = [f"console:local:p{i:02d}" for i in range(40)]
ANN = Context("console", "local", "ann", is_dm=True)


def jsonl(*records: dict) -> bytes:
    """A JSONL body of `records`."""
    return "\n".join(json.dumps(r) for r in records).encode()


def keys(store: Store) -> set[str]:
    """Every paperbot key (SCAN visits every node of a cluster)."""
    found = set(store.r.scan_iter(match=f"{PREFIX}*", count=1000))
    found |= set(store.r.scan_iter(match=f"{{{PREFIX}*}}:seq", count=1000))
    return {k.decode() for k in found}


def exercise(store: Store, other: Store) -> dict[str, object]:
    """Run the whole pass on `store` (and `other`, a second process's connection to the
    same Redis); returns figures for the caller to check further."""
    # -- ingest: the seed corpus, then a title-only record that an arXiv record retires.
    report = ingest(store, parse_body("jsonl", SEED.read_bytes(), now=T0), "jsonl", now=T0)
    assert report.new == 95, report
    ingest(store, parse_body("jsonl", jsonl({"title": "Graph Nets"}), now=T0), "jsonl", now=T0)
    arxiv = jsonl({"arxiv_id": "1806.01261v3", "title": "Graph nets", "abstract": "Graphs."})
    merged = ingest(store, parse_body("jsonl", arxiv, now=T1), "arxiv", now=T1)
    assert (merged.new, merged.updated) == (0, 1), merged
    ids = store.all_paper_ids()
    assert len(ids) == 96 and "1806.01261" in ids
    papers = store.get_papers(ids)
    assert all(p is not None for p in papers)

    # -- feedback from many people, each on their own slot.
    service = PaperService(store, encoder=None)
    for i, uid in enumerate(PEOPLE):
        store.set_profile(uid, name=f"Person {i}", tz="UTC")
        for pid in ids[(i * 3) % 80 : (i * 3) % 80 + 6]:
            service.record(uid, pid, Feedback.LIKE)
        service.record(uid, ids[-1 - i % 10], Feedback.DISLIKE)
        if i % 4 == 0:
            service.record(uid, ids[90], Feedback.SAVE)
    store.apply_feedback_many(PEOPLE[0], {ids[70]: "save", ids[71]: "like"})
    store.add_words(PEOPLE[1], "topics", ["diffusion models", "graphs"], limit=20)
    assert store.toggle_word(PEOPLE[1], "muted", "grace hopper", limit=20)
    assert store.likers([ids[90]])[ids[90]] == set(PEOPLE[::4])
    assert store.feedback_rows_of([PEOPLE[0], "console:local:nobody"])[1] == []

    # -- retrain, publish, and a second process loads the published model.
    trained = service.train()
    assert service._feedback.last_read == len(PEOPLE)
    reader = PaperService(other, encoder=None)
    assert reader.check_model() and reader.model_version == trained.version
    catalogue = [p for p in papers if p is not None]
    for uid in PEOPLE[:5]:
        assert [r.paper.id for r in reader.rank([uid], catalogue, 10)] == [
            r.paper.id for r in service.rank([uid], catalogue, 10)
        ]
    # Fresh feedback in one process is folded in by the other from Redis.
    before = [r.paper.id for r in reader.rank([PEOPLE[2]], catalogue, 10)]
    for pid in ids[60:66]:
        service.record(PEOPLE[2], pid, Feedback.LIKE)
    assert [r.paper.id for r in reader.rank([PEOPLE[2]], catalogue, 10)] != before
    assert reader.people.folded >= 1
    # Only the person who changed is read again.
    service.train()
    assert service._feedback.last_read == 1
    assert len(store.model_versions()) >= 2

    # -- search, re-ranked for the asker.
    found = reader.search(PEOPLE[1], "diffusion models", 5)
    assert found.items and all("diffusion" in r.paper.text.lower() for r in found.items[:3])

    # -- a digest through the chat core, delivered once, and a reaction on it.
    out = io.StringIO()
    core = BotCore(service)
    chat = core.chat
    core.register(ConsolePort(out))
    assert core.answer(ANN, "subscribe daily 09:00 UTC").text.startswith("Subscribed")
    [sub] = chat.subscriptions()
    sub["created"] = datetime(2026, 3, 1, tzinfo=UTC).timestamp()
    chat.put_subscription(sub["id"], sub)
    due = datetime(2026, 3, 2, 9, 5, tzinfo=UTC)
    assert asyncio.run(core.delivery.run_due(due)) == {sub["id"]: "sent"}
    assert asyncio.run(core.delivery.run_due(due)) == {}
    assert out.getvalue().count("\n[") == 10
    assert len(store.seen(ANN.uid)) == 10
    sent = sorted(k.removeprefix(f"{PREFIX}msg:") for k in keys(store) if ":msg:" in k)
    assert len(sent) == 10
    assert core.reaction(ANN, sent[0], "👍", removed=False) == "👍 Noted: more like this."
    assert store.user_feedback(ANN.uid) == {chat.message(sent[0])["paper"]: {"like"}}

    # -- the outbox, markers and leases.
    other_chat = ChatRepo(other)
    chat.put_pending("s:p", {"done": []})
    assert other_chat.get_pending("s:p") == {"done": []}
    chat.clear_pending("s:p")
    assert chat.once("k", 60) and not other_chat.once("k", 60)
    assert chat.acquire_lease("clock", "a", 10_000)
    assert not other_chat.acquire_lease("clock", "b", 1)
    assert chat.release_lease("clock", "a")
    assert chat.update_subscription(sub["id"], {"size": 5})["size"] == 5
    chat.add_channel_member("console:local:C1", ANN.uid)

    # -- stats, then forget-me: nothing about the person is left.
    figures = {
        "papers": store.paper_count(),
        "people": store.user_count(),
        "sources": store.source_counts(),
        "runs": len(store.ingest_log()),
    }
    assert core.answer(ANN, "forget-me").text.startswith("This deletes everything")
    assert core.answer(ANN, "forget-me confirm").text.startswith("Done")
    # "Sent" markers name the subscription and expire on their own; nothing else is left.
    left = [k for k in keys(store) if ANN.uid in k and not k.startswith(f"{PREFIX}once:sent:")]
    assert left == [], left
    assert chat.subscriptions() == []
    assert chat.channel_members("console:local:C1") == set()
    forgotten = PEOPLE[3]
    assert store.forget_user(forgotten) > 0
    assert store.user_feedback(forgotten) == {}
    assert forgotten not in store.likers(ids[:20]).get(ids[9], set())
    version, forgets, _ = store.feedback_changes(0)
    assert forgets == 2 and version == store.feedback_version()
    service.train()
    assert forgotten not in service.state.user_index
    assert service._feedback.last_read == len(PEOPLE) - 1  # a forget re-reads everyone

    # -- and everything can be deleted.
    assert store.flush_prefix() > 0
    assert keys(store) == set()
    return figures
