"""A local fake Discord (REST + gateway on aiohttp, port 0) that records what the bot sends."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

APP_ID = "1100000000000000001"
BOT_ID = APP_ID
BOT_USER = {
    "id": BOT_ID,
    "username": "paperbot",
    "discriminator": "0",
    "global_name": "paperbot",
    "avatar": None,
    "bot": True,
    "flags": 0,
}
WAIT = 20.0  # seconds a test waits for the bot to do something before failing


def user(user_id: str, name: str = "ann") -> dict[str, Any]:
    """A Discord user object."""
    return {
        "id": user_id,
        "username": name,
        "discriminator": "0",
        "global_name": name.title(),
        "avatar": None,
    }


@dataclass
class Call:
    """One REST request the bot made."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    files: dict[str, bytes] = field(default_factory=dict)


@dataclass
class Upload:
    """A file attached to a slash command option (`size` may claim more than `data`)."""

    filename: str
    data: bytes
    size: int | None = None


class FakeDiscord:
    """Discord's REST API and gateway, just enough for discord.py 2.7."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.identifies: list[dict[str, Any]] = []
        self.commands: list[dict[str, Any]] = []
        self.callbacks: dict[str, list[dict[str, Any]]] = {}
        self.followups: dict[str, list[dict[str, Any]]] = {}
        # Follow-ups as the message objects Discord returned (for clicking their buttons).
        self.followup_messages: dict[str, list[dict[str, Any]]] = {}
        self._interaction_channels: dict[str, str] = {}
        self.messages: dict[str, list[dict[str, Any]]] = {}
        self.dm_channels: dict[str, str] = {}
        # channel id -> (status, body) the next sends to it fail with.
        self.failures: dict[str, tuple[int, dict[str, Any], dict[str, str]]] = {}
        # channel id -> faults for the next sends: (status, commit first, delay seconds).
        self.faults: dict[str, list[tuple[int, bool, float]]] = {}
        # (channel, nonce) -> the message an enforced nonce already created.
        self.nonces: dict[tuple[str, str], dict[str, Any]] = {}
        self.sockets: list[web.WebSocketResponse] = []
        # The (shard id, shard count) each socket identified with (absent: unsharded).
        self.shard_of: dict[int, tuple[int, int]] = {}
        # (event, shard id or None) for every dispatch, in order.
        self.dispatched: list[tuple[str, int | None]] = []
        self._ids = itertools.count(1200000000000000000)
        self._seq = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port = 0
        # Files people attached to a command (attachment id -> bytes), and downloads of them.
        self.uploads: dict[str, bytes] = {}
        self.downloaded: list[str] = []

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Serve on 127.0.0.1 on a free port."""
        app = web.Application()
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._rest)
        app.router.add_get("/attachments/{aid}/{name}", self._attachment)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        """Close every socket and the server."""
        for ws in list(self.sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        """REST base for DISCORD_API_URL."""
        return f"http://127.0.0.1:{self.port}/api/v10"

    @property
    def gateway_url(self) -> str:
        """WebSocket URL for DISCORD_GATEWAY_URL."""
        return f"ws://127.0.0.1:{self.port}/gateway"

    def snowflake(self) -> str:
        """A fresh id."""
        return str(next(self._ids))

    # -- helpers for tests ------------------------------------------------------------------

    async def wait_for(self, predicate: Callable[[], Any], what: str = "the bot") -> Any:
        """Poll until `predicate()` is truthy (the bot works in the background)."""
        deadline = asyncio.get_running_loop().time() + WAIT
        while True:
            value = predicate()
            if value:
                return value
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.02)

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send a gateway DISPATCH to the clients that get it, as Discord routes events.

        A sharded connection gets a guild's events only if it holds the guild's shard,
        (guild_id >> 22) % shard_count, and DMs only on shard 0; an unsharded one gets all.
        """
        assert self.sockets, "no gateway connection"
        frame = {"op": 0, "t": event, "s": next(self._seq), "d": data}
        guild = data.get("guild_id") if isinstance(data, dict) else None
        for ws in self.sockets:
            shard = self.shard_of.get(id(ws))
            if shard is not None:
                wanted = (int(guild) >> 22) % shard[1] if guild else 0
                if shard[0] != wanted:
                    continue
            self.dispatched.append((event, shard[0] if shard else None))
            await ws.send_str(json.dumps(frame))

    def command_syncs(self) -> int:
        """How many times the bot published its application commands."""
        return sum(
            1
            for c in self.calls
            if c.method == "PUT" and c.path.startswith("/applications/")
            and c.path.endswith("/commands")
        )

    def interaction(
        self,
        kind: int,
        data: dict[str, Any],
        *,
        user_id: str,
        channel_id: str,
        guild_id: str | None = None,
        message: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """An INTERACTION_CREATE payload from a guild channel or a DM."""
        iid = self.snowflake()
        person = user(user_id)
        payload: dict[str, Any] = {
            "id": iid,
            "application_id": APP_ID,
            "type": kind,
            "data": data,
            "token": f"token-{iid}",
            "version": 1,
            "locale": "en-US",
            "attachment_size_limit": 10 * 1024 * 1024,
            "app_permissions": "0",
            "entitlements": [],
            "channel_id": channel_id,
        }
        if guild_id:
            payload["guild_id"] = guild_id
            payload["context"] = 0
            payload["authorizing_integration_owners"] = {"0": guild_id}
            payload["member"] = {
                "user": person,
                "roles": [],
                "joined_at": "2025-01-01T00:00:00+00:00",
                "deaf": False,
                "mute": False,
                "flags": 0,
                "permissions": "2147483647",
            }
            payload["channel"] = {
                "id": channel_id,
                "type": 0,
                "guild_id": guild_id,
                "name": "papers",
                "position": 0,
                "permission_overwrites": [],
                "nsfw": False,
                "parent_id": None,
            }
        else:
            payload["context"] = 1
            payload["authorizing_integration_owners"] = {"1": user_id}
            payload["user"] = person
            payload["channel"] = {"id": channel_id, "type": 1, "recipients": [person]}
        if message is not None:
            payload["message"] = message
        self._interaction_channels[payload["token"]] = channel_id
        return payload

    async def slash(
        self,
        sub: str,
        options: dict[str, Any] | None = None,
        *,
        user_id: str,
        channel_id: str,
        guild_id: str | None = None,
        focused: str | None = None,
    ) -> str:
        """Dispatch `/papers <sub> …` (or its autocomplete when `focused`); returns the token."""
        opts = []
        resolved: dict[str, Any] = {}
        for name, value in (options or {}).items():
            if isinstance(value, Upload):
                # An attachment option: its value is an id, the file itself is "resolved".
                aid = self.snowflake()
                self.uploads[aid] = value.data
                resolved.setdefault("attachments", {})[aid] = {
                    "id": aid,
                    "filename": value.filename,
                    "size": value.size if value.size is not None else len(value.data),
                    "url": f"http://127.0.0.1:{self.port}/attachments/{aid}/{value.filename}",
                    "proxy_url": f"http://127.0.0.1:{self.port}/attachments/{aid}/{value.filename}",
                    "content_type": "application/x-bibtex",
                }
                opts.append({"name": name, "type": 11, "value": aid})
                continue
            kind = 5 if isinstance(value, bool) else 3
            option = {"name": name, "type": kind, "value": value}
            if name == focused:
                option["focused"] = True
            opts.append(option)
        command = self._command_id("papers")
        data = {
            "id": command,
            "name": "papers",
            "type": 1,
            "options": [{"name": sub, "type": 1, "options": opts}],
        }
        if resolved:
            data["resolved"] = resolved
        if guild_id:
            data["guild_id"] = guild_id
        payload = self.interaction(
            4 if focused else 2, data, user_id=user_id, channel_id=channel_id, guild_id=guild_id
        )
        await self.dispatch("INTERACTION_CREATE", payload)
        return payload["token"]

    async def click(
        self,
        message: dict[str, Any],
        custom_id: str,
        *,
        user_id: str,
        guild_id: str | None = None,
    ) -> str:
        """Dispatch a button click on a message the bot sent; returns the token."""
        payload = self.interaction(
            3,
            {"custom_id": custom_id, "component_type": 2},
            user_id=user_id,
            channel_id=message["channel_id"],
            guild_id=guild_id,
            message=message,
        )
        await self.dispatch("INTERACTION_CREATE", payload)
        return payload["token"]

    async def choose(
        self,
        message: dict[str, Any],
        custom_id: str,
        values: list[str],
        *,
        user_id: str,
        guild_id: str | None = None,
    ) -> str:
        """Dispatch a choice in a select menu of a message the bot sent; returns the token."""
        payload = self.interaction(
            3,
            {"custom_id": custom_id, "component_type": 3, "values": values},
            user_id=user_id,
            channel_id=message["channel_id"],
            guild_id=guild_id,
            message=message,
        )
        await self.dispatch("INTERACTION_CREATE", payload)
        return payload["token"]

    async def react(
        self,
        message: dict[str, Any],
        emoji: str,
        *,
        user_id: str,
        guild_id: str | None = None,
        removed: bool = False,
    ) -> None:
        """Dispatch MESSAGE_REACTION_ADD / _REMOVE."""
        data: dict[str, Any] = {
            "user_id": user_id,
            "channel_id": message["channel_id"],
            "message_id": message["id"],
            "emoji": {"id": None, "name": emoji},
            "burst": False,
            "type": 0,
        }
        if guild_id:
            data["guild_id"] = guild_id
            if not removed:
                data["member"] = {
                    "user": user(user_id),
                    "roles": [],
                    "joined_at": "2025-01-01T00:00:00+00:00",
                    "deaf": False,
                    "mute": False,
                    "flags": 0,
                }
        event = "MESSAGE_REACTION_REMOVE" if removed else "MESSAGE_REACTION_ADD"
        await self.dispatch(event, data)

    async def answers(self, token: str, count: int = 1) -> list[dict[str, Any]]:
        """Wait for `count` follow-up messages of an interaction and return them."""
        return await self.wait_for(
            lambda: (
                self.followups.get(token, [])[:count]
                if len(self.followups.get(token, [])) >= count
                else None
            ),
            f"{count} follow-up(s) to {token}",
        )

    def _command_id(self, name: str) -> str:
        """The id the synced command got (any id when not synced)."""
        for command in self.commands:
            if command["name"] == name:
                return command["id"]
        return "1"

    async def _attachment(self, request: web.Request) -> web.Response:
        """The CDN URL of an attached file."""
        aid = request.match_info["aid"]
        self.downloaded.append(aid)
        if aid not in self.uploads:
            return web.Response(status=404)
        return web.Response(body=self.uploads[aid], content_type="application/octet-stream")

    # -- REST -----------------------------------------------------------------------------

    async def _rest(self, request: web.Request) -> web.Response:
        """Route one REST call, recording it."""
        path = "/" + request.match_info["tail"]
        body, files = await _read_body(request)
        call = Call(request.method, path, dict(request.query), body, files)
        self.calls.append(call)
        parts = path.strip("/").split("/")
        method = request.method
        if path == "/users/@me" and method == "GET":
            return _json(BOT_USER)
        if path == "/oauth2/applications/@me":
            return _json(
                {
                    "id": APP_ID,
                    "name": "paperbot",
                    "description": "",
                    "icon": None,
                    "bot_public": True,
                    "bot_require_code_grant": False,
                    "owner": user("1100000000000000009", "owner"),
                    "verify_key": "0" * 64,
                    "flags": 0,
                }
            )
        if path in ("/gateway", "/gateway/bot"):
            return _json(
                {
                    "url": f"ws://127.0.0.1:{self.port}/gateway",
                    "shards": 1,
                    "session_start_limit": {
                        "total": 1000,
                        "remaining": 1000,
                        "reset_after": 0,
                        "max_concurrency": 1,
                    },
                }
            )
        if parts[:1] == ["applications"] and parts[-1] == "commands" and method == "PUT":
            self.commands = [
                {**c, "id": self.snowflake(), "application_id": APP_ID, "version": "1"}
                for c in body
            ]
            return _json(self.commands)
        if parts[:1] == ["interactions"] and parts[-1] == "callback":
            token = parts[2]
            self.callbacks.setdefault(token, []).append(body)
            loading = body.get("type") == 5
            ephemeral = bool((body.get("data") or {}).get("flags", 0) & 64)
            return _json(
                {
                    "interaction": {
                        "id": parts[1],
                        "type": 2,
                        "response_message_loading": loading,
                        "response_message_ephemeral": ephemeral,
                    },
                    "resource": {"type": body.get("type", 4)},
                }
            )
        if parts[:1] == ["webhooks"] and len(parts) == 3 and method == "POST":
            token = parts[2]
            channel = self._interaction_channels.get(token, "0")
            message = self._message(body, channel_id=channel, webhook=True)
            self.followup_messages.setdefault(token, []).append(message)
            self.followups.setdefault(token, []).append(body)
            return _json(message)
        if parts[:1] == ["webhooks"] and "messages" in parts:
            return _json(self._message(body or {}, channel_id="0", webhook=True))
        if path == "/users/@me/channels" and method == "POST":
            recipient = str(body["recipient_id"])
            channel = self.dm_channels.setdefault(recipient, self.snowflake())
            return _json(
                {
                    "id": channel,
                    "type": 1,
                    "recipients": [user(recipient)],
                    "last_message_id": None,
                }
            )
        if parts[:1] == ["channels"] and parts[-1] == "messages" and method == "POST":
            channel = parts[1]
            if channel in self.failures:
                status, error, headers = self.failures[channel]
                return _json(error, status=status, headers=headers)
            nonce = body.get("nonce") if body.get("enforce_nonce") else None
            if nonce and (channel, str(nonce)) in self.nonces:
                # Discord answers a repeated enforced nonce with the message it made.
                existing = self.nonces[(channel, str(nonce))]
                return _json({k: v for k, v in existing.items() if k != "request"})
            fault = self.faults[channel].pop(0) if self.faults.get(channel) else None
            if fault is None or fault[1]:
                message = self._message(body, channel_id=channel)
                message["request"] = body
                if nonce:
                    message["nonce"] = str(nonce)
                    self.nonces[(channel, str(nonce))] = message
                self.messages.setdefault(channel, []).append(message)
            if fault is not None:
                status, _commit, delay = fault
                if delay:
                    await asyncio.sleep(delay)
                return _json({"message": "Internal Server Error", "code": 0}, status=status)
            return _json({k: v for k, v in message.items() if k != "request"})
        return _json({"message": "404: Not Found", "code": 0}, status=404)

    def _message(
        self, body: dict[str, Any], *, channel_id: str, webhook: bool = False
    ) -> dict[str, Any]:
        """The message object Discord returns for a send."""
        message = {
            "id": self.snowflake(),
            "channel_id": channel_id,
            "type": 0,
            "content": body.get("content") or "",
            "embeds": body.get("embeds") or [],
            "components": body.get("components") or [],
            "author": BOT_USER,
            "attachments": [],
            "mentions": [],
            "mention_roles": [],
            "mention_everyone": False,
            "pinned": False,
            "tts": False,
            "timestamp": "2026-01-05T09:00:00+00:00",
            "edited_timestamp": None,
            "flags": body.get("flags") or 0,
        }
        if webhook:
            message["webhook_id"] = APP_ID
            message["application_id"] = APP_ID
        return message

    # -- gateway ----------------------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        """HELLO, IDENTIFY -> READY, heartbeats; events come from `dispatch`."""
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": 45000}}))
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                continue
            frame = json.loads(msg.data)
            op = frame.get("op")
            if op == 1:
                await ws.send_str(json.dumps({"op": 11}))
            elif op == 2:
                self.identifies.append(frame["d"])
                shard = frame["d"].get("shard")
                if shard:
                    self.shard_of[id(ws)] = (int(shard[0]), int(shard[1]))
                self.sockets.append(ws)
                ready = {
                    "v": 10,
                    "user": BOT_USER,
                    "guilds": [],
                    "session_id": "session-1",
                    "resume_gateway_url": self.gateway_url,
                    "shard": list(shard) if shard else [0, 1],
                    "application": {"id": APP_ID, "flags": 0},
                }
                await ws.send_str(
                    json.dumps({"op": 0, "t": "READY", "s": next(self._seq), "d": ready})
                )
            elif op == 6:
                await ws.send_str(json.dumps({"op": 9, "d": False}))
        if ws in self.sockets:
            self.sockets.remove(ws)
        return ws


async def _read_body(request: web.Request) -> tuple[Any, dict[str, bytes]]:
    """JSON body, or a multipart form's `payload_json` plus its files."""
    if request.content_type.startswith("multipart/"):
        body: Any = {}
        files: dict[str, bytes] = {}
        reader = await request.multipart()
        async for part in reader:
            if part.name == "payload_json":
                body = json.loads(await part.text())  # type: ignore[union-attr]
            else:
                files[part.filename or part.name or "file"] = await part.read()  # type: ignore[union-attr]
        return body, files
    raw = await request.read()
    return (json.loads(raw) if raw else None), {}


def _json(data: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON response whose Content-Type is exactly `application/json` (discord.py checks)."""
    return web.Response(
        body=json.dumps(data).encode(),
        status=status,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
