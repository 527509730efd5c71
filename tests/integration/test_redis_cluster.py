"""paperbot on a real three-node Redis Cluster that the test starts itself.

Running on the cluster is the proof: a multi-key command, transaction or script that
spans slots fails there (CROSSSLOT, or redis-py refusing it), so every path below that
completes kept to one slot per command.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from redis.cluster import RedisCluster

from bot.__main__ import main
from bot.repo import ChatRepo
from recommender.slots import slot_of
from recommender.store import PREFIX, Store, StoreUnavailable, user_key
from tests.support.redis_cluster import free_ports, move_slot, needs_cluster_tools
from tests.support.store_slice import exercise

pytestmark = needs_cluster_tools


def test_the_whole_slice_runs_on_a_cluster(cluster_store: Store, redis_cluster_url: str) -> None:
    """Ingest, feedback, retrain + publish + load, fold-in, search, digest, forget, flush."""
    assert isinstance(cluster_store.r, RedisCluster) and cluster_store.by_slot
    other = Store.connect(redis_cluster_url)
    try:
        figures = exercise(cluster_store, other)
    finally:
        other.close()
    assert figures["papers"] == 96
    assert figures["sources"] == {"jsonl": 96}


def test_a_persons_keys_share_one_slot_and_spread_over_the_nodes(cluster_store: Store) -> None:
    """Each person's keys sit on one slot; different people land on different nodes."""
    people = [f"slack:T1:U{i}" for i in range(30)]
    for uid in people:
        cluster_store.apply_feedback(uid, "2401.00001", "save")
        cluster_store.add_words(uid, "topics", ["graphs"])
        cluster_store.put_user_json(uid, "onboard", {"shown": []})
    for uid in people:
        mine = list(cluster_store.r.scan_iter(match=f"{PREFIX}user:{{{uid}}}:*"))
        assert len(mine) >= 5
        assert {slot_of(k) for k in mine} == {slot_of(user_key(uid, "rx"))}
    nodes = {cluster_store.r.get_node_from_key(user_key(uid, "rx")).name for uid in people}
    assert len(nodes) == 3


def test_stats_and_search_from_the_command_line_on_a_cluster(
    cluster_store: Store,
    redis_cluster_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`REDIS_URL=redis+cluster://…` is all it takes for the CLI."""
    seed = Path(__file__).resolve().parents[1] / "fixtures" / "seed_papers.jsonl"
    monkeypatch.setenv("REDIS_URL", redis_cluster_url)
    monkeypatch.setenv("PAPERBOT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PAPERBOT_EMBEDDINGS", "false")
    monkeypatch.setenv("PAPERBOT_SOURCES", "jsonl")
    monkeypatch.setenv("PAPERBOT_JSONL_PATH", str(seed))
    assert main(["ingest"]) == 0
    assert main(["stats"]) == 0
    out = capsys.readouterr().out
    assert "Papers: 95" in out and "redis+cluster://127.0.0.1:" in out
    assert main(["search", "diffusion"]) == 0
    assert "iffusion" in capsys.readouterr().out


def test_an_unreachable_cluster_is_one_clear_line() -> None:
    """No node answers: StoreUnavailable naming the URL, password masked."""
    [port] = free_ports(1)
    with pytest.raises(StoreUnavailable) as caught:
        Store.connect(f"redis+cluster://:s3cret-pw@127.0.0.1:{port}")
    message = str(caught.value)
    assert message.startswith("cannot reach Redis at redis+cluster://:***@127.0.0.1:")
    assert "s3cret" not in message and "\n" not in message


def test_read_modify_write_and_a_workspace_purge_on_a_cluster(cluster_store: Store) -> None:
    """WATCH/MULTI on a person's slot retries cleanly; a purge finds keys on every node."""
    from bot.slack_purge import purge_team

    store = cluster_store
    chat = ChatRepo(store)
    uid = "slack:T7:U1"
    for n in range(3):
        store.update_user_json(uid, "onboard", lambda v, n=n: {**(v or {}), f"k{n}": n})
    assert store.get_user_json(uid, "onboard") == {"k0": 0, "k1": 1, "k2": 2}
    for i in range(12):
        store.apply_feedback(f"slack:T7:U{i}", f"2401.0000{i % 3}", "like")
        chat.put_subscription(
            f"dm:slack:T7:U{i}",
            {"id": f"dm:slack:T7:U{i}", "platform": "slack", "workspace": "T7"},
        )
        chat.remember_message(f"slack:T7:C1:{i}", {"paper": "2401.00001", "workspace": "T7"})
    store.apply_feedback("slack:T8:U1", "2401.00001", "like")
    assert purge_team(store, "T7") > 0
    # A deleted subscription keeps its order counter (a number) by design of `delete_subscription`.
    left = {k.decode() for k in store.r.scan_iter(match="*T7*")}
    assert {k for k in left if not k.endswith(":seq")} == set(), left
    assert store.likers(["2401.00001"])["2401.00001"] == {"slack:T8:U1"}


def test_a_plain_url_with_cluster_1_connects_to_the_cluster(redis_cluster_url: str) -> None:
    """`redis://host:port/0?cluster=1` is the same cluster as `redis+cluster://host:port`."""
    port = redis_cluster_url.rsplit(":", 1)[1]
    store = Store.connect(f"redis://127.0.0.1:{port}/0?cluster=1")
    try:
        assert isinstance(store.r, RedisCluster) and store.by_slot
        assert len(store.r.get_primaries()) == 3
    finally:
        store.close()


def test_a_plain_url_to_a_cluster_node_says_how_to_name_the_cluster(
    redis_cluster_url: str,
) -> None:
    """Not MOVED errors later, key by key: one line at connect."""
    port = redis_cluster_url.rsplit(":", 1)[1]
    with pytest.raises(StoreUnavailable, match=r"is a Redis Cluster node: .*redis\+cluster://"):
        Store.connect(f"redis://127.0.0.1:{port}/0")


def test_a_slot_moved_to_another_node_is_followed(cluster_store: Store) -> None:
    """Resharding under a running client: per-slot pipelines and scripts follow MOVED."""
    store = cluster_store
    ports = [node.port for node in store.r.get_primaries()]
    people = [f"slack:T1:U{i}" for i in range(20)]
    for uid in people:
        store.apply_feedback(uid, "2401.00001", "like")
    before = store.feedback_rows_of(people)
    old, new = move_slot(ports, slot_of(user_key(people[3], "rx")))
    assert old != new
    assert store.feedback_rows_of(people) == before
    assert store.apply_feedback(people[3], "2401.00002", "save") == {"save"}
    move_slot(ports, slot_of(f"{PREFIX}likers:2401.00001"))
    store.apply_feedback(people[4], "2401.00001", "save")
    assert len(store.likers(["2401.00001"])["2401.00001"]) == 20
    assert store.feedback_rows_of(people[3:4]) == [[b"2401.00001", b"like", b"2401.00002", b"save"]]


def test_digests_go_out_through_workers_with_the_broker_on_one_redis(
    cluster_store: Store,
    store: Store,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """paperbot's state on the cluster, Dramatiq's queues and rate limits on one Redis:
    a planned slot reaches every subscriber once, through a worker."""
    import asyncio
    import io
    import threading
    import time
    from datetime import UTC, datetime

    from bot.config import load_settings
    from bot.console import ConsolePort
    from bot.core import BotCore
    from bot.jobs.broker import limits_client
    from bot.jobs.engine import start_engine
    from bot.ports import Context
    from recommender.ingest import ingest
    from recommender.service import PaperService
    from recommender.sources import parse_body

    seed = Path(__file__).resolve().parents[1] / "fixtures" / "seed_papers.jsonl"
    monkeypatch.setenv("REDIS_URL", redis_cluster_url_of(cluster_store))
    monkeypatch.setenv("PAPERBOT_BROKER_URL", redis_url)
    monkeypatch.setenv("PAPERBOT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PAPERBOT_EMBEDDINGS", "false")
    settings = load_settings()
    ingest(cluster_store, parse_body("jsonl", seed.read_bytes()), "jsonl")
    core = BotCore(PaperService(cluster_store, encoder=None))
    people = [Context("console", "local", f"u{i}", is_dm=True) for i in range(6)]
    for ctx in people:
        assert core.answer(ctx, "subscribe daily 09:00 UTC").text.startswith("Subscribed")
    for record in core.chat.subscriptions():
        record["created"] = datetime(2026, 3, 1, tzinfo=UTC).timestamp()
        core.chat.put_subscription(record["id"], record)
    out = io.StringIO()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    engine = start_engine(
        settings, core, None, loop=loop, ports={"console": ConsolePort(out)}, threads=2
    )
    try:
        assert limits_client(engine.broker, cluster_store.r) is engine.broker.client
        due = datetime(2026, 3, 2, 9, 5, tzinfo=UTC)
        engine.jobs.plan(due)
        engine.jobs.plan(due)  # a second tick for the same slot plans nothing more
        deadline = time.monotonic() + 60
        while out.getvalue().count("=== ") < len(people) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)
    finally:
        engine.stop()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
    assert out.getvalue().count("=== ") == len(people)
    for ctx in people:
        assert len(cluster_store.seen(ctx.uid)) == 10
    # Only the queues (and rate-limit counters) live on the broker's Redis.
    elsewhere = [
        k
        for k in store.r.scan_iter(match=f"{PREFIX}*")
        if not k.startswith((b"pb:jobs", b"pb:rate:"))
    ]
    assert elsewhere == []


def test_the_task_engine_never_runs_on_the_cluster(
    cluster_store: Store, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Dramatiq's broker and limiter need one Redis: a cluster URL for them is refused."""
    from bot.config import ConfigError, load_settings
    from bot.jobs.broker import build_broker

    monkeypatch.setenv("REDIS_URL", redis_cluster_url_of(cluster_store))
    monkeypatch.setenv("PAPERBOT_DATA_DIR", str(tmp_path))
    with pytest.raises(
        ConfigError, match="REDIS_URL names a Redis Cluster: set PAPERBOT_BROKER_URL"
    ):
        build_broker(load_settings(), cluster_store.r)
    monkeypatch.setenv("PAPERBOT_BROKER_URL", redis_cluster_url_of(cluster_store))
    with pytest.raises(ConfigError, match=r"PAPERBOT_BROKER_URL: .* need a single Redis"):
        build_broker(load_settings(), cluster_store.r)


def redis_cluster_url_of(store: Store) -> str:
    """The `redis+cluster://` URL of the cluster a store is connected to."""
    node = store.r.get_primaries()[0]
    return f"redis+cluster://{node.host}:{node.port}"
