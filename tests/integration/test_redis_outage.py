"""Redis stopped while commands, clicks, reactions and a digest run, then started again.

Each action gets one clear line, nothing is half-written, and service resumes by itself
once Redis is back. The test runs its own `redis-server` (with an append-only file, so the
data survives the restart) on a free port; `bench/redis_outage.py` measures the recovery
time of a 20-second outage.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot import scheduler as sched
from bot.config import load_settings
from bot.core import UNAVAILABLE, BotCore
from bot.feedback import button_value
from bot.ports import Context, Sent
from bot.repo import ChatRepo
from bot.subscriptions import Subscription
from recommender.ingest import ingest
from recommender.service import PaperService
from recommender.sources import parse_body
from recommender.store import PREFIX, Store
from recommender.types import Feedback
from tests.integration.test_digest_delivery import FakePort

SEED = Path(__file__).resolve().parents[1] / "fixtures" / "seed_papers.jsonl"
CTX = Context("slack", "T1", "U1", channel="D1", is_dm=True, timezone="UTC")
OUTAGE = 2.0  # seconds; the same code path as a 20-second outage (see the benchmark)


def next_due() -> datetime:
    """Half an hour after the next 09:00 UTC: when a daily 09:00 digest made now is due."""
    now = datetime.now(UTC)
    due = now.replace(hour=9, minute=30, second=0, microsecond=0)
    return due if due > now else due + timedelta(days=1)


pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server")


class RedisServer:
    """A redis-server of our own on a free port, stoppable and restartable with its data."""

    def __init__(self, directory: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Its URL."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (again) on the same port and directory, and wait until it answers."""
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        """Stop it (it flushes its append-only file on the way down)."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(30)
            self.process = None


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    redis_server = RedisServer(tmp_path)
    redis_server.start()
    try:
        yield redis_server
    finally:
        redis_server.stop()


def test_an_outage_gets_one_clear_line_each_and_service_resumes(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store.connect(server.url)
    ingest(store, parse_body("jsonl", SEED.read_bytes()), "jsonl")
    core = BotCore(PaperService(store, encoder=None))
    port = FakePort()
    core.register(port)
    papers = store.all_paper_ids()
    assert "Subscribed" in core.answer(CTX, "subscribe daily 09:00 UTC").text
    assert core.button(CTX, button_value(Feedback.LIKE, papers[0])).startswith("👍")
    ChatRepo(store).remember_message("slack:D1:1.0", {"paper": papers[1], "workspace": "T1"})
    log_before = store.r.xlen(f"{PREFIX}feedback:log")
    runtime = sched.Runtime(settings=load_settings(), store=store, core=core)
    due = next_due()

    server.stop()
    caplog.clear()
    caplog.set_level(logging.ERROR)
    ended = time.monotonic() + OUTAGE
    assert core.answer(CTX, "settings").text == UNAVAILABLE
    assert core.answer(CTX, "topics add diffusion").text == UNAVAILABLE
    assert core.button(CTX, button_value(Feedback.SAVE, papers[2])) == UNAVAILABLE
    assert core.reaction(CTX, "slack:D1:1.0", "+1", removed=False) is None
    assert sched.digest_job(runtime, due) == {}
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 5, lines
    assert all("paperbot cannot reach its database" in line for line in lines), lines
    assert all("\n" not in line and "Traceback" not in line for line in lines)
    assert port.calls == 0
    time.sleep(max(0.0, ended - time.monotonic()))

    server.start()
    restarted = time.monotonic()
    # Bounded only so a regression cannot hang the suite; the benchmark measures the time.
    while core.answer(CTX, "settings").text == UNAVAILABLE:
        assert time.monotonic() - restarted < 60, "service did not resume"
        time.sleep(0.05)

    # Nothing half-written: the outage's actions left no trace, earlier state is whole.
    assert store.r.xlen(f"{PREFIX}feedback:log") == log_before
    assert store.user_feedback(CTX.uid) == {papers[0]: {"like"}}
    assert store.likers([papers[0], papers[1], papers[2]]) == {
        papers[0]: {CTX.uid},
        papers[1]: set(),
        papers[2]: set(),
    }
    assert store.words(CTX.uid, "topics") == set()
    assert {s["id"] for s in ChatRepo(store).subscriptions()} == {f"dm:slack:T1:{CTX.user}"}
    # Everything works again, the due digest included, sent once.
    assert core.button(CTX, button_value(Feedback.SAVE, papers[2])).startswith("🔖")
    assert core.reaction(CTX, "slack:D1:1.0", "+1", removed=False) is not None
    sub_id = f"dm:slack:T1:{CTX.user}"
    assert sched.digest_job(runtime, due) == {sub_id: "sent"}
    assert sched.digest_job(runtime, due) == {}
    sub = Subscription.from_dict(ChatRepo(store).get_subscription(sub_id))
    assert sub.last_period and len(port.intros) == 1
    store.close()


class StoppingPort(FakePort):
    """A port that stops Redis right after posting its third paper, and finds its own posts
    afterwards (as the Slack port does through history)."""

    def __init__(self, server: RedisServer) -> None:
        super().__init__()
        self.server = server

    async def post_card(self, target, digest, card, thread):  # type: ignore[no-untyped-def]
        sent = await super().post_card(target, digest, card, thread)
        if len(self.cards) == 3:
            self.server.stop()
        return sent

    async def find_sent(self, target, digest, card, thread):  # type: ignore[no-untyped-def]
        for _, posted, _, key in self.cards:
            if card is not None and posted.paper_id == card.paper_id:
                return Sent(key, card.paper_id)
        return None


def test_a_digest_cut_by_an_outage_resumes_without_repeating_a_paper(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store.connect(server.url)
    ingest(store, parse_body("jsonl", SEED.read_bytes()), "jsonl")
    core = BotCore(PaperService(store, encoder=None))
    port = StoppingPort(server)
    core.register(port)
    core.answer(CTX, "subscribe daily 09:00 UTC")
    runtime = sched.Runtime(settings=load_settings(), store=store, core=core)
    due = next_due()

    caplog.set_level(logging.ERROR)
    assert sched.digest_job(runtime, due) == {}
    assert len(port.cards) == 3
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("digest run skipped: paperbot cannot reach its database")

    server.start()
    restarted = time.monotonic()
    while True:
        results = sched.digest_job(runtime, due)
        if results:
            break
        assert time.monotonic() - restarted < 60, "the digest did not resume"
        time.sleep(0.05)
    assert results == {f"dm:slack:T1:{CTX.user}": "sent"}
    ids = port.paper_ids()
    assert len(ids) == len(set(ids)) == 10
    assert len(port.intros) == 1
    # Every paper, the one whose record the outage cut included, maps back from its message.
    for _, card, _, key in port.cards:
        assert ChatRepo(store).message(key)["paper"] == card.paper_id
    store.close()
