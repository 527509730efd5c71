"""The task engine in one process: bad jobs, the dead-letter queue, 429s, RabbitMQ."""

from __future__ import annotations

import asyncio
import io
import logging
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.__main__ import main
from bot.config import Settings, load_settings
from bot.console import ConsolePort
from bot.core import BotCore
from bot.jobs.actors import across_workspaces
from bot.jobs.broker import dead_letters
from bot.jobs.context import loop_thread
from bot.jobs.engine import Engine, start_engine
from bot.ports import DeliveryError, Digest, PaperCard, Sent, Target
from bot.repo import ChatRepo
from bot.slack_app import SlackPort, make_client, open_session
from bot.subscriptions import Subscription, subscription_id
from recommender import pipeline
from recommender.service import PaperService
from recommender.store import Store
from tests.e2e.slack_fakes import BOT_TOKEN, TEAM, Failure
from tests.support import fanout

RABBIT = "amqp://guest:guest@127.0.0.1:5672/"


def seed_papers(store: Store) -> None:
    """The sample papers (digests need something new to say)."""
    pipeline.ingest_source(store, "jsonl", body=fanout.SEED.read_bytes(), label="seed")


def subscribe(store: Store, platform: str, workspace: str, user: str) -> tuple[Subscription, str]:
    """A DM subscription due now; returns it and its period."""
    now = datetime.now(UTC)
    sub = Subscription(
        id=subscription_id("dm", platform, workspace, user),
        kind="dm",
        platform=platform,
        workspace=workspace,
        target=user,
        owner=f"{platform}:{workspace}:{user}",
        at=(now - timedelta(minutes=1)).strftime("%H:%M"),
        size=3,
        created=(now - timedelta(days=2)).timestamp(),
    )
    ChatRepo(store).put_subscription(sub.id, sub.to_dict())
    return sub, now.date().isoformat()


class FailingPort(ConsolePort):
    """A console port whose every post fails (a platform that keeps erroring)."""

    async def post_intro(self, target: Target, digest: Digest) -> Sent:
        raise DeliveryError("the platform is having a bad day")

    async def post_card(
        self, target: Target, digest: Digest, card: PaperCard, thread: str | None
    ) -> Sent:
        raise DeliveryError("the platform is having a bad day")


@pytest.fixture
def engine(store: Store, redis_url: str) -> Iterator[Callable[..., Engine]]:
    """Starts an in-process engine on the test Redis (or a given broker) with given ports."""
    started: list[tuple[Engine, asyncio.AbstractEventLoop]] = []

    def start(ports: dict[str, Any], **env: Any) -> Engine:
        settings: Settings = load_settings(REDIS_URL=redis_url, **env)
        core = BotCore(PaperService(store, encoder=None))
        loop = loop_thread()
        for port in ports.values():
            if isinstance(port, SlackPort):
                asyncio.run_coroutine_threadsafe(open_session(port), loop).result(5)
        engine = start_engine(settings, core, None, loop=loop, ports=ports, threads=2)
        started.append((engine, loop))
        return engine

    yield start
    for engine, loop in started:
        engine.stop()
        loop.call_soon_threadsafe(loop.stop)


def wait(check: Callable[[], bool], timeout: float = 20) -> None:
    """Poll until `check()` holds, or fail."""
    assert fanout.wait_until(check, timeout, 0.05), "timed out"


def test_a_malformed_job_is_dropped_with_one_line_and_not_retried(
    store: Store, engine: Callable[..., Engine], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.jobs")
    running = engine({"console": ConsolePort(io.StringIO())})
    actor = running.jobs.actors["deliver_console"]
    actor.send("not an object")
    actor.send_with_options(args=({"sub": 42},))
    wait(lambda: len([r for r in caplog.records if "dropped job" in r.getMessage()]) == 2)
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("bot.jobs")]
    assert len(lines) == 2
    assert "expects one JSON object" in lines[0] and "`sub` must be" in lines[1]
    time.sleep(0.5)
    assert sum(dead_letters(running.broker).values()) == 0
    assert running.broker.client.llen("pb:jobs:deliver_console") == 0


def test_a_job_naming_a_deleted_subscription_is_dropped(
    store: Store, engine: Callable[..., Engine], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.jobs")
    running = engine({"console": ConsolePort(io.StringIO())})
    running.jobs.deliver("dm:console:local:gone", "console", "2026-01-01")
    wait(lambda: any("subscription is gone" in r.getMessage() for r in caplog.records))
    time.sleep(0.3)
    assert sum(dead_letters(running.broker).values()) == 0


def test_a_job_failing_every_retry_lands_in_the_dead_letter_queue_and_stats_shows_it(
    store: Store,
    engine: Callable[..., Engine],
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    seed_papers(store)
    sub, period = subscribe(store, "console", "local", "ann")
    running = engine({"console": FailingPort(io.StringIO())}, PAPERBOT_JOB_RETRIES=1)
    running.jobs.deliver(sub.id, "console", period)
    wait(lambda: dead_letters(running.broker).get("deliver_console") == 1, 30)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("PAPERBOT_EMBEDDINGS", "0")
    assert main(["stats"]) == 0
    assert "dead-letter queue: 1" in capsys.readouterr().out


def test_a_429_brings_the_job_back_after_retry_after_without_busy_retries(
    store: Store, engine: Callable[..., Engine]
) -> None:
    seed_papers(store)
    fake = fanout.RateLimitedSlack(latency=0.0, workspace_rate=1000)
    served = fanout.Served(fake)
    try:
        sub, period = subscribe(store, "slack", TEAM, "U1")
        fake.failures["chat.postMessage"] = [Failure(status=429, retry_after=2, times=1)]
        port = SlackPort(make_client(BOT_TOKEN, served.api_url, wait_on_429=False))
        running = engine({"slack": port})
        running.jobs.deliver(sub.id, "slack", period)
        wait(lambda: ChatRepo(store).is_marked(f"sent:{sub.id}:{period}"), 30)
    finally:
        served.stop()
    statuses = [status for _, status in fake.answered]
    assert statuses[0] == 429 and statuses[1:] == [200] * 4  # intro + 3 papers, each once
    refused, retried = fake.answered[0][0], fake.answered[1][0]
    assert retried - refused >= 1.9
    assert fanout.tally(fake, {sub.id: period}) == {"lost": 0, "duplicated": 0, "messages": 4}


def _rabbit_up() -> bool:
    """Whether a RabbitMQ server listens on the default port."""
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", 5672)) == 0


@pytest.mark.skipif(not _rabbit_up(), reason="no RabbitMQ on 127.0.0.1:5672")
def test_rabbitmq_broker_delivers_a_digest(store: Store, engine: Callable[..., Engine]) -> None:
    seed_papers(store)
    sub, period = subscribe(store, "console", "local", "bob")
    out = io.StringIO()
    running = engine({"console": ConsolePort(out)}, PAPERBOT_BROKER_URL=RABBIT)
    assert type(running.broker).__name__ == "RabbitmqBroker"
    running.jobs.deliver(sub.id, "console", period)
    wait(lambda: ChatRepo(store).is_marked(f"sent:{sub.id}:{period}"), 30)
    assert out.getvalue().count("=== Your papers") == 1  # one digest
    assert dead_letters(running.broker)["deliver_console"] == 0


def test_planned_digests_take_turns_across_workspaces() -> None:
    """A slot's personal digests go to ranking workspace by workspace in turn, so the first
    batches already spread over every workspace's budget."""
    subs = [
        (
            Subscription(
                id=f"dm:slack:{team}:U{i}",
                kind="dm",
                platform="slack",
                workspace=team,
                target=f"U{i}",
                owner=f"slack:{team}:U{i}",
            ),
            "2026-01-01",
        )
        for team in ("TA", "TB", "TC")
        for i in range(3 if team != "TC" else 1)
    ]
    order = [sub.workspace for sub, _ in across_workspaces(subs)]
    assert order == ["TA", "TB", "TC", "TA", "TB", "TA", "TB"]
