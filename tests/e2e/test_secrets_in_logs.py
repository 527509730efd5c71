"""Secrets never reach the logs: the Slack and Discord paths run at DEBUG with known secrets,
third-party loggers (slack_sdk, aiohttp, discord, httpx) included, and the captured log
output is searched for every secret."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from typing import Any

import discord
import pytest

from bot import redact
from bot.__main__ import _setup_logging, _StderrHandler
from bot.config import Settings, load_settings
from bot.repo import ChatRepo
from bot.subscriptions import Subscription
from recommender import pipeline
from recommender.service import PaperService
from recommender.store import Store
from tests.e2e.discord_fake import FakeDiscord
from tests.e2e.slack_fakes import (
    APP_TOKEN,
    BOT_TOKEN,
    SIGNING_SECRET,
    TEAM,
    FakeSlack,
    buttons_in,
    reaction_event,
)
from tests.e2e.test_discord import ANN, BOB, CHANNEL, GUILD, PERIOD, SEED, buttons
from tests.e2e.test_slack import close_harness, load_corpus, make_core, start_harness

# Shaped like a real bot token (user id . timestamp . HMAC), so the pattern is exercised too.
DISCORD_TOKEN = "MTMwMDAwMDAwMDAwMDAwMDAyMQ.GhJkLm.abcdefghijklmnopqrstuvwxyz0123456789AB"
REDIS_PASSWORD = "redis-pass-0123456789"


@pytest.fixture
def debug_logs(capsys: pytest.CaptureFixture[str]) -> Iterator[Any]:
    """The project's own logging set-up at DEBUG; yields a reader of what it printed."""
    root = logging.getLogger()
    saved_level = root.level
    saved_handlers = list(root.handlers)
    third_party = ("httpx", "httpcore", "slack_sdk", "discord", "aiohttp", "asyncio")
    saved = {name: logging.getLogger(name).level for name in third_party}
    settings = load_settings(
        PAPERBOT_LOG_LEVEL="DEBUG",
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_APP_TOKEN=APP_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        DISCORD_TOKEN=DISCORD_TOKEN,
        REDIS_URL=f"redis://paperbot:{REDIS_PASSWORD}@127.0.0.1:1/0",
    )
    _setup_logging(settings, argparse.Namespace(command="run", verbose=False))
    for name in ("aiohttp", "asyncio"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    assert root.level == logging.DEBUG
    assert logging.getLogger("slack_sdk").getEffectiveLevel() == logging.DEBUG
    assert logging.getLogger("discord").getEffectiveLevel() == logging.DEBUG
    try:
        yield lambda: capsys.readouterr().err
    finally:
        for handler in list(root.handlers):
            if isinstance(handler, _StderrHandler) and handler not in saved_handlers:
                root.removeHandler(handler)
        root.setLevel(saved_level)
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)
        redact.uninstall()


SECRETS = (BOT_TOKEN, APP_TOKEN, SIGNING_SECRET, DISCORD_TOKEN, REDIS_PASSWORD)


def assert_clean(logs: str) -> None:
    """No secret, nor a recognisable part of one, in the logs."""
    for secret in SECRETS:
        assert secret not in logs
    for piece in ("xoxb-test", "xapp-test", "test-signing-secret", "GhJkLm.abcdef", "redis-pass"):
        assert piece not in logs


async def test_slack_paths_at_debug_log_no_secret(store: Store, debug_logs: Any) -> None:
    fake = FakeSlack()
    await fake.start()
    load_corpus(store)
    harness = await start_harness(make_core(store), fake, store)
    try:
        await harness.command("help")
        search = await harness.command("search diffusion")
        like = buttons_in([b for m in search for b in m.get("blocks", [])])[0]
        await harness.click(like)
        await harness.command("subscribe")
        record = ChatRepo(store).get_subscription(f"dm:slack:{TEAM}:U1")
        assert record is not None
        outcome = await harness.core.delivery.send(Subscription.from_dict(record), "2030-01-01")
        assert outcome == "sent"
        posted = fake.of("chat.postMessage")
        assert await harness.event(reaction_event("+1", "DU1", "1700000000.000002")) == 200
        # A failing Web API call is logged with its error, never with the token.
        fake.fail("chat.postMessage", error="invalid_auth", times=5)
        await harness.core.delivery.send(Subscription.from_dict(record), "2030-01-02")
    finally:
        await close_harness(harness)
        await fake.stop()
    logs = debug_logs()
    assert posted and "chat.postMessage" in logs  # slack_sdk really logged at DEBUG
    assert_clean(logs)


async def test_discord_paths_at_debug_log_no_secret(
    store: Store, debug_logs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.core import BotCore
    from bot.discord_app import build_discord

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
        DISCORD_TOKEN=DISCORD_TOKEN,
        DISCORD_API_URL=fake.api_url,
        DISCORD_GATEWAY_URL=fake.gateway_url,
    )
    runtime = build_discord(core, settings, guild_ready_timeout=0.05)
    await runtime.start(timeout=30)
    try:
        token = await fake.slash(
            "search", {"query": "diffusion"}, user_id=ANN, channel_id=CHANNEL, guild_id=GUILD
        )
        await fake.answers(token)
        message = fake.followup_messages[token][0]
        click = await fake.click(message, buttons(message)[0]["custom_id"], user_id=BOB)
        await fake.answers(click)
        sub_token = await fake.slash(
            "subscribe",
            {"timezone": "Europe/Berlin"},
            user_id=ANN,
            channel_id=CHANNEL,
            guild_id=GUILD,
        )
        await fake.answers(sub_token)
        sub = Subscription.from_dict(ChatRepo(store).get_subscription(f"dm:discord:{GUILD}:{ANN}"))
        assert await core.delivery.send(sub, PERIOD) == "sent"
    finally:
        await runtime.stop()
        await fake.stop()
    logs = debug_logs()
    assert "discord." in logs  # discord.py really logged at DEBUG
    assert_clean(logs)
    # discord.py logs every interaction (its token inside) and the REST paths that carry it.
    assert "INTERACTION_CREATE" in logs and "/interactions/" in logs and "/webhooks/" in logs
    assert "token-1200" not in logs
