"""Discord end to end: the first-use card, a library attached to `/papers import`, `who` and
the trends chart, against the local fake Discord (REST, gateway and attachment URLs)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import discord
import pytest

from bot.config import Settings
from bot.core import BotCore
from bot.discord_app import DiscordRuntime, build_discord
from bot.importer import ArxivLookup, Importer
from recommender import pipeline
from recommender.service import PaperService
from recommender.store import Store
from tests.arxiv_fake import FakeArxiv, serve
from tests.e2e.discord_fake import FakeDiscord, Upload
from tests.e2e.test_discord import ANN, BOB, CHANNEL, GUILD, SEED, buttons

PNG = b"\x89PNG\r\n\x1a\n"
OTHER_GUILD = "1300000000000000099"
CARD_TITLE = "Start here: rate a few papers"


@pytest.fixture
def arxiv() -> Iterator[FakeArxiv]:
    """A local arXiv API, so an import never reaches the network."""
    with serve() as running:
        yield running


@pytest.fixture
def core(store: Store, arxiv: FakeArxiv) -> BotCore:
    """The chat core over the seed corpus, trained, importing through the local arXiv API."""
    pipeline.ingest_source(store, "jsonl", path=SEED)
    service = PaperService(store, encoder=None)
    service.train()
    core = BotCore(service)
    core.commands.importer = Importer(service, ArxivLookup(arxiv.url, interval=0))
    return core


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


@pytest.fixture
async def bot(core: BotCore, settings: Settings) -> AsyncIterator[DiscordRuntime]:
    """The Discord runtime, connected to the fake."""
    runtime = build_discord(core, settings, guild_ready_timeout=0.05)
    await runtime.start(timeout=30)
    try:
        yield runtime
    finally:
        await runtime.stop()


async def run(
    fake: FakeDiscord,
    sub: str,
    options: dict[str, Any] | None = None,
    *,
    count: int = 1,
    user: str = ANN,
    guild: str = GUILD,
) -> list[dict[str, Any]]:
    """`/papers <sub>` in a guild channel; its first `count` follow-ups."""
    token = await fake.slash(sub, options, user_id=user, channel_id=CHANNEL, guild_id=guild)
    return await fake.answers(token, count)


def uid(user: str = ANN, guild: str = GUILD) -> str:
    return f"discord:{guild}:{user}"


async def test_first_command_brings_the_card_and_ratings_make_it_personal(
    bot: DiscordRuntime, fake: FakeDiscord, store: Store
) -> None:
    token = await fake.slash("saved", user_id=ANN, channel_id=CHANNEL, guild_id=GUILD)
    # The answer, then the card: its eight papers in two messages (five buttons rows each).
    answer, card, _rest = await fake.answers(token, 3)
    assert answer["content"].startswith("Nothing saved yet")
    assert card["content"].startswith(f"**{CARD_TITLE}**\nWelcome to paperbot!")
    messages = [m for m in fake.followup_messages[token][1:] if m["components"]]
    rate = [b for m in messages for b in buttons(m)]
    assert len(rate) == 24
    assert {b["custom_id"].split("|")[0] for b in rate} == {"pb:like", "pb:dislike", "pb:skip"}
    likes = [(m, b) for m in messages for b in buttons(m) if b["custom_id"].startswith("pb:like")]
    said = []
    for message, button in likes[:5]:
        click = await fake.click(message, button["custom_id"], user_id=ANN, guild_id=GUILD)
        said.append((await fake.answers(click))[0]["content"])
    assert said[0].endswith("1 of 5 answered: 4 more and your digest is personal.")
    assert "That makes 5 ratings: your digest is personal now" in said[-1]
    assert len(store.user_feedback(uid())) == 5
    [settings] = await run(fake, "settings")
    assert "Your profile is built from 5 ratings" in settings["content"]
    # A second command brings no second card.
    token = await fake.slash("saved", user_id=ANN, channel_id=CHANNEL, guild_id=GUILD)
    await fake.answers(token)
    assert len(fake.followups[token]) == 1


async def test_a_library_attached_to_import_becomes_saves(
    bot: DiscordRuntime, fake: FakeDiscord, store: Store
) -> None:
    library = (
        b"TY  - JOUR\nTI  - A Survey on Mixture of Experts\nER  -\n"
        b"TY  - JOUR\nTI  - Nobody Wrote This Either\nER  -\n"
    )
    answers = await run(fake, "import", {"file": Upload("zotero.ris", library)})
    assert answers[0]["content"].startswith(
        "Imported 1 paper from RIS file “zotero.ris” as 🔖 saves: 1 matched papers already "
        "in the library, 0 added from arXiv."
    )
    assert "1 not found: Nobody Wrote This Either." in answers[0]["content"]
    titles = [p.title for p in store.get_papers([pid for pid, _ in store.saved(uid())]) if p]
    assert titles == ["A Survey on Mixture of Experts"]


async def test_bad_or_big_attachments_are_refused_and_nothing_is_saved(
    bot: DiscordRuntime, fake: FakeDiscord, store: Store
) -> None:
    [binary] = await run(fake, "import", {"file": Upload("x.bib", PNG + bytes(range(256)))})
    assert binary["content"] == (
        "Nothing imported from “x.bib”: That file is binary, not a BibTeX or RIS text file."
    )
    big = Upload("huge.bib", b"@misc{a, title={A}}", size=6 * 1024 * 1024)
    [refused] = await run(fake, "import", {"file": big})
    assert refused["content"].startswith("Nothing imported from “huge.bib”: That file is 6.0 MB")
    # The big one was refused from its announced size, never downloaded.
    assert len(fake.downloaded) == 1
    assert store.saved(uid()) == []


async def test_who_names_only_visible_people_of_this_guild(
    bot: DiscordRuntime, fake: FakeDiscord, store: Store
) -> None:
    diffusion = [p.id for p in store.iter_papers() if "diffusion" in p.title.lower()][:3]
    for user, guild in ((BOB, GUILD), (BOB, OTHER_GUILD)):
        await run(fake, "settings", {"visible": "on"}, user=user, guild=guild)
        for pid in diffusion:
            store.apply_feedback(uid(user, guild), pid, "like")
    [answer] = await run(fake, "who", {"topic": "diffusion models"})
    assert answer["content"].startswith("**Who reads about “diffusion models”**")
    assert answer["content"].count("• ") == 1
    assert answer["allowed_mentions"] == {"parse": []}
    [alone] = await run(fake, "who", {"topic": "diffusion models"}, guild=OTHER_GUILD, user=ANN)
    assert alone["content"].count("• ") == 1
    # Bob turned visibility on in each guild; off in this one, he is only counted.
    await run(fake, "settings", {"visible": "off"}, user=BOB)
    [hidden] = await run(fake, "who", {"topic": "diffusion models"})
    assert "• " not in hidden["content"] and "1 other teammate reads about it" in hidden["content"]


async def test_trends_come_with_the_chart_attached(
    bot: DiscordRuntime, fake: FakeDiscord, store: Store
) -> None:
    for pid in [p.id for p in store.iter_papers() if "diffusion" in p.title.lower()][:3]:
        store.apply_feedback(uid(BOB), pid, "like")
    [answer] = await run(fake, "trends")
    assert answer["content"].startswith("**Rising this week**")
    uploads = [c for c in fake.calls if c.files and c.path.startswith("/webhooks/")]
    [call] = uploads
    [(name, data)] = call.files.items()
    assert name == "paperbot-trends.png" and data.startswith(PNG)
