"""Slack or Discord failing mid-digest: 500s and timeouts are retried with backoff, and no
paper is ever posted twice, even when the failed try had in fact gone through."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import discord
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings
from bot.core import BotCore
from bot.discord_app import DiscordPort, build_discord
from bot.repo import ChatRepo
from bot.slack_app import SlackPort, make_client
from bot.subscriptions import Subscription
from recommender import pipeline
from recommender.service import PaperService
from recommender.store import Store, StoreUnavailable
from tests.e2e.discord_fake import FakeDiscord
from tests.e2e.slack_fakes import BOT_TOKEN, TEAM, FakeSlack
from tests.e2e.test_discord import ANN, CHANNEL, GUILD, PERIOD, SEED
from tests.e2e.test_slack import Harness, close_harness, load_corpus, make_core, start_harness

DAY = "2030-01-01"


class Sleeps:
    """An injectable async sleep that records the waits instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def keys_of(messages: list[dict[str, Any]]) -> list[str]:
    """The idempotency keys of posted Slack messages."""
    return [m["metadata"]["event_payload"]["key"] for m in messages if m.get("metadata")]


# -- Slack -------------------------------------------------------------------------------------


@pytest.fixture
async def slack(store: Store) -> AsyncIterator[tuple[Harness, FakeSlack]]:
    fake = FakeSlack()
    await fake.start()
    load_corpus(store)
    harness = await start_harness(make_core(store), fake, store)
    try:
        yield harness, fake
    finally:
        await close_harness(harness)
        await fake.stop()


async def subscribe(harness: Harness, text: str, sub_id: str, **kwargs: Any) -> Subscription:
    """Subscribe through a signed command; the stored subscription."""
    await harness.command(text, **kwargs)
    record = ChatRepo(harness.store).get_subscription(sub_id)
    assert record is not None
    return Subscription.from_dict(record)


def use_port(harness: Harness, fake: FakeSlack, client: AsyncWebClient | None = None) -> Sleeps:
    """Deliver through a SlackPort whose backoff waits are recorded."""
    sleeps = Sleeps()
    client = client or make_client(BOT_TOKEN, fake.api_url)
    harness.core.register(SlackPort(client, sleep=sleeps))
    return sleeps


@pytest.mark.parametrize("commit", [True, False], ids=["posted-then-500", "500"])
async def test_slack_500s_are_retried_and_never_duplicated(
    slack: tuple[Harness, FakeSlack], commit: bool
) -> None:
    harness, fake = slack
    sub = await subscribe(harness, "subscribe", f"dm:slack:{TEAM}:U1")
    sleeps = use_port(harness, fake)
    fake.fail("chat.postMessage", status=500, error="internal_error", commit=commit, times=3)
    assert await harness.core.delivery.send(sub, DAY) == "sent"
    posted = fake.posted["DU1"]
    assert len(posted) == 11 and len(set(keys_of(posted))) == 11
    # Three failed tries: reused when they had landed, posted again when they had not.
    assert len(fake.attempts("chat.postMessage")) == (11 if commit else 14)
    # Landed tries are found after one wait each; lost ones back off 1, 2, 4 s on one post.
    assert sleeps.waits == ([1.0, 1.0, 1.0] if commit else [1.0, 2.0, 4.0])
    assert len(fake.of("conversations.history")) == 3


async def test_slack_timeouts_are_retried_and_never_duplicated(
    slack: tuple[Harness, FakeSlack],
) -> None:
    harness, fake = slack
    sub = await subscribe(harness, "subscribe", f"dm:slack:{TEAM}:U1")
    # The client gives up after 0.3 s; Slack posts the message and answers after 1 s.
    client = AsyncWebClient(token=BOT_TOKEN, base_url=fake.api_url, timeout=0.3)
    sleeps = use_port(harness, fake, client)
    fake.fail("chat.postMessage", commit=True, delay=1.0, times=2)
    assert await harness.core.delivery.send(sub, DAY) == "sent"
    posted = fake.posted["DU1"]
    assert len(posted) == 11 and len(set(keys_of(posted))) == 11
    assert len(sleeps.waits) == 2


async def test_slack_thread_posts_are_found_in_the_thread(
    slack: tuple[Harness, FakeSlack],
) -> None:
    harness, fake = slack
    sub = await subscribe(harness, "subscribe channel", f"channel:slack:{TEAM}:C1", channel="C1")
    use_port(harness, fake)
    fake.posted.clear()
    fake.fail("chat.postMessage", status=502, error="bad_gateway", commit=True, times=4)
    assert await harness.core.delivery.send(sub, DAY) == "sent"
    posted = fake.posted["C1"]
    assert len(posted) == 11 and len(set(keys_of(posted))) == 11
    intro_ts = posted[0]["ts"]
    assert all(m.get("thread_ts") == intro_ts for m in posted[1:])
    assert fake.of("conversations.replies")


async def test_slack_persistent_500_waits_in_the_outbox_then_resumes_once(
    slack: tuple[Harness, FakeSlack],
) -> None:
    harness, fake = slack
    sub = await subscribe(harness, "subscribe", f"dm:slack:{TEAM}:U1")
    sleeps = use_port(harness, fake)
    fake.fail("chat.postMessage", status=500, error="internal_error", times=4)
    assert await harness.core.delivery.send(sub, DAY) == "retry"
    assert sleeps.waits == [1.0, 2.0, 4.0]
    pending = ChatRepo(harness.store).get_pending(f"{sub.id}:{DAY}")
    assert pending is not None and pending["inflight"] == "intro" and pending["attempts"] == 1
    assert "DU1" not in fake.posted
    # The next run looks for the intro first (not there), then posts everything once.
    assert await harness.core.delivery.send(sub, DAY) == "sent"
    posted = fake.posted["DU1"]
    assert len(posted) == 11 and len(set(keys_of(posted))) == 11


async def test_slack_post_whose_record_was_lost_is_not_posted_again(
    slack: tuple[Harness, FakeSlack], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis gone right after a post: the retry finds the post instead of repeating it."""
    harness, fake = slack
    store = harness.store
    sub = await subscribe(harness, "subscribe", f"dm:slack:{TEAM}:U1")
    use_port(harness, fake)
    chat = harness.core.delivery.chat
    remember = chat.remember_message
    calls = {"n": 0}

    def flaky(key: str, record: dict[str, Any], ttl_seconds: int = 90 * 86400) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise StoreUnavailable("cannot reach Redis at redis://127.0.0.1:1/0: refused")
        remember(key, record, ttl_seconds)

    monkeypatch.setattr(chat, "remember_message", flaky)
    with pytest.raises(StoreUnavailable):
        await harness.core.delivery.send(sub, DAY)
    assert len(fake.posted["DU1"]) == 4
    assert await harness.core.delivery.send(sub, DAY) == "sent"
    posted = fake.posted["DU1"]
    assert len(posted) == 11 and len(set(keys_of(posted))) == 11
    # The found post is mapped to its paper like any other.
    for message in posted[1:]:
        record = ChatRepo(store).message(f"slack:DU1:{message['ts']}")
        assert record is not None and record["paper"]


# -- Discord -----------------------------------------------------------------------------------


@pytest.fixture
async def discord_env(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[BotCore, FakeDiscord, Any]]:
    monkeypatch.setattr(discord.http.Route, "BASE", discord.http.Route.BASE)
    monkeypatch.setattr(
        discord.gateway.DiscordWebSocket,
        "DEFAULT_GATEWAY",
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY,
    )
    fake = FakeDiscord()
    await fake.start()
    pipeline.ingest_source(store, "jsonl", path=SEED)
    service = PaperService(store, encoder=None)
    service.refresh()
    core = BotCore(service)
    settings = Settings(
        DISCORD_TOKEN="test-token",
        DISCORD_API_URL=fake.api_url,
        DISCORD_GATEWAY_URL=fake.gateway_url,
    )
    runtime = build_discord(core, settings, guild_ready_timeout=0.05)
    await runtime.start(timeout=30)
    try:
        yield core, fake, runtime
    finally:
        await runtime.stop()
        await fake.stop()


async def discord_subscription(core: BotCore, fake: FakeDiscord, store: Store) -> Subscription:
    """Ann's DM subscription (her DM channel known in advance, to queue faults on it)."""
    fake.dm_channels[ANN] = fake.snowflake()
    token = await fake.slash(
        "subscribe",
        {"timezone": "Europe/Berlin"},
        user_id=ANN,
        channel_id=CHANNEL,
        guild_id=GUILD,
    )
    await fake.answers(token)
    return Subscription.from_dict(ChatRepo(store).get_subscription(f"dm:discord:{GUILD}:{ANN}"))


def nonces(messages: list[dict[str, Any]]) -> list[str]:
    """The nonces the bot sent."""
    return [m["request"]["nonce"] for m in messages]


async def test_discord_posted_then_500_is_not_duplicated(
    discord_env: tuple[BotCore, FakeDiscord, Any], store: Store
) -> None:
    core, fake, _runtime = discord_env
    sub = await discord_subscription(core, fake, store)
    dm = fake.dm_channels[ANN]
    fake.faults[dm] = [(500, True, 0.0)]
    assert await core.delivery.send(sub, PERIOD) == "sent"
    messages = fake.messages[dm]
    assert len(messages) == 11 and len(set(nonces(messages))) == 11
    assert all(m["request"]["enforce_nonce"] for m in messages)


async def test_discord_timeouts_are_retried_with_backoff_and_never_duplicated(
    discord_env: tuple[BotCore, FakeDiscord, Any], store: Store
) -> None:
    core, fake, runtime = discord_env
    sleeps = Sleeps()
    core.register(DiscordPort(runtime, sleep=sleeps, timeout=0.3))
    sub = await discord_subscription(core, fake, store)
    dm = fake.dm_channels[ANN]
    # Discord creates the message, then answers only after the bot gave up (twice).
    fake.faults[dm] = [(500, True, 1.0), (500, True, 1.0)]
    assert await core.delivery.send(sub, PERIOD) == "sent"
    messages = fake.messages[dm]
    assert len(messages) == 11 and len(set(nonces(messages))) == 11
    # Each timed-out send was answered, on its first retry, with the message it had made.
    assert sleeps.waits == [1.0, 1.0]
