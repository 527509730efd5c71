"""Slack end to end: the first-use card, library imports from a DM, `who` and the trends chart.

Signed requests go into the real HTTP app; the fake Web API records what paperbot posts,
serves shared files (only to the bot token) and takes chart uploads.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from bot.importer import ArxivLookup, Importer
from recommender.store import Store
from tests.arxiv_fake import FakeArxiv, serve
from tests.e2e.slack_fakes import BOT_TOKEN, TEAM, FakeSlack, buttons_in
from tests.e2e.test_slack import (
    CARD_TITLE,
    Harness,
    all_text,
    close_harness,
    is_card_message,
    load_corpus,
    make_core,
    start_harness,
    uid,
)

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    """The fake Slack Web API."""
    server = FakeSlack()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def arxiv() -> Iterator[FakeArxiv]:
    """A local arXiv API, so an import never reaches the network."""
    with serve() as running:
        yield running


@pytest.fixture
async def slack(store: Store, fake: FakeSlack, arxiv: FakeArxiv) -> AsyncIterator[Harness]:
    """paperbot over the seed corpus, importing through the local arXiv API."""
    load_corpus(store)
    core = make_core(store)
    core.commands.importer = Importer(core.service, ArxivLookup(arxiv.url, interval=0))
    harness = await start_harness(core, fake, store)
    try:
        yield harness
    finally:
        await close_harness(harness)


def rate_buttons(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The 👍 👎 skip buttons of the first-use card in some messages."""
    return [
        b
        for m in messages
        for b in buttons_in(m.get("blocks", []))
        if b["action_id"].startswith("pb_rate_")
    ]


def dm_event(user: str, text: str = "hi", **extra: Any) -> dict[str, Any]:
    """A `message` event in the DM with paperbot."""
    return {
        "type": "message",
        "channel": f"D{user}",
        "channel_type": "im",
        "user": user,
        "text": text,
        "ts": "1700000100.000100",
        **extra,
    }


def posted_to(fake: FakeSlack, channel: str) -> list[dict[str, Any]]:
    """chat.postMessage calls into one channel."""
    return [c.args for c in fake.of("chat.postMessage") if c.args.get("channel") == channel]


# -- onboarding -------------------------------------------------------------------------------


async def test_first_command_brings_the_card_and_five_ratings_make_it_personal(
    slack: Harness, store: Store
) -> None:
    messages = await slack.command("saved", with_card=True)
    assert "Nothing saved yet" in all_text(messages)
    assert any(is_card_message(m) for m in messages)
    assert CARD_TITLE in all_text(messages)
    buttons = rate_buttons(messages)
    assert len(buttons) == 24
    assert [b["text"]["text"] for b in buttons[:3]] == ["👍 Interesting", "👎 Not for me", "⏭️ Skip"]
    likes = [b for b in buttons if b["action_id"] == "pb_rate_like"]
    dislikes = [b for b in buttons if b["action_id"] == "pb_rate_dislike"]
    skips = [b for b in buttons if b["action_id"] == "pb_rate_skip"]
    said = [all_text(await slack.click(skips[0]))]
    said.append(all_text(await slack.click(dislikes[1])))
    for button in likes[2:6]:
        said.append(all_text(await slack.click(button)))
    assert said[0].startswith("Skipped. 0 of 5 answered")
    assert "1 of 5 answered: 4 more" in said[1]
    assert "That makes 5 ratings: your digest is personal now" in said[-1]
    assert len(store.user_feedback(uid())) == 5
    settings = all_text(await slack.command("settings", with_card=True))
    assert "Your profile is built from 5 ratings" in settings
    assert CARD_TITLE not in settings


async def test_the_first_dm_and_the_first_home_visit_bring_the_card_once(
    slack: Harness, fake: FakeSlack
) -> None:
    assert await slack.event(dm_event("U5")) == 200
    [card, *rest] = posted_to(fake, "DU5")
    assert card["blocks"][0]["text"]["text"] == CARD_TITLE
    assert rate_buttons([card, *rest])
    await slack.event(dm_event("U5", "hello again"))
    assert len(posted_to(fake, "DU5")) == 1 + len(rest)
    # Messages from bots (and edits) are never answered.
    await slack.event(dm_event("U6", bot_id="B1"))
    await slack.event(dm_event("U6", subtype="message_changed"))
    assert posted_to(fake, "DU6") == []
    await slack.event({"type": "app_home_opened", "user": "U7", "channel": "DU7", "tab": "home"})
    home_card = [c.args for c in fake.of("chat.postMessage") if c.args.get("channel") == "U7"]
    assert home_card and home_card[0]["blocks"][0]["text"]["text"] == CARD_TITLE
    assert fake.of("views.publish")


# -- import -----------------------------------------------------------------------------------


LIBRARY = """@article{a, title = {Faster Segment Anything: Towards Lightweight SAM for Mobile
  Applications}}
@article{b, title = {A Survey on Mixture of Experts}}
@misc{c, title = {Nobody Wrote This}}
"""


async def test_a_bibtex_file_dropped_in_the_dm_becomes_saves(
    slack: Harness, fake: FakeSlack, store: Store
) -> None:
    shared = fake.share("My Library.bib", LIBRARY.encode())
    await slack.event(dm_event("U1", "", subtype="file_share", files=[shared]))
    assert fake.downloads == [BOT_TOKEN]
    [reply] = [m for m in posted_to(fake, "DU1") if not is_card_message(m)]
    assert reply["text"].startswith(
        "Imported 2 papers from BibTeX file “My Library.bib” as 🔖 saves: 2 matched papers "
        "already in the library, 0 added from arXiv."
    )
    assert "1 not found: Nobody Wrote This." in reply["text"]
    titles = {p.title for p in store.get_papers([pid for pid, _ in store.saved(uid())]) if p}
    assert titles == {
        "Faster Segment Anything: Towards Lightweight SAM for Mobile Applications",
        "A Survey on Mixture of Experts",
    }


async def test_bad_or_big_files_get_a_clear_reply_and_nothing_is_saved(
    slack: Harness, fake: FakeSlack, store: Store
) -> None:
    binary = fake.share("photo.bib", PNG + bytes(range(256)) * 8)
    await slack.event(dm_event("U1", "", subtype="file_share", files=[binary]))
    big = fake.share("huge.ris", b"TY  - JOUR\n")
    big["size"] = 6 * 1024 * 1024
    await slack.event(dm_event("U1", "", subtype="file_share", files=[big]))
    replies = [m["text"] for m in posted_to(fake, "DU1") if not is_card_message(m)]
    assert replies[0] == (
        "Nothing imported from “photo.bib”: That file is binary, not a BibTeX or RIS text file."
    )
    assert replies[1].startswith("Nothing imported from “huge.ris”: That file is 6.0 MB")
    # The big file was refused from its announced size, before any download.
    assert len(fake.downloads) == 1
    assert store.saved(uid()) == []


async def test_import_without_a_file_says_where_to_drop_it(slack: Harness) -> None:
    text = all_text(await slack.command("import"))
    assert "drop the .bib or .ris file into a direct message with me" in text


# -- the team ---------------------------------------------------------------------------------


async def test_who_names_only_visible_teammates_of_this_workspace(
    slack: Harness, store: Store
) -> None:
    diffusion = [p.id for p in store.iter_papers() if "diffusion" in p.title.lower()][:3]
    for user, team in (("U2", TEAM), ("U3", TEAM), ("U4", "T0OTHER")):
        await slack.command("settings", user=user, team=team, user_name=f"name{user}")
        for pid in diffusion:
            store.apply_feedback(uid(user, team), pid, "save")
    await slack.command("settings visible on", user="U2", team=TEAM, user_name="nameU2")
    await slack.command("settings visible on", user="U4", team="T0OTHER", user_name="nameU4")
    text = all_text(await slack.command("who diffusion models"))
    assert "nameU2" in text
    assert "Also 1 other teammate reads about it" in text
    assert "nameU3" not in text and "nameU4" not in text
    other = all_text(await slack.command("who diffusion models", team="T0OTHER", user="U9"))
    assert "nameU4" in other and "nameU2" not in other and "other teammate" not in other


async def test_trends_chart_is_uploaded_to_the_channel(
    slack: Harness, fake: FakeSlack, store: Store
) -> None:
    papers = [p.id for p in store.iter_papers() if "diffusion" in p.title.lower()][:3]
    for pid in papers:
        store.apply_feedback(uid("U2"), pid, "like")
    text = all_text(await slack.command("trends", channel="C7"))
    assert text.startswith("*Rising this week*")
    [asked] = fake.of("files.getUploadURLExternal")
    assert asked.args["filename"] == "paperbot-trends.png"
    [done] = fake.of("files.completeUploadExternal")
    assert done.args["channel_id"] == "C7"
    [data] = fake.uploads.values()
    assert data.startswith(PNG)


async def test_a_refused_upload_tells_the_person(slack: Harness, fake: FakeSlack) -> None:
    fake.fail("files.completeUploadExternal", error="not_in_channel")
    text = all_text(await slack.command("trends", channel="C8"))
    assert "I could not post the chart here" in text and "Invite me" in text
