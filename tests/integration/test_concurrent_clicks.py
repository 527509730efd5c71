"""Concurrent clicks on one person: 2 processes x 50 threads end as a serial run would.

Every click is released at the same instant (one barrier across both processes), so the
per-person steps really do interleave. The final state is checked two ways: order-free
facts (a kind toggled an odd number of times is on), and a replay of the feedback log in
the order of the store's sequence numbers, which must reproduce every decision and the
final state exactly (the store's writes are linearizable).
"""

from __future__ import annotations

import multiprocessing as mp
import random
import threading
from collections import Counter
from collections.abc import Iterator

import pytest

from bot.feedback import FeedbackHandler, button_value
from bot.ports import Context
from bot.repo import ChatRepo
from recommender.ingest import ingest
from recommender.service import PaperService
from recommender.sources import parse_body
from recommender.store import PREFIX, Store, WordLimitReached, user_key
from recommender.types import Feedback

PROCESSES = 2
CLICKS_PER_PROCESS = 50
CTX = Context("slack", "T1", "U1", channel="D1", is_dm=True)
PAPERS = [f"2601.{n:05d}" for n in range(1, 6)]
AUTHOR = "grace hopper"
EXCLUSIVE = {"like": {"dislike"}, "dislike": {"like", "save"}}


def _papers() -> bytes:
    lines = [
        f'{{"arxiv_id": "{pid}", "title": "Paper {pid}", "authors": ["Grace Hopper"]}}'
        for pid in PAPERS
    ]
    return "\n".join(lines).encode()


def _clicks() -> list[tuple[Feedback, str]]:
    """100 button clicks: like-only, save-only and mixed papers, plus mute toggles."""
    rng = random.Random(12)
    clicks: list[tuple[Feedback, str]] = []
    for _ in range(PROCESSES * CLICKS_PER_PROCESS):
        paper = rng.choice(PAPERS)
        if paper == PAPERS[0]:
            kind = rng.choice([Feedback.LIKE, Feedback.MUTE])
        elif paper == PAPERS[1]:
            kind = Feedback.SAVE
        else:
            kind = rng.choice([Feedback.LIKE, Feedback.SAVE, Feedback.DISLIKE])
        clicks.append((kind, paper))
    return clicks


def _click_worker(url: str, clicks: list[tuple[Feedback, str]], barrier, errors) -> None:
    """One process: one thread per click, all released together."""
    store = Store.connect(url)
    handler = FeedbackHandler(PaperService(store, encoder=None))

    def click(kind: Feedback, paper: str) -> None:
        barrier.wait()
        try:
            outcome = handler.button(CTX, button_value(kind, paper))
            if not outcome.ok:
                errors.put(outcome.message)
        except Exception as exc:  # reported to the parent, which fails the test
            errors.put(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=click, args=c) for c in clicks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.close()


def _run_processes(target, per_process: list[list], url: str) -> list[str]:
    """Run `target(url, chunk, barrier, errors)` in one process per chunk; returns errors."""
    context = mp.get_context("fork")
    barrier = context.Barrier(sum(len(chunk) for chunk in per_process))
    errors = context.Queue()
    processes = [
        context.Process(target=target, args=(url, chunk, barrier, errors)) for chunk in per_process
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
        assert process.exitcode == 0
    found = []
    while not errors.empty():
        found.append(errors.get())
    return found


@pytest.fixture
def seeded(store: Store) -> Iterator[Store]:
    ingest(store, parse_body("jsonl", _papers()), "jsonl")
    yield store


def test_concurrent_clicks_end_as_a_serial_run(seeded: Store, redis_url: str) -> None:
    store = seeded
    clicks = _clicks()
    chunks = [clicks[i::PROCESSES] for i in range(PROCESSES)]
    assert [len(c) for c in chunks] == [CLICKS_PER_PROCESS] * PROCESSES
    assert _run_processes(_click_worker, chunks, redis_url) == []

    uid = CTX.uid
    rx = store.user_feedback(uid)
    saved = {pid for pid, _ in store.saved(uid)}
    likers = store.likers(PAPERS)
    counts = Counter(clicks)

    # Order-free facts: toggled an odd number of times = on.
    assert ("like" in rx.get(PAPERS[0], set())) == (counts[(Feedback.LIKE, PAPERS[0])] % 2 == 1)
    assert (PAPERS[1] in saved) == (counts[(Feedback.SAVE, PAPERS[1])] % 2 == 1)
    assert (AUTHOR in store.words(uid, "muted")) == (counts[(Feedback.MUTE, PAPERS[0])] % 2 == 1)

    # A serial replay in the store's order gives every decision and the final state.
    log = [f for _, f in store.r.xrange(f"{PREFIX}feedback:log")]
    feedback_clicks = [c for c in clicks if c[0] is not Feedback.MUTE]
    assert len(log) == len(feedback_clicks)
    assert Counter((f[b"kind"].decode(), f[b"paper"].decode()) for f in log) == Counter(
        (k.value, p) for k, p in feedback_clicks
    )
    seqs = [int(f[b"seq"]) for f in log]
    assert len(set(seqs)) == len(seqs)
    model: dict[str, set[str]] = {}
    for entry in sorted(log, key=lambda f: int(f[b"seq"])):
        kind, paper = entry[b"kind"].decode(), entry[b"paper"].decode()
        kinds = model.setdefault(paper, set())
        undo = kind in kinds
        assert entry[b"removed"] == (b"1" if undo else b"0")
        if undo:
            kinds.discard(kind)
        else:
            kinds.add(kind)
            kinds -= EXCLUSIVE.get(kind, set())
    expected = {p: k for p, k in model.items() if k}
    assert rx == expected
    assert saved == {p for p, k in expected.items() if "save" in k}
    for paper in PAPERS:
        positive = bool(expected.get(paper, set()) & {"like", "save"})
        assert likers[paper] == ({uid} if positive else set()), paper

    # The derived global marks end consistent too.
    assert store.r.zscore(f"{PREFIX}feedback:touched", uid) == store.feedback_version()
    assert store.feedback_version() == len(feedback_clicks)
    assert store.r.sismember(f"{PREFIX}users", uid)


def _topic_worker(url: str, words: list[str], barrier, errors) -> None:
    """One process: one thread per word, each adding it under a limit of 50."""
    store = Store.connect(url)

    def add(word: str) -> None:
        barrier.wait()
        try:
            store.add_words(CTX.uid, "topics", [word], limit=50)
            errors.put(f"added:{word}")
        except WordLimitReached:
            errors.put(f"full:{word}")

    threads = [threading.Thread(target=add, args=(w,)) for w in words]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.close()


def test_concurrent_topic_adds_never_pass_the_limit(store: Store, redis_url: str) -> None:
    store.add_words(CTX.uid, "topics", ["already"])
    words = [f"topic {n}" for n in range(PROCESSES * CLICKS_PER_PROCESS)]
    outcomes = _run_processes(_topic_worker, [words[0::2], words[1::2]], redis_url)
    added = {o.split(":", 1)[1] for o in outcomes if o.startswith("added:")}
    refused = {o.split(":", 1)[1] for o in outcomes if o.startswith("full:")}
    assert len(added) == 49 and len(refused) == 51
    assert store.words(CTX.uid, "topics") == added | {"already"}


def _subscription_worker(url: str, ops: list[tuple[str, str]], barrier, errors) -> None:
    """One process: one thread per put/delete of a few subscriptions."""
    store = Store.connect(url)

    def run(op: str, sub_id: str) -> None:
        barrier.wait()
        try:
            if op == "put":
                ChatRepo(store).put_subscription(sub_id, {"id": sub_id, "owner": CTX.uid})
            elif op == "touch":
                ChatRepo(store).update_subscription(sub_id, {"last_sent": 1.0})
            else:
                ChatRepo(store).delete_subscription(sub_id)
        except Exception as exc:
            errors.put(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=run, args=op) for op in ops]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.close()


def test_concurrent_subscription_changes_keep_the_index_exact(store: Store, redis_url: str) -> None:
    rng = random.Random(3)
    ids = [f"dm:slack:T1:U{n}" for n in range(4)]
    ops = [
        (rng.choice(["put", "put", "delete", "touch"]), rng.choice(ids))
        for _ in range(PROCESSES * CLICKS_PER_PROCESS)
    ]
    assert _run_processes(_subscription_worker, [ops[0::2], ops[1::2]], redis_url) == []
    stored = {i for i in ids if ChatRepo(store).get_subscription(i) is not None}
    indexed = {m.decode() for m in store.r.smembers(f"{PREFIX}subs")}
    assert indexed == stored
    assert {s["id"] for s in ChatRepo(store).subscriptions()} == stored
    for sub_id in stored:
        assert ChatRepo(store).get_subscription(sub_id)["owner"] == CTX.uid


def test_keys_of_one_step_share_a_cluster_slot() -> None:
    from redis.crc import key_slot

    uid = CTX.uid
    per_person = {key_slot(user_key(uid, s).encode()) for s in ("rx", "saved", "seq", "rated")}
    assert len(per_person) == 1
    for index in (f"{PREFIX}likers:{PAPERS[0]}", f"{PREFIX}subs"):
        assert key_slot(index.encode()) == key_slot(("{" + index + "}:seq").encode())
    sub = "pb:sub:{dm:slack:T1:U1}"
    assert key_slot(sub.encode()) == key_slot((sub + ":seq").encode())
