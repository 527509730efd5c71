"""A digest fan-out on real processes: a rate-limited fake Slack, due subscribers, workers.

Shared by the fan-out, kill and restart tests and by `bench/fanout_bench.py`.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web
from slack_sdk.oauth.installation_store.models.installation import Installation

from bot.repo import ChatRepo
from bot.slack_install import RedisInstallationStore
from bot.subscriptions import Subscription, subscription_id
from recommender import pipeline
from recommender.store import Store
from tests.e2e.slack_fakes import (
    APP_ID,
    BOT_TOKEN,
    BOT_USER,
    CLIENT_ID,
    CLIENT_SECRET,
    SIGNING_SECRET,
    TEAM,
    FakeSlack,
    Workspace,
    _json,
)

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "tests" / "fixtures" / "seed_papers.jsonl"
_T = TypeVar("_T")


@dataclass
class RateLimitedSlack(FakeSlack):
    """The fake Web API answering every call after `latency` seconds, and enforcing Slack's
    `chat.postMessage` limits in whole-second windows: `channel_rate` per channel and
    `workspace_rate` per workspace (429 with Retry-After beyond).

    The workspace of a post is its token's; a post to a channel of another workspace (as
    `channel_owner` records it) is counted in `foreign` and refused as Slack refuses it."""

    latency: float = 0.1
    channel_rate: int = 1
    workspace_rate: int = 50
    retry_after: int = 1
    limited: int = 0
    post_times: list[float] = field(default_factory=list)
    # (when, HTTP status) of every post that got past the limits (queued failures included).
    answered: list[tuple[float, int]] = field(default_factory=list)
    # Accepted posts per workspace (the token's), and posts carrying another workspace's token.
    workspace_times: dict[str, list[float]] = field(default_factory=dict)
    foreign: int = 0
    _windows: dict[tuple[str, int], int] = field(default_factory=dict)

    async def _api(self, request: web.Request) -> web.Response:
        """Delay every call; refuse posts beyond the limits; else answer as the fake does."""
        if request.match_info["method"] == "chat.postMessage":
            channel, team = await self._who(request)
            if self.channel_owner.get(channel, team) != team:
                self.foreign += 1
            second = int(time.time())
            keys = [(f"ch:{channel}", second), (f"ws:{team}", second)]
            limits = [self.channel_rate, self.workspace_rate]
            if any(self._windows.get(k, 0) >= n for k, n in zip(keys, limits, strict=True)):
                self.limited += 1
                await asyncio.sleep(self.latency)
                headers = {"Retry-After": str(self.retry_after)}
                return _json({"ok": False, "error": "ratelimited"}, status=429, headers=headers)
            for key in keys:
                self._windows[key] = self._windows.get(key, 0) + 1
            await asyncio.sleep(self.latency)
            answer = await super()._api(_Reread(request))  # type: ignore[arg-type]
            self.answered.append((time.time(), answer.status))
            if answer.status == 200:
                now = time.time()
                self.post_times.append(now)
                self.workspace_times.setdefault(team, []).append(now)
            return answer
        await asyncio.sleep(self.latency)
        return await super()._api(request)

    async def _who(self, request: web.Request) -> tuple[str, str]:
        """The channel a post goes to and the workspace of its token."""
        raw = await request.text()
        if request.content_type == "application/json":
            args = json.loads(raw or "{}")
        else:
            args = dict(urllib.parse.parse_qsl(raw))
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        workspace = self.token_workspace.get(token)
        return str(args.get("channel")), workspace.team_id if workspace else "?"

    def posts(self) -> int:
        """Messages posted (accepted) so far."""
        return len(self.post_times)


class _Reread:
    """A request whose body was read already: the fake reads it again (aiohttp caches it)."""

    can_read_body = True

    def __init__(self, request: web.Request) -> None:
        self._request = request

    def __getattr__(self, name: str) -> Any:
        return getattr(self._request, name)


class Served:
    """A fake running on its own event loop in a background thread."""

    def __init__(self, fake: FakeSlack) -> None:
        self.fake = fake
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.base = self.run(fake.start())

    def run(self, coro: Coroutine[Any, Any, _T], timeout: float = 30) -> _T:
        """Run a coroutine on the fake's loop."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def api_url(self) -> str:
        """The Web API base URL for SLACK_API_URL."""
        return self.base + "/api/"

    def stop(self) -> None:
        """Stop the fake and its loop."""
        self.run(self.fake.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def seed(
    store: Store,
    subscribers: int,
    *,
    teams: Sequence[str] = (TEAM,),
    size: int = 5,
    prefix: str = "U",
) -> dict[str, str]:
    """The sample papers, and `subscribers` DM subscriptions due this minute (UTC), spread
    over `teams`; returns subscription id -> the period due now."""
    pipeline.ingest_source(store, "jsonl", body=SEED.read_bytes(), label="seed")
    now = datetime.now(UTC)
    slot = now - timedelta(minutes=1)
    at = slot.strftime("%H:%M")
    chat = ChatRepo(store)
    periods = {}
    for i in range(subscribers):
        team = teams[i % len(teams)]
        user = f"{prefix}{i:06d}"
        sub = Subscription(
            id=subscription_id("dm", "slack", team, user),
            kind="dm",
            platform="slack",
            workspace=team,
            target=user,
            owner=f"slack:{team}:{user}",
            at=at,
            size=size,
            created=(now - timedelta(days=2)).timestamp(),
        )
        chat.put_subscription(sub.id, sub.to_dict())
        periods[sub.id] = slot.date().isoformat()
    return periods


def teams_for(count: int) -> tuple[str, ...]:
    """Team ids of `count` workspaces: the single-token workspace alone when `count` is 1."""
    if count == 1:
        return (TEAM,)
    return tuple(f"T0FAN{i:03d}" for i in range(1, count + 1))


def install(store: Store, fake: FakeSlack, teams: Sequence[str]) -> dict[str, str]:
    """Each workspace installed, as Bolt's install flow saves it, with a bot token of its own
    that the fake knows; returns team id -> token."""
    installs = RedisInstallationStore(store)
    tokens = {}
    for team in teams:
        token = f"xoxb-{team.lower()}-fanout-secretpart"
        fake.tokens.add(token)
        fake.token_workspace[token] = Workspace(team, f"Workspace {team}")
        installs.save(
            Installation(
                app_id=APP_ID,
                team_id=team,
                team_name=f"Workspace {team}",
                bot_token=token,
                bot_id="BPAPERS",
                bot_user_id=BOT_USER,
                user_id="UINSTALLER",
            )
        )
        tokens[team] = token
    return tokens


def claim_dms(fake: FakeSlack, periods: dict[str, str]) -> None:
    """Each subscriber's DM belongs to the subscriber's workspace: a post there with another
    workspace's token is refused (and counted by `RateLimitedSlack`)."""
    for sub_id in periods:
        _, _, team, user = sub_id.split(":")
        fake.channel_owner["D" + user] = team


def sent_count(store: Store, periods: dict[str, str]) -> int:
    """Digests whose `sent` marker is set (every message of them posted)."""
    pipe = store.r.pipeline(transaction=False)
    for sub_id, period in periods.items():
        pipe.exists(f"pb:once:sent:{sub_id}:{period}")
    return sum(pipe.execute())


def tally(fake: FakeSlack, periods: dict[str, str]) -> dict[str, int]:
    """Lost digests (no intro), duplicated messages and messages posted, from the fake."""
    lost = duplicated = messages = 0
    for sub_id in periods:
        user = sub_id.rsplit(":", 1)[-1]
        posted = fake.posted.get("D" + user, [])
        keys = [m["metadata"]["event_payload"]["key"] for m in posted if m.get("metadata")]
        messages += len(posted)
        duplicated += len(keys) - len(set(keys))
        if not keys:
            lost += 1
    return {"lost": lost, "duplicated": duplicated, "messages": messages}


def env_for(
    redis_url: str,
    api_url: str,
    data_dir: Path,
    *,
    workspace_rate: int = 50,
    http_port: int | None = None,
    install_flow: bool = False,
) -> dict[str, str]:
    """The environment of a paperbot process talking to the fake with one bot token, or with
    `install_flow` for many workspaces (each one's token from the installation store)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DISCORD_"))}
    env.update(
        REDIS_URL=redis_url,
        SLACK_API_URL=api_url,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        PAPERBOT_SLACK_WORKSPACE_RATE=str(workspace_rate),
        PAPERBOT_EMBEDDINGS="0",
        PAPERBOT_DATA_DIR=str(data_dir),
        PAPERBOT_SOURCES="jsonl",
        PAPERBOT_JSONL_PATH=str(SEED),
        PAPERBOT_LOG_LEVEL="INFO",
        PAPERBOT_HTTP_PORT=str(http_port or free_port()),
        OPENBLAS_NUM_THREADS="1",
        OMP_NUM_THREADS="1",
    )
    if install_flow:
        env.update(SLACK_CLIENT_ID=CLIENT_ID, SLACK_CLIENT_SECRET=CLIENT_SECRET)
    else:
        env.update(SLACK_BOT_TOKEN=BOT_TOKEN)
    return env


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(role: Sequence[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """Start `python -m bot <role…>` with its output in `log`."""
    out = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "bot", *role],
        env=env,
        cwd=str(ROOT),
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen, *, kill: bool = False, timeout: float = 20) -> None:
    """SIGTERM (or SIGKILL) a process and wait for it."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def wait_until(check: Any, timeout: float, step: float = 0.1) -> bool:
    """Poll `check()` until true or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(step)
    return bool(check())
