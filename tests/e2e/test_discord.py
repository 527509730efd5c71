"""The Discord adapter end to end, against a local fake Discord (REST + gateway)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import discord
import pytest

from bot.config import Settings
from bot.core import BotCore
from bot.discord_app import (
    INTENTS,
    INVITE_PERMISSIONS,
    DiscordRuntime,
    build_discord,
    invite_url,
    render_reply,
)
from bot.ports import DeliveryError, Digest, PaperCard, Reply, Target
from bot.repo import ChatRepo
from bot.subscriptions import Subscription
from recommender import pipeline
from recommender.service import PaperService
from recommender.store import Store
from tests.e2e.discord_fake import APP_ID, FakeDiscord

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "tests" / "fixtures" / "seed_papers.jsonl"
GUILD = "1300000000000000001"
CHANNEL = "1300000000000000002"
ANN = "1300000000000000011"
BOB = "1300000000000000012"
PERIOD = "2026-01-05"
EPHEMERAL = 64
# Privileged gateway intents: members, presences, message content.
PRIVILEGED = (1 << 1) | (1 << 8) | (1 << 15)


@pytest.fixture
def core(store: Store) -> BotCore:
    """The chat core over the seed corpus (95 real papers) on the test Redis."""
    pipeline.ingest_source(store, "jsonl", path=SEED)
    service = PaperService(store, encoder=None)
    service.refresh()
    return BotCore(service)


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    """A fake Discord on a free port."""
    server = FakeDiscord()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def settings(fake: FakeDiscord, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings pointing at the fake (discord.py's process-wide URLs restored afterwards)."""
    monkeypatch.setattr(discord.http.Route, "BASE", discord.http.Route.BASE)
    monkeypatch.setattr(
        discord.gateway.DiscordWebSocket,
        "DEFAULT_GATEWAY",
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY,
    )
    return Settings(
        DISCORD_TOKEN="test-token",
        DISCORD_API_URL=fake.api_url,
        DISCORD_GATEWAY_URL=fake.gateway_url,
    )


async def started(core: BotCore, settings: Settings) -> DiscordRuntime:
    """A logged-in, connected runtime."""
    runtime = build_discord(core, settings, guild_ready_timeout=0.05)
    await runtime.start(timeout=30)
    return runtime


@pytest.fixture
async def bot(core: BotCore, settings: Settings) -> AsyncIterator[DiscordRuntime]:
    """The Discord runtime, connected to the fake."""
    runtime = await started(core, settings)
    try:
        yield runtime
    finally:
        await runtime.stop()


async def ask(fake: FakeDiscord, sub: str, options: dict[str, Any] | None = None, **where: Any):
    """Run `/papers <sub>` as Ann in the guild channel; the first follow-up's body."""
    where = {"user_id": ANN, "channel_id": CHANNEL, "guild_id": GUILD, **where}
    token = await fake.slash(sub, options, **where)
    return (await fake.answers(token))[0]


async def dm_digest(core: BotCore, fake: FakeDiscord, store: Store) -> list[dict[str, Any]]:
    """Ann subscribes in the guild and gets her DM digest; the DM's messages."""
    answer = await ask(fake, "subscribe", {"timezone": "Europe/Berlin"})
    assert answer["content"].startswith("Subscribed: a digest by DM")
    sub = Subscription.from_dict(ChatRepo(store).get_subscription(f"dm:discord:{GUILD}:{ANN}"))
    assert await core.delivery.send(sub, PERIOD) == "sent"
    return fake.messages[fake.dm_channels[ANN]]


def buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    """Every button of a message, row by row."""
    return [b for row in message.get("components", []) for b in row["components"]]


def check_embed_limits(embeds: list[dict[str, Any]]) -> None:
    """Discord's embed limits: 10 per message, title 256, description 4096, 6000 in all."""
    assert len(embeds) <= 10
    total = 0
    for embed in embeds:
        assert len(embed.get("title", "")) <= 256
        assert len(embed.get("description", "")) <= 4096
        assert len(embed.get("fields", [])) <= 25
        total += len(embed.get("title", "")) + len(embed.get("description", ""))
        total += len(embed.get("footer", {}).get("text", ""))
        total += sum(len(f["name"]) + len(f["value"]) for f in embed.get("fields", []))
    assert total <= 6000


# -- connecting ------------------------------------------------------------------------------


async def test_logs_in_with_plain_intents_and_syncs_the_papers_command(
    bot: DiscordRuntime, fake: FakeDiscord
) -> None:
    assert [c.path for c in fake.calls[:2]] == ["/users/@me", "/oauth2/applications/@me"]
    assert fake.identifies[0]["token"] == "test-token"
    intents = fake.identifies[0]["intents"]
    assert intents == INTENTS.value and not intents & PRIVILEGED
    assert bot.client.user is not None and str(bot.client.user.id) == APP_ID

    put = [c for c in fake.calls if c.method == "PUT"]
    assert [c.path for c in put] == [f"/applications/{APP_ID}/commands"]
    (papers,) = put[0].body
    assert papers["name"] == "papers"
    subs = {o["name"]: o for o in papers["options"]}
    assert set(subs) == {
        "search",
        "subscribe",
        "unsubscribe",
        "settings",
        "digest",
        "topics",
        "mute",
        "unmute",
        "saved",
        "export",
        "forget-me",
        "help",
        "start",
        "import",
        "who",
        "trends",
    }
    assert all(o["type"] == 1 and 0 < len(o["description"]) <= 100 for o in subs.values())
    subscribe = {o["name"]: o for o in subs["subscribe"]["options"]}
    assert subscribe["timezone"]["autocomplete"] is True
    assert [c["value"] for c in subscribe["cadence"]["choices"]] == ["daily", "weekly"]
    assert len(subscribe["weekday"]["choices"]) == 7
    assert [c["value"] for c in subscribe["where"]["choices"]] == ["me", "channel"]
    topics = {o["name"]: o for o in subs["topics"]["options"]}
    assert [c["value"] for c in topics["action"]["choices"]] == [
        "add",
        "remove",
        "exclude",
        "include",
    ]
    mute = subs["mute"]["options"][0]
    assert mute["name"] == "author" and mute["required"] is True
    assert subs["unmute"]["options"][0]["autocomplete"] is True
    assert len(subs["help"]["options"][0]["choices"]) == 16
    # A library file arrives as an attachment option (type 11).
    imports = {o["name"]: o for o in subs["import"]["options"]}
    assert imports["file"]["type"] == 11


def test_invite_url_and_deploy_guide_agree() -> None:
    perms = INVITE_PERMISSIONS
    assert perms.send_messages and perms.embed_links and perms.read_message_history
    assert perms.add_reactions and perms.use_application_commands
    assert not perms.administrator and not perms.mention_everyone
    url = invite_url(42)
    assert url == (
        "https://discord.com/oauth2/authorize?client_id=42"
        f"&scope=bot+applications.commands&permissions={perms.value}"
    )
    guide = (ROOT / "deploy" / "DISCORD.md").read_text()
    assert f"permissions={perms.value}" in guide
    assert "message content" in guide.lower()


# -- slash commands --------------------------------------------------------------------------


async def test_search_is_deferred_then_answered_privately_with_embeds_and_buttons(
    bot: DiscordRuntime, fake: FakeDiscord
) -> None:
    token = await fake.slash(
        "search", {"query": "diffusion"}, user_id=ANN, channel_id=CHANNEL, guild_id=GUILD
    )
    (answer,) = await fake.answers(token)
    # Acknowledged at once with a private "thinking" state, answered by follow-up.
    assert fake.callbacks[token] == [{"type": 5, "data": {"flags": EPHEMERAL}}]
    assert answer["flags"] & EPHEMERAL
    assert answer["allowed_mentions"] == {"parse": []}
    assert answer["content"].startswith("Top 5 for “diffusion”")
    check_embed_limits(answer["embeds"])
    assert len(answer["embeds"]) == 5
    assert all("iffusion" in e["title"] + e.get("description", "") for e in answer["embeds"])
    rows = answer["components"]
    assert len(rows) == 5 and all(len(r["components"]) == 4 for r in rows)
    for row, embed in zip(rows, answer["embeds"], strict=True):
        paper = embed["footer"]["text"]
        ids = [b["custom_id"] for b in row["components"]]
        assert ids == [f"pb:{k}|{paper}" for k in ("like", "save", "dislike", "mute")]
        assert all(len(i) <= 100 for i in ids)


async def test_button_click_records_feedback_for_the_clicker_and_toggles(
    bot: DiscordRuntime, fake: FakeDiscord, store: Store
) -> None:
    token = await fake.slash(
        "search", {"query": "diffusion"}, user_id=ANN, channel_id=CHANNEL, guild_id=GUILD
    )
    await fake.answers(token)
    message = fake.followup_messages[token][0]
    like = buttons(message)[0]["custom_id"]
    paper = like.split("|", 1)[1]

    click = await fake.click(message, like, user_id=BOB, guild_id=GUILD)
    (ack,) = await fake.answers(click)
    assert fake.callbacks[click] == [{"type": 5, "data": {"flags": EPHEMERAL}}]
    assert ack["content"] == "👍 Noted: more like this." and ack["flags"] & EPHEMERAL
    assert store.user_feedback(f"discord:{GUILD}:{BOB}") == {paper: {"like"}}
    assert store.user_feedback(f"discord:{GUILD}:{ANN}") == {}

    again = await fake.click(message, like, user_id=BOB, guild_id=GUILD)
    assert (await fake.answers(again))[0]["content"] == "Like removed."
    assert not store.user_feedback(f"discord:{GUILD}:{BOB}").get(paper)


async def test_mute_asks_which_author_with_a_select(
    bot: DiscordRuntime, fake: FakeDiscord, store: Store
) -> None:
    """🔇 on a paper with several authors: a select of its authors; only the one picked
    is muted, and names never ping anyone."""
    body = json.dumps(
        {
            "arxiv_id": "2601.00001",
            "title": "Compilers for Diffusion Models",
            "abstract": "We compile diffusion models for fast sampling.",
            "authors": ["Grace Hopper", "Alan @everyone Turing"],
        }
    ).encode()
    pipeline.ingest_source(store, "jsonl", body=body)
    token = await fake.slash(
        "search", {"query": "compilers diffusion"}, user_id=ANN, channel_id=CHANNEL, guild_id=GUILD
    )
    await fake.answers(token)
    message = fake.followup_messages[token][0]
    mute = next(
        b["custom_id"] for b in buttons(message) if b["custom_id"].endswith("mute|2601.00001")
    )
    click = await fake.click(message, mute, user_id=BOB, guild_id=GUILD)
    (asked,) = await fake.answers(click)
    assert asked["content"] == "Which author of “Compilers for Diffusion Models” should I mute?"
    assert asked["flags"] & EPHEMERAL
    assert asked["allowed_mentions"] == {"parse": []}
    (select,) = buttons(asked)
    assert select["type"] == 3
    assert [o["label"] for o in select["options"]] == ["Grace Hopper", "Alan @everyone Turing"]
    assert store.words(f"discord:{GUILD}:{BOB}", "muted") == set()
    picked = await fake.choose(
        fake.followup_messages[click][0],
        select["custom_id"],
        [select["options"][1]["value"]],
        user_id=BOB,
        guild_id=GUILD,
    )
    (done,) = await fake.answers(picked)
    # Echoed names are defused as well as sent with no allowed mentions.
    assert done["content"].startswith("🔇 Muted Alan @\u200beveryone Turing.")
    assert done["allowed_mentions"] == {"parse": []}
    assert store.words(f"discord:{GUILD}:{BOB}", "muted") == {"alan @everyone turing"}


async def test_timezone_autocomplete_suggests_zones(bot: DiscordRuntime, fake: FakeDiscord) -> None:
    token = await fake.slash(
        "subscribe",
        {"timezone": "europe/ber"},
        user_id=ANN,
        channel_id=CHANNEL,
        guild_id=GUILD,
        focused="timezone",
    )
    (response,) = await fake.wait_for(lambda: fake.callbacks.get(token), "autocomplete")
    assert response["type"] == 8
    choices = response["data"]["choices"]
    assert choices[0] == {"name": "Europe/Berlin", "value": "Europe/Berlin"}

    empty = await fake.slash(
        "subscribe", {"timezone": ""}, user_id=ANN, channel_id=CHANNEL, focused="timezone"
    )
    (response,) = await fake.wait_for(lambda: fake.callbacks.get(empty), "autocomplete")
    values = [c["value"] for c in response["data"]["choices"]]
    assert "UTC" in values and "Europe/Berlin" in values and len(values) <= 25


async def test_subscribe_options_become_the_same_schedule_as_slack(
    bot: DiscordRuntime, fake: FakeDiscord, store: Store
) -> None:
    answer = await ask(
        fake,
        "subscribe",
        {"weekday": "tuesday", "time": "8:30", "timezone": "America/New York"},
    )
    assert "weekly on Tuesday at 08:30 (America/New_York)" in answer["content"]
    sub = ChatRepo(store).get_subscription(f"dm:discord:{GUILD}:{ANN}")
    assert (sub["cadence"], sub["weekday"], sub["at"], sub["tz"]) == (
        "weekly",
        1,
        "08:30",
        "America/New_York",
    )
    settings = await ask(fake, "settings")
    assert settings["content"].startswith("**Your settings**")
    assert "Timezone: UTC" in settings["content"]


async def test_channel_subscription_is_announced_publicly(
    bot: DiscordRuntime, fake: FakeDiscord
) -> None:
    token = await fake.slash(
        "subscribe", {"where": "channel"}, user_id=ANN, channel_id=CHANNEL, guild_id=GUILD
    )
    private, public = await fake.answers(token, 2)
    assert private["flags"] & EPHEMERAL and "posted in this channel" in private["content"]
    assert not public.get("flags", 0) & EPHEMERAL
    assert public["content"].startswith("Subscribed: a digest in this channel, daily at 09:00")
    assert public["allowed_mentions"] == {"parse": []}


async def test_odd_input_gets_a_helpful_reply(bot: DiscordRuntime, fake: FakeDiscord) -> None:
    empty = await ask(fake, "search")
    assert "`/papers search <query>" in empty["content"]

    huge = await ask(fake, "search", {"query": "transformer " * 800})
    assert len(huge["content"]) <= 2000
    assert huge["content"].startswith(("Top ", "No papers match"))

    unicode = await ask(fake, "search", {"query": "拡散モデル 🤖 ∑"})
    assert unicode["content"].startswith("No papers match “拡散モデル 🤖 ∑”")

    topics = await ask(fake, "topics", {"action": "add"})
    assert "`/papers topics" in topics["content"]

    author = await ask(fake, "unmute", {"author": "   "})
    assert "`/papers unmute author <name>`" in author["content"]

    help_all = await ask(fake, "help")
    assert "/papers subscribe" in help_all["content"] and len(help_all["content"]) <= 2000

    in_dm = await ask(fake, "subscribe", {"where": "channel"}, guild_id=None, channel_id="77")
    assert "inside the channel" in in_dm["content"]


async def test_everyone_in_a_title_or_query_never_pings(
    bot: DiscordRuntime, fake: FakeDiscord, store: Store, tmp_path: Path
) -> None:
    feed = tmp_path / "loud.jsonl"
    record = {
        "id": "2501.00001",
        "title": "@everyone Zebrafish *Mentions* <@123456789012345678>",
        "abstract": "Zebrafish swim. @here is where they swim.",
        "authors": ["@everyone Smith"],
    }
    feed.write_text(json.dumps(record) + "\n")
    pipeline.ingest_source(store, "jsonl", path=feed)

    answer = await ask(fake, "search", {"query": "zebrafish"})
    assert answer["allowed_mentions"] == {"parse": []}
    (embed,) = answer["embeds"]
    assert "@everyone" not in json.dumps(embed, ensure_ascii=False)
    assert embed["title"].startswith("1. @\u200beveryone Zebrafish \\*Mentions\\*")
    assert "<@\u200b123456789012345678>" in embed["title"]
    assert "@\u200bhere" in embed["description"]

    echo = await ask(fake, "search", {"query": "@everyone xyzzyq"})
    assert "@everyone" not in echo["content"] and "@\u200beveryone" in echo["content"]

    card = PaperCard(paper_id="2501.00001", title=record["title"], url="https://arxiv.org/abs/x")
    digest = Digest("channel:x", "Papers for the team", "1 new paper", [card], PERIOD)
    target = Target("discord", GUILD, "channel", CHANNEL)
    await bot.port.post_card(target, digest, card, None)
    sent = fake.messages[CHANNEL][-1]["request"]
    assert sent["allowed_mentions"] == {"parse": []}
    assert sent["embeds"][0]["title"].startswith("@\u200beveryone")


# -- digests, reactions, restarts --------------------------------------------------------------


async def test_dm_digest_one_message_per_paper_and_buttons_survive_a_restart(
    core: BotCore, settings: Settings, fake: FakeDiscord, store: Store
) -> None:
    first = await started(core, settings)
    try:
        messages = await dm_digest(core, fake, store)
    finally:
        await first.stop()

    opened = [c for c in fake.calls if c.path == "/users/@me/channels"]
    assert str(opened[0].body["recipient_id"]) == ANN
    dm = fake.dm_channels[ANN]
    intro, cards = messages[0], messages[1:]
    assert intro["content"].startswith("**Your papers**\n10 new papers today")
    assert not intro["components"]
    assert len(cards) == 10
    for message in cards:
        assert message["request"]["allowed_mentions"] == {"parse": []}
        (embed,) = message["embeds"]
        check_embed_limits([embed])
        paper = embed["footer"]["text"]
        assert [b["label"] for b in buttons(message)] == [
            "More like this",
            "Save",
            "Not for me",
            "Mute author",
        ]
        record = ChatRepo(store).message(f"discord:{dm}:{message['id']}")
        assert record == {"paper": paper, "sub": f"dm:discord:{GUILD}:{ANN}", "workspace": GUILD}

    # A fresh client (a restart) routes a click on a message the old one sent.
    second = await started(core, settings)
    try:
        target = cards[1]
        save = buttons(target)[1]["custom_id"]
        token = await fake.click(target, save, user_id=ANN)
        (ack,) = await fake.answers(token)
        assert ack["content"].startswith("🔖 Saved.")
        paper = target["embeds"][0]["footer"]["text"]
        # Clicked in the DM, counted for the person who subscribed in the guild.
        assert [pid for pid, _ in store.saved(f"discord:{GUILD}:{ANN}")] == [paper]
        assert not store.saved(f"discord:dm:{ANN}")
    finally:
        await second.stop()


async def test_reactions_map_to_the_paper_and_removal_undoes_them(
    bot: DiscordRuntime, core: BotCore, fake: FakeDiscord, store: Store
) -> None:
    cards = (await dm_digest(core, fake, store))[1:]
    uid = f"discord:{GUILD}:{ANN}"
    first = cards[0]["embeds"][0]["footer"]["text"]

    # In a DM (no guild in the event) with a skin tone: still 👍 on that one paper.
    await fake.react(cards[0], "👍🏽", user_id=ANN)
    await fake.wait_for(lambda: store.user_feedback(uid).get(first) == {"like"}, "the like")
    await fake.react(cards[0], "👍🏽", user_id=ANN, removed=True)
    await fake.wait_for(lambda: not store.user_feedback(uid).get(first), "the like removed")

    # A team digest in the guild channel: Bob's 🔖 is Bob's.
    await ask(fake, "subscribe", {"where": "channel"})
    sub = Subscription.from_dict(
        ChatRepo(store).get_subscription(f"channel:discord:{GUILD}:{CHANNEL}")
    )
    assert await core.delivery.send(sub, PERIOD) == "sent"
    team_card = fake.messages[CHANNEL][1]
    paper = team_card["embeds"][0]["footer"]["text"]
    await fake.react(team_card, "🔖", user_id=BOB, guild_id=GUILD)
    bob = f"discord:{GUILD}:{BOB}"
    await fake.wait_for(lambda: [p for p, _ in store.saved(bob)] == [paper], "Bob's save")
    await fake.react(team_card, "🔖", user_id=BOB, guild_id=GUILD, removed=True)
    await fake.wait_for(lambda: not store.saved(bob), "Bob's save removed")


async def test_closed_dms_keep_the_digest_pending_and_it_resumes_later(
    bot: DiscordRuntime,
    core: BotCore,
    fake: FakeDiscord,
    store: Store,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await ask(fake, "subscribe")
    sid = f"dm:discord:{GUILD}:{ANN}"
    fake.dm_channels[ANN] = "1300000000000000099"
    fake.failures["1300000000000000099"] = (
        403,
        {"message": "Cannot send messages to this user", "code": 50007},
        {},
    )
    sub = Subscription.from_dict(ChatRepo(store).get_subscription(sid))
    with caplog.at_level(logging.WARNING, logger="bot.delivery"):
        result = await core.delivery.send(sub, PERIOD)
    assert result == "retry"
    pending = ChatRepo(store).get_pending(f"{sid}:{PERIOD}")
    assert pending is not None and pending["attempts"] == 1
    assert "does not accept direct messages" in pending["error"] and "50007" in pending["error"]
    assert any("not delivered yet" in r.getMessage() for r in caplog.records)

    del fake.failures["1300000000000000099"]
    sub = Subscription.from_dict(ChatRepo(store).get_subscription(sid))
    assert await core.delivery.send(sub, PERIOD) == "sent"
    assert len(fake.messages["1300000000000000099"]) == 11
    assert ChatRepo(store).get_pending(f"{sid}:{PERIOD}") is None


async def test_a_channel_without_access_tells_the_owner_by_dm(
    bot: DiscordRuntime, core: BotCore, fake: FakeDiscord, store: Store
) -> None:
    await ask(fake, "subscribe", {"where": "channel"})
    fake.failures[CHANNEL] = (403, {"message": "Missing Access", "code": 50001}, {})
    sub = Subscription.from_dict(
        ChatRepo(store).get_subscription(f"channel:discord:{GUILD}:{CHANNEL}")
    )
    assert await core.delivery.send(sub, PERIOD) == "retry"
    (notice,) = fake.messages[fake.dm_channels[ANN]]
    assert "could not post the team digest" in notice["content"]
    assert "no access to this channel" in notice["content"]
    assert notice["request"]["allowed_mentions"] == {"parse": []}


async def test_rate_limits_and_unknown_channels_become_delivery_errors(
    bot: DiscordRuntime, fake: FakeDiscord
) -> None:
    target = Target("discord", GUILD, "channel", CHANNEL)
    fake.failures[CHANNEL] = (
        429,
        {"message": "You are being rate limited.", "retry_after": 120.0, "global": False},
        {"Via": "1.1 google", "Retry-After": "120"},
    )
    with pytest.raises(DeliveryError) as limited:
        await bot.port.send_text(target, "hello")
    assert limited.value.retry_after == 120.0 and not limited.value.permanent

    fake.failures[CHANNEL] = (404, {"message": "Unknown Channel", "code": 10003}, {})
    with pytest.raises(DeliveryError) as gone:
        await bot.port.send_text(target, "hello")
    assert gone.value.permanent and "no longer exists" in str(gone.value)


async def test_the_port_can_be_used_from_another_thread_and_loop(
    bot: DiscordRuntime, fake: FakeDiscord
) -> None:
    # The scheduler runs digests in its own thread: the port hops onto the client's loop.
    target = Target("discord", GUILD, "channel", CHANNEL)
    await asyncio.to_thread(asyncio.run, bot.port.send_text(target, "from the scheduler"))
    assert fake.messages[CHANNEL][-1]["content"] == "from the scheduler"


async def test_a_stopped_client_keeps_digests_pending(
    core: BotCore, settings: Settings, fake: FakeDiscord
) -> None:
    runtime = await started(core, settings)
    await runtime.stop()
    with pytest.raises(DeliveryError, match="not running"):
        await runtime.port.send_text(Target("discord", GUILD, "dm", ANN), "hello")


# -- rendering ---------------------------------------------------------------------------------


def test_render_reply_keeps_every_message_within_discord_limits() -> None:
    cards = [
        PaperCard(
            paper_id=f"2501.{i:05d}",
            title="T" * 400,
            url="https://arxiv.org/abs/2501.00001",
            authors="A" * 500,
            blurb="B" * 3000,
            reason="R" * 300,
            code_url="not a url",
            position=i + 1,
        )
        for i in range(12)
    ]
    messages = render_reply(Reply("line\n" * 3000, cards=cards, footer="more"))
    assert sum(len(m.cards) for m in messages) == 12
    for message in messages:
        kwargs = message.kwargs()
        assert len(kwargs.get("content", "")) <= 2000
        embeds = [e.to_dict() for e in kwargs.get("embeds", [])]
        check_embed_limits(embeds)
        assert len(message.cards) <= 5
        view = kwargs.get("view")
        assert view is None or len(view.children) == 4 * len(message.cards)
    # Text too long for three messages arrives as a file instead.
    assert messages[0].file is not None
    assert "(the full text is attached)" in messages[0].content


def test_long_bibtex_export_becomes_a_file() -> None:
    bib = "\n".join(f"@article{{p{i},\n  title = {{Paper {i}}}\n}}" for i in range(200))
    reply = Reply(f"BibTeX for your 200 saved papers:\n```\n{bib}\n```")
    (message,) = render_reply(reply, filename="saved-papers.bib")
    assert message.content == "BibTeX for your 200 saved papers:\n(attached: saved-papers.bib)"
    assert message.file == ("saved-papers.bib", bib.encode())
