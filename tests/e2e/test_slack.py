"""Slack end to end: signed requests into the real HTTP app, a fake Web API on the other side.

Every test drives paperbot the way Slack does: form-encoded slash commands, `block_actions`
payloads and Events API JSON, each signed with the signing secret, sent to `/slack/events`
of the aiohttp app on a free port; answers are read from what the fake Web API and the
response_url receiver recorded. Redis is real (the `store` fixture).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import time
import urllib.parse
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from bot.config import load_settings
from bot.core import UNAVAILABLE, BotCore
from bot.ports import DeliveryError, Digest, PaperCard, Reply, Target
from bot.repo import ChatRepo
from bot.slack_app import (
    BUTTON_TEXT,
    EVENTS_PATH,
    HEADER_TEXT,
    MAX_BLOCKS,
    REDIRECT_PATH,
    SECTION_TEXT,
    SlackPort,
    SlackRuntime,
    SlackSetupError,
    SlackThread,
    _chunks,
    build_slack,
    card_blocks,
    escape,
    make_client,
    reply_messages,
)
from bot.slack_oauth import BOT_SCOPES
from bot.subscriptions import Subscription
from recommender.ingest import ingest
from recommender.service import PaperService
from recommender.sources import parse_body
from recommender.store import Store
from tests.e2e.slack_fakes import (
    APP_TOKEN,
    BOT_TOKEN,
    SIGNING_SECRET,
    TEAM,
    FakeSlack,
    button_body,
    buttons_in,
    command_body,
    event_body,
    reaction_event,
    sign,
    texts_in,
)

SEED = Path(__file__).resolve().parents[1] / "fixtures" / "seed_papers.jsonl"
FORM = "application/x-www-form-urlencoded"
REC = re.compile(r"recommend", re.IGNORECASE)
MOE = re.compile(r"expert|\bmoe\b", re.IGNORECASE)
MANIFEST = "deploy/slack-manifest.yml"
CARD_TITLE = "Start here: rate a few papers"
MENTION_TITLE = "Attention <!channel> is all <@U123> needs & <https://evil.example|click me>"


# -- harness ---------------------------------------------------------------------------------


def load_corpus(store: Store, extra: Sequence[dict[str, Any]] = ()) -> None:
    """The 95 seed papers, plus any crafted records."""
    body = SEED.read_bytes()
    if extra:
        body += b"\n" + "\n".join(json.dumps(r) for r in extra).encode()
    ingest(store, parse_body("jsonl", body), "jsonl")


def make_core(store: Store) -> BotCore:
    """A trained core over the store (TF-IDF content model, no sentence encoder)."""
    service = PaperService(store, encoder=None)
    service.train()
    return BotCore(service)


def settings_for(fake: FakeSlack, **extra: Any):
    """Settings pointing Slack at the fake, serving on a free port."""
    values: dict[str, Any] = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_APP_TOKEN": None,
        "SLACK_API_URL": fake.api_url,
        "PAPERBOT_HTTP_HOST": "127.0.0.1",
        "PAPERBOT_HTTP_PORT": 0,
    }
    values.update(extra)
    return load_settings(**values)


class Harness:
    """paperbot's Slack runtime on a free port, and a way to talk to it as Slack does."""

    def __init__(self, runtime: SlackRuntime, fake: FakeSlack, store: Store) -> None:
        self.runtime = runtime
        self.core = runtime.core
        self.fake = fake
        self.store = store
        self.http: aiohttp.ClientSession | None = None
        self.events = 0

    @property
    def url(self) -> str:
        """The Request URL."""
        assert self.runtime.url
        return self.runtime.url

    async def post(
        self,
        body: str,
        content_type: str = FORM,
        *,
        headers: dict[str, str] | None = None,
        secret: str = SIGNING_SECRET,
        timestamp: int | None = None,
    ) -> tuple[int, str]:
        """POST a signed body; returns (status, response text) once the answer is out."""
        assert self.http is not None
        all_headers = {"Content-Type": content_type, **sign(body, secret, timestamp)}
        all_headers.update(headers or {})
        async with self.http.post(self.url, data=body.encode(), headers=all_headers) as resp:
            text = await resp.text()
            status = resp.status
        await self.runtime.idle()
        return status, text

    async def command(
        self, text: str, *, with_card: bool = False, **kwargs: Any
    ) -> list[dict[str, Any]]:
        """Run `/papers <text>`; returns the messages posted to its response_url.

        A person's first command is followed by the first-use card; it is left out unless
        `with_card` (the onboarding tests read it, the others are about the answer).
        """
        url = self.fake.response_url()
        status, body = await self.post(command_body(text, url, **kwargs))
        assert status == 200
        # The HTTP answer is only the ack: the reply itself goes to response_url.
        assert body == ""
        messages = await self.fake.wait_response(url)
        if with_card:
            return messages
        return [m for m in messages if not is_card_message(m)]

    async def click(self, button: dict[str, Any], **kwargs: Any) -> list[dict[str, Any]]:
        """Click a button; returns what was posted back to the clicker."""
        url = self.fake.response_url()
        status, _ = await self.post(button_body(button, url, **kwargs))
        assert status == 200
        return await self.fake.wait_response(url)

    async def event(
        self, event: dict[str, Any], *, event_id: str | None = None, retry: int | None = None
    ) -> int:
        """Deliver an Events API callback; returns the HTTP status."""
        if event_id is None:
            self.events += 1
            event_id = f"Ev{self.events:08d}"
        headers = {}
        if retry is not None:
            headers = {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
        status, _ = await self.post(
            event_body(event, event_id=event_id), "application/json", headers=headers
        )
        return status


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    """The fake Slack Web API."""
    server = FakeSlack()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def start_harness(core: BotCore, fake: FakeSlack, store: Store, **extra: Any) -> Harness:
    """Build and start the runtime for `core`."""
    runtime = build_slack(core, settings_for(fake, **extra))
    await runtime.start()
    harness = Harness(runtime, fake, store)
    harness.http = aiohttp.ClientSession()
    return harness


async def close_harness(harness: Harness) -> None:
    """Stop the runtime and the client session."""
    if harness.http is not None:
        await harness.http.close()
    await harness.runtime.stop()


@pytest.fixture
async def slack(store: Store, fake: FakeSlack) -> AsyncIterator[Harness]:
    """paperbot over the seed corpus, served on a free port."""
    load_corpus(store)
    harness = await start_harness(make_core(store), fake, store)
    try:
        yield harness
    finally:
        await close_harness(harness)


def is_card_message(message: dict[str, Any]) -> bool:
    """Whether a posted message is (part of) the first-use card: its header, or rate buttons."""
    blocks = message.get("blocks") or []
    header = any(b.get("type") == "header" and b["text"]["text"] == CARD_TITLE for b in blocks)
    rate = any(
        str(e.get("action_id", "")).startswith("pb_rate_")
        for b in blocks
        if b.get("type") == "actions"
        for e in b["elements"]
    )
    return header or rate


def uid(user: str = "U1", team: str = TEAM) -> str:
    """The store's id of a Slack user."""
    return f"slack:{team}:{user}"


def blocks_of(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """All blocks of a multi-message reply."""
    return [b for m in messages for b in m.get("blocks", [])]


def card_titles(messages: list[dict[str, Any]]) -> list[str]:
    """The titles of the paper cards in a reply, in order (link label of each card)."""
    titles = []
    for block in blocks_of(messages):
        if block["type"] == "section":
            first = block["text"]["text"].split("\n", 1)[0]
            match = re.match(r"^\d+\. \*(?:<[^|]*\|)?(.*?)>?\*$", first)
            if match:
                titles.append(match.group(1))
    return titles


def all_text(messages: list[dict[str, Any]]) -> str:
    """Every text of a reply, joined."""
    return "\n".join(texts_in(messages))


def feedback_log_length(store: Store) -> int:
    """Entries in the feedback audit stream."""
    return int(store.r.xlen("pb:feedback:log"))


def assert_within_limits(messages: list[dict[str, Any]]) -> None:
    """Slack's Block Kit limits hold for every message."""
    for message in messages:
        blocks = message["blocks"]
        assert 0 < len(blocks) <= MAX_BLOCKS
        block_ids = [b["block_id"] for b in blocks if "block_id" in b]
        assert len(block_ids) == len(set(block_ids))
        for block in blocks:
            if block["type"] == "section":
                assert len(block["text"]["text"]) <= SECTION_TEXT
            if block["type"] == "header":
                assert len(block["text"]["text"]) <= HEADER_TEXT
            if block["type"] == "context":
                assert all(len(e["text"]) <= SECTION_TEXT for e in block["elements"])
            if block["type"] == "actions":
                ids = [e["action_id"] for e in block["elements"]]
                assert len(ids) == len(set(ids))
                for element in block["elements"]:
                    assert len(element["text"]["text"]) <= BUTTON_TEXT
                    assert len(element["value"]) <= 2000
        assert len(message["text"]) <= 3000


# -- requests, signatures, acks ----------------------------------------------------------------


async def test_url_verification_echoes_the_challenge(slack: Harness) -> None:
    """Slack's one-time URL check is answered with the challenge."""
    body = json.dumps({"type": "url_verification", "challenge": "ch4ll3nge", "token": "t"})
    status, text = await slack.post(body, "application/json")
    assert status == 200
    assert "ch4ll3nge" in text


async def test_help_is_acked_then_answered_through_response_url(slack: Harness) -> None:
    """`/papers help`: an empty ack, then blocks posted to response_url, only for the asker."""
    messages = await slack.command("help")
    assert len(messages) == 1
    message = messages[0]
    assert message["response_type"] == "ephemeral"
    assert message["replace_original"] is False
    assert message["blocks"][0]["type"] == "section"
    text = all_text(messages)
    assert "/papers search" in text and "/papers subscribe" in text
    assert_within_limits(messages)


@pytest.mark.parametrize(
    "tamper",
    ["bad-signature", "wrong-secret", "replayed", "unsigned"],
)
async def test_forged_or_replayed_requests_get_401_and_change_nothing(
    slack: Harness, tamper: str
) -> None:
    """A bad signature or a request older than five minutes is refused before any work."""
    url = slack.fake.response_url()
    body = command_body("subscribe", url)
    event = event_body(reaction_event("+1", "C1", "1.2"), event_id="EvForged")
    kwargs: dict[str, Any] = {}
    headers: dict[str, str] = {}
    if tamper == "bad-signature":
        headers = {"X-Slack-Signature": "v0=" + "0" * 64}
    elif tamper == "wrong-secret":
        kwargs = {"secret": "not-the-secret"}
    elif tamper == "replayed":
        kwargs = {"timestamp": int(time.time()) - 600}
    else:
        headers = {"X-Slack-Signature": "", "X-Slack-Request-Timestamp": ""}
    status, _ = await slack.post(body, headers=headers, **kwargs)
    assert status == 401
    status, _ = await slack.post(event, "application/json", headers=headers, **kwargs)
    assert status == 401
    assert slack.fake.responses == {}
    assert slack.fake.of("users.info") == []
    assert ChatRepo(slack.store).subscriptions() == []
    assert feedback_log_length(slack.store) == 0
    # The event id was not consumed: the genuine delivery of it still counts.
    assert ChatRepo(slack.store).once("slack:event:EvForged", 60)


# -- commands ---------------------------------------------------------------------------------


async def test_subscribe_defaults_to_the_users_info_timezone(slack: Harness) -> None:
    """`/papers subscribe` uses the person's Slack timezone, looked up once and cached."""
    slack.fake.timezones["U7"] = "America/New_York"
    messages = await slack.command(
        "subscribe", user="U7", channel="D7", channel_name="directmessage"
    )
    assert "America/New_York" in all_text(messages)
    sub = ChatRepo(slack.store).get_subscription(f"dm:slack:{TEAM}:U7")
    assert sub is not None and sub["tz"] == "America/New_York"
    assert sub["at"] == "09:00"
    await slack.command("settings", user="U7")
    assert len(slack.fake.of("users.info")) == 1
    assert slack.store.get_profile(uid("U7"))["tz"] == "America/New_York"
    # An explicit timezone still wins.
    messages = await slack.command("subscribe daily 08:30 Asia/Tokyo", user="U7")
    assert ChatRepo(slack.store).get_subscription(f"dm:slack:{TEAM}:U7")["tz"] == "Asia/Tokyo"


async def test_search_is_reranked_for_the_asker(slack: Harness) -> None:
    """Someone who liked recommender papers sees them higher than a newcomer does."""
    liked = await slack.command("search recommendation", user="UA")
    for button in buttons_in(blocks_of(liked)):
        if button["action_id"] == "pb_like":
            await slack.click(button, user="UA")
    assert len(slack.store.user_feedback(uid("UA"))) == 5
    fan = card_titles(await slack.command("search efficient", user="UA"))
    newcomer = card_titles(await slack.command("search efficient", user="UB"))
    assert len(fan) == len(newcomer) == 5
    assert fan != newcomer

    def first_rec(titles: list[str]) -> int:
        return next((i for i, t in enumerate(titles) if REC.search(t)), len(titles))

    assert first_rec(fan) < first_rec(newcomer)
    assert sum(bool(REC.search(t)) for t in fan) >= sum(bool(REC.search(t)) for t in newcomer)


async def test_button_click_records_for_the_clicker_and_toggles(slack: Harness) -> None:
    """🔖 on a search result saves it for whoever clicked; a second click takes it back."""
    messages = await slack.command("search diffusion guidance", user="U1")
    save = next(b for b in buttons_in(blocks_of(messages)) if b["action_id"] == "pb_save")
    paper_id = save["value"].split("|", 1)[1]
    answer = await slack.click(save, user="U2")
    assert answer[0]["response_type"] == "ephemeral"
    assert answer[0]["replace_original"] is False
    assert "Saved" in all_text(answer)
    assert [pid for pid, _ in slack.store.saved(uid("U2"))] == [paper_id]
    assert slack.store.saved(uid("U1")) == []
    answer = await slack.click(save, user="U2")
    assert "Removed" in all_text(answer)
    assert slack.store.saved(uid("U2")) == []
    assert slack.store.user_feedback(uid("U2")) == {}


TWO_AUTHORS = {
    "arxiv_id": "2601.00001",
    "title": "Compilers for Diffusion Models",
    "abstract": "We compile diffusion models for fast sampling.",
    "authors": ["Grace Hopper", "Alan <@U2> Turing & Co"],
}


async def test_mute_asks_which_author_in_a_menu(store: Store, fake: FakeSlack) -> None:
    """🔇 on a paper with several authors: a menu of its authors, and only the one picked
    is muted; a 🔇 reaction gets the same menu, ephemerally."""
    load_corpus(store, [TWO_AUTHORS])
    slack = await start_harness(make_core(store), fake, store)
    try:
        messages = await slack.command("search compilers diffusion", user="U1")
        mute = next(b for b in buttons_in(blocks_of(messages)) if b["value"] == "mute|2601.00001")
        answer = await slack.click(mute, user="U1")
        assert answer[0]["response_type"] == "ephemeral"
        assert "Which author of “Compilers for Diffusion Models” should I mute?" in all_text(answer)
        menus = [e for b in blocks_of(answer) if b["type"] == "actions" for e in b["elements"]]
        assert [m["type"] for m in menus] == ["static_select"]
        options = menus[0]["options"]
        assert [o["text"]["text"] for o in options] == ["Grace Hopper", "Alan <@U2> Turing & Co"]
        assert all(o["text"]["type"] == "plain_text" for o in options)  # never a live mention
        assert store.words(uid("U1"), "muted") == set()
        pick = {"action_id": menus[0]["action_id"], "selected_option": options[1]}
        picked = await slack.click(pick, user="U1")
        assert "Muted Alan &lt;@U2&gt; Turing &amp; Co" in all_text(picked)
        assert store.words(uid("U1"), "muted") == {"alan <@u2> turing & co"}

        ChatRepo(store).remember_message(
            "slack:C1:1700000001.000001", {"paper": "2601.00001", "workspace": TEAM}
        )
        assert (
            await slack.event(reaction_event("mute", "C1", "1700000001.000001", user="U3")) == 200
        )
        asked = fake.of("chat.postEphemeral")[-1].args
        assert asked["user"] == "U3"
        menu = [e for b in asked["blocks"] if b["type"] == "actions" for e in b["elements"]]
        assert [o["value"] for o in menu[0]["options"]] == [
            "mute|2601.00001|0",
            "mute|2601.00001|1",
        ]
        assert store.words(uid("U3"), "muted") == set()
    finally:
        await close_harness(slack)


async def test_clicks_on_unknown_papers_or_other_workspaces_are_refused(slack: Harness) -> None:
    """A stale button or a digest of another workspace records nothing and says why."""
    gone = {"action_id": "pb_like", "value": "like|2401.99999"}
    answer = await slack.click(gone, user="U1")
    assert "no longer in the library" in all_text(answer)
    paper_id = slack.store.all_paper_ids()[0]
    ChatRepo(slack.store).remember_message(
        "slack:C1:1699999999.000001", {"paper": paper_id, "workspace": "TOTHER"}
    )
    answer = await slack.click(
        {"action_id": "pb_like", "value": f"like|{paper_id}"},
        user="U1",
        message_ts="1699999999.000001",
    )
    assert "another workspace" in all_text(answer)
    forged = await slack.click({"action_id": "pb_like", "value": "<!channel>|x"}, user="U1")
    assert "not one of mine" in all_text(forged)
    assert slack.store.user_feedback(uid("U1")) == {}


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("", "Commands"),
        ("   ", "Commands"),
        ("x" * 10_000, "I don't know the command"),
        ("search " + "diffusion " * 1000, "ranked for you"),
        ("search 拡散モデル 🧪 ünïcödé", "No papers match"),
        ("search <!channel> <@U123> <!here>", "for “&lt;!channel&gt; &lt;@U123&gt; &lt;!here&gt;”"),
        ("search '; DROP TABLE papers; -- $(rm -rf /) {{7*7}}", "for “'; DROP TABLE papers;"),
        ("frobnicate now", "I don't know the command"),
        ("subscribe weekly blursday", "did not understand"),
        ("subscribe 25:99", "not a time"),
        ("topics add", "topics"),
        ("mute author", "mute author"),
        ("help nonsense", "Commands"),
    ],
)
async def test_bad_input_gets_a_helpful_reply(slack: Harness, text: str, expect: str) -> None:
    """Odd, huge or hostile command text gets a useful answer, within Slack's limits."""
    messages = await slack.command(text)
    assert expect in all_text(messages)
    assert_within_limits(messages)
    raw = json.dumps(messages)
    for mention in ("<!channel>", "<@U123>", "<!here>"):
        assert mention not in raw


async def test_mentions_in_queries_and_titles_are_shown_never_triggered(
    store: Store, fake: FakeSlack
) -> None:
    """`<!channel>` in a paper title or a query reaches Slack escaped, in blocks and text."""
    crafted = {
        "title": MENTION_TITLE,
        "abstract": "Zebrafish attention <!everyone> study with <@U999> & friends.",
        "authors": ["<!here> Mallory", "Eve <@U1>"],
        "code_url": "https://github.com/example/zebra?a=1&b=<2>",
    }
    load_corpus(store, [crafted])
    harness = await start_harness(make_core(store), fake, store)
    try:
        # As typed (Slack escapes & < > in command text) and as a raw forged string.
        for query in ("search zebrafish &lt;!channel&gt;", "search zebrafish <!channel>"):
            messages = await harness.command(query)
            raw = json.dumps(messages)
            for mention in ("<!channel>", "<@U123>", "<!everyone>", "<@U999>", "<!here>"):
                assert mention not in raw
            text = all_text(messages)
            assert "Attention &lt;!channel&gt; is all &lt;@U123&gt; needs &amp;" in text
            assert "&lt;!here&gt; Mallory" in text
            assert "<https://evil.example" not in raw
            # The query echoed back is escaped once, not twice.
            assert "“zebrafish &lt;!channel&gt;”" in text
        # The same holds in a digest delivered through the Web API (made of that paper alone).
        await harness.command("subscribe")
        crafted_id = next(
            pid
            for pid in store.all_paper_ids()
            if "zebrafish" in store.get_paper(pid).abstract.lower()
        )
        store.mark_seen(uid(), [pid for pid in store.all_paper_ids() if pid != crafted_id])
        sub = Subscription.from_dict(ChatRepo(store).get_subscription(f"dm:slack:{TEAM}:U1"))
        assert await harness.core.delivery.send(sub, "2030-01-01") == "sent"
        posted = json.dumps([c.args for c in fake.of("chat.postMessage")])
        assert "&lt;!channel&gt;" in posted
        for mention in ("<!channel>", "<@U123>", "<!everyone>", "<!here>"):
            assert mention not in posted
    finally:
        await close_harness(harness)


async def test_block_kit_limits_hold_for_long_papers(store: Store, fake: FakeSlack) -> None:
    """Huge titles, abstracts and author lists still fit 3000/150/75 and 50 blocks."""
    crafted = [
        {
            "title": f"Quokka {i} " + "long title words " * 58,
            "abstract": ("Quokka abstract sentence that never ends " * 400) + ".",
            "authors": [f"Author Number{j} & <Co>" for j in range(300)],
            "code_url": "https://github.com/example/" + "q" * 1500,
            "upvotes": 10_000 + i,
        }
        for i in range(20)
    ]
    load_corpus(store, crafted)
    harness = await start_harness(make_core(store), fake, store)
    try:
        messages = await harness.command("search quokka")
        assert_within_limits(messages)
        assert len(card_titles(messages)) == 5
        for pid in store.paper_ids_since(0):
            paper = store.get_paper(pid)
            if paper and paper.title.startswith("Quokka"):
                store.apply_feedback(uid(), pid, "save")
        url = fake.response_url()
        status, _ = await harness.post(command_body("saved", url))
        assert status == 200
        saved = fake.responses[url.rsplit("/", 1)[-1]]
        # 20 cards of 4 blocks do not fit one message: the reply is split, cards kept whole.
        assert len(saved) >= 2
        assert_within_limits(saved)
        assert len(buttons_in(blocks_of(saved))) == 20 * 4
        export = await harness.command("export")
        assert len(export) >= 2
        assert_within_limits(export)
        for message in export:
            for block in message["blocks"]:
                # Every piece of a long code block is closed in its own section.
                assert block["text"]["text"].count("```") % 2 == 0
    finally:
        await close_harness(harness)


async def test_redis_down_gives_a_polite_line(store: Store, fake: FakeSlack) -> None:
    """With the database unreachable, a command still gets one polite sentence back."""
    load_corpus(store)
    service = PaperService(store, encoder=None)
    service.train()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    dead = Store(
        # No retries with backoff: a refused connection is reported at once.
        redis.Redis(
            host="127.0.0.1",
            port=closed_port,
            socket_connect_timeout=1,
            retry=Retry(NoBackoff(), 0),
        ),
        where=f"127.0.0.1:{closed_port}",
    )
    service.store = dead
    harness = await start_harness(BotCore(service), fake, store)
    try:
        for text in ("search diffusion", "subscribe", "digest"):
            messages = await harness.command(text)
            assert texts_in(blocks_of(messages)) == [UNAVAILABLE]
        status = await harness.event(reaction_event("+1", "C1", "1700000000.000001"))
        assert status == 200
        answer = await harness.click({"action_id": "pb_like", "value": "like|x"})
        assert UNAVAILABLE in all_text(answer)
    finally:
        await close_harness(harness)
        dead.close()


# -- digests through SlackPort ---------------------------------------------------------------


async def subscribe_and_send(slack: Harness, text: str, sub_id: str, **kwargs: Any) -> str:
    """Subscribe through a signed command, then run that digest's delivery."""
    await slack.command(text, **kwargs)
    record = ChatRepo(slack.store).get_subscription(sub_id)
    assert record is not None
    return await slack.core.delivery.send(Subscription.from_dict(record), "2030-01-01")


async def test_dm_digest_reactions_map_to_the_paper(slack: Harness) -> None:
    """A DM digest: conversations.open, intro + one message per paper, each mapped to its paper;
    reacting 👍 likes that paper for the reactor, removing the reaction undoes it."""
    sub_id = f"dm:slack:{TEAM}:U1"
    assert await subscribe_and_send(slack, "subscribe", sub_id) == "sent"
    fake = slack.fake
    assert [c.args["users"] for c in fake.of("conversations.open")] == ["U1"]
    posts = fake.of("chat.postMessage")
    assert len(posts) == 11
    assert {c.args["channel"] for c in posts} == {"DU1"}
    assert all("thread_ts" not in c.args for c in posts)
    intro, cards = posts[0], posts[1:]
    assert intro.args["blocks"][0]["type"] == "header"
    mapped = []
    for call in cards:
        ts = fake.of("chat.postMessage").index(call)
        message_ts = f"1700000000.{ts + 1:06d}"
        record = ChatRepo(slack.store).message(f"slack:DU1:{message_ts}")
        assert record is not None and record["workspace"] == TEAM
        button = buttons_in(call.args["blocks"])[0]
        assert button["value"] == f"like|{record['paper']}"
        mapped.append((message_ts, record["paper"]))
        assert_within_limits([call.args])

    message_ts, paper = mapped[1]
    assert await slack.event(reaction_event("+1", "DU1", message_ts)) == 200
    assert slack.store.user_feedback(uid("U1")) == {paper: {"like"}}
    confirm = fake.of("chat.postEphemeral")
    assert len(confirm) == 1 and confirm[0].args["user"] == "U1"
    assert "more like this" in confirm[0].args["text"]

    assert await slack.event(reaction_event("+1", "DU1", message_ts, removed=True)) == 200
    assert slack.store.user_feedback(uid("U1")) == {}
    # A reaction that is not feedback, or on the intro (no single paper), changes nothing.
    await slack.event(reaction_event("tada", "DU1", message_ts))
    await slack.event(reaction_event("+1", "DU1", "1700000000.000001"))
    assert slack.store.user_feedback(uid("U1")) == {}
    assert len(fake.of("chat.postEphemeral")) == 2


async def test_duplicate_events_are_applied_once(slack: Harness) -> None:
    """Slack's retries of one event (same event_id, X-Slack-Retry-Num) count once."""
    assert await subscribe_and_send(slack, "subscribe", f"dm:slack:{TEAM}:U1") == "sent"
    event = reaction_event("bookmark", "DU1", "1700000000.000002")
    paper = ChatRepo(slack.store).message("slack:DU1:1700000000.000002")["paper"]
    before = feedback_log_length(slack.store)
    assert await slack.event(event, event_id="EvDup1") == 200
    assert await slack.event(event, event_id="EvDup1", retry=1) == 200
    assert await slack.event(event, event_id="EvDup1", retry=2) == 200
    assert feedback_log_length(slack.store) == before + 1
    assert [pid for pid, _ in slack.store.saved(uid("U1"))] == [paper]
    assert len(slack.fake.of("chat.postEphemeral")) == 1


async def test_channel_digest_is_threaded_under_its_intro(slack: Harness) -> None:
    """A team digest: intro in the channel, every paper in the intro's thread."""
    status = await subscribe_and_send(
        slack, "subscribe channel", f"channel:slack:{TEAM}:C5", channel="C5"
    )
    assert status == "sent"
    posts = slack.fake.of("chat.postMessage")
    assert slack.fake.of("conversations.open") == []
    intro_ts = "1700000000.000001"
    assert "thread_ts" not in posts[0].args
    assert len(posts) > 1
    for n, call in enumerate(posts[1:], start=2):
        assert call.args["channel"] == "C5"
        assert call.args["thread_ts"] == intro_ts
        assert ChatRepo(slack.store).message(f"slack:C5:1700000000.{n:06d}")["paper"]
    # Another member reacting in the thread gets the feedback for themselves.
    await slack.event(reaction_event("-1", "C5", "1700000000.000002", user="U9"))
    paper = ChatRepo(slack.store).message("slack:C5:1700000000.000002")["paper"]
    assert slack.store.user_feedback(uid("U9")) == {paper: {"dislike"}}


@pytest.mark.parametrize("error", ["not_in_channel", "channel_not_found"])
async def test_unpostable_channel_keeps_the_digest_and_tells_the_owner(
    slack: Harness, error: str
) -> None:
    """The digest stays pending, the owner hears why by DM, and it goes out once fixed."""
    slack.fake.fail("chat.postMessage", error=error, channel="C9", times=1)
    sub_id = f"channel:slack:{TEAM}:C9"
    assert await subscribe_and_send(slack, "subscribe channel", sub_id, channel="C9") == "retry"
    key = f"{sub_id}:2030-01-01"
    pending = ChatRepo(slack.store).get_pending(key)
    assert pending is not None and error in pending["error"]
    dm = [c for c in slack.fake.of("chat.postMessage") if c.args["channel"] == "DU1"]
    assert len(dm) == 1 and "could not post" in dm[0].args["text"]
    assert error in dm[0].args["text"]
    assert [c.args["users"] for c in slack.fake.of("conversations.open")] == ["U1"]
    sub = Subscription.from_dict(ChatRepo(slack.store).get_subscription(sub_id))
    assert await slack.core.delivery.send(sub, "2030-01-01") == "sent"
    assert ChatRepo(slack.store).get_pending(key) is None
    in_channel = [c for c in slack.fake.of("chat.postMessage") if c.args["channel"] == "C9"]
    assert len(in_channel) == 11


async def test_rate_limited_post_is_retried_and_the_digest_arrives(slack: Harness) -> None:
    """A 429 with Retry-After is waited out by the client; nothing is lost or doubled."""
    slack.fake.fail("chat.postMessage", status=429, retry_after=1, times=1)
    assert await subscribe_and_send(slack, "subscribe", f"dm:slack:{TEAM}:U1") == "sent"
    attempts = slack.fake.attempts("chat.postMessage")
    assert [c.status for c in attempts].count(429) == 1
    assert len(slack.fake.of("chat.postMessage")) == 11
    papers = [
        buttons_in(c.args["blocks"])[0]["value"] for c in slack.fake.of("chat.postMessage")[1:]
    ]
    assert len(set(papers)) == 10


async def test_persistent_429_becomes_a_retry_with_retry_after(slack: Harness) -> None:
    """When Slack keeps saying 429, the digest waits in the outbox with Slack's delay."""
    slack.fake.fail("chat.postMessage", status=429, retry_after=0, times=10)
    assert await subscribe_and_send(slack, "subscribe", f"dm:slack:{TEAM}:U1") == "retry"
    pending = ChatRepo(slack.store).get_pending(f"dm:slack:{TEAM}:U1:2030-01-01")
    assert pending is not None and "rate limited" in pending["error"]


async def test_network_errors_are_retryable_and_api_errors_mapped(fake: FakeSlack) -> None:
    """Slack unreachable -> retry later; refusals -> permanent or not, as documented."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    # One try each: what is checked here is how a failure is classified.
    port = SlackPort(make_client(BOT_TOKEN, f"http://127.0.0.1:{closed_port}/api/"), attempts=1)
    target = Target("slack", TEAM, "channel", "C1")
    digest = Digest("s", "Your papers", "intro", [], "2030-01-01")
    with pytest.raises(DeliveryError) as info:
        await port.post_intro(target, digest)
    assert not info.value.permanent and info.value.retry_after is None
    assert "network error" in str(info.value)

    port = SlackPort(make_client(BOT_TOKEN, fake.api_url), attempts=1)
    for error, permanent in (
        ("is_archived", True),
        ("account_inactive", True),
        ("invalid_auth", True),
        ("internal_error", False),
    ):
        fake.fail("chat.postMessage", error=error, times=1)
        with pytest.raises(DeliveryError) as info:
            await port.post_intro(target, digest)
        assert info.value.permanent is permanent and error in str(info.value)
    fake.fail("conversations.open", error="user_not_found", times=1)
    with pytest.raises(DeliveryError) as info:
        await port.send_text(Target("slack", TEAM, "dm", "UGONE"), "hello")
    assert info.value.permanent


# -- App Home, startup, secrets, Socket Mode ------------------------------------------------------


async def test_app_home_shows_settings_and_saved_papers(slack: Harness) -> None:
    """Opening the Home tab publishes settings and saved papers; a click there re-renders it."""
    messages = await slack.command("search recommendation")
    save = next(b for b in buttons_in(blocks_of(messages)) if b["action_id"] == "pb_save")
    await slack.click(save)
    home = {"type": "app_home_opened", "user": "U1", "channel": "DU1", "tab": "home"}
    assert await slack.event(home) == 200
    views = slack.fake.of("views.publish")
    assert len(views) == 1 and views[0].args["user_id"] == "U1"
    view = views[0].args["view"]
    assert view["type"] == "home" and len(view["blocks"]) <= 100
    text = "\n".join(texts_in(view["blocks"]))
    assert "Your settings" in text and "Saved papers" in text
    assert [b["value"] for b in buttons_in(view["blocks"])][1] == save["value"]
    status, _ = await slack.post(button_body(save, None, view=True))
    assert status == 200
    assert slack.store.saved(uid()) == []
    assert len(slack.fake.of("views.publish")) == 2
    assert "Nothing saved yet" in "\n".join(
        texts_in(slack.fake.of("views.publish")[1].args["view"])
    )
    messages_tab = {"type": "app_home_opened", "user": "U1", "channel": "DU1", "tab": "messages"}
    await slack.event(messages_tab)
    assert len(slack.fake.of("views.publish")) == 2


async def test_a_bad_bot_token_fails_at_start_with_one_line(store: Store, fake: FakeSlack) -> None:
    """auth.test runs once at start; a rejected token is one clear line without the token."""
    load_corpus(store)
    core = make_core(store)
    runtime = build_slack(core, settings_for(fake, SLACK_BOT_TOKEN="xoxb-wrong-token-42"))
    with pytest.raises(SlackSetupError) as info:
        await runtime.start()
    message = str(info.value)
    assert "\n" not in message and "SLACK_BOT_TOKEN" in message and "invalid_auth" in message
    assert "xoxb-wrong-token-42" not in message
    assert runtime.url is None


def test_missing_signing_secret_is_a_setup_error(store: Store) -> None:
    """HTTP mode cannot verify requests without the signing secret: refuse to start."""
    settings = load_settings(
        SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=None, SLACK_APP_TOKEN=None
    )
    load_corpus(store)
    with pytest.raises(SlackSetupError, match="SLACK_SIGNING_SECRET"):
        build_slack(make_core(store), settings)


async def test_secrets_never_reach_the_logs(
    slack: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """Tokens and the signing secret stay out of every log record, even at DEBUG."""
    caplog.set_level(logging.DEBUG)
    await slack.command("search diffusion")
    await slack.command("subscribe")
    await slack.core.delivery.send(
        Subscription.from_dict(ChatRepo(slack.store).get_subscription(f"dm:slack:{TEAM}:U1")),
        "2030-01-01",
    )
    await slack.post(command_body("help", slack.fake.response_url()), secret="forged")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert logged
    for secret in (BOT_TOKEN, SIGNING_SECRET):
        assert secret not in logged


async def test_socket_mode_answers_commands(store: Store, fake: FakeSlack) -> None:
    """With SLACK_APP_TOKEN set, envelopes arrive over the websocket and are acked there."""
    load_corpus(store)
    core = make_core(store)
    runtime = build_slack(
        core, settings_for(fake, SLACK_APP_TOKEN=APP_TOKEN, SLACK_SIGNING_SECRET=None)
    )
    assert runtime.mode == "socket"
    assert await runtime.start() is None
    try:
        url = fake.response_url()
        payload = dict(urllib.parse.parse_qsl(command_body("search diffusion", url)))
        ack = await fake.push(
            {
                "envelope_id": "env-1",
                "type": "slash_commands",
                "accepts_response_payload": True,
                "payload": payload,
            }
        )
        assert ack == {"envelope_id": "env-1"}
        await runtime.idle()
        messages = await fake.wait_response(url)
        assert "ranked for you" in all_text(messages)
        assert len(card_titles([m for m in messages if not is_card_message(m)])) == 5
    finally:
        await runtime.stop()


async def test_a_bad_app_token_fails_at_start_with_one_line(store: Store, fake: FakeSlack) -> None:
    """Socket Mode with a refused app-level token stops at start instead of retrying forever."""
    load_corpus(store)
    settings = settings_for(fake, SLACK_APP_TOKEN="xapp-wrong-token-42", SLACK_SIGNING_SECRET=None)
    runtime = build_slack(make_core(store), settings)
    with pytest.raises(SlackSetupError) as info:
        await runtime.start()
    message = str(info.value)
    assert "SLACK_APP_TOKEN" in message and "invalid_auth" in message
    assert "xapp-wrong-token-42" not in message and "\n" not in message


async def test_slack_thread_serves_from_its_own_loop(store: Store, fake: FakeSlack) -> None:
    """The handle `paperbot run` uses: Slack on a background loop, digests run on it."""
    load_corpus(store)
    core = make_core(store)
    handle = SlackThread(build_slack(core, settings_for(fake)))
    # Blocking calls go to a worker thread so this loop can keep serving the fake.
    port = await asyncio.to_thread(handle.start)
    try:
        assert port and handle.runtime.url
        url = fake.response_url()
        body = command_body("subscribe", url)
        headers = {"Content-Type": FORM, **sign(body)}
        async with (
            aiohttp.ClientSession() as http,
            http.post(handle.runtime.url, data=body, headers=headers) as resp,
        ):
            assert resp.status == 200
        assert "Subscribed" in all_text(await fake.wait_response(url))
        tomorrow = datetime.now(UTC) + timedelta(days=1)
        due = tomorrow.replace(hour=8, minute=30, second=0, microsecond=0)
        results = await asyncio.to_thread(handle.run, core.delivery.run_due(due))
        # 08:30 UTC is 09:30 or 10:30 in Berlin: the daily 09:00 digest is due.
        assert results == {f"dm:slack:{TEAM}:U1": "sent"}
        assert len(fake.of("chat.postMessage")) == 11
    finally:
        await asyncio.to_thread(handle.stop)
    assert not handle.loop.is_running()


# -- the loop: feedback through Slack changes the next digest ------------------------------------


async def test_feedback_through_slack_changes_the_next_digest(slack: Harness) -> None:
    """Likes on recommender papers and dislikes on mixture-of-experts papers, all through
    signed requests, move recommender papers up the person's next digest."""
    before = card_titles(await slack.command("digest", user="UL"))
    assert len(before) == 10
    for query, kind in (
        ("search recommendation", "pb_like"),
        ("search mixture of experts", "pb_dislike"),
    ):
        for button in buttons_in(blocks_of(await slack.command(query, user="UL"))):
            if button["action_id"] == kind:
                answer = await slack.click(button, user="UL")
                assert "Noted" in all_text(answer)
    kinds = slack.store.user_feedback(uid("UL"))
    assert sum(k == {"like"} for k in kinds.values()) == 5
    assert sum(k == {"dislike"} for k in kinds.values()) == 5
    after = card_titles(await slack.command("digest", user="UL"))
    assert len(after) == 10
    assert not set(after) & set(before)
    rec_before = sum(bool(REC.search(t)) for t in before)
    rec_after = sum(bool(REC.search(t)) for t in after)
    assert rec_after > rec_before
    assert after and REC.search(after[0])
    assert sum(bool(MOE.search(t)) for t in after) <= sum(bool(MOE.search(t)) for t in before)
    # Why a paper was picked is shown on its card.
    messages = await slack.command("search recommendation", user="UL")
    assert "Matches your interest" in all_text(messages) or "liked" in all_text(messages)


def test_manifest_points_everything_at_the_one_request_url() -> None:
    """The shipped manifest matches what the app serves and listens to."""
    yaml = pytest.importorskip("yaml")
    manifest = yaml.safe_load((Path(__file__).resolve().parents[2] / MANIFEST).read_text())
    command = manifest["features"]["slash_commands"][0]
    assert command["command"] == "/papers" and command["should_escape"] is False
    assert command["usage_hint"]
    urls = {
        command["url"],
        manifest["settings"]["event_subscriptions"]["request_url"],
        manifest["settings"]["interactivity"]["request_url"],
    }
    assert {urllib.parse.urlparse(u).path for u in urls} == {EVENTS_PATH}
    assert all(u.startswith("https://") for u in urls)
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == {
        "commands",
        "chat:write",
        "im:write",
        "reactions:read",
        "users:read",
        # Looking up a digest post after a failed try, so it is never posted twice.
        "channels:history",
        "groups:history",
        "im:history",
        "files:read",
        "files:write",
    }
    assert set(manifest["settings"]["event_subscriptions"]["bot_events"]) == {
        "reaction_added",
        "reaction_removed",
        "message.im",
        "app_home_opened",
        "app_uninstalled",
        "tokens_revoked",
    }
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    # The install flow: Slack sends installers back to the path paperbot serves, and asks
    # for the scopes the install page requests.
    [redirect] = manifest["oauth_config"]["redirect_urls"]
    assert redirect.startswith("https://")
    assert urllib.parse.urlparse(redirect).path == REDIRECT_PATH
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == set(BOT_SCOPES)


# -- rendering, directly ---------------------------------------------------------------------


def test_escape_and_link_rules() -> None:
    """`& < >` are escaped; only http(s) urls become links; labels are escaped."""
    assert escape("<!channel> & <@U1>") == "&lt;!channel&gt; &amp; &lt;@U1&gt;"
    card = PaperCard(paper_id="p1", title="A <b> & B", url="javascript:alert(1)", position=1)
    text = card_blocks(card)[0]["text"]["text"]
    assert text.startswith("1. *A &lt;b&gt; &amp; B*")
    assert "javascript" not in text
    card.url = "https://arxiv.org/abs/2401.00001"
    assert (
        "<https://arxiv.org/abs/2401.00001|A &lt;b&gt; &amp; B>"
        in card_blocks(card)[0]["text"]["text"]
    )


def test_card_shows_reason_teammates_code_and_upvotes() -> None:
    """The small print carries code link, upvotes, teammates and the reason."""
    card = PaperCard(
        paper_id="p1",
        title="T",
        url="https://x.org",
        code_url="https://github.com/a/b",
        upvotes=12,
        teammates=3,
        reason="Because you liked <Foo>",
    )
    blocks = card_blocks(card, 2)
    small = blocks[1]["elements"][0]["text"]
    assert "<https://github.com/a/b|code>" in small
    assert "▲ 12" in small and "👥 3 teammates liked this" in small
    assert "Because you liked &lt;Foo&gt;" in small
    actions = blocks[2]
    assert [e["action_id"] for e in actions["elements"]] == [
        "pb_like",
        "pb_save",
        "pb_dislike",
        "pb_mute",
    ]
    assert [e["value"] for e in actions["elements"]] == [
        "like|p1",
        "save|p1",
        "dislike|p1",
        "mute|p1",
    ]


def test_reply_splits_into_messages_of_at_most_50_blocks() -> None:
    """Many cards split across messages without cutting a card in two."""
    cards = [PaperCard(paper_id=f"p{i}", title=f"T{i}", url="", position=i + 1) for i in range(30)]
    messages = reply_messages(Reply("Many:", cards=cards, title="Your papers", footer="more"))
    assert len(messages) >= 2
    assert_within_limits(messages)
    for message in messages:
        kinds = [b["type"] for b in message["blocks"]]
        # A card's section is always followed by its buttons in the same message.
        for i, kind in enumerate(kinds):
            if kind == "section" and message["blocks"][i]["text"]["text"].startswith(
                tuple("123456789")
            ):
                assert kinds[i + 1] == "actions"
    assert len(buttons_in(blocks_of(messages))) == 120


def test_long_text_chunks_keep_entities_and_code_fences() -> None:
    """Text over 3000 characters is split on lines, never inside `&amp;`, fences re-opened."""
    text = escape(
        "```\n"
        + "\n".join(f"@article{{a{i}, title={{A & B <{i}>}}}}" for i in range(400))
        + "\n```"
    )
    chunks = _chunks(text)
    assert len(chunks) > 1
    for chunk in chunks:
        assert len(chunk) <= SECTION_TEXT
        assert chunk.count("```") % 2 == 0
        assert not re.search(r"&(?!amp;|lt;|gt;)", chunk)
    one_line = escape("&" * 5000)
    assert all(not c.endswith("&am") for c in _chunks(one_line))


def test_digest_messages_are_escaped() -> None:
    """Intro and card messages of a digest escape their text too."""
    from bot.slack_app import digest_card_message, digest_intro_message

    digest = Digest(
        subscription="s",
        title="Your papers",
        intro="3 new <!channel>",
        cards=[PaperCard(paper_id="p", title="<@U1>", url="")],
        period="2030-01-01",
    )
    intro = digest_intro_message(digest)
    assert "<!channel>" not in json.dumps(intro)
    card = digest_card_message(digest.cards[0])
    assert "<@U1>" not in json.dumps(card)
    assert card["text"] == "&lt;@U1&gt;"
