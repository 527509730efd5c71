"""Slack for many workspaces, end to end: the install flow, per-workspace tokens, uninstall.

paperbot runs with SLACK_CLIENT_ID / SLACK_CLIENT_SECRET / SLACK_SIGNING_SECRET and no bot
token. A browser is played by plain HTTP requests: the "Add to Slack" page sets the state
cookie, the fake Slack hands out an install code, and the redirect back completes the
install through Bolt's OAuth flow. Commands, clicks and events are signed as Slack signs them;
the fake Web API records which token every call carried. Redis is real (the `store` fixture).
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import re
import socket
import time
import urllib.parse
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from bot.config import load_settings
from bot.core import BotCore
from bot.repo import ChatRepo
from bot.slack_app import INSTALL_PATH, REDIRECT_PATH, SlackRuntime, build_slack
from bot.slack_install import RedisInstallationStore
from bot.slack_oauth import BOT_SCOPES
from bot.slack_purge import purge_due
from bot.subscriptions import Subscription
from recommender.ingest import ingest
from recommender.service import PaperService
from recommender.sources import parse_body
from recommender.store import PREFIX, Store
from tests.e2e.slack_fakes import (
    CLIENT_ID,
    CLIENT_SECRET,
    SIGNING_SECRET,
    FakeSlack,
    Workspace,
    button_body,
    buttons_in,
    command_body,
    event_body,
    reaction_event,
    sign,
    texts_in,
)
from tests.e2e.test_slack import FORM, load_corpus

A = Workspace("TALPHA01", "Alpha Lab", installer="UA1")
B = Workspace("TBETA002", "Beta Lab", installer="UB1")
ORG = Workspace("TGRID001", "Grid Lab", enterprise_id="EGRID001", org=True, installer="UG1")
COOKIE = "slack-app-oauth-state"
DAY = 86400


def install_settings(fake: FakeSlack, **extra: Any):
    """Settings for the install flow against the fake, serving on a free port."""
    values: dict[str, Any] = {
        "SLACK_BOT_TOKEN": None,
        "SLACK_APP_TOKEN": None,
        "SLACK_CLIENT_ID": CLIENT_ID,
        "SLACK_CLIENT_SECRET": CLIENT_SECRET,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake.api_url,
        "PAPERBOT_HTTP_HOST": "127.0.0.1",
        "PAPERBOT_HTTP_PORT": 0,
    }
    values.update(extra)
    return load_settings(**values)


class Replica:
    """One paperbot process's Slack receiver (its own core), reachable over HTTP."""

    def __init__(self, runtime: SlackRuntime, http: aiohttp.ClientSession) -> None:
        self.runtime = runtime
        self.core = runtime.core
        self.http = http
        self.events = 0

    @property
    def base(self) -> str:
        """`http://127.0.0.1:P`."""
        return f"http://{self.runtime.host}:{self.runtime.bound_port}"

    async def get(self, path: str, cookie: str | None = None) -> aiohttp.ClientResponse:
        """A browser GET (the response is read before returning)."""
        headers = {"Cookie": cookie} if cookie else {}
        async with self.http.get(self.base + path, headers=headers, allow_redirects=False) as r:
            await r.read()
            return r

    async def post(self, body: str, content_type: str = FORM) -> tuple[int, str]:
        """POST a signed body to /slack/events; returns once the answer is out."""
        headers = {"Content-Type": content_type, **sign(body)}
        async with self.http.post(
            self.base + "/slack/events", data=body.encode(), headers=headers
        ) as resp:
            text = await resp.text()
            status = resp.status
        await self.runtime.idle()
        return status, text

    async def command(self, fake: FakeSlack, text: str, **kwargs: Any) -> list[dict[str, Any]]:
        """Run `/papers <text>`; returns what was posted to its response_url."""
        url = fake.response_url()
        status, _ = await self.post(command_body(text, url, **kwargs))
        assert status == 200
        return await fake.wait_response(url)

    async def event(self, event: dict[str, Any], **kwargs: Any) -> int:
        """Deliver an Events API callback; returns the HTTP status."""
        self.events += 1
        body = event_body(event, event_id=f"Ev{id(self) % 10000}{self.events:06d}", **kwargs)
        status, _ = await self.post(body, "application/json")
        return status


async def start_replica(store: Store, fake: FakeSlack, **extra: Any) -> Replica:
    """A trained core and its Slack receiver in install-flow mode."""
    service = PaperService(store, encoder=None)
    service.train()
    runtime = build_slack(BotCore(service), install_settings(fake, **extra))
    await runtime.start()
    # Cookies are sent by hand, as the browser would; no jar remembers them between tests.
    http = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
    return Replica(runtime, http)


async def stop_replica(replica: Replica) -> None:
    """Stop the receiver and its client session."""
    await replica.http.close()
    await replica.runtime.stop()


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    """The fake Slack Web API (no workspace installed yet)."""
    server = FakeSlack()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def paperbot(store: Store, fake: FakeSlack) -> AsyncIterator[Replica]:
    """paperbot over the seed corpus, serving the install flow on a free port."""
    load_corpus(store)
    replica = await start_replica(store, fake)
    try:
        yield replica
    finally:
        await stop_replica(replica)


def authorize_url(page: str) -> urllib.parse.SplitResult:
    """The "Add to Slack" link of the install page."""
    assert "Add to Slack" in page
    href = re.search(r'<a href="([^"]+)"', page)
    assert href is not None
    return urllib.parse.urlsplit(html.unescape(href.group(1)))


async def open_install_page(replica: Replica) -> tuple[str, str]:
    """GET /slack/install as a browser: returns (state, the cookie to send back)."""
    resp = await replica.get(INSTALL_PATH)
    assert resp.status == 200
    query = urllib.parse.parse_qs(authorize_url(await resp.text()).query)
    assert query["client_id"] == [CLIENT_ID]
    state = query["state"][0]
    cookie = resp.cookies[COOKIE].value
    assert cookie == state
    return state, f"{COOKIE}={cookie}"


async def redirect(replica: Replica, **query: str) -> tuple[int, str]:
    """Slack's redirect back to paperbot after the installer clicked (or refused) Allow."""
    cookie = query.pop("cookie", None)
    resp = await replica.get(f"{REDIRECT_PATH}?{urllib.parse.urlencode(query)}", cookie)
    return resp.status, await resp.text()


async def install(
    replica: Replica, fake: FakeSlack, workspace: Workspace, *, rotating: bool = False, **kw: Any
) -> None:
    """The whole install flow for one workspace (the redirect may reach another replica)."""
    state, cookie = await open_install_page(replica)
    code = fake.grant(workspace, rotating=rotating)
    status, page = await redirect(kw.get("via", replica), code=code, state=state, cookie=cookie)
    assert status == 200, page
    assert "Thank you" in page


def installs_of(store: Store) -> RedisInstallationStore:
    """The installation store over the test Redis."""
    return RedisInstallationStore(store)


def slack_values(store: Store) -> str:
    """Every installation-related key and value in Redis, as one text (for token searches)."""
    out = []
    for key in store.r.scan_iter(match=f"{PREFIX}slack:*"):
        kind = store.r.type(key).decode()
        value: Any
        if kind == "string":
            value = store.r.get(key)
        elif kind == "hash":
            value = store.r.hgetall(key)
        elif kind == "set":
            value = store.r.smembers(key)
        else:
            value = kind
        out.append(f"{key!r} {value!r}")
    return "\n".join(out)


def tokens_used(fake: FakeSlack, method: str, **match: str) -> set[str | None]:
    """The tokens successful calls of `method` carried (optionally only for some arguments)."""
    return {
        c.token for c in fake.of(method) if all(str(c.args.get(k)) == v for k, v in match.items())
    }


def due_time(days: int = 1) -> datetime:
    """A moment when a daily 09:00 Berlin digest is due (08:30 UTC, `days` from today)."""
    tomorrow = datetime.now(UTC) + timedelta(days=days)
    return tomorrow.replace(hour=8, minute=30, second=0, microsecond=0)


def all_text(messages: list[dict[str, Any]]) -> str:
    """Every text of a reply, joined."""
    return "\n".join(texts_in(messages))


# -- the install flow ---------------------------------------------------------------------------


async def test_add_to_slack_installs_a_workspace(
    paperbot: Replica, fake: FakeSlack, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """The Add to Slack page links to Slack's consent screen with the bot scopes and a state;
    the redirect back exchanges the code once and keeps the workspace's token in Redis."""
    caplog.set_level(logging.INFO)
    resp = await paperbot.get(INSTALL_PATH)
    url = authorize_url(await resp.text())
    assert f"{url.scheme}://{url.netloc}{url.path}" == "https://slack.com/oauth/v2/authorize"
    query = urllib.parse.parse_qs(url.query)
    assert set(query["scope"][0].split(",")) == set(BOT_SCOPES)
    set_cookie = resp.headers["Set-Cookie"]
    assert "Secure" in set_cookie and "HttpOnly" in set_cookie

    await install(paperbot, fake, A)
    exchanges = fake.of("oauth.v2.access")
    assert len(exchanges) == 1 and exchanges[0].args["code"].endswith(".install-code")
    bot = installs_of(store).bot(A.team_id)
    assert bot is not None and bot.bot_token in fake.tokens_of(A.team_id)
    assert bot.team_name == "Alpha Lab" and bot.bot_user_id == "UBOTPAPERS"
    [record] = installs_of(store).workspaces()
    assert (record.id, record.name, record.installed) == (A.team_id, "Alpha Lab", True)
    # The install's state was used up; the first page's one waits for its expiry.
    [left] = store.r.scan_iter(match=f"{PREFIX}slack:state:*")
    assert query["state"][0] in left.decode() and 0 < store.r.ttl(left) <= 600
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert f"installed in workspace {A.team_id}" in logged
    assert bot.bot_token not in logged

    # A command from the new workspace is answered with its own token.
    messages = await paperbot.command(fake, "help", team=A.team_id, user="UA1")
    assert "/papers search" in all_text(messages)
    assert tokens_used(fake, "auth.test") == {bot.bot_token}
    assert tokens_used(fake, "users.info") == {bot.bot_token}


async def test_two_workspaces_get_their_own_digests_with_their_own_tokens(
    paperbot: Replica, fake: FakeSlack, store: Store
) -> None:
    """A DM digest in one workspace and a channel digest in another: every Web API call of
    each digest carries that workspace's own token."""
    await install(paperbot, fake, A)
    await install(paperbot, fake, B)
    token_a = installs_of(store).bot(A.team_id).bot_token
    token_b = installs_of(store).bot(B.team_id).bot_token
    assert token_a != token_b

    await paperbot.command(fake, "subscribe", team=A.team_id, user="UA1", channel="DA1")
    await paperbot.command(fake, "subscribe channel", team=B.team_id, user="UB1", channel="CB1")
    # Each command was authorized with, and looked the person up with, its own token.
    assert {c.token for c in fake.of("users.info") if c.args["user"] == "UA1"} == {token_a}
    assert {c.token for c in fake.of("users.info") if c.args["user"] == "UB1"} == {token_b}

    results = await paperbot.core.delivery.run_due(due_time())
    assert results == {
        f"dm:slack:{A.team_id}:UA1": "sent",
        f"channel:slack:{B.team_id}:CB1": "sent",
    }
    assert tokens_used(fake, "conversations.open") == {token_a}
    assert tokens_used(fake, "chat.postMessage", channel="DUA1") == {token_a}
    assert tokens_used(fake, "chat.postMessage", channel="CB1") == {token_b}
    assert len(fake.of("chat.postMessage")) == 22
    # Every paper message is remembered with its own workspace (reactions map back to it).
    owner = {"DUA1": A.team_id, "CB1": B.team_id}
    for call in fake.of("chat.postMessage"):
        record = ChatRepo(store).message(f"slack:{call.args['channel']}:{call.reply['ts']}")
        if card_of(call):
            assert record is not None and record["workspace"] == owner[call.args["channel"]]


async def test_a_reaction_in_one_workspace_never_shows_in_another(
    paperbot: Replica, fake: FakeSlack, store: Store
) -> None:
    """Three people of A like a paper through A's channel digest; B's team digest of the same
    paper counts only B's own teammate, and nothing sent to B names anyone from A."""
    await install(paperbot, fake, A)
    await install(paperbot, fake, B)
    everything = store.all_paper_ids()
    paper = everything[0]
    # Both channels' digests are made of this paper and two others, so it is in both.
    others = everything[3:]
    for channel, workspace, owner in (("CA1", A, "UA1"), ("CB1", B, "UB1")):
        await paperbot.command(
            fake,
            "subscribe channel",
            team=workspace.team_id,
            user=owner,
            channel=channel,
            user_name=f"{owner.lower()}-name",
        )
        store.mark_seen(f"slack:{workspace.team_id}:{channel}", others)
    sub_a = Subscription.from_dict(
        ChatRepo(store).get_subscription(f"channel:slack:{A.team_id}:CA1")
    )
    assert await paperbot.core.delivery.send(sub_a, "2030-01-01") == "sent"
    [card_a] = [c for c in fake.of("chat.postMessage") if card_of(c) == paper]
    for user in ("UA7", "UA8", "UA9"):
        event = reaction_event("+1", "CA1", card_a.reply["ts"], user=user)
        assert await paperbot.event(event, team=A.team_id) == 200
    # Someone from B reacting on A's message (a shared channel) is not one of A's readers.
    event = reaction_event("+1", "CA1", card_a.reply["ts"], user="UB5")
    assert await paperbot.event(event, team=B.team_id) == 200
    assert store.user_feedback(f"slack:{B.team_id}:UB5") == {}
    assert store.likers([paper]) == {
        paper: {f"slack:{A.team_id}:{u}" for u in ("UA7", "UA8", "UA9")}
    }
    # One person of B likes the same paper with the button under a search result.
    url = fake.response_url()
    like = {"action_id": "pb_like", "value": f"like|{paper}"}
    status, _ = await paperbot.post(
        button_body(like, url, user="UB2", team=B.team_id, channel="CB1")
    )
    assert status == 200
    assert "Noted" in all_text(await fake.wait_response(url))

    sub_b = Subscription.from_dict(
        ChatRepo(store).get_subscription(f"channel:slack:{B.team_id}:CB1")
    )
    assert await paperbot.core.delivery.send(sub_b, "2030-01-01") == "sent"
    to_b = [c for c in fake.of("chat.postMessage") if c.args["channel"] == "CB1"]
    [card_b] = [c for c in to_b if card_of(c) == paper]
    assert "👥 1 teammate liked this" in "\n".join(texts_in(card_b.args["blocks"]))
    sent_to_b = json.dumps([c.args for c in to_b])
    for trace in ("UA1", "UA7", "UA8", "UA9", "ua1-name", A.team_id, "Alpha Lab"):
        assert trace not in sent_to_b
    # A's channel, asked again, counts A's three and not B's one.
    assert paperbot.core.service.teammates([paper], f"slack:{A.team_id}") == {paper: 3}
    assert paperbot.core.service.teammates([paper], f"slack:{B.team_id}") == {paper: 1}
    team_a = paperbot.core.builder.team(sub_a, since=0)
    assert all(count in (0, 3) for _, count in team_a)


def card_of(call: Any) -> str | None:
    """The paper a posted digest message shows (None for an intro)."""
    buttons = buttons_in(call.args.get("blocks") or [])
    return buttons[0]["value"].split("|", 1)[1] if buttons else None


# -- state: forged, replayed, expired ---------------------------------------------------------


def nothing_installed(store: Store, fake: FakeSlack) -> bool:
    """No installation and no workspace record in Redis, no token handed out by Slack."""
    keys = [k.decode() for k in store.r.scan_iter(match=f"{PREFIX}slack:*")]
    return not [k for k in keys if ":state:" not in k] and len(fake.token_workspace) == 1


async def test_a_forged_state_is_refused_and_nothing_is_stored(
    paperbot: Replica, fake: FakeSlack, store: Store
) -> None:
    """A state paperbot never issued (cookie forged to match) or one without the browser's
    cookie gets an error page; the code is never exchanged."""
    code = fake.grant(A)
    forged = "F" * 43
    status, page = await redirect(paperbot, code=code, state=forged, cookie=f"{COOKIE}={forged}")
    assert status == 401 and "expired or was already used" in page
    state, _ = await open_install_page(paperbot)
    status, page = await redirect(paperbot, code=code, state=state)
    assert status == 400 and "not started in this browser" in page
    status, page = await redirect(paperbot, code=code, state=state, cookie=f"{COOKIE}={state}x")
    assert status == 400
    assert fake.of("oauth.v2.access") == []
    assert nothing_installed(store, fake)


async def test_a_replayed_state_is_refused(
    paperbot: Replica, fake: FakeSlack, store: Store
) -> None:
    """The redirect of a finished install, sent again (even with a fresh code), is refused."""
    state, cookie = await open_install_page(paperbot)
    code = fake.grant(A)
    assert (await redirect(paperbot, code=code, state=state, cookie=cookie))[0] == 200
    status, page = await redirect(paperbot, code=code, state=state, cookie=cookie)
    assert status == 401 and "expired or was already used" in page
    status, _ = await redirect(paperbot, code=fake.grant(B), state=state, cookie=cookie)
    assert status == 401
    assert len(fake.of("oauth.v2.access")) == 1
    assert [w.id for w in installs_of(store).workspaces()] == [A.team_id]


async def test_an_expired_state_is_refused(
    paperbot: Replica, fake: FakeSlack, store: Store
) -> None:
    """A state past its expiry is as good as none."""
    state, cookie = await open_install_page(paperbot)
    [key] = store.r.scan_iter(match=f"{PREFIX}slack:state:*")
    store.r.pexpire(key, 1)
    while store.r.exists(key):
        await asyncio.sleep(0.005)
    status, page = await redirect(paperbot, code=fake.grant(A), state=state, cookie=cookie)
    assert status == 401 and "expired" in page
    assert fake.of("oauth.v2.access") == []
    assert nothing_installed(store, fake)


# -- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "status", "says"),
    [
        ("access_denied", 200, "cancelled"),
        ("missing_code", 401, "did not include an install code"),
        ("invalid_code", 401, "did not accept the install code"),
    ],
)
async def test_a_failed_redirect_gets_a_page_and_one_log_line(
    paperbot: Replica,
    fake: FakeSlack,
    store: Store,
    caplog: pytest.LogCaptureFixture,
    case: str,
    status: int,
    says: str,
) -> None:
    """Installer said no, Slack's redirect lost the code, or Slack refused the code: a clear
    page, exactly one log line (without the code), nothing stored."""
    state, cookie = await open_install_page(paperbot)
    caplog.clear()
    caplog.set_level(logging.INFO)
    query = {"state": state, "cookie": cookie}
    if case == "access_denied":
        query["error"] = "access_denied"
    elif case == "invalid_code":
        query["code"] = "99.tnobody.install-code"
    got, page = await redirect(paperbot, **query)
    assert got == status and says in page
    assert "Start the install again" in page and INSTALL_PATH in page
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    line = lines[0].getMessage()
    assert "\n" not in line and "99.tnobody.install-code" not in line
    assert (case if case != "missing_code" else "missing_code") in line
    assert nothing_installed(store, fake)


async def test_events_and_commands_of_a_workspace_without_installation(
    paperbot: Replica, fake: FakeSlack, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """A signed event for a workspace that never installed paperbot: 200, one log line, no
    change. A command from there is told to reinstall; nothing is recorded."""
    paper = store.all_paper_ids()[0]
    ChatRepo(store).remember_message(
        "slack:CZ1:1700000000.000009", {"paper": paper, "workspace": "TZZZ"}
    )
    caplog.set_level(logging.INFO)
    status = await paperbot.event(
        reaction_event("+1", "CZ1", "1700000000.000009", user="UZ1"), team="TZZZ"
    )
    assert status == 200
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1 and "TZZZ" in lines[0] and "no installation" in lines[0]
    assert store.user_feedback("slack:TZZZ:UZ1") == {}
    assert fake.of("chat.postEphemeral") == []
    assert ChatRepo(store).once(
        "slack:event:" + f"Ev{id(paperbot) % 10000}{paperbot.events:06d}", 60
    )
    messages = await paperbot.command(fake, "subscribe", team="TZZZ", user="UZ1")
    assert "could not find its installation in this workspace" in json.dumps(messages)
    assert ChatRepo(store).subscriptions() == []
    assert fake.of("users.info") == []


# -- uninstall ----------------------------------------------------------------------------------


def uninstalled(replica: Replica, fake: FakeSlack, workspace: Workspace) -> Any:
    """Slack's side of an uninstall (tokens revoked), then its `app_uninstalled` event."""
    fake.revoke(workspace.key)
    return replica.event(
        {"type": "app_uninstalled"},
        team=workspace.team_id,
        enterprise=workspace.enterprise_id,
        org=workspace.org,
    )


def data_of(store: Store, team: str) -> list[str]:
    """Keys that hold anything about workspace `team`'s people (besides installation keys)."""
    found = []
    for key in store.r.scan_iter(match=f"{PREFIX}*"):
        name = key.decode()
        if name.startswith(f"{PREFIX}slack:"):
            continue
        if f"slack:{team}:" in name:
            found.append(name)
            continue
        kind = store.r.type(key).decode()
        if kind == "string" and f"slack:{team}:".encode() in (store.r.get(key) or b""):
            found.append(name)
        elif kind in ("set", "zset", "hash"):
            if kind == "set":
                items = list(store.r.smembers(key))
            elif kind == "zset":
                items = store.r.zrange(key, 0, -1)
            else:
                items = [*store.r.hkeys(key), *store.r.hvals(key)]
            if any(f"slack:{team}:".encode() in item for item in items):
                found.append(name)
        elif kind == "stream" and any(
            f.get(b"user", b"").startswith(f"slack:{team}:".encode())
            for _, f in store.r.xrange(key)
        ):
            found.append(name)
    return sorted(found)


def fresh_papers(store: Store, tag: str, n: int = 3) -> None:
    """A few papers first seen now (so a digest that already went out has news again)."""
    records = [
        {"title": f"{tag} paper {i} on recommendation", "abstract": f"About {tag} number {i}."}
        for i in range(n)
    ]
    ingest(store, parse_body("jsonl", "\n".join(json.dumps(r) for r in records).encode()), "jsonl")


async def subscribe_and_react(replica: Replica, fake: FakeSlack, workspace: Workspace) -> str:
    """A DM digest for the workspace's installer, sent, and a 👍 on its first paper."""
    user = workspace.installer
    await replica.command(fake, "subscribe", team=workspace.team_id, user=user)
    sub = Subscription.from_dict(
        ChatRepo(replica.core.store).get_subscription(f"dm:slack:{workspace.team_id}:{user}")
    )
    assert await replica.core.delivery.send(sub, "2030-01-01") == "sent"
    card = next(
        c for c in fake.of("chat.postMessage") if c.args["channel"] == f"D{user}" and card_of(c)
    )
    assert (
        await replica.event(
            reaction_event("+1", f"D{user}", card.reply["ts"], user=user), team=workspace.team_id
        )
        == 200
    )
    return sub.id


async def test_uninstall_deletes_tokens_stops_digests_and_leaves_others_alone(
    paperbot: Replica, fake: FakeSlack, store: Store
) -> None:
    """`app_uninstalled` in A: A's tokens are gone from Redis at once and A's digests stop;
    B keeps its token and its digest. A's people's data stays for the grace period."""
    await install(paperbot, fake, A)
    await install(paperbot, fake, B)
    token_a = installs_of(store).bot(A.team_id).bot_token
    token_b = installs_of(store).bot(B.team_id).bot_token
    sub_a = await subscribe_and_react(paperbot, fake, A)
    sub_b = await subscribe_and_react(paperbot, fake, B)
    kept = data_of(store, A.team_id)
    assert kept

    assert await uninstalled(paperbot, fake, A) == 200
    assert token_a not in slack_values(store)
    assert installs_of(store).bot(A.team_id) is None
    assert installs_of(store).installation(A.team_id) is None
    assert installs_of(store).bot(B.team_id).bot_token == token_b
    assert [(w.id, w.installed) for w in installs_of(store).workspaces()] == [
        (A.team_id, False),
        (B.team_id, True),
    ]
    # Next period: only B's digest goes out, with B's token.
    fresh_papers(store, "Later")
    before = len(fake.of("chat.postMessage"))
    results = await paperbot.core.delivery.run_due(due_time())
    assert results == {sub_b: "sent"}
    assert tokens_used(fake, "chat.postMessage") - {token_a} == {token_b}
    assert {c.token for c in fake.of("chat.postMessage")[before:]} == {token_b}
    # Nothing is deleted yet: a reinstall within the grace period picks up where it stopped.
    assert data_of(store, A.team_id) == kept
    assert ChatRepo(store).get_subscription(sub_a) is not None
    # A later event from A (e.g. a stale reaction) is ignored.
    assert (
        await paperbot.event(reaction_event("-1", "DUA1", "1.2", user="UA1"), team=A.team_id) == 200
    )
    assert all(k == {"like"} for k in store.user_feedback(f"slack:{A.team_id}:UA1").values())


async def test_tokens_revoked_for_the_bot_stops_digests(
    paperbot: Replica, fake: FakeSlack, store: Store
) -> None:
    """Revoking only a person's token leaves the bot working; revoking the bot stops A."""
    await install(paperbot, fake, A)
    await paperbot.command(fake, "subscribe", team=A.team_id, user="UA1")
    revoked = {"type": "tokens_revoked", "tokens": {"oauth": ["UA1"], "bot": []}}
    assert await paperbot.event(revoked, team=A.team_id) == 200
    assert installs_of(store).bot(A.team_id) is not None
    assert paperbot.runtime.chat_port.serves(A.team_id)
    revoked = {"type": "tokens_revoked", "tokens": {"oauth": [], "bot": ["UBOTPAPERS"]}}
    fake.revoke(A.team_id)
    assert await paperbot.event(revoked, team=A.team_id) == 200
    assert installs_of(store).bot(A.team_id) is None
    assert await paperbot.core.delivery.run_due(due_time()) == {}
    assert fake.of("chat.postMessage") == []


async def test_data_goes_after_the_grace_period_unless_reinstalled(
    paperbot: Replica, fake: FakeSlack, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """Uninstalled A: kept for 30 days, deleted after; B untouched. A reinstall within the
    grace period keeps everything and resumes A's digests."""
    caplog.set_level(logging.INFO)
    await install(paperbot, fake, A)
    await install(paperbot, fake, B)
    sub_a = await subscribe_and_react(paperbot, fake, A)
    sub_b = await subscribe_and_react(paperbot, fake, B)
    await uninstalled(paperbot, fake, A)
    now = time.time()
    assert purge_due(store, 30, now + 29 * DAY) == {}
    assert data_of(store, A.team_id)

    # Reinstalled on day 29: nothing is deleted on day 31, and A's digest goes out again.
    await install(paperbot, fake, A)
    assert purge_due(store, 30, now + 31 * DAY) == {}
    assert ChatRepo(store).get_subscription(sub_a) is not None
    fresh_papers(store, "Later")
    results = await paperbot.core.delivery.run_due(due_time())
    assert results == {sub_a: "sent", sub_b: "sent"}

    # Uninstalled again and left: deleted after the grace period, B's data untouched.
    b_before = data_of(store, B.team_id)
    await uninstalled(paperbot, fake, A)
    done = purge_due(store, 30, time.time() + 31 * DAY)
    assert list(done) == [A.team_id] and done[A.team_id] > 0
    assert data_of(store, A.team_id) == []
    assert ChatRepo(store).get_subscription(sub_a) is None
    assert installs_of(store).workspace(A.team_id) is None
    assert [w.id for w in installs_of(store).workspaces()] == [B.team_id]
    assert data_of(store, B.team_id) == b_before
    assert ChatRepo(store).get_subscription(sub_b) is not None
    assert any(
        f"deleted the data of workspace {A.team_id}" in r.getMessage() for r in caplog.records
    )


# -- replicas, token rotation, Enterprise Grid ------------------------------------------------


async def test_two_replicas_serve_the_same_installations(store: Store, fake: FakeSlack) -> None:
    """Two receivers behind one load balancer: an install started on one finishes on the
    other; both answer A with A's token; an uninstall seen by one stops A on both."""
    load_corpus(store)
    one = await start_replica(store, fake)
    two = await start_replica(store, fake)
    try:
        await install(one, fake, A, via=two)
        await install(two, fake, B, via=one)
        token_a = installs_of(store).bot(A.team_id).bot_token
        for replica in (one, two):
            messages = await replica.command(fake, "search diffusion", team=A.team_id, user="UA1")
            assert "ranked for you" in all_text(messages)
        assert tokens_used(fake, "auth.test") == {
            token_a,
            installs_of(store).bot(B.team_id).bot_token,
        }
        assert {c.token for c in fake.of("users.info")} == {token_a}
        await one.command(fake, "subscribe", team=A.team_id, user="UA1")
        await two.command(fake, "subscribe", team=B.team_id, user="UB1")
        # Digests run on one process (the scheduler's); each uses the right token.
        results = await two.core.delivery.run_due(due_time())
        assert set(results.values()) == {"sent"} and len(results) == 2
        assert tokens_used(fake, "chat.postMessage", channel="DUA1") == {token_a}

        assert await uninstalled(one, fake, A) == 200
        assert not two.runtime.chat_port.serves(A.team_id)
        messages = await two.command(fake, "settings", team=A.team_id, user="UA1")
        assert "could not find its installation" in json.dumps(messages)
        fresh_papers(store, "Later")
        assert list(await one.core.delivery.run_due(due_time(2))) == [f"dm:slack:{B.team_id}:UB1"]
        assert list(await two.core.delivery.run_due(due_time(3))) == [f"dm:slack:{B.team_id}:UB1"]
    finally:
        await stop_replica(one)
        await stop_replica(two)


async def test_rotating_tokens_are_refreshed_and_saved(
    paperbot: Replica, fake: FakeSlack, store: Store
) -> None:
    """With token rotation on, an expiring token is refreshed before use, by a request (Bolt's
    authorize) or by a digest (no request needed), and every process then uses the new one."""
    await install(paperbot, fake, A, rotating=True)
    await install(paperbot, fake, B, rotating=True)
    first_a = installs_of(store).bot(A.team_id)
    assert first_a.bot_refresh_token and first_a.bot_token.startswith("xoxe.xoxb-")

    checks = len(fake.of("auth.test"))
    await paperbot.command(fake, "subscribe", team=A.team_id, user="UA1")
    fresh_a = installs_of(store).bot(A.team_id)
    assert fresh_a.bot_token != first_a.bot_token
    assert fresh_a.bot_refresh_token != first_a.bot_refresh_token
    assert fresh_a.bot_token_expires_at > time.time() + 3600
    assert {c.token for c in fake.of("auth.test")[checks:]} == {fresh_a.bot_token}

    first_b = installs_of(store).bot(B.team_id)
    await paperbot.command(fake, "subscribe", team=B.team_id, user="UB1")
    # B's token was refreshed by that command too; expire it again to test the digest path.
    expired = installs_of(store).bot(B.team_id)
    expired.bot_token_expires_at = int(time.time()) + 10
    installs_of(store).save_bot(expired)
    results = await paperbot.core.delivery.run_due(due_time())
    assert set(results.values()) == {"sent"}
    final_b = installs_of(store).bot(B.team_id)
    assert final_b.bot_token not in (first_b.bot_token, expired.bot_token)
    assert tokens_used(fake, "chat.postMessage", channel="DUB1") == {final_b.bot_token}
    assert tokens_used(fake, "chat.postMessage", channel="DUA1") == {fresh_a.bot_token}
    refreshes = [c for c in fake.of("oauth.v2.access") if c.args.get("grant_type")]
    assert len(refreshes) == 3
    # The installation record hands out the current token too.
    assert installs_of(store).installation(B.team_id).bot_token == final_b.bot_token


async def test_an_org_wide_install_serves_every_workspace_of_the_org(
    paperbot: Replica, fake: FakeSlack, store: Store
) -> None:
    """Enterprise Grid: one org-wide install; a workspace of the org gets answers and digests
    with the org's token; uninstalling the org stops them."""
    await install(paperbot, fake, ORG)
    org_id = ORG.enterprise_id
    assert org_id is not None
    bot = installs_of(store).bot(org_id)
    assert bot is not None and bot.is_enterprise_install and bot.team_id is None
    assert installs_of(store).workspace(org_id).org
    messages = await paperbot.command(
        fake, "subscribe", team=ORG.team_id, user="UG1", enterprise=org_id, org=True
    )
    assert "Subscribed" in all_text(messages)
    assert installs_of(store).bot_for_team(ORG.team_id).bot_token == bot.bot_token
    results = await paperbot.core.delivery.run_due(due_time())
    assert results == {f"dm:slack:{ORG.team_id}:UG1": "sent"}
    assert tokens_used(fake, "chat.postMessage") == {bot.bot_token}

    assert await uninstalled(paperbot, fake, ORG) == 200
    assert installs_of(store).bot(org_id) is None
    assert not paperbot.runtime.chat_port.serves(ORG.team_id)
    done = purge_due(store, 0)
    assert list(done) == [org_id]
    assert data_of(store, ORG.team_id) == []
    assert store.r.hlen(f"{PREFIX}slack:org-teams") == 0


# -- secrets and setup --------------------------------------------------------------------------


async def test_secrets_and_codes_never_reach_the_logs(
    paperbot: Replica, fake: FakeSlack, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """At DEBUG, through installs, a refused code, rotation and digests: no client secret,
    signing secret, token, refresh token or install code is logged."""
    caplog.set_level(logging.DEBUG)
    await install(paperbot, fake, A, rotating=True)
    state, cookie = await open_install_page(paperbot)
    await redirect(paperbot, code="77.tlost.install-code", state=state, cookie=cookie)
    await paperbot.command(fake, "subscribe", team=A.team_id, user="UA1")
    await paperbot.core.delivery.run_due(due_time())
    secrets = [CLIENT_SECRET, SIGNING_SECRET, "77.tlost.install-code", state]
    secrets += [c.args["code"] for c in fake.of("oauth.v2.access") if "code" in c.args]
    secrets += [t for t in fake.tokens if t.startswith("xox")]
    secrets += [c.reply.get("refresh_token") or "" for c in fake.of("oauth.v2.access")]
    secrets += [c.args.get("refresh_token") or "" for c in fake.of("oauth.v2.access")]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "oauth.v2.access" in logged
    for secret in filter(None, secrets):
        assert secret not in logged, secret


def test_the_install_flow_needs_all_three_settings(store: Store) -> None:
    """Missing pieces name the variable; Socket Mode is refused; a bot token keeps one
    workspace mode exactly as before (no install pages)."""
    from bot.slack_app import SlackSetupError, slack_configured

    load_corpus(store)
    core = BotCore(PaperService(store, encoder=None))
    fake = FakeSlack(base="http://127.0.0.1:9")
    for missing in ("SLACK_CLIENT_SECRET", "SLACK_SIGNING_SECRET", "SLACK_CLIENT_ID"):
        settings = install_settings(fake, **{missing: None})
        assert not slack_configured(settings)
        with pytest.raises(SlackSetupError, match=missing):
            build_slack(core, settings)
    settings = install_settings(fake, SLACK_APP_TOKEN="xapp-1")
    assert not slack_configured(settings)
    with pytest.raises(SlackSetupError, match="unset SLACK_APP_TOKEN"):
        build_slack(core, settings)
    single = build_slack(core, install_settings(fake, SLACK_BOT_TOKEN="xoxb-single"))
    assert single.installs is None
    paths = {r.resource.canonical for r in single.web_app.router.routes()}
    assert INSTALL_PATH not in paths and REDIRECT_PATH not in paths
    assert slack_configured(install_settings(fake))


async def test_unreachable_redis_is_not_mistaken_for_an_uninstall(
    paperbot: Replica, fake: FakeSlack, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """With Redis down no token can be found: the log says Redis, not "no installation", and
    the person is asked to try again."""
    await install(paperbot, fake, A)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dead = Store(
        redis.Redis(port=port, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)),
        where=f"127.0.0.1:{port}",
    )
    installs = paperbot.runtime.installs
    assert installs is not None
    installs.store, installs.r = dead, dead.r
    caplog.set_level(logging.INFO)
    try:
        messages = await paperbot.command(fake, "settings", team=A.team_id, user="UA1")
    finally:
        installs.store, installs.r = store, store.r
        dead.close()
    assert "try again in a minute" in json.dumps(messages)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "cannot reach Redis" in errors[0] and A.team_id in errors[0]
    assert not any("no installation" in r.getMessage() for r in caplog.records)


async def test_a_token_slack_refuses_is_logged_as_such(
    paperbot: Replica, fake: FakeSlack, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """The uninstall event never arrived but Slack revoked the token: requests are ignored
    with a line saying the token was refused; the digest waits, its owner is not spammed."""
    await install(paperbot, fake, A)
    await paperbot.command(fake, "subscribe channel", team=A.team_id, user="UA1", channel="CA1")
    fake.revoke(A.team_id)
    caplog.set_level(logging.INFO)
    messages = await paperbot.command(fake, "settings", team=A.team_id, user="UA1")
    assert "could not find its installation" in json.dumps(messages)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 1 and "Slack refused its token" in errors[0]
    results = await paperbot.core.delivery.run_due(due_time())
    assert results == {f"channel:slack:{A.team_id}:CA1": "retry"}
    assert fake.of("chat.postMessage") == []
