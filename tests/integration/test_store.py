"""The Redis repository against a real Redis server: papers, logs, caches, failures."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

from bot.repo import ChatRepo
from recommender.store import (
    PREFIX,
    Store,
    StoreUnavailable,
    WordLimitReached,
    paper_from_json,
    paper_json,
)
from recommender.types import IngestReport, Paper

T0 = datetime(2026, 6, 12, 9, 30, 15, 123456, tzinfo=UTC)


def full_paper(paper_id: str = "2606.13392", **changes: object) -> Paper:
    """A paper with every field set to something other than its default."""
    paper = Paper(
        id=paper_id,
        title="MiniMax Sparse Attention: Über-long contexts — naïve baselines, 注意力 🚀",
        abstract='Sparse attention with "quotes", a back\\slash and a\nnewline kept as text.',
        authors=["Zoë Müller", "José García", "李雷"],
        version=3,
        categories=["cs.CL", "cs.LG"],
        primary_category="cs.CL",
        # Not UTC on purpose: the instant must survive, whatever the offset.
        published=datetime(2026, 6, 11, 2, 0, tzinfo=timezone(timedelta(hours=2))),
        updated=datetime(2026, 6, 12, 1, 2, 3, 456789, tzinfo=UTC),
        abs_url="https://arxiv.org/abs/2606.13392v3",
        pdf_url="https://arxiv.org/pdf/2606.13392v3",
        code_url="https://github.com/MiniMax-AI/MSA",
        project_url="https://minimax-ai.github.io/msa/",
        doi="10.48550/arXiv.2606.13392",
        upvotes=103,
        github_stars=251,
        comments=4,
        keywords=["sparse attention", "long context"],
        summary="A sparse attention that scales to long contexts.",
        sources=["hf", "arxiv"],
        first_seen=T0,
    )
    return dataclasses.replace(paper, **changes)


def stored_json(store: Store, paper_id: str) -> dict[str, object]:
    """The raw JSON stored for a paper."""
    raw = store.r.get(f"{PREFIX}paper:{paper_id}")
    assert raw is not None
    return json.loads(raw)


# -- papers ---------------------------------------------------------------------------


def test_paper_round_trip_keeps_every_field(store: Store) -> None:
    paper = full_paper()
    defaults = Paper(id="x", title="y")
    for f in dataclasses.fields(Paper):
        # Guards the test itself: a field added to Paper later must be covered here too.
        assert getattr(paper, f.name) != getattr(defaults, f.name), f.name

    store.write_papers([paper])
    back = store.get_paper(paper.id)

    assert back == paper
    for f in dataclasses.fields(Paper):
        assert getattr(back, f.name) == getattr(paper, f.name), f.name
    assert back is not None and back.published is not None and back.first_seen is not None
    assert back.published.utcoffset() == timedelta(0)
    assert back.published == datetime(2026, 6, 11, 0, 0, tzinfo=UTC)
    assert back.first_seen.microsecond == 123456
    # The stored form is exactly what `Paper.to_dict` describes.
    assert stored_json(store, paper.id) == paper.to_dict()


def test_stored_form_matches_to_dict_for_sparse_and_naive_papers(store: Store) -> None:
    sparse = Paper(id="title:0123456789abcdef", title="Only a title")
    naive = full_paper("2401.00001", published=datetime(2024, 1, 2, 3, 4, 5), upvotes=0)
    store.write_papers([sparse, naive])

    assert stored_json(store, sparse.id) == {"id": sparse.id, "title": "Only a title"}
    assert stored_json(store, naive.id) == naive.to_dict()
    assert "upvotes" not in stored_json(store, naive.id)
    back = store.get_paper(naive.id)
    assert back is not None
    # A naive time is read as UTC, as `Paper.to_dict` does.
    assert back.published == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert store.get_paper(sparse.id) == sparse


def test_paper_json_equals_the_reference_serialisation() -> None:
    for paper in (full_paper(), Paper(id="2401.00002", title="", abstract="x")):
        assert paper_json(paper) == json.dumps(paper.to_dict())
        assert paper_from_json(paper_json(paper)) == Paper.from_dict(paper.to_dict())


def test_records_with_unknown_fields_still_load(store: Store) -> None:
    record = {"id": "2401.00003", "title": "Old", "retired_field": 1, "first_seen": "2024-01-01"}
    store.r.set(f"{PREFIX}paper:2401.00003", json.dumps(record))
    back = store.get_paper("2401.00003")
    assert back is not None
    assert (back.title, back.first_seen) == ("Old", datetime(2024, 1, 1, tzinfo=UTC))


def test_get_papers_keeps_order_and_gives_none_for_unknown(store: Store) -> None:
    papers = [full_paper(f"2606.0000{i}", title=f"Paper {i}") for i in range(1, 4)]
    store.write_papers(papers)

    got = store.get_papers(["2606.00003", "2606.99999", "2606.00001", "2606.00002"])

    assert [p.title if p else None for p in got] == ["Paper 3", None, "Paper 1", "Paper 2"]
    assert store.get_papers([]) == []
    assert store.get_paper("2606.99999") is None
    assert store.paper_count() == 3


def test_aliases_resolve_to_the_canonical_paper(store: Store) -> None:
    title_only = Paper(id="title:aaaaaaaaaaaaaaaa", title="A paper", first_seen=T0)
    store.write_papers([title_only], title_keys={"aaaaaaaaaaaaaaaa": title_only.id})
    arxiv = full_paper("2606.00010", title="A paper")
    store.write_papers(
        [arxiv],
        title_keys={"aaaaaaaaaaaaaaaa": arxiv.id},
        aliases={title_only.id: arxiv.id},
    )

    assert store.resolve_ids([title_only.id, "2606.00010", "2606.77777"]) == [
        "2606.00010",
        "2606.00010",
        "2606.77777",
    ]
    assert store.get_paper(title_only.id) == arxiv
    assert store.r.exists(f"{PREFIX}paper:{title_only.id}") == 0
    assert store.all_paper_ids() == ["2606.00010"]
    assert store.lookup_titles(["aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"]) == ["2606.00010", None]


def test_paper_ids_since_uses_first_seen_and_never_moves_it(store: Store) -> None:
    times = [T0 + timedelta(hours=h) for h in range(3)]
    papers = [full_paper(f"2606.0010{i}", first_seen=t) for i, t in enumerate(times)]
    store.write_papers(papers)

    second = times[1].timestamp()
    assert store.paper_ids_since(second) == ["2606.00101", "2606.00102"]
    assert store.paper_ids_since(times[0].timestamp(), second) == ["2606.00100", "2606.00101"]
    assert store.paper_ids_since(times[2].timestamp() + 1) == []

    # Re-writing a paper (an update) keeps the time it was first seen.
    store.write_papers([full_paper("2606.00100", first_seen=times[2] + timedelta(days=1))])
    assert store.paper_ids_since(second) == ["2606.00101", "2606.00102"]
    assert store.all_paper_ids() == ["2606.00100", "2606.00101", "2606.00102"]


def test_a_paper_without_first_seen_is_dated_now(store: Store) -> None:
    before = time.time()
    store.write_papers([Paper(id="2606.00200", title="Undated")])
    assert store.paper_ids_since(before - 1) == ["2606.00200"]


def test_iter_papers_reads_everything_in_batches(store: Store) -> None:
    papers = [full_paper(f"2606.{i:05d}", first_seen=T0 + timedelta(minutes=i)) for i in range(25)]
    store.write_papers(papers[::-1])
    sizes: list[int] = []
    real_get = store.get_papers

    def counting_get(ids: list[str]) -> list[Paper | None]:
        sizes.append(len(ids))
        return real_get(ids)

    store.get_papers = counting_get  # type: ignore[method-assign]

    assert [p.id for p in store.iter_papers(batch=7)] == [p.id for p in papers]
    assert sizes == [7, 7, 7, 4]


def test_source_counts_add_up(store: Store) -> None:
    assert store.source_counts() == {}
    store.write_papers([full_paper("2606.00301")], new_sources={"hf": 3})
    store.write_papers([full_paper("2606.00302")], new_sources={"hf": 2, "arxiv": 1})
    assert store.source_counts() == {"hf": 5, "arxiv": 1}


# -- ingest log -------------------------------------------------------------------------


def report(source: str, new: int, **extra: object) -> IngestReport:
    """An ingest report as one run of `source` would leave it."""
    return IngestReport(source=source, new=new, started=T0 + timedelta(minutes=new), **extra)


def test_ingest_log_is_newest_first_with_every_field(store: Store) -> None:
    store.log_ingest(report("hf", 1, updated=2, unchanged=3, seconds=0.25))
    failed = report("rss", 2, skipped=4, reasons={"bad id": 3, "bad date": 1}, error="boom")
    store.log_ingest(failed)
    store.log_ingest(report("arxiv", 3))

    rows = store.ingest_log()
    assert [r.source for r in rows] == ["arxiv", "rss", "hf"]
    rss, hf = rows[1], rows[2]
    assert (rss.new, rss.skipped, rss.reasons, rss.error) == (2, 4, failed.reasons, "boom")
    assert rss.at == pytest.approx((T0 + timedelta(minutes=2)).timestamp())
    assert (hf.updated, hf.unchanged, hf.error, hf.seconds) == (2, 3, None, 0.25)
    assert [r.source for r in store.ingest_log(count=2)] == ["arxiv", "rss"]


def test_ingest_log_is_capped(store: Store) -> None:
    for i in range(8):
        store.log_ingest(report(f"run{i}", i), keep=5)
    assert store.r.xlen(f"{PREFIX}ingest:log") == 5
    assert [r.source for r in store.ingest_log(count=100)] == [f"run{i}" for i in (7, 6, 5, 4, 3)]


# -- embedding cache -------------------------------------------------------------------


def test_vectors_round_trip_and_wrong_sizes_read_as_missing(store: Store) -> None:
    rng = np.random.default_rng(0)
    first, second = rng.standard_normal((2, 384))
    store.put_vectors("minilm", {"h1": first, "h2": second, "short": first[:100]})

    got = store.get_vectors("minilm", ["h2", "missing", "h1", "short"], 384)

    assert got[0] is not None and got[2] is not None
    assert got[0].dtype == np.float32 and got[0].shape == (384,)
    np.testing.assert_array_equal(got[0], second.astype(np.float32))
    np.testing.assert_array_equal(got[2], first.astype(np.float32))
    assert got[1] is None
    # A blob of another dimension (an older model, a corrupt write) is a cache miss.
    assert got[3] is None
    assert store.get_vectors("minilm", ["h1"], 128) == [None]
    assert store.get_vectors("other-model", ["h1"], 384) == [None]
    assert store.get_vectors("minilm", [], 384) == []


def test_many_vectors_are_cached_in_chunks(store: Store) -> None:
    vectors = {f"h{i}": np.full(8, i, dtype=np.float32) for i in range(12_345)}
    store.put_vectors("tiny", vectors)
    got = store.get_vectors("tiny", ["h0", "h12344"], 8)
    assert [float(v[0]) for v in got if v is not None] == [0.0, 12344.0]
    assert store.r.hlen(f"{PREFIX}emb:tiny") == 12_345


# -- helpers for the chat side ------------------------------------------------------------


def test_once_claims_a_key_until_it_expires_or_is_released(store: Store) -> None:
    assert ChatRepo(store).once("digest:slack:T1:U2:2026-06-12", 3600) is True
    assert ChatRepo(store).once("digest:slack:T1:U2:2026-06-12", 3600) is False
    assert ChatRepo(store).once("digest:slack:T1:U3:2026-06-12", 3600) is True
    ttl = store.r.ttl(f"{PREFIX}once:digest:slack:T1:U2:2026-06-12")
    assert 0 < ttl <= 3600

    ChatRepo(store).release_once("digest:slack:T1:U2:2026-06-12")
    assert ChatRepo(store).once("digest:slack:T1:U2:2026-06-12", 3600) is True

    store.r.pexpire(f"{PREFIX}once:digest:slack:T1:U3:2026-06-12", 1)
    deadline = time.monotonic() + 5
    while store.r.exists(f"{PREFIX}once:digest:slack:T1:U3:2026-06-12"):
        assert time.monotonic() < deadline, "marker never expired"
        time.sleep(0.01)
    assert ChatRepo(store).once("digest:slack:T1:U3:2026-06-12", 3600) is True


def test_flush_prefix_deletes_only_paperbot_keys(store: Store) -> None:
    others = ["other:key", "pbx:key", "pb", "PB:upper"]
    try:
        for key in others:
            store.r.set(key, "keep")
        store.write_papers([full_paper()], title_keys={"k": "2606.13392"})
        ChatRepo(store).once("x", 60)
        store.put_vectors("m", {"h": np.zeros(4)})
        pipe = store.r.pipeline()
        for i in range(2500):
            pipe.set(f"{PREFIX}bulk:{i}", i)
        pipe.execute()

        deleted = store.flush_prefix()

        # paper, seen, title index, change stream, once marker, vectors
        assert deleted == 2500 + 6
        assert list(store.r.scan_iter(match=f"{PREFIX}*")) == []
        assert [store.r.get(k) for k in others] == [b"keep"] * len(others)
        assert store.flush_prefix() == 0
    finally:
        store.r.delete(*others)


# -- failures ----------------------------------------------------------------------------


def assert_one_clear_line(message: str, *, where: str, secret: str | None = None) -> None:
    """A message fit for a person: one line, says where, never holds the secret."""
    assert "\n" not in message
    assert where in message
    assert len(message) < 300
    if secret:
        assert secret not in message


def test_redis_that_is_down_gives_one_clear_line() -> None:
    with pytest.raises(StoreUnavailable) as caught:
        Store.connect("redis://127.0.0.1:1/0")
    assert_one_clear_line(str(caught.value), where="127.0.0.1:1")
    assert "cannot reach Redis" in str(caught.value)


def test_password_never_appears_in_the_message() -> None:
    urls = [
        "redis://:hunter2secret@127.0.0.1:1/0",
        "redis://paperbot:hunter2secret@127.0.0.1:1/0",
        "redis://:hunter2secret@127.0.0.1:notaport/0",
        "http://:hunter2secret@127.0.0.1:1/0",
        "redis://127.0.0.1:1/0?password=hunter2secret",
    ]
    for url in urls:
        with pytest.raises(StoreUnavailable) as caught:
            Store.connect(url)
        assert_one_clear_line(str(caught.value), where="127.0.0.1", secret="hunter2secret")
        assert "***" in str(caught.value)


def test_wrong_credentials_on_a_live_server_are_unavailable_too(redis_url: str) -> None:
    parts = urlsplit(redis_url)
    if not parts.hostname:
        pytest.skip("the test Redis is not on TCP")
    host = f"{parts.hostname}:{parts.port or 6379}"
    with pytest.raises(StoreUnavailable) as caught:
        Store.connect(f"redis://nobody:hunter2secret@{host}/0")
    assert_one_clear_line(str(caught.value), where=host, secret="hunter2secret")


def _answers(store: Store) -> bool:
    """Whether the store's server still answers a PING."""
    try:
        store.ping()
    except StoreUnavailable:
        return False
    return True


def test_a_server_lost_mid_run_raises_store_unavailable_everywhere(tmp_path: Path) -> None:
    server = Store.connect(None, tmp_path)
    url = f"unix://{server.r.socket_file}"  # type: ignore[attr-defined]
    client = Store.connect(url)
    try:
        client.write_papers([full_paper()])
        # A crash, not a clean shutdown: the server is gone without a word.
        os.kill(server.r.pid, signal.SIGKILL)  # type: ignore[attr-defined]
        deadline = time.monotonic() + 10
        while _answers(client):
            assert time.monotonic() < deadline, "the killed server still answers"
            time.sleep(0.05)
        calls = [
            lambda: client.get_papers(["2606.13392"]),
            lambda: client.write_papers([full_paper()]),
            lambda: client.paper_count(),
            lambda: client.log_ingest(report("hf", 1)),
            lambda: client.get_vectors("m", ["h"], 4),
            lambda: ChatRepo(client).once("x", 10),
            lambda: list(client.iter_papers()),
        ]
        for call in calls:
            with pytest.raises(StoreUnavailable) as caught:
                call()
            assert_one_clear_line(str(caught.value), where=url)
    finally:
        client.close()
        server.close()


# -- the embedded default ------------------------------------------------------------------


def test_embedded_redis_keeps_data_across_a_restart(tmp_path: Path) -> None:
    first = Store.connect(None, tmp_path)
    try:
        first_pid = first.r.pid  # type: ignore[attr-defined]
        first.write_papers([full_paper()], new_sources={"hf": 1})
        first.log_ingest(report("hf", 1))
    finally:
        first.close()

    second = Store.connect(None, tmp_path)
    try:
        assert second.r.pid != first_pid  # type: ignore[attr-defined]
        assert second.get_paper("2606.13392") == full_paper()
        assert second.source_counts() == {"hf": 1}
        assert [r.source for r in second.ingest_log()] == ["hf"]
    finally:
        second.close()


def test_embedded_redis_needs_a_data_directory() -> None:
    with pytest.raises(StoreUnavailable, match="data directory"):
        Store.connect(None, None)


# -- one-step per-person writes ------------------------------------------------------------


def test_add_words_refuses_past_the_limit_and_adds_nothing(store: Store) -> None:
    assert store.add_words("u", "topics", ["a", "b", "b"], limit=3) == 2
    # Words already there never count against the limit.
    assert store.add_words("u", "topics", ["a", "c"], limit=3) == 1
    with pytest.raises(WordLimitReached) as info:
        store.add_words("u", "topics", ["d", "a"], limit=3)
    assert (info.value.kind, info.value.limit, info.value.size) == ("topics", 3, 3)
    assert str(info.value) == "your topics list is full (3 of 3)"
    assert store.words("u", "topics") == {"a", "b", "c"}
    assert store.add_words("u", "topics", ["a"], limit=3) == 0


def test_toggle_word_flips_in_one_step(store: Store) -> None:
    assert store.toggle_word("u", "muted", "grace hopper") is True
    assert store.toggle_word("u", "muted", "grace hopper") is False
    assert store.words("u", "muted") == set()
    store.add_words("u", "muted", ["x", "y"])
    with pytest.raises(WordLimitReached):
        store.toggle_word("u", "muted", "z", limit=2)
    # Removing works at the limit.
    assert store.toggle_word("u", "muted", "x", limit=2) is False
    assert store.words("u", "muted") == {"y"}


def test_apply_feedback_toggle_and_exclusive(store: Store) -> None:
    assert store.apply_feedback("u", "p1", "like", toggle=True) == {"like"}
    assert store.likers(["p1"]) == {"p1": {"u"}}
    assert store.apply_feedback("u", "p1", "dislike", exclusive=("like", "save")) == {"dislike"}
    assert store.likers(["p1"]) == {"p1": set()}
    assert store.apply_feedback("u", "p1", "save", toggle=True) == {"dislike", "save"}
    assert [p for p, _ in store.saved("u")] == ["p1"]
    assert store.apply_feedback("u", "p1", "save", toggle=True) == {"dislike"}
    assert store.saved("u") == []
    log = [f for _, f in store.r.xrange(f"{PREFIX}feedback:log")]
    assert [(f[b"kind"], f[b"removed"]) for f in log] == [
        (b"like", b"0"),
        (b"dislike", b"0"),
        (b"save", b"0"),
        (b"save", b"1"),
    ]
    seqs = [int(f[b"seq"]) for f in log]
    assert seqs == sorted(seqs) and len(set(seqs)) == 4
    assert store.r.zscore(f"{PREFIX}feedback:touched", "u") == store.feedback_version() == 4


def test_subscription_put_keeps_named_fields_and_update_merges(store: Store) -> None:
    assert (
        ChatRepo(store).put_subscription("s1", {"id": "s1", "at": "09:00", "last_sent": None})
        is False
    )
    assert (
        ChatRepo(store).update_subscription("s1", {"last_sent": 5.0, "last_period": "p"})
        is not None
    )
    assert (
        ChatRepo(store).put_subscription(
            "s1", {"id": "s1", "at": "10:00", "last_sent": None}, keep=("last_sent", "last_period")
        )
        is True
    )
    assert ChatRepo(store).get_subscription("s1") == {
        "id": "s1",
        "at": "10:00",
        "last_sent": 5.0,
        "last_period": "p",
    }
    assert ChatRepo(store).delete_subscription("s1") is True
    assert ChatRepo(store).update_subscription("s1", {"last_sent": 6.0}) is None
    assert ChatRepo(store).get_subscription("s1") is None and ChatRepo(store).subscriptions() == []
    assert ChatRepo(store).delete_subscription("s1") is False
