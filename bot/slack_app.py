"""Slack: Bolt listeners, Block Kit rendering and the SlackPort that delivers digests.

One Request URL (`/slack/events`) takes slash commands, button clicks and events in HTTP
mode; Socket Mode is used instead when an app-level token is configured. Every request
is acknowledged first and answered afterwards (through `response_url` or the Web API), so
ranking never runs into Slack's 3-second deadline.

With one bot token the app serves one workspace. With a client id and secret instead it
serves every workspace that installs it through `/slack/install` (Bolt's OAuth flow, see
`bot.slack_oauth`): each request, digest and App Home uses its own workspace's token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot import resend
from bot.config import Settings
from bot.core import BotCore
from bot.feedback import Outcome, button_value
from bot.ports import (
    BUTTONS,
    RATE_BUTTONS,
    Context,
    DeliveryError,
    Digest,
    Image,
    PaperCard,
    Reply,
    Sent,
    Target,
)
from bot.slack_install import RedisInstallationStore, RedisOAuthStateStore
from bot.slack_oauth import (
    INSTALL_PATH,
    REDIRECT_PATH,
    InstallConfig,
    RedactSecrets,
    WorkspaceClients,
    failure_page,
    not_installed_message,
    oauth_settings,
)
from bot.team import team_line
from recommender.library import MAX_BYTES, size_error
from recommender.store import StoreUnavailable

__all__ = [
    "EVENTS_PATH",
    "INSTALL_PATH",
    "REDIRECT_PATH",
    "SlackPort",
    "SlackRuntime",
    "SlackSetupError",
    "SlackThread",
    "build_slack",
    "card_blocks",
    "delivery_error",
    "digest_card_message",
    "digest_intro_message",
    "escape",
    "home_view",
    "install_config",
    "reply_messages",
    "slack_configured",
    "start_slack_thread",
]

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
COMMAND = "/papers"
ACTION_PREFIX = "pb_"

# Block Kit limits (https://api.slack.com/reference/block-kit).
MAX_BLOCKS = 50
# Slack message metadata type of digest posts (their idempotency key is the payload).
POST_EVENT = "paperbot_post"
MAX_HOME_BLOCKS = 100
SECTION_TEXT = 3000
HEADER_TEXT = 150
BUTTON_TEXT = 75
FALLBACK_TEXT = 3000
# A response_url accepts five messages; a reply never needs more.
MAX_RESPONSES = 5
# Per-part budgets inside one card's section (escaped characters), well under 3000 in all.
TITLE_BUDGET = 600
URL_BUDGET = 900
AUTHORS_BUDGET = 400
BLURB_BUDGET = 900
REASON_BUDGET = 600

EVENT_DEDUPE_TTL = 3600
TZ_TTL = 6 * 3600
TZ_MISS_TTL = 300
STOP_GRACE = 10.0
# A download stops one byte past the import limit (the importer then says it is too big).
MAX_IMPORT_BYTES = MAX_BYTES + 1
RESPONSE_TIMEOUT = 30.0

# Errors where retrying the same call cannot succeed until someone changes something.
PERMANENT_ERRORS = frozenset(
    {
        "not_in_channel",
        "channel_not_found",
        "is_archived",
        "account_inactive",
        "invalid_auth",
        "not_authed",
        "token_revoked",
        "token_expired",
        "missing_scope",
        "user_not_found",
        "user_disabled",
        "cannot_dm_bot",
        "restricted_action",
        "ekm_access_denied",
    }
)

# What a failed HTTP call to Slack raises besides SlackApiError.
NETWORK_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientError, TimeoutError, OSError)

_T = TypeVar("_T")


class SlackSetupError(RuntimeError):
    """Slack cannot be used with these settings; the message is one line, without secrets."""


# -- escaping and text fitting ------------------------------------------------------------------


def escape(text: str | None) -> str:
    """Escape `& < >` so user and paper text is shown, never parsed as a mention or link."""
    return (text or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def unescape(text: str | None) -> str:
    """Undo Slack's escaping of `& < >` in text a person typed (slash command text)."""
    return (text or "").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _cut(text: str, limit: int) -> str:
    """`text` shortened to at most `limit` characters without splitting an `&…;` entity."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut


def _clip(text: str, limit: int) -> str:
    """Escaped text shortened to `limit` characters with an ellipsis, entities kept whole."""
    if len(text) <= limit:
        return text
    cut = _cut(text, limit - 1)
    space = cut.rfind(" ")
    if space > limit * 0.6:
        # Cut on a word boundary when it costs little.
        cut = cut[:space]
    return cut.rstrip() + "…"


def _plain(text: str, limit: int) -> str:
    """Text for a `plain_text` object (never parsed for mentions), shortened to `limit`."""
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


_SAFE_URL = re.compile(r"^https?://[^\s<>|\"]+$", re.IGNORECASE)


def link(url: str | None, label: str) -> str:
    """`<url|label>` for an http(s) url (label escaped), else the escaped label alone."""
    shown = escape(label)
    if url and len(url) <= URL_BUDGET and _SAFE_URL.match(url):
        return f"<{escape(url)}|{shown}>"
    return shown


def _chunks(text: str, limit: int = SECTION_TEXT) -> list[str]:
    """Split escaped mrkdwn into pieces of at most `limit` characters at line breaks.

    A ``` code block cut in two is closed at the end of one piece and reopened in the next,
    so a long BibTeX export stays readable across several sections.
    """
    room = limit - 8  # space for a closing and a reopening fence
    lines: list[str] = []
    for line in text.split("\n"):
        while len(line) > room:
            piece = _cut(line, room)
            space = piece.rfind(" ")
            if space > room // 2:
                piece = piece[:space]
            lines.append(piece)
            line = line[len(piece) :].lstrip(" ")
        lines.append(line)
    out: list[str] = []
    current: list[str] = []
    size = 0
    for line in lines:
        if current and size + len(line) + 1 > room:
            chunk = "\n".join(current)
            reopen = chunk.count("```") % 2 == 1
            out.append(chunk + ("\n```" if reopen else ""))
            current, size = (["```"], 4) if reopen else ([], 0)
        current.append(line)
        size += len(line) + 1
    chunk = "\n".join(current)
    if chunk.strip() and chunk.strip() != "```":
        out.append(chunk)
    return out or [""]


# -- Block Kit rendering ------------------------------------------------------------------------


def _section(text: str) -> dict[str, Any]:
    """A mrkdwn section (text already escaped and fitted)."""
    return {"type": "section", "text": {"type": "mrkdwn", "text": _clip(text, SECTION_TEXT)}}


def _header(text: str) -> dict[str, Any]:
    """A header block."""
    return {"type": "header", "text": {"type": "plain_text", "text": _plain(text, HEADER_TEXT)}}


def _buttons(card: PaperCard, block_id: str) -> dict[str, Any]:
    """👍 🔖 👎 🔇 for one paper (👍 👎 skip on a first-use card); each carries `kind|paper id`."""
    if card.actions == "rate":
        rate = [
            {
                "type": "button",
                "action_id": f"{ACTION_PREFIX}rate_{kind}",
                "text": {"type": "plain_text", "text": _plain(f"{emoji} {label}", BUTTON_TEXT)},
                "value": f"{kind}|{card.paper_id}",
            }
            for kind, emoji, label in RATE_BUTTONS
        ]
        return {"type": "actions", "block_id": block_id[:255], "elements": rate}
    elements = []
    for kind, emoji, label in BUTTONS:
        element: dict[str, Any] = {
            "type": "button",
            "action_id": f"{ACTION_PREFIX}{kind.value}",
            "text": {"type": "plain_text", "text": _plain(f"{emoji} {label}", BUTTON_TEXT)},
            "value": button_value(kind, card.paper_id),
        }
        elements.append(element)
    return {"type": "actions", "block_id": block_id[:255], "elements": elements}


def card_text(card: PaperCard) -> str:
    """The main mrkdwn of a card: linked title, authors and date, blurb."""
    title = _clip(escape(card.title or card.paper_id), TITLE_BUDGET)
    number = f"{card.position}. " if card.position else ""
    if card.url and len(card.url) <= URL_BUDGET and _SAFE_URL.match(card.url):
        head = f"{number}*<{escape(card.url)}|{title}>*"
    else:
        head = f"{number}*{title}*"
    lines = [head]
    meta = " · ".join(
        x for x in (_clip(escape(card.authors), AUTHORS_BUDGET), escape(card.published)) if x
    )
    if meta:
        lines.append(meta)
    if card.blurb:
        lines.append(_clip(escape(card.blurb), BLURB_BUDGET))
    return "\n".join(lines)


def card_context(card: PaperCard) -> str:
    """The small print of a card: code link, upvotes, teammates, and why it was picked."""
    extras = []
    if card.code_url:
        extras.append(link(card.code_url, "code"))
    if card.upvotes:
        extras.append(f"▲ {int(card.upvotes)}")
    team = team_line(card)
    if team:
        extras.append(escape(team))
    parts = [" · ".join(extras)] if extras else []
    if card.reason:
        parts.append("↳ " + _clip(escape(card.reason), REASON_BUDGET))
    return "\n".join(parts)


def card_blocks(card: PaperCard, index: int = 0) -> list[dict[str, Any]]:
    """One paper: section, small print (when any), and its four buttons."""
    blocks = [_section(card_text(card))]
    small = card_context(card)
    if small:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": _clip(small, 3000)}]}
        )
    blocks.append(_buttons(card, f"pb_card_{index}_{card.paper_id}"))
    return blocks


def _fallback(text: str) -> str:
    """The notification text of a message (escaped, shortened)."""
    return _clip(escape(" ".join((text or "").split())), FALLBACK_TEXT)


def _pack(groups: Sequence[list[dict[str, Any]]], limit: int) -> list[list[dict[str, Any]]]:
    """Pack block groups (a card never split) into messages of at most `limit` blocks."""
    messages: list[list[dict[str, Any]]] = [[]]
    for group in groups:
        if messages[-1] and len(messages[-1]) + len(group) > limit:
            messages.append([])
        messages[-1].extend(group)
    return [m for m in messages if m]


def reply_messages(reply: Reply) -> list[dict[str, Any]]:
    """A command reply as one or more messages (`text` + `blocks`), each within Slack's limits."""
    groups: list[list[dict[str, Any]]] = []
    if reply.title:
        groups.append([_header(reply.title)])
    groups += [[_section(chunk)] for chunk in _chunks(escape(reply.text))]
    for i, card in enumerate(reply.cards):
        group = card_blocks(card, i)
        if i < len(reply.cards) - 1:
            group.append({"type": "divider"})
        groups.append(group)
    if reply.footer:
        groups += [[_section(chunk)] for chunk in _chunks(escape(reply.footer))]
    messages = _pack(groups, MAX_BLOCKS)
    if len(messages) > MAX_RESPONSES:
        messages = messages[:MAX_RESPONSES]
        more = _section("_More than fits here: narrow the command down to see the rest._")
        messages[-1] = [*messages[-1][: MAX_BLOCKS - 1], more]
    out = []
    for n, blocks in enumerate(messages):
        text = reply.text if n == 0 else f"{reply.title or 'paperbot'} (continued)"
        out.append({"text": _fallback(text), "blocks": blocks})
    return out


def digest_intro_message(digest: Digest) -> dict[str, Any]:
    """The first message of a digest: its title and intro (papers follow, one per message)."""
    blocks = [_header(digest.title)] + [_section(c) for c in _chunks(escape(digest.intro))]
    return {"text": _fallback(f"{digest.title}: {digest.intro}"), "blocks": blocks[:MAX_BLOCKS]}


def digest_card_message(card: PaperCard) -> dict[str, Any]:
    """One paper of a digest as its own message, so a reaction names exactly that paper."""
    return {"text": _fallback(card.title or card.paper_id), "blocks": card_blocks(card, 0)}


def home_view(settings: Reply, saved: Reply) -> dict[str, Any]:
    """The App Home tab: the person's settings and saved papers, within 100 blocks."""
    top: list[dict[str, Any]] = [_header("paperbot")]
    top += [_section(c) for c in _chunks(escape(settings.text))]
    top += [{"type": "divider"}, _header("Saved papers")]
    top += [_section(c) for c in _chunks(escape(saved.text))]
    tail = [
        {"type": "divider"},
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": "`/papers help` lists every command. React 👍 🔖 👎 on a paper "
                    "in a digest and the next one learns.",
                }
            ],
        },
    ]
    blocks = top[: MAX_HOME_BLOCKS - len(tail)]
    for i, card in enumerate(saved.cards):
        group = card_blocks(card, i)
        if len(blocks) + len(group) + len(tail) > MAX_HOME_BLOCKS:
            break
        blocks += group
    return {"type": "home", "blocks": blocks + tail}


# -- the port: digests through the Web API ------------------------------------------------------


def _retry_after(response: Any) -> float | None:
    """Seconds from a Retry-After header of a Slack response, if any."""
    headers = getattr(response, "headers", None) or {}
    for name, value in dict(headers).items():
        if name.lower() == "retry-after":
            raw = value[0] if isinstance(value, list | tuple) else value
            with contextlib.suppress(TypeError, ValueError):
                return float(raw)
    return None


def delivery_error(exc: BaseException, what: str) -> DeliveryError:
    """A Web API failure as a DeliveryError: permanent, rate limited, or worth retrying."""
    if isinstance(exc, SlackApiError):
        response = exc.response
        status = getattr(response, "status_code", None)
        data = getattr(response, "data", None)
        error = str(data.get("error", "")) if isinstance(data, dict) else ""
        if status == 429 or error == "ratelimited":
            return DeliveryError(
                f"{what}: rate limited by Slack", retry_after=_retry_after(response) or 1.0
            )
        code = error or f"HTTP {status}"
        return DeliveryError(f"{what}: {code}", permanent=error in PERMANENT_ERRORS)
    detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
    return DeliveryError(f"{what}: network error ({detail})")


def split_key(message_key: str) -> tuple[str, str]:
    """`slack:C1:1700000000.000100` -> (`C1`, `1700000000.000100`)."""
    _, channel, ts = message_key.split(":", 2)
    return channel, ts


class SlackPort:
    """Digests and notices through the Slack Web API (one message per paper).

    With one bot token every call uses `client`; with many workspaces, `workspaces` hands
    out each workspace's own client and says which workspaces have paperbot installed.
    Every digest message carries its idempotency key in Slack message metadata; a post
    that failed with a 5xx or a timeout is retried with backoff only after the
    conversation's recent history shows it did not land (needs the `*:history` scopes).
    """

    platform = "slack"

    def __init__(
        self,
        client: AsyncWebClient | None = None,
        *,
        workspaces: WorkspaceClients | None = None,
        attempts: int = resend.ATTEMPTS,
        backoff: float = resend.BACKOFF,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        if client is None and workspaces is None:
            raise ValueError("SlackPort needs a client or per-workspace clients")
        self.client = client
        self.workspaces = workspaces
        self.attempts = attempts
        self.backoff = backoff
        self.sleep = sleep
        self._dm: dict[tuple[str, str], str] = {}

    def serves(self, workspace: str) -> bool:
        """Whether digests for `workspace` can go out now (it has paperbot installed)."""
        return self.workspaces is None or self.workspaces.serves(workspace)

    async def client_for(self, workspace: str) -> AsyncWebClient:
        """The client that speaks for `workspace` (DeliveryError when it has none)."""
        if self.workspaces is not None:
            return await self.workspaces.client_for(workspace)
        assert self.client is not None
        return self.client

    async def _call(self, what: str, call: Callable[[], Awaitable[Any]]) -> Any:
        """Run one Web API call, mapping every failure to a DeliveryError."""
        try:
            return await call()
        except SlackApiError as exc:
            raise delivery_error(exc, what) from None
        except NETWORK_ERRORS as exc:
            raise delivery_error(exc, what) from None

    async def channel_for(self, target: Target, client: AsyncWebClient | None = None) -> str:
        """The channel to post to: the channel itself, or the DM channel with the person."""
        if target.kind != "dm":
            return target.id
        cached = self._dm.get((target.workspace, target.id))
        if cached:
            return cached
        api = client or await self.client_for(target.workspace)
        response = await self._call(
            "conversations.open", lambda: api.conversations_open(users=target.id)
        )
        channel = str(response["channel"]["id"])
        self._dm[(target.workspace, target.id)] = channel
        return channel

    async def _post(
        self,
        client: AsyncWebClient,
        channel: str,
        message: dict[str, Any],
        thread: str | None = None,
        key: str = "",
    ) -> str:
        """Post one message with `client` (the workspace's token), retried and never twice
        when it has a `key`; returns its ts."""
        kwargs: dict[str, Any] = {
            "channel": channel,
            "text": message["text"],
            "blocks": message.get("blocks"),
            "unfurl_links": False,
            "unfurl_media": False,
        }
        if thread:
            kwargs["thread_ts"] = thread
        if key:
            kwargs["metadata"] = {"event_type": POST_EVENT, "event_payload": {"key": key}}

        async def post() -> str:
            """One try."""
            response = await self._call(
                "chat.postMessage", lambda: client.chat_postMessage(**kwargs)
            )
            return str(response["ts"])

        async def find() -> str | None:
            """The ts of the message with this key, if an earlier try posted it."""
            return await self.find_posted(client, channel, key, thread)

        return await resend.post_once(
            post,
            find=find if key else None,
            what=f"chat.postMessage to {channel}",
            # Without a key a retry could post twice: notices are tried once.
            attempts=self.attempts if key else 1,
            backoff=self.backoff,
            sleep=self.sleep,
        )

    async def find_posted(
        self, client: AsyncWebClient, channel: str, key: str, thread: str | None = None
    ) -> str | None:
        """The ts of a recent message of ours carrying idempotency `key`, or None."""
        if thread:
            response = await self._call(
                "conversations.replies",
                lambda: client.conversations_replies(
                    channel=channel, ts=thread, limit=100, include_all_metadata=True
                ),
            )
        else:
            response = await self._call(
                "conversations.history",
                lambda: client.conversations_history(
                    channel=channel, limit=50, include_all_metadata=True
                ),
            )
        for message in response.get("messages") or []:
            metadata = message.get("metadata") or {}
            payload = metadata.get("event_payload") or {}
            if metadata.get("event_type") == POST_EVENT and payload.get("key") == key:
                return str(message["ts"])
        return None

    async def post_intro(self, target: Target, digest: Digest) -> Sent:
        """Post a digest's intro; its key is the thread the papers go under (in channels)."""
        client = await self.client_for(target.workspace)
        channel = await self.channel_for(target, client)
        key = resend.post_key(digest)
        ts = await self._post(client, channel, digest_intro_message(digest), key=key)
        return Sent(f"slack:{channel}:{ts}", None)

    async def post_card(
        self, target: Target, digest: Digest, card: PaperCard, thread: str | None
    ) -> Sent:
        """Post one paper: in the intro's thread for channels, top level in a DM."""
        client = await self.client_for(target.workspace)
        channel = await self.channel_for(target, client)
        thread_ts = self._thread_ts(target, channel, thread)
        key = resend.post_key(digest, card)
        ts = await self._post(client, channel, digest_card_message(card), thread_ts, key=key)
        return Sent(f"slack:{channel}:{ts}", card.paper_id)

    async def find_sent(
        self, target: Target, digest: Digest, card: PaperCard | None, thread: str | None
    ) -> Sent | None:
        """A digest message (intro when `card` is None) already posted, found by its key."""
        client = await self.client_for(target.workspace)
        channel = await self.channel_for(target, client)
        thread_ts = self._thread_ts(target, channel, thread) if card else None
        ts = await self.find_posted(client, channel, resend.post_key(digest, card), thread_ts)
        if ts is None:
            return None
        return Sent(f"slack:{channel}:{ts}", card.paper_id if card else None)

    @staticmethod
    def _thread_ts(target: Target, channel: str, thread: str | None) -> str | None:
        """The thread a paper goes under: the intro's, in channels only."""
        if target.kind == "dm" or not thread:
            return None
        thread_channel, thread_ts = split_key(thread)
        return thread_ts if thread_channel == channel else None

    async def send_text(self, target: Target, text: str) -> None:
        """Post a plain notice (escaped)."""
        client = await self.client_for(target.workspace)
        channel = await self.channel_for(target, client)
        blocks = [_section(c) for c in _chunks(escape(text))][:MAX_BLOCKS]
        await self._post(client, channel, {"text": _fallback(text), "blocks": blocks})

    async def post_image(self, target: Target, image: Image, thread: str | None = None) -> None:
        """Upload a chart (in the digest's thread for channels)."""
        client = await self.client_for(target.workspace)
        channel = await self.channel_for(target, client)
        thread_ts = None
        if target.kind != "dm" and thread:
            thread_channel, thread_ts = split_key(thread)
            thread_ts = thread_ts if thread_channel == channel else None
        await upload_image(client, channel, image, thread_ts)


async def upload_image(
    client: AsyncWebClient, channel: str, image: Image, thread_ts: str | None = None
) -> None:
    """files.getUploadURLExternal -> upload -> files.completeUploadExternal, as a DeliveryError
    on failure."""
    try:
        await client.files_upload_v2(
            channel=channel,
            file=image.data,
            filename=image.filename,
            title=image.title or image.filename,
            thread_ts=thread_ts,
        )
    except SlackApiError as exc:
        raise delivery_error(exc, "files.upload") from None
    except (SlackClientError, *NETWORK_ERRORS) as exc:
        raise delivery_error(exc, "files.upload") from None


# -- the Bolt app -----------------------------------------------------------------------------


# The Web API client writes whole request and response bodies at DEBUG whenever its logger's
# own level allows; for oauth.v2.access those hold the client secret and fresh tokens.
_WEB_LOG = logging.getLogger(f"{__name__}.web")
_WEB_LOG.setLevel(logging.INFO)


def make_client(token: str | None, base_url: str, *, wait_on_429: bool = True) -> AsyncWebClient:
    """A Web API client that retries dropped connections and waits out 429s (Retry-After).

    Task workers pass `wait_on_429=False`: a 429 then surfaces as a DeliveryError naming the
    wait, and the job comes back after it instead of holding a worker thread.
    """
    handlers: list[Any] = [AsyncConnectionErrorRetryHandler(max_retry_count=2)]
    if wait_on_429:
        handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=3))
    return AsyncWebClient(
        token=token,
        base_url=base_url if base_url.endswith("/") else base_url + "/",
        logger=_WEB_LOG,
        retry_handlers=handlers,
    )


def delivery_port(settings: Settings, store: Any) -> SlackPort | None:
    """The Slack port a task worker delivers digests through (None: Slack not configured).

    It shares nothing with the Bolt app: no listener, no token check, 429s surface.
    """
    if settings.slack_install_flow:
        base = make_client(None, settings.slack_api_url, wait_on_429=False)
        installs = RedisInstallationStore(store, logger=_BOLT_LOG)
        return SlackPort(workspaces=WorkspaceClients(installs, base, install_config(settings)))
    if settings.slack_bot_token is None:
        return None
    token = settings.slack_bot_token.get_secret_value()
    return SlackPort(make_client(token, settings.slack_api_url, wait_on_429=False))


async def open_session(port: SlackPort) -> None:
    """Give a delivery port one HTTP session (kept-alive connections), on the running loop."""
    session = aiohttp.ClientSession()
    if port.client is not None:
        port.client.session = session
    if port.workspaces is not None:
        port.workspaces.base.session = session


@dataclass
class _TimezoneCache:
    """People's timezones from `users.info`, kept in memory for a few hours."""

    ttl: float = TZ_TTL
    entries: dict[tuple[str, str], tuple[str | None, float]] = field(default_factory=dict)

    def get(self, team: str, user: str) -> tuple[bool, str | None]:
        """(known, tz) for a person."""
        hit = self.entries.get((team, user))
        if hit and hit[1] > time.monotonic():
            return True, hit[0]
        return False, None

    def put(self, team: str, user: str, tz: str | None, ttl: float) -> None:
        """Remember a lookup (a failed one for a shorter while)."""
        if len(self.entries) > 50_000:
            self.entries.clear()
        self.entries[(team, user)] = (tz, time.monotonic() + ttl)


def _is_dm_channel(channel: str | None) -> bool:
    """Slack DM channel ids start with D."""
    return bool(channel) and str(channel).startswith("D")


# Bolt's logger: its "token will be unused" notice is noise here (the client's token wins), and
# its OAuth messages quote install codes, so every record is redacted.
_BOLT_LOG = logging.getLogger(f"{__name__}.bolt")
_BOLT_LOG.addFilter(lambda record: "will be unused" not in record.getMessage())
# Bolt's line for a request without an installation names no workspace; ours does.
_BOLT_LOG.addFilter(lambda record: not record.getMessage().startswith("Although the app should"))
_BOLT_LOG.addFilter(RedactSecrets())


class SlackRuntime:
    """The Bolt app, its listeners and its server (HTTP or Socket Mode) for one BotCore.

    `bot_token` serves one workspace; `install` (client id and secret) instead serves every
    workspace that installs the app, each with its own token from Redis.
    """

    def __init__(
        self,
        core: BotCore,
        *,
        bot_token: str | None,
        signing_secret: str | None,
        app_token: str | None = None,
        api_url: str = "https://slack.com/api/",
        host: str = "127.0.0.1",
        port: int = 3000,
        verify_token: bool = True,
        install: InstallConfig | None = None,
    ) -> None:
        if install is None and not bot_token:
            raise SlackSetupError("SLACK_BOT_TOKEN is not set")
        self.core = core
        self.host = host
        self.requested_port = port
        self.bound_port: int | None = None
        self.verify_token = verify_token and install is None
        self.api_url = api_url
        self.mode = "socket" if app_token else "http"
        self._app_token = app_token
        self.install = install
        self.client = make_client(None if install else bot_token, api_url)
        self.installs: RedisInstallationStore | None = None
        if install is None:
            self.app = AsyncApp(
                client=self.client,
                signing_secret=signing_secret or "",
                logger=_BOLT_LOG,
                # A request path that is not ours gets a 404 rather than an exception.
                raise_error_for_unhandled_request=False,
            )
            self.chat_port = SlackPort(self.client)
        else:
            self.installs = RedisInstallationStore(core.store, logger=_BOLT_LOG)
            states = RedisOAuthStateStore(
                core.store, expiration_seconds=install.state_seconds, logger=_BOLT_LOG
            )
            settings, authorize = oauth_settings(
                install, self.installs, states, client=self.client, logger=_BOLT_LOG
            )
            self.app = AsyncApp(
                client=self.client,
                signing_secret=signing_secret or "",
                logger=_BOLT_LOG,
                raise_error_for_unhandled_request=False,
                oauth_settings=settings,
                authorize=authorize,
                user_facing_authorize_error_message=not_installed_message(install.redirect_uri),
            )
            self.chat_port = SlackPort(
                workspaces=WorkspaceClients(self.installs, self.client, install)
            )
        self.tz = _TimezoneCache()
        self.web_app = web.Application(client_max_size=1024 * 1024)
        self.web_app.router.add_post(EVENTS_PATH, self._http_request)
        if install is not None:
            self.web_app.router.add_get(INSTALL_PATH, self._oauth_request)
            self.web_app.router.add_get(REDIRECT_PATH, self._oauth_request)
        self.web_app.router.add_get("/healthz", self._health)
        self._runner: web.AppRunner | None = None
        self._socket: AsyncSocketModeHandler | None = None
        self._session: aiohttp.ClientSession | None = None
        self._inflight: set[asyncio.Task[Any]] = set()
        self._register()
        core.register(self.chat_port)

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> int | None:
        """Check the token, then serve: returns the bound HTTP port (None in Socket Mode)."""
        self._session = aiohttp.ClientSession()
        self.client.session = self._session
        try:
            if self.verify_token:
                await self._auth_test()
            if self.mode == "socket":
                await self._start_socket()
                return None
            return await self._start_http()
        except BaseException:
            await self.stop()
            raise

    async def _auth_test(self) -> None:
        """Fail with one clear line when the bot token is wrong (once, at start)."""
        try:
            response = await self.client.auth_test()
        except SlackApiError as exc:
            error = (exc.response.data or {}).get("error", "error") if exc.response else "error"
            raise SlackSetupError(
                f"Slack rejected SLACK_BOT_TOKEN ({error}): copy the Bot User OAuth Token "
                "(xoxb-…) from your app's OAuth & Permissions page"
            ) from None
        except NETWORK_ERRORS as exc:
            raise SlackSetupError(
                f"cannot reach the Slack Web API at {self.api_url}: {type(exc).__name__}"
            ) from None
        log.info(
            "slack: connected as %s in workspace %s", response.get("user"), response.get("team")
        )

    async def _start_http(self) -> int:
        """Serve the Request URL on host:port (port 0 picks a free one)."""
        self._runner = web.AppRunner(self.web_app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.requested_port)
        try:
            await site.start()
        except OSError as exc:
            raise SlackSetupError(
                f"cannot listen on {self.host}:{self.requested_port} ({exc.strerror or exc}); "
                "set PAPERBOT_HTTP_HOST / PAPERBOT_HTTP_PORT"
            ) from None
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.bound_port = int(sockets[0].getsockname()[1]) if sockets else self.requested_port
        log.info("slack: listening on http://%s:%s%s", self.host, self.bound_port, EVENTS_PATH)
        if self.installs is not None:
            installed = sum(w.installed for w in await asyncio.to_thread(self.installs.workspaces))
            log.info(
                "slack: %d workspace(s) installed; others add paperbot at http://%s:%s%s",
                installed,
                self.host,
                self.bound_port,
                INSTALL_PATH,
            )
        return self.bound_port

    async def _start_socket(self) -> None:
        """Connect over Socket Mode with the app-level token."""
        self._socket = AsyncSocketModeHandler(
            self.app, app_token=self._app_token, web_client=self.client
        )
        # The socket client retries a refused token forever; ask for the URL ourselves so a
        # wrong token fails the start with one line instead.
        try:
            opened = await self.client.apps_connections_open(app_token=self._app_token or "")
        except SlackApiError as exc:
            error = (exc.response.data or {}).get("error", "error") if exc.response else "error"
            raise SlackSetupError(
                f"Slack rejected SLACK_APP_TOKEN ({error}): create an app-level token "
                "(xapp-…) with the connections:write scope"
            ) from None
        except NETWORK_ERRORS as exc:
            raise SlackSetupError(
                f"cannot reach the Slack Web API at {self.api_url}: {type(exc).__name__}"
            ) from None
        self._socket.client.wss_uri = str(opened["url"])
        await self._socket.connect_async()
        log.info("slack: connected over Socket Mode")

    async def stop(self) -> None:
        """Finish answers in flight (briefly), then close the server and connections."""
        await self.idle(timeout=STOP_GRACE)
        if self._socket is not None:
            with contextlib.suppress(Exception):
                await self._socket.close_async()
            self._socket = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None
            self.client.session = None

    async def idle(self, timeout: float | None = None) -> None:
        """Wait until every acknowledged request has been answered."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._inflight:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return
            await asyncio.wait(set(self._inflight), timeout=left)

    @contextlib.asynccontextmanager
    async def _tracked(self) -> AsyncIterator[None]:
        """Count the current listener as in flight until it finishes."""
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        try:
            yield
        finally:
            if task is not None:
                self._inflight.discard(task)

    @property
    def url(self) -> str | None:
        """The Request URL as served locally (HTTP mode, after start)."""
        if self.bound_port is None:
            return None
        return f"http://{self.host}:{self.bound_port}{EVENTS_PATH}"

    # -- HTTP ---------------------------------------------------------------------------------

    async def _http_request(self, request: web.Request) -> web.Response:
        """Hand one signed request to Bolt (it verifies the signature and timestamp)."""
        stamp = request.headers.get("X-Slack-Request-Timestamp", "")
        if not stamp.isdigit() or len(stamp) > 12:
            # Bolt's verifier raises on a non-numeric timestamp (a 500); this is a 401.
            return web.json_response({"error": "invalid request"}, status=401)
        bolt_request = await to_bolt_request(request)
        bolt_response: BoltResponse = await self.app.async_dispatch(bolt_request)
        return await to_aiohttp_response(bolt_response)

    async def _oauth_request(self, request: web.Request) -> web.Response:
        """`/slack/install` (the Add to Slack page) and `/slack/oauth_redirect`, by Bolt's flow."""
        flow = self.app.oauth_flow
        assert flow is not None
        bolt_request = await to_bolt_request(request)
        try:
            if request.path == flow.install_path:
                bolt_response = await flow.handle_installation(bolt_request)
            else:
                bolt_response = await flow.handle_callback(bolt_request)
        except StoreUnavailable as exc:
            log.error("slack: install page failed: %s", exc)
            return _page(503, failure_page("storage_error"))
        except NETWORK_ERRORS as exc:
            log.error("slack: install failed: cannot reach Slack (%s)", type(exc).__name__)
            return _page(502, failure_page("slack_unreachable"))
        return await to_aiohttp_response(bolt_response)

    async def _health(self, request: web.Request) -> web.Response:
        """Liveness for load balancers."""
        return web.Response(text="ok")

    # -- listeners ----------------------------------------------------------------------------

    def _register(self) -> None:
        """Attach the middleware and listeners to the Bolt app."""
        app = self.app
        app.middleware(self._dedupe_events)
        if self.installs is not None:
            app.middleware(self._note_org_workspace)
            app.event("app_uninstalled")(self._on_uninstalled)
            app.event("tokens_revoked")(self._on_tokens_revoked)
        app.command(COMMAND)(self._on_command)
        app.action(re.compile(f"^{ACTION_PREFIX}"))(self._on_button)
        app.event("reaction_added")(self._on_reaction_added)
        app.event("reaction_removed")(self._on_reaction_removed)
        app.event("app_home_opened")(self._on_home)
        app.event("message")(self._on_message)

    async def _dedupe_events(self, body: dict, next: Callable[[], Awaitable[Any]]) -> Any:
        """Events API retries (X-Slack-Retry-Num) carry the same event_id: apply each once."""
        # Bolt passes middleware arguments by name, hence the parameter called `next`.
        event_id = body.get("event_id")
        if body.get("type") == "event_callback" and event_id:
            try:
                first = await asyncio.to_thread(
                    self.core.chat.once, f"slack:event:{event_id}", EVENT_DEDUPE_TTL
                )
            except StoreUnavailable:
                # Without the store nothing can be recorded anyway; let the listener say so.
                first = True
            if not first:
                return BoltResponse(status=200, body="")
        return await next()

    async def _note_org_workspace(
        self, body: dict, context: Any, next: Callable[[], Awaitable[Any]]
    ) -> Any:
        """Remember which org serves a workspace of an org-wide install (digests need it)."""
        enterprise = context.enterprise_id
        team = _workspace_of(body)
        if context.is_enterprise_install and enterprise and team and self.installs is not None:
            with contextlib.suppress(StoreUnavailable):
                await asyncio.to_thread(self.installs.note_org_team, team, enterprise)
        return await next()

    async def _on_uninstalled(self, context: Any) -> None:
        """Bolt's own handler deletes the workspace's tokens through the installation store,
        which records the uninstall: digests stop, data goes after the grace period."""
        async with self._tracked():
            await self.app.default_app_uninstalled_event_listener()(context=context)

    async def _on_tokens_revoked(self, event: dict, context: Any) -> None:
        """Bolt's own handler: a revoked bot token is an uninstall for paperbot's purposes."""
        async with self._tracked():
            await self.app.default_tokens_revoked_event_listener()(event=event, context=context)

    async def _timezone(self, client: AsyncWebClient, team: str, user: str) -> str | None:
        """A person's timezone from users.info (cached)."""
        known, tz = self.tz.get(team, user)
        if known:
            return tz
        try:
            response = await client.users_info(user=user)
        except (SlackApiError, *NETWORK_ERRORS) as exc:
            log.warning("slack: users.info failed for a user: %s", type(exc).__name__)
            self.tz.put(team, user, None, TZ_MISS_TTL)
            return None
        tz = (response.get("user") or {}).get("tz") or None
        self.tz.put(team, user, tz, self.tz.ttl)
        return tz

    async def _on_command(self, ack: Any, body: dict, client: AsyncWebClient) -> None:
        """`/papers …`: ack at once, answer through response_url."""
        async with self._tracked():
            await ack()
            team = str(body.get("team_id") or "")
            user = str(body.get("user_id") or "")
            channel = body.get("channel_id") or None
            ctx = Context(
                platform="slack",
                workspace=team,
                user=user,
                channel=channel,
                user_name=str(body.get("user_name") or ""),
                timezone=await self._timezone(client, team, user),
                is_dm=body.get("channel_name") == "directmessage" or _is_dm_channel(channel),
            )
            reply = await self.core.answer_async(ctx, unescape(body.get("text")))
            await self._answer(body, client, ctx, reply)

    async def _answer(self, body: dict, client: AsyncWebClient, ctx: Context, reply: Reply) -> None:
        """A reply, its images (uploaded to the channel) and its follow-ups, in order."""
        for part in (reply, *reply.followups):
            response_type = "ephemeral" if part.ephemeral else "in_channel"
            for message in reply_messages(part):
                await self._respond(body, response_type=response_type, **message)
            for image in part.images:
                await self._upload(body, client, ctx, image)

    async def _upload(self, body: dict, client: AsyncWebClient, ctx: Context, image: Image) -> None:
        """Upload an image where the command was run; say so when Slack refuses."""
        if not ctx.channel:
            return
        try:
            await upload_image(client, ctx.channel, image)
        except DeliveryError as exc:
            log.warning("slack: could not upload %s: %s", image.filename, exc)
            await self._respond(
                body,
                response_type="ephemeral",
                text=_fallback(
                    f"I could not post the chart here ({exc}). Invite me to this channel, "
                    "or run the command in a DM with me."
                ),
            )

    async def _respond(self, body: dict, **message: Any) -> None:
        """Post to the request's response_url, logging (not raising) when Slack refuses it.

        The runtime's one HTTP session is reused (Bolt's `respond` opens a new one per
        message), which keeps connections to Slack alive and the event loop free for acks.
        """
        url = body.get("response_url")
        if not url:
            return
        payload = {"replace_original": False, "unfurl_links": False, "unfurl_media": False}
        payload.update(message)
        session = self._session
        try:
            if session is None or session.closed:
                async with aiohttp.ClientSession() as temporary:
                    status = await _post_json(temporary, url, payload)
            else:
                status = await _post_json(session, url, payload)
        except (*NETWORK_ERRORS, ValueError) as exc:
            log.warning("slack: response_url post failed: %s", type(exc).__name__)
            return
        if status >= 300:
            log.warning("slack: response_url refused the answer (HTTP %s)", status)

    async def _on_button(self, ack: Any, body: dict, action: dict, client: AsyncWebClient) -> None:
        """A 👍 🔖 👎 🔇 click: record it for the clicker and tell only them."""
        async with self._tracked():
            await ack()
            user_info = body.get("user") or {}
            team = str((body.get("team") or {}).get("id") or user_info.get("team_id") or "")
            user = str(user_info.get("id") or "")
            container = body.get("container") or {}
            channel = (body.get("channel") or {}).get("id") or container.get("channel_id")
            ts = container.get("message_ts") or (body.get("message") or {}).get("ts")
            key = f"slack:{channel}:{ts}" if channel and ts else None
            ctx = Context(
                platform="slack",
                workspace=team,
                user=user,
                channel=channel,
                user_name=str(user_info.get("username") or user_info.get("name") or ""),
                is_dm=_is_dm_channel(channel),
            )
            # A button carries `value`; the "which author?" menu carries the option picked.
            value = str(action.get("value") or (action.get("selected_option") or {}).get("value"))
            outcome = await asyncio.to_thread(self.core.click, ctx, value, key)
            if container.get("type") == "view" or not body.get("response_url"):
                # A click in App Home: show the new state of the tab instead of a message,
                # and ask in the app's DM when the click needs a choice.
                if outcome.choices:
                    await _post_quietly(client, user, outcome)
                await self._publish_home(client, team, user)
                return
            await self._respond(
                body,
                text=_fallback(outcome.message),
                blocks=outcome_blocks(outcome),
                response_type="ephemeral",
            )

    async def _on_reaction_added(self, body: dict, event: dict, client: AsyncWebClient) -> None:
        """A reaction on a paper message counts as feedback."""
        await self._reaction(body, event, client, removed=False)

    async def _on_reaction_removed(self, body: dict, event: dict, client: AsyncWebClient) -> None:
        """Taking a reaction back takes the feedback back."""
        await self._reaction(body, event, client, removed=True)

    async def _reaction(
        self, body: dict, event: dict, client: AsyncWebClient, *, removed: bool
    ) -> None:
        """Map the reacted message to its paper and tell the reactor (only them) what changed."""
        async with self._tracked():
            item = event.get("item") or {}
            if item.get("type") != "message" or not item.get("channel") or not item.get("ts"):
                return
            channel, user = str(item["channel"]), str(event.get("user") or "")
            team = str(body.get("team_id") or event.get("team") or "")
            ctx = Context(
                platform="slack",
                workspace=team,
                user=user,
                channel=channel,
                is_dm=_is_dm_channel(channel),
            )
            key = f"slack:{channel}:{item['ts']}"
            outcome = await asyncio.to_thread(
                self.core.react, ctx, key, str(event.get("reaction") or ""), removed=removed
            )
            if outcome is None:
                return
            try:
                await client.chat_postEphemeral(
                    channel=channel,
                    user=user,
                    text=_fallback(outcome.message),
                    blocks=outcome_blocks(outcome),
                )
            except (SlackApiError, *NETWORK_ERRORS) as exc:
                log.info("slack: could not confirm a reaction: %s", type(exc).__name__)

    async def _on_home(self, body: dict, event: dict, client: AsyncWebClient) -> None:
        """Opening the App Home tab shows settings and saved papers."""
        async with self._tracked():
            if event.get("tab", "home") != "home":
                return
            team = str(body.get("team_id") or "")
            user = str(event.get("user") or "")
            await self._welcome(client, team, user)
            await self._publish_home(client, team, user)

    async def _welcome(
        self, client: AsyncWebClient, team: str, user: str, channel: str | None = None
    ) -> None:
        """Someone new (first App Home visit or first DM) gets the first-use card by DM
        (a user id as the channel makes Slack open the DM)."""
        if not user:
            return
        ctx = Context(platform="slack", workspace=team, user=user, is_dm=True)
        card = await asyncio.to_thread(self.core.welcome, ctx)
        if card is not None:
            await self._post_dm(client, channel or user, card)

    async def _post_dm(self, client: AsyncWebClient, channel: str, reply: Reply) -> None:
        """Post a reply (and its follow-ups) as messages in a DM, best effort."""
        for part in (reply, *reply.followups):
            for message in reply_messages(part):
                try:
                    await client.chat_postMessage(
                        channel=channel, unfurl_links=False, unfurl_media=False, **message
                    )
                except (SlackApiError, *NETWORK_ERRORS) as exc:
                    log.warning("slack: could not post to a DM: %s", type(exc).__name__)
                    return

    async def _on_message(self, body: dict, event: dict, client: AsyncWebClient) -> None:
        """Messages in the DM with paperbot: a shared file is imported; a first message
        gets the first-use card."""
        async with self._tracked():
            if event.get("bot_id") or event.get("subtype") not in (None, "file_share"):
                return
            if event.get("channel_type") != "im":
                return
            team = str(body.get("team_id") or event.get("team") or "")
            user = str(event.get("user") or "")
            channel = str(event.get("channel") or "")
            if not user or not channel:
                return
            files = [f for f in event.get("files") or [] if isinstance(f, dict)]
            if not files:
                await self._welcome(client, team, user, channel)
                return
            ctx = Context(platform="slack", workspace=team, user=user, channel=channel, is_dm=True)
            reply = await self._import_shared(client, ctx, files[0])
            if len(files) > 1:
                reply.text += "\n(Only the first file was read: share one library at a time.)"
            await self._post_dm(client, channel, reply)

    async def _import_shared(self, client: AsyncWebClient, ctx: Context, file: dict) -> Reply:
        """Download a shared file (with the workspace's token) and import it."""
        name = str(file.get("name") or file.get("title") or "library")
        too_big = size_error(int(file.get("size") or 0))
        if too_big:
            return Reply(f"Nothing imported from “{name[:60]}”: {too_big}")
        url = str(file.get("url_private_download") or file.get("url_private") or "")
        if not self._slack_url(url):
            return Reply(f"Nothing imported from “{name[:60]}”: I could not download it.")
        try:
            data = await self._download(client, url)
        except (ValueError, *NETWORK_ERRORS) as exc:
            log.warning("slack: file download failed: %s", type(exc).__name__)
            return Reply(f"Nothing imported from “{name[:60]}”: the download failed ({exc}).")
        return await asyncio.to_thread(self.core.import_file, ctx, name, data)

    def _slack_url(self, url: str) -> bool:
        """Whether a file URL is Slack's own (the bot token is only ever sent there)."""
        parsed = urllib.parse.urlparse(url)
        api = urllib.parse.urlparse(self.api_url)
        host = (parsed.hostname or "").lower()
        if parsed.scheme == api.scheme and host == (api.hostname or "").lower():
            return parsed.port == api.port
        return parsed.scheme == "https" and (host == "slack.com" or host.endswith(".slack.com"))

    async def _download(self, client: AsyncWebClient, url: str) -> bytes:
        """A file's bytes, refusing anything past the import limit while it streams."""
        session = self._session if self._session and not self._session.closed else None
        own = session is None
        session = session or aiohttp.ClientSession()
        try:
            timeout = aiohttp.ClientTimeout(total=RESPONSE_TIMEOUT)
            headers = {"Authorization": f"Bearer {client.token}"}
            async with session.get(url, headers=headers, timeout=timeout) as response:
                if response.status != 200:
                    raise ValueError(f"HTTP {response.status}")
                data = bytearray()
                async for chunk in response.content.iter_chunked(65536):
                    data += chunk
                    if len(data) > MAX_IMPORT_BYTES:
                        # Reported by the importer's own size check.
                        break
                return bytes(data)
        finally:
            if own:
                await session.close()

    async def _publish_home(self, client: AsyncWebClient, team: str, user: str) -> None:
        """Render and publish one person's App Home (with the workspace's own token)."""
        if not user:
            return
        ctx = Context(platform="slack", workspace=team, user=user, is_dm=True)
        settings = await self.core.answer_async(ctx, "settings")
        saved = await self.core.answer_async(ctx, "saved")
        try:
            await client.views_publish(user_id=user, view=home_view(settings, saved))
        except (SlackApiError, *NETWORK_ERRORS) as exc:
            log.warning("slack: views.publish failed: %s", type(exc).__name__)


def _workspace_of(body: dict) -> str:
    """The workspace a request comes from (commands, events and clicks name it differently)."""
    team = body.get("team_id") or (body.get("team") or {}).get("id")
    return str(team or (body.get("user") or {}).get("team_id") or "")


def _page(status: int, body: str) -> web.Response:
    """An HTML page."""
    return web.Response(status=status, text=body, content_type="text/html")


async def _post_json(session: aiohttp.ClientSession, url: str, payload: dict[str, Any]) -> int:
    """POST JSON, returning the HTTP status (the body is read so the connection is reused)."""
    timeout = aiohttp.ClientTimeout(total=RESPONSE_TIMEOUT)
    async with session.post(url, json=payload, timeout=timeout) as response:
        await response.read()
        return response.status


def build_slack(core: BotCore, settings: Settings, *, verify_token: bool = True) -> SlackRuntime:
    """The Slack runtime for `settings` (registers SlackPort on `core`); call `start()` next.

    One workspace with SLACK_BOT_TOKEN (Socket Mode when SLACK_APP_TOKEN is set, else HTTP);
    many workspaces with SLACK_CLIENT_ID and SLACK_CLIENT_SECRET instead (HTTP, with the
    install flow). HTTP serves on PAPERBOT_HTTP_HOST:PAPERBOT_HTTP_PORT.
    """
    app_token = settings.slack_app_token.get_secret_value() if settings.slack_app_token else None
    secret = (
        settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
    )
    if settings.slack_install_flow:
        return SlackRuntime(
            core,
            bot_token=None,
            signing_secret=secret,
            api_url=settings.slack_api_url,
            host=settings.http_host,
            port=settings.http_port,
            install=install_config(settings),
        )
    if settings.slack_bot_token is None:
        raise SlackSetupError(
            "SLACK_BOT_TOKEN is not set (or set SLACK_CLIENT_ID, SLACK_CLIENT_SECRET and "
            "SLACK_SIGNING_SECRET to let many workspaces install paperbot)"
        )
    if not app_token and not secret:
        raise SlackSetupError(
            "SLACK_SIGNING_SECRET is not set (needed to verify requests in HTTP mode; "
            "or set SLACK_APP_TOKEN to use Socket Mode)"
        )
    return SlackRuntime(
        core,
        bot_token=settings.slack_bot_token.get_secret_value(),
        signing_secret=secret,
        app_token=app_token,
        api_url=settings.slack_api_url,
        host=settings.http_host,
        port=settings.http_port,
        verify_token=verify_token,
    )


def install_config(settings: Settings) -> InstallConfig:
    """The install flow's settings, or a SlackSetupError naming what is missing."""
    missing = [
        name
        for name, value in (
            ("SLACK_CLIENT_ID", settings.slack_client_id),
            ("SLACK_CLIENT_SECRET", settings.slack_client_secret),
            ("SLACK_SIGNING_SECRET", settings.slack_signing_secret),
        )
        if value is None
    ]
    if missing:
        raise SlackSetupError(
            f"{' and '.join(missing)} not set (the install flow for many workspaces needs "
            "SLACK_CLIENT_ID, SLACK_CLIENT_SECRET and SLACK_SIGNING_SECRET)"
        )
    if settings.slack_app_token is not None:
        raise SlackSetupError(
            "the install flow runs over HTTP: unset SLACK_APP_TOKEN (Socket Mode serves one "
            "workspace, with SLACK_BOT_TOKEN)"
        )
    assert settings.slack_client_id and settings.slack_client_secret
    return InstallConfig(
        client_id=settings.slack_client_id,
        client_secret=settings.slack_client_secret.get_secret_value(),
        redirect_uri=settings.slack_redirect_uri,
    )


def slack_configured(settings: Settings) -> bool:
    """Whether `paperbot run` should start Slack: a bot token plus a signing secret or app
    token, or the install flow's client id, client secret and signing secret."""
    if settings.slack_install_flow:
        return (
            settings.slack_client_id is not None
            and settings.slack_client_secret is not None
            and settings.slack_signing_secret is not None
            and settings.slack_app_token is None
        )
    return settings.slack_bot_token is not None and (
        settings.slack_signing_secret is not None or settings.slack_app_token is not None
    )


class SlackThread:
    """A SlackRuntime on its own event loop in a background thread (for sync callers)."""

    def __init__(self, runtime: SlackRuntime) -> None:
        self.runtime = runtime
        self.loop = asyncio.new_event_loop()
        self.port: int | None = None
        self._thread = threading.Thread(target=self._run, name="paperbot-slack", daemon=True)

    def _run(self) -> None:
        """The thread body: run the loop until stopped."""
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def start(self, timeout: float = 60.0) -> int | None:
        """Start the loop and the runtime; raises SlackSetupError on a bad token or port."""
        self._thread.start()
        try:
            self.port = self.run(self.runtime.start(), timeout=timeout)
        except BaseException:
            self._halt()
            raise
        return self.port

    def run(self, coro: Awaitable[_T], timeout: float | None = None) -> _T:
        """Run a coroutine on the Slack loop (e.g. `core.delivery.run_due()`) and wait for it."""
        future = asyncio.run_coroutine_threadsafe(_awaitable(coro), self.loop)
        return future.result(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the runtime, then the loop and the thread."""
        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                self.run(self.runtime.stop(), timeout=timeout)
        self._halt()

    def _halt(self) -> None:
        """Stop the loop and join the thread."""
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
        if not self.loop.is_running() and not self.loop.is_closed():
            self.loop.close()


async def _awaitable(coro: Awaitable[_T]) -> _T:
    """Wrap any awaitable as a coroutine (run_coroutine_threadsafe needs one)."""
    return await coro


def start_slack_thread(core: BotCore, settings: Settings) -> SlackThread:
    """Build, start and return Slack on a background loop; SlackSetupError says what is wrong."""
    handle = SlackThread(build_slack(core, settings))
    handle.start()
    return handle


def outcome_blocks(outcome: Outcome) -> list[dict]:
    """The answer to a click or reaction; a menu when it asks which author to mute."""
    blocks = [_section(escape(outcome.message))]
    if outcome.choices:
        blocks.append(
            {
                "type": "actions",
                "block_id": "pb_mute_author",
                "elements": [
                    {
                        "type": "static_select",
                        "action_id": f"{ACTION_PREFIX}mute_author",
                        "placeholder": {"type": "plain_text", "text": "Pick an author"},
                        "options": [
                            {
                                "text": {"type": "plain_text", "text": _plain(label, 75)},
                                "value": value,
                            }
                            for label, value in outcome.choices[:100]
                        ],
                    }
                ],
            }
        )
    return blocks


def _plain(text: str, limit: int) -> str:
    """Plain text for Slack's `plain_text` objects, cut at `limit` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def _post_quietly(client: AsyncWebClient, user: str, outcome: Outcome) -> None:
    """Send an outcome to the person's DM with the app (best effort)."""
    try:
        await client.chat_postMessage(
            channel=user, text=_fallback(outcome.message), blocks=outcome_blocks(outcome)
        )
    except (SlackApiError, *NETWORK_ERRORS) as exc:
        log.info("slack: could not ask which author to mute: %s", type(exc).__name__)
