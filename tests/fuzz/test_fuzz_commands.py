"""Generated `/papers` texts through the command core, the Slack endpoint and the Discord
command path: no unhandled exception, every reply within the platform's limits, no live
mention. Cases that once failed are kept as `@example`s."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import discord
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from bot.core import FAILED, BotCore
from bot.discord_app import CONTENT_LIMIT, NO_MENTIONS, build_discord, render_reply
from bot.ports import Context, Reply
from bot.slack_app import reply_messages
from recommender.store import Store
from tests.e2e.discord_fake import FakeDiscord
from tests.e2e.slack_fakes import FakeSlack, texts_in
from tests.e2e.test_discord import ANN, CHANNEL, GUILD
from tests.e2e.test_slack import (
    assert_within_limits,
    close_harness,
    load_corpus,
    make_core,
    start_harness,
)
from tests.fuzz.strategies import EXAMPLES, HOSTILE, command_texts, fuzz_settings

T = TypeVar("T")
# A live Slack mention or link is `<!…>`, `<@…>` or `<#…>`; paperbot writes only `<https://…|…>`.
LIVE_SLACK = re.compile(r"<[!@#]")
SLACK_CTX = Context("slack", "T1", "U1", channel="C1", user_name="ada")
DISCORD_CTX = Context("discord", "G1", "42", channel="7", user_name="ada")


def check_slack(messages: list[dict[str, Any]]) -> None:
    """Within Block Kit limits, and nothing that Slack would turn into a mention."""
    assert_within_limits(messages)
    for message in messages:
        assert not LIVE_SLACK.search(message["text"]), message["text"]
        for text in texts_in([message]):
            assert not LIVE_SLACK.search(text), text


def check_discord_embeds(embeds: list[dict[str, Any]]) -> None:
    """Discord's embed limits."""
    assert len(embeds) <= 10
    total = 0
    for embed in embeds:
        title, description = embed.get("title", ""), embed.get("description", "")
        assert len(title) <= 256 and len(description) <= 4096
        total += len(title) + len(description) + len(embed.get("footer", {}).get("text", ""))
    assert total <= 6000


def check_reply(reply: Reply) -> None:
    """One core reply rendered for both platforms."""
    assert reply.text != FAILED
    check_slack(reply_messages(reply))
    for outgoing in render_reply(reply):
        assert len(outgoing.content) <= CONTENT_LIMIT
        assert outgoing.kwargs()["allowed_mentions"] == NO_MENTIONS
        check_discord_embeds([e.to_dict() for e in outgoing.embeds])


@pytest.fixture
def core(store: Store) -> BotCore:
    load_corpus(store)
    return make_core(store)


# -- the command core ------------------------------------------------------------------------


@fuzz_settings()
@given(text=command_texts())
@example(text="search since:2024-02-30")
@example(text="subscribe weekly monday 25:61 Etc/GMT+14")
@example(text="topics add " + "x" * 10_000)
@example(text="mute author <!channel> @everyone")
def test_command_core(core: BotCore, text: str) -> None:
    """`CommandService.handle` raises nothing (an exception fails the test and is shrunk)."""
    for ctx in (SLACK_CTX, DISCORD_CTX):
        check_reply(core.commands.handle(ctx, text))


# -- a live runtime on its own event loop, driven case by case ----------------------------------


class LoopThread:
    """An event loop in a thread, so synchronous hypothesis tests can drive async runtimes."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, factory: Callable[[], Awaitable[T]], timeout: float = 120) -> T:
        """Run a coroutine on the loop and wait for its result."""

        async def wrap() -> T:
            return await factory()

        return asyncio.run_coroutine_threadsafe(wrap(), self.loop).result(timeout)

    def close(self) -> None:
        """Cancel what is still pending (discord.py view timers), then stop the loop."""

        async def cancel_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.run(cancel_rest)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def slack_live(store: Store) -> Iterator[tuple[LoopThread, Any]]:
    """The Slack HTTP app on a free port, with the fake Web API, on a background loop."""
    loop = LoopThread()
    load_corpus(store)
    core = make_core(store)
    fake = FakeSlack()

    async def start() -> Any:
        await fake.start()
        return await start_harness(core, fake, store)

    harness = loop.run(start)
    try:
        yield loop, harness
    finally:
        loop.run(lambda: close_harness(harness))
        loop.run(fake.stop)
        loop.close()


@fuzz_settings()
@given(text=command_texts())
@example(text="search <!channel> & <@U1>")
def test_slack_endpoint(slack_live: tuple[LoopThread, Any], text: str) -> None:
    """Signed slash commands into the real HTTP app: acked, answered, within limits."""
    loop, harness = slack_live
    messages = loop.run(lambda: harness.command(text))
    assert messages and all(m.get("text") != FAILED for m in messages)
    check_slack(messages)


@pytest.fixture
def discord_live(store: Store, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LoopThread, Any]]:
    """The Discord runtime connected to the fake gateway and REST API, on a background loop."""
    from bot.config import Settings

    monkeypatch.setattr(discord.http.Route, "BASE", discord.http.Route.BASE)
    monkeypatch.setattr(
        discord.gateway.DiscordWebSocket,
        "DEFAULT_GATEWAY",
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY,
    )
    loop = LoopThread()
    load_corpus(store)
    core = make_core(store)
    fake = FakeDiscord()

    async def start() -> Any:
        await fake.start()
        settings = Settings(
            DISCORD_TOKEN="test-token",
            DISCORD_API_URL=fake.api_url,
            DISCORD_GATEWAY_URL=fake.gateway_url,
        )
        runtime = build_discord(core, settings, guild_ready_timeout=0.05)
        await runtime.start(timeout=30)
        return runtime

    runtime = loop.run(start)
    try:
        yield loop, fake
    finally:
        loop.run(runtime.stop)
        loop.run(fake.stop)
        loop.close()


# Discord sends typed options; only the free-text ones can carry anything.
FREE_TEXT = {
    "search": ("query", "author", "since", "category"),
    "subscribe": ("time", "timezone"),
    "topics": ("words",),
    "mute": ("author",),
    "unmute": ("author",),
}
DISCORD_TEXT = st.one_of(st.sampled_from(HOSTILE), st.text(min_size=1, max_size=200)).map(
    lambda s: s[:6000]
)


@st.composite
def discord_commands(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A subcommand and its free-text options (required ones always present)."""
    sub = draw(st.sampled_from(sorted(FREE_TEXT)))
    names = FREE_TEXT[sub]
    chosen = draw(st.lists(st.sampled_from(names), unique=True, max_size=len(names)))
    if sub in ("mute", "unmute") and "author" not in chosen:
        chosen.append("author")
    options: dict[str, Any] = {name: draw(DISCORD_TEXT) for name in chosen}
    if sub == "topics":
        options["action"] = draw(st.sampled_from(["add", "remove", "exclude", "include"]))
    return sub, options


@fuzz_settings()
@given(command=discord_commands())
@example(command=("search", {"query": "@everyone <@&1> <#2>"}))
def test_discord_command_path(
    discord_live: tuple[LoopThread, FakeDiscord], command: tuple[str, dict[str, Any]]
) -> None:
    """Slash commands through the gateway: answered by follow-ups, never pinging anyone."""
    loop, fake = discord_live
    sub, options = command

    async def ask() -> list[dict[str, Any]]:
        token = await fake.slash(sub, options, user_id=ANN, channel_id=CHANNEL, guild_id=GUILD)
        await fake.answers(token)
        return fake.followups[token]

    for body in loop.run(ask):
        assert body.get("content") != FAILED
        assert body["allowed_mentions"] == {"parse": []}
        assert len(body.get("content") or "") <= CONTENT_LIMIT
        check_discord_embeds(body.get("embeds") or [])


def test_fuzz_count_is_ci_sized() -> None:
    """CI runs at least 1,000 cases per fuzz test unless told otherwise."""
    assert EXAMPLES >= 1 and fuzz_settings().max_examples == EXAMPLES
