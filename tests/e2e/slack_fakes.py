"""A local stand-in for Slack: a fake Web API that records calls, and signed-request helpers.

The fake serves `/api/<method>` (form, query or JSON arguments, like the real Web API),
`/response/<n>` for response_url posts, and a Socket Mode websocket at `/socket`.
Failures (an error code, or 429 with Retry-After) can be queued per method and channel.

Several workspaces: each bot token belongs to one workspace (or, for an org-wide install,
one Enterprise Grid org); `auth.test` answers for the token's own workspace, and posting to a
channel another workspace's token opened is refused with `channel_not_found`, as Slack does.
`oauth.v2.access` exchanges install codes handed out by `grant` (once each) and refresh
tokens (token rotation) for the app's client id and secret.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

BOT_TOKEN = "xoxb-test-bot-token-0123456789"
APP_TOKEN = "xapp-test-app-token-0123456789"
SIGNING_SECRET = "test-signing-secret-0123456789abcdef"
TEAM = "T0PAPERS"
BOT_USER = "UBOTPAPERS"
CLIENT_ID = "1111111111.2222222222"
CLIENT_SECRET = "test-client-secret-0123456789abcdef"
APP_ID = "APAPERS"


def sign(body: str, secret: str = SIGNING_SECRET, timestamp: int | None = None) -> dict[str, str]:
    """The two headers Slack adds to every request: `v0=HMAC_SHA256(secret, v0:ts:body)`."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


@dataclass
class Call:
    """One request the fake Web API received."""

    method: str
    args: dict[str, Any]
    token: str | None
    status: int = 200
    reply: dict[str, Any] = field(default_factory=dict)


@dataclass
class Failure:
    """A queued failure: an error code or an HTTP status, for calls matching `channel`.

    `commit`: the call takes effect (a message is posted) before the failure is answered,
    as when Slack's answer is lost. `delay`: seconds to wait before answering (a client
    with a shorter timeout gives up).
    """

    error: str | None = None
    status: int = 200
    retry_after: int | None = None
    channel: str | None = None
    times: int = 1
    commit: bool = False
    delay: float = 0.0


@dataclass(frozen=True)
class Workspace:
    """A Slack workspace (or, with `org`, an Enterprise Grid org installing org-wide)."""

    team_id: str
    name: str
    enterprise_id: str | None = None
    org: bool = False
    installer: str = "UINSTALLER"

    @property
    def key(self) -> str:
        """What the workspace's tokens serve: the org for org-wide installs, else the team."""
        return (self.enterprise_id or self.team_id) if self.org else self.team_id


@dataclass
class FakeSlack:
    """The fake Web API plus the response_url receiver, on 127.0.0.1 and a free port."""

    tokens: set[str] = field(default_factory=lambda: {BOT_TOKEN, APP_TOKEN})
    # Which workspace each bot token belongs to.
    token_workspace: dict[str, Workspace] = field(
        default_factory=lambda: {BOT_TOKEN: Workspace(TEAM, "Papers Inc")}
    )
    # Install codes not yet exchanged: code -> (workspace, whether its tokens rotate).
    grants: dict[str, tuple[Workspace, bool]] = field(default_factory=dict)
    refresh_tokens: dict[str, Workspace] = field(default_factory=dict)
    # Channels a workspace's token opened or posted to first (DMs, channels).
    channel_owner: dict[str, str] = field(default_factory=dict)
    # Workspaces of an org-wide install: team id -> org id.
    org_of: dict[str, str] = field(default_factory=dict)
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    _codes: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    timezones: dict[str, str] = field(default_factory=dict)
    default_tz: str = "Europe/Berlin"
    calls: list[Call] = field(default_factory=list)
    responses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    failures: dict[str, list[Failure]] = field(default_factory=dict)
    # Messages that exist in each channel (newest last), as history would show them.
    posted: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    base: str = ""
    _runner: web.AppRunner | None = None
    _ts: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _urls: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _changed: asyncio.Condition | None = None
    socket: web.WebSocketResponse | None = None
    socket_acks: list[dict[str, Any]] = field(default_factory=list)
    # Files uploaded by the bot (file id -> bytes) and files people shared (to download).
    uploads: dict[str, bytes] = field(default_factory=dict)
    shared: dict[str, bytes] = field(default_factory=dict)
    downloads: list[str | None] = field(default_factory=list)
    _socket_ready: asyncio.Event | None = None

    async def start(self) -> str:
        """Serve; returns the base URL (`http://127.0.0.1:P`)."""
        self._changed = asyncio.Condition()
        self._socket_ready = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/response/{n}", self._response)
        app.router.add_get("/socket", self._socket)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_get("/files/{file_id}/{name}", self._download)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.base = f"http://127.0.0.1:{bound_port(site)}"
        return self.base

    async def stop(self) -> None:
        """Shut the server down."""
        if self.socket is not None:
            await self.socket.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        """What SLACK_API_URL should be."""
        return f"{self.base}/api/"

    def response_url(self) -> str:
        """A fresh response_url, as Slack puts one in every command and click."""
        return f"{self.base}/response/{next(self._urls)}"

    def grant(self, workspace: Workspace, *, rotating: bool = False) -> str:
        """An install code, as Slack puts one in the redirect after "Allow" (works once)."""
        code = f"{next(self._codes)}.{workspace.team_id.lower()}.install-code"
        self.grants[code] = (workspace, rotating)
        if workspace.org:
            self.org_of.setdefault(workspace.team_id, workspace.key)
        return code

    def revoke(self, team: str) -> None:
        """Slack's side of an uninstall: every token of that workspace stops working."""
        for token, workspace in list(self.token_workspace.items()):
            if workspace.key == team:
                self.tokens.discard(token)
                del self.token_workspace[token]
        for refresh, workspace in list(self.refresh_tokens.items()):
            if workspace.key == team:
                del self.refresh_tokens[refresh]

    def tokens_of(self, team: str) -> set[str]:
        """The bot tokens that currently work for a workspace (or org)."""
        return {t for t, w in self.token_workspace.items() if w.key == team}

    def _new_token(self, workspace: Workspace, rotating: bool) -> str:
        """A fresh bot token for a workspace."""
        n = next(self._codes)
        kind = "xoxe.xoxb" if rotating else "xoxb"
        token = f"{kind}-{workspace.key.lower()}-{n}-secretpart"
        self.tokens.add(token)
        self.token_workspace[token] = workspace
        return token

    def fail(self, method: str, **kwargs: Any) -> None:
        """Queue a failure for the next matching call(s) of `method`."""
        self.failures.setdefault(method, []).append(Failure(**kwargs))

    def of(self, method: str) -> list[Call]:
        """Successful calls of one method, in order."""
        return [c for c in self.calls if c.method == method and c.status == 200]

    def attempts(self, method: str) -> list[Call]:
        """Every call of one method, failed ones included."""
        return [c for c in self.calls if c.method == method]

    async def wait_response(self, url: str, count: int = 1, timeout: float = 60) -> list[dict]:
        """The messages posted to one response_url, once `count` have arrived."""
        key = url.rsplit("/", 1)[-1]
        assert self._changed is not None
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: len(self.responses.get(key, [])) >= count),
                timeout,
            )
        return self.responses[key]

    async def _notify(self) -> None:
        """Wake whoever waits for a response."""
        assert self._changed is not None
        async with self._changed:
            self._changed.notify_all()

    async def _response(self, request: web.Request) -> web.Response:
        """A response_url post."""
        payload = await request.json()
        self.responses.setdefault(request.match_info["n"], []).append(payload)
        await self._notify()
        return web.Response(text="ok")

    def share(self, name: str, data: bytes) -> dict[str, Any]:
        """A file a person shares, as the `files` item of a `message` event."""
        file_id = f"F{len(self.shared) + 1:08d}"
        self.shared[file_id] = data
        return {
            "id": file_id,
            "name": name,
            "title": name,
            "size": len(data),
            "url_private": f"{self.base}/files/{file_id}/{name}",
            "url_private_download": f"{self.base}/files/{file_id}/{name}",
        }

    async def _upload(self, request: web.Request) -> web.Response:
        """The upload URL files.getUploadURLExternal handed out."""
        self.uploads[request.match_info["file_id"]] = await request.read()
        return web.Response(text="OK - " + str(len(self.uploads)))

    async def _download(self, request: web.Request) -> web.Response:
        """A shared file's private URL: only for a valid bot token."""
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip() or None
        self.downloads.append(token)
        if token not in self.tokens:
            return web.Response(status=403, text="forbidden")
        data = self.shared.get(request.match_info["file_id"])
        if data is None:
            return web.Response(status=404, text="not found")
        return web.Response(body=data, content_type="application/octet-stream")

    async def _api(self, request: web.Request) -> web.Response:
        """One Web API call."""
        method = request.match_info["method"]
        args: dict[str, Any] = dict(request.query)
        if request.can_read_body:
            raw = await request.text()
            if request.content_type == "application/json":
                args.update(json.loads(raw or "{}"))
            else:
                args.update(dict(urllib.parse.parse_qsl(raw)))
        for key in ("blocks", "view"):
            if isinstance(args.get(key), str):
                args[key] = json.loads(args[key])
        auth = request.headers.get("Authorization", "")
        if method == "oauth.v2.access":
            call = Call(method, args, None)
            self.calls.append(call)
            answer = self._oauth(auth, args)
            if not answer.get("ok"):
                call.status = 0
            return _json(answer)
        token = auth.removeprefix("Bearer ").strip() or args.get("token")
        call = Call(method, args, token)
        self.calls.append(call)
        if token not in self.tokens:
            call.status = 0
            return _json({"ok": False, "error": "invalid_auth"})
        if not self._owns(token, args.get("channel")):
            call.status = 0
            return _json({"ok": False, "error": "channel_not_found"})
        failure = self._take_failure(method, args)
        if failure is not None:
            if failure.commit:
                self._answer(method, args, token)
            if failure.delay:
                await asyncio.sleep(failure.delay)
            call.status = failure.status if failure.status != 200 else 0
            headers = {}
            if failure.retry_after is not None:
                headers["Retry-After"] = str(failure.retry_after)
            error = failure.error or ("ratelimited" if failure.status == 429 else "fatal_error")
            return _json({"ok": False, "error": error}, status=failure.status, headers=headers)
        call.reply = self._answer(method, args, token)
        return _json(call.reply)

    def _take_failure(self, method: str, args: dict[str, Any]) -> Failure | None:
        """The first queued failure that matches this call (used up one time)."""
        for failure in self.failures.get(method, []):
            if failure.times > 0 and failure.channel in (None, args.get("channel")):
                failure.times -= 1
                return failure
        return None

    def _owns(self, token: str | None, channel: Any) -> bool:
        """Whether a token may post to a channel: the first workspace to use a channel owns it
        (an org-wide token speaks for every workspace of its org)."""
        workspace = self.token_workspace.get(token or "")
        if workspace is None or not channel:
            return True
        owner = self.channel_owner.setdefault(str(channel), workspace.key)
        return owner == workspace.key or self.org_of.get(owner) == workspace.key

    def _oauth(self, auth: str, args: dict[str, Any]) -> dict[str, Any]:
        """oauth.v2.access: an install code or a refresh token, for the app's credentials."""
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if auth.removeprefix("Basic ").strip() != expected:
            return {"ok": False, "error": "invalid_client_id"}
        if args.get("grant_type") == "refresh_token":
            workspace = self.refresh_tokens.pop(str(args.get("refresh_token")), None)
            if workspace is None:
                return {"ok": False, "error": "invalid_refresh_token"}
            refresh = f"xoxe-1-{workspace.key.lower()}-{next(self._codes)}-refresh"
            self.refresh_tokens[refresh] = workspace
            return {
                "ok": True,
                "access_token": self._new_token(workspace, True),
                "refresh_token": refresh,
                "expires_in": 43200,
                "token_type": "bot",
                "team": {"id": workspace.team_id, "name": workspace.name},
            }
        grant = self.grants.pop(str(args.get("code")), None)
        if grant is None:
            return {"ok": False, "error": "invalid_code"}
        workspace, rotating = grant
        answer: dict[str, Any] = {
            "ok": True,
            "app_id": APP_ID,
            "authed_user": {"id": workspace.installer},
            "scope": "commands,chat:write,im:write,reactions:read,users:read,im:history,"
            "files:read,files:write",
            "token_type": "bot",
            "access_token": self._new_token(workspace, rotating),
            "bot_user_id": BOT_USER,
            "team": None if workspace.org else {"id": workspace.team_id, "name": workspace.name},
            "enterprise": (
                {"id": workspace.enterprise_id, "name": f"{workspace.name} org"}
                if workspace.enterprise_id
                else None
            ),
            "is_enterprise_install": workspace.org,
        }
        if rotating:
            refresh = f"xoxe-1-{workspace.key.lower()}-{next(self._codes)}-refresh"
            self.refresh_tokens[refresh] = workspace
            # Due at once: the first use of the token refreshes it.
            answer.update(refresh_token=refresh, expires_in=60)
        return answer

    def _answer(self, method: str, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        """The happy-path answer of each method paperbot uses."""
        if method == "auth.test":
            workspace = self.token_workspace.get(token or "") or Workspace(TEAM, "Papers Inc")
            return {
                "ok": True,
                "team": workspace.name,
                "team_id": None if workspace.org else workspace.team_id,
                "enterprise_id": workspace.enterprise_id,
                "is_enterprise_install": workspace.org,
                "user_id": BOT_USER,
                "user": "paperbot",
                "bot_id": "BPAPERS",
                "url": "https://papers.slack.com/",
            }
        if method == "users.info":
            user = str(args.get("user"))
            tz = self.timezones.get(user, self.default_tz)
            return {"ok": True, "user": {"id": user, "name": user.lower(), "tz": tz}}
        if method == "conversations.open":
            return {"ok": True, "channel": {"id": "D" + str(args.get("users"))}}
        if method == "chat.postMessage":
            ts = f"1700000000.{next(self._ts):06d}"
            message = {"ts": ts, "text": args.get("text")}
            metadata = args.get("metadata")
            if isinstance(metadata, str):
                metadata = json.loads(metadata)
            if metadata:
                message["metadata"] = metadata
            if args.get("thread_ts"):
                message["thread_ts"] = args["thread_ts"]
            self.posted.setdefault(str(args.get("channel")), []).append(message)
            return {"ok": True, "channel": args.get("channel"), "ts": ts, "message": message}
        if method in ("conversations.history", "conversations.replies"):
            messages = self.posted.get(str(args.get("channel")), [])
            if method == "conversations.replies":
                thread = args.get("ts")
                messages = [m for m in messages if thread in (m["ts"], m.get("thread_ts"))]
            else:
                messages = [m for m in messages if "thread_ts" not in m]
            limit = int(args.get("limit") or 100)
            shown = list(reversed(messages))[:limit]
            if str(args.get("include_all_metadata")).lower() not in ("true", "1"):
                shown = [{k: v for k, v in m.items() if k != "metadata"} for m in shown]
            return {"ok": True, "messages": shown, "has_more": len(messages) > limit}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": f"1700000001.{next(self._ts):06d}"}
        if method == "files.getUploadURLExternal":
            file_id = f"FUP{next(self._ts):06d}"
            return {"ok": True, "file_id": file_id, "upload_url": f"{self.base}/upload/{file_id}"}
        if method == "files.completeUploadExternal":
            files = args.get("files")
            files = json.loads(files) if isinstance(files, str) else files or []
            return {"ok": True, "files": [{"id": f["id"], "title": f.get("title")} for f in files]}
        if method == "apps.connections.open":
            return {"ok": True, "url": self.base.replace("http", "ws") + "/socket"}
        return {"ok": True}

    # -- Socket Mode -----------------------------------------------------------------------

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        """The Socket Mode websocket: hello, then envelopes we push; acks are recorded."""
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.socket = ws
        await ws.send_str(json.dumps({"type": "hello", "num_connections": 1}))
        assert self._socket_ready is not None
        self._socket_ready.set()
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                self.socket_acks.append(json.loads(message.data))
                await self._notify()
        return ws

    async def push(self, envelope: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
        """Send one Socket Mode envelope and return the app's acknowledgement of it."""
        assert self._socket_ready is not None and self._changed is not None
        await asyncio.wait_for(self._socket_ready.wait(), timeout)
        assert self.socket is not None
        await self.socket.send_str(json.dumps(envelope))
        envelope_id = envelope["envelope_id"]
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(
                    lambda: any(a.get("envelope_id") == envelope_id for a in self.socket_acks)
                ),
                timeout,
            )
        return next(a for a in self.socket_acks if a.get("envelope_id") == envelope_id)


def bound_port(site: web.TCPSite) -> int:
    """The port a site listening on port 0 was given."""
    server = site._server
    assert server is not None and server.sockets
    return int(server.sockets[0].getsockname()[1])


def _json(data: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None):
    """A JSON response as the Web API sends it."""
    return web.json_response(data, status=status, headers=headers)


# -- payloads Slack would send -------------------------------------------------------------


def command_body(
    text: str,
    response_url: str,
    *,
    user: str = "U1",
    team: str = TEAM,
    channel: str = "C1",
    channel_name: str = "papers",
    user_name: str = "ada",
    enterprise: str | None = None,
    org: bool = False,
) -> str:
    """A form-encoded `/papers` slash command (`org`: from an org-wide install)."""
    fields = {
        "token": "legacy-verification-token",
        "team_id": team,
        "team_domain": "papers",
        "channel_id": channel,
        "channel_name": channel_name,
        "user_id": user,
        "user_name": user_name,
        "command": "/papers",
        "text": text,
        "api_app_id": "APAPERS",
        "is_enterprise_install": "true" if org else "false",
        "response_url": response_url,
        "trigger_id": "123.456.abc",
    }
    if enterprise:
        fields["enterprise_id"] = enterprise
    return urllib.parse.urlencode(fields)


def button_body(
    action: dict[str, Any],
    response_url: str | None,
    *,
    user: str = "U1",
    team: str = TEAM,
    channel: str = "C1",
    message_ts: str = "1699999999.000001",
    view: bool = False,
) -> str:
    """A form-encoded `block_actions` payload for one clicked button (or menu choice: an
    action with `selected_option`)."""
    container: dict[str, Any]
    if view:
        container = {"type": "view", "view_id": "V1"}
    else:
        container = {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel,
            "is_ephemeral": False,
        }
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": team},
        "api_app_id": "APAPERS",
        "token": "legacy-verification-token",
        "container": container,
        "trigger_id": "123.456.abc",
        "team": {"id": team, "domain": "papers"},
        "enterprise": None,
        "is_enterprise_install": False,
        "actions": [
            # A menu choice carries the option picked; a button its value.
            {
                "action_id": action["action_id"],
                "block_id": action.get("block_id", "b1"),
                "selected_option": action["selected_option"],
                "type": "static_select",
                "action_ts": f"{time.time():.6f}",
            }
            if "selected_option" in action
            else {
                "action_id": action["action_id"],
                "block_id": action.get("block_id", "b1"),
                "text": action.get("text", {"type": "plain_text", "text": "x"}),
                "value": action["value"],
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    if not view:
        payload["channel"] = {"id": channel, "name": "papers"}
        payload["message"] = {"type": "message", "ts": message_ts, "text": "paper"}
    if response_url:
        payload["response_url"] = response_url
    return urllib.parse.urlencode({"payload": json.dumps(payload)})


def event_body(
    event: dict[str, Any],
    *,
    event_id: str,
    team: str = TEAM,
    enterprise: str | None = None,
    org: bool = False,
) -> str:
    """An Events API `event_callback` JSON body (`org`: to an org-wide install)."""
    authorization = {
        "team_id": None if org else team,
        "user_id": BOT_USER,
        "is_bot": True,
        "enterprise_id": enterprise,
        "is_enterprise_install": org,
    }
    body: dict[str, Any] = {
        "token": "legacy-verification-token",
        "team_id": team,
        "api_app_id": "APAPERS",
        "event": event,
        "type": "event_callback",
        "event_id": event_id,
        "event_time": int(time.time()),
        "authorizations": [authorization],
        "is_ext_shared_channel": False,
    }
    if enterprise:
        body["enterprise_id"] = enterprise
    return json.dumps(body)


def reaction_event(
    reaction: str, channel: str, ts: str, *, user: str = "U1", removed: bool = False
) -> dict[str, Any]:
    """A `reaction_added` / `reaction_removed` event on a message."""
    return {
        "type": "reaction_removed" if removed else "reaction_added",
        "user": user,
        "reaction": reaction,
        "item_user": BOT_USER,
        "item": {"type": "message", "channel": channel, "ts": ts},
        "event_ts": f"{time.time():.6f}",
    }


def buttons_in(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every button in a list of blocks, with the block_id it sits in."""
    out = []
    for block in blocks:
        if block.get("type") == "actions":
            for element in block["elements"]:
                out.append({**element, "block_id": block["block_id"]})
    return out


def texts_in(blocks: list[dict[str, Any]]) -> list[str]:
    """Every text string in a list of blocks (sections, headers, context, buttons)."""
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("text"), str):
                out.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(blocks)
    return out
