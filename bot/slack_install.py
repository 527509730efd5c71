"""Slack installations in Redis: Bolt's installation and OAuth state stores, and the list of
workspaces with their install / uninstall times.

Key layout (prefix `pb:`). A workspace's keys carry its id as a hash tag, so they share one
Redis Cluster slot; no command touches keys of two workspaces:

    pb:slack:{<ws>}:bot               string  JSON of the workspace's bot (token, refresh token)
    pb:slack:{<ws>}:installer         string  JSON of the latest installation
    pb:slack:{<ws>}:installer:<user>  string  JSON of the installation a given person made
    pb:slack:{<ws>}:installers        set     people with an installation record
    pb:slack:workspaces               hash    <ws> -> JSON record: name, installed / removed at
    pb:slack:org-teams                hash    workspace id -> its org, for org-wide installs
    pb:slack:state:{<state>}          string  an unused OAuth state (expires, single use)

`<ws>` is the workspace (team) id, or the Enterprise Grid org id for an org-wide install.
Tokens are stored as Slack hands them over and never logged.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, ParamSpec, TypeVar

import redis
from slack_bolt.error import BoltError
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore

from recommender.store import PREFIX, Store, StoreUnavailable

__all__ = [
    "RedisInstallationStore",
    "RedisOAuthStateStore",
    "WorkspaceRecord",
    "workspace_key",
]

log = logging.getLogger(__name__)

WORKSPACES = f"{PREFIX}slack:workspaces"
ORG_TEAMS = f"{PREFIX}slack:org-teams"
STATE_TTL = 600
_STATE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
_ID = re.compile(r"^[A-Z0-9]{2,40}$")
_P = ParamSpec("_P")
_T = TypeVar("_T")


def _redis_errors(method: Callable[_P, _T]) -> Callable[_P, _T]:
    """Redis connection failures as one `StoreUnavailable` line (the URL masked by the store)."""

    @functools.wraps(method)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        try:
            return method(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            owner = args[0]
            where = getattr(getattr(owner, "store", None), "where", "Redis")
            raise StoreUnavailable(f"cannot reach Redis at {where}: {type(exc).__name__}") from None

    return wrapper


def workspace_key(
    enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None = False
) -> str | None:
    """The id installations are kept under: the org for org-wide installs, else the workspace."""
    if is_enterprise_install or not team_id:
        return enterprise_id or None
    return team_id


def _key(ws: str, suffix: str) -> str:
    """A per-workspace key with a hash tag, e.g. `pb:slack:{T123}:bot`."""
    return f"{PREFIX}slack:{{{ws}}}:{suffix}"


def _dump(obj: Bot | Installation) -> str:
    """JSON of a Bolt model (its constructor arguments, as Bolt's own stores keep them)."""
    return json.dumps(obj.__dict__)


@dataclass(slots=True)
class WorkspaceRecord:
    """One workspace (or org) paperbot was installed in."""

    id: str
    name: str = ""
    enterprise_id: str | None = None
    org: bool = False
    installed_at: float = 0.0
    removed_at: float | None = None

    @property
    def installed(self) -> bool:
        """Whether the workspace has paperbot installed now."""
        return self.removed_at is None

    @classmethod
    def from_json(cls, raw: bytes | str) -> WorkspaceRecord:
        """Inverse of `to_json` (unknown fields ignored)."""
        data = json.loads(raw)
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)

    def to_json(self) -> str:
        """The stored form."""
        return json.dumps(asdict(self))


class RedisInstallationStore(AsyncInstallationStore):
    """Bolt's `AsyncInstallationStore` on the project's Redis: every process sees every install."""

    def __init__(self, store: Store, *, logger: logging.Logger | None = None) -> None:
        self.store = store
        self.r = store.r
        self._logger = logger or log
        # Org-wide installs: workspace -> org pairs this process already recorded.
        self._noted: set[tuple[str, str]] = set()

    @property
    def logger(self) -> logging.Logger:
        """The logger Bolt expects a store to have."""
        return self._logger

    # -- Bolt's interface ------------------------------------------------------------------

    async def async_save(self, installation: Installation) -> None:
        """Keep an installation (and its bot); a Redis failure becomes Bolt's storage error."""
        try:
            await asyncio.to_thread(self.save, installation)
        except StoreUnavailable as exc:
            raise BoltError(str(exc)) from None

    async def async_save_bot(self, bot: Bot) -> None:
        """Keep a bot (Bolt calls this after rotating its token)."""
        await asyncio.to_thread(self.save_bot, bot)

    async def async_find_bot(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        is_enterprise_install: bool | None = False,
    ) -> Bot | None:
        """The bot of a workspace or org, or None when paperbot is not installed there."""
        ws = workspace_key(enterprise_id, team_id, is_enterprise_install)
        return await asyncio.to_thread(self.bot, ws) if ws else None

    async def async_find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        """The latest installation of a workspace, or the one a given person made."""
        ws = workspace_key(enterprise_id, team_id, is_enterprise_install)
        if not ws:
            return None
        return await asyncio.to_thread(self.installation, ws, user_id)

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        """Forget a workspace's bot token: its digests stop at once."""
        ws = workspace_key(enterprise_id, team_id)
        if ws:
            await asyncio.to_thread(self.delete_bot, ws)

    async def async_delete_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
    ) -> None:
        """Forget one person's installation, or every installation record of a workspace."""
        ws = workspace_key(enterprise_id, team_id)
        if ws:
            await asyncio.to_thread(self.delete_installation, ws, user_id)

    # -- the same, synchronously (digests and the purge job run in threads) ---------------------

    @_redis_errors
    def save(self, installation: Installation) -> None:
        """Keep an installation and its bot in one transaction on the workspace's slot."""
        ws = workspace_key(
            installation.enterprise_id, installation.team_id, installation.is_enterprise_install
        )
        if not ws or not _ID.match(ws):
            raise BoltError("Slack sent an installation without a valid workspace id")
        pipe = self.r.pipeline(transaction=True)
        if installation.bot_token:
            pipe.set(_key(ws, "bot"), _dump(installation.to_bot()))
        pipe.set(_key(ws, "installer"), _dump(installation))
        if installation.user_id:
            pipe.set(_key(ws, f"installer:{installation.user_id}"), _dump(installation))
            pipe.sadd(_key(ws, "installers"), installation.user_id)
        pipe.execute()
        if installation.bot_token:
            self._installed(
                ws,
                name=installation.team_name or installation.enterprise_name or "",
                enterprise_id=installation.enterprise_id,
                org=bool(installation.is_enterprise_install),
            )

    @_redis_errors
    def save_bot(self, bot: Bot) -> None:
        """Keep a bot (a rotated token replaces the old one)."""
        ws = workspace_key(bot.enterprise_id, bot.team_id, bot.is_enterprise_install)
        if not ws or not bot.bot_token:
            return
        self.r.set(_key(ws, "bot"), _dump(bot))

    @_redis_errors
    def bot(self, ws: str) -> Bot | None:
        """The bot installed in workspace (or org) `ws`, or None."""
        raw = self.r.get(_key(ws, "bot"))
        return Bot(**json.loads(raw)) if raw else None

    @_redis_errors
    def installation(self, ws: str, user_id: str | None = None) -> Installation | None:
        """An installation record, its bot fields from the current bot (tokens rotate)."""
        suffix = f"installer:{user_id}" if user_id else "installer"
        pipe = self.r.pipeline(transaction=True)
        pipe.get(_key(ws, suffix))
        pipe.get(_key(ws, "bot"))
        raw, raw_bot = pipe.execute()
        if not raw:
            return None
        installation = Installation(**json.loads(raw))
        bot = Bot(**json.loads(raw_bot)) if raw_bot else None
        if bot is None:
            # Without a bot the record holds no usable bot token (revoked): never hand it out.
            installation.bot_token = None
            installation.bot_refresh_token = None
            installation.bot_token_expires_at = None
        elif installation.bot_token != bot.bot_token:
            installation.bot_id = bot.bot_id
            installation.bot_user_id = bot.bot_user_id
            installation.bot_token = bot.bot_token
            installation.bot_scopes = bot.bot_scopes
            installation.bot_refresh_token = bot.bot_refresh_token
            installation.bot_token_expires_at = bot.bot_token_expires_at
        return installation

    @_redis_errors
    def delete_bot(self, ws: str) -> bool:
        """Delete a workspace's bot; True if there was one (the workspace is then uninstalled)."""
        gone = bool(self.r.delete(_key(ws, "bot")))
        if gone:
            self._removed(ws)
        return gone

    @_redis_errors
    def delete_installation(self, ws: str, user_id: str | None = None) -> int:
        """Delete one person's installation record, or all of a workspace's; returns how many."""
        people = (
            [user_id] if user_id else [m.decode() for m in self.r.smembers(_key(ws, "installers"))]
        )
        keys = [_key(ws, f"installer:{u}") for u in people]
        if not user_id:
            keys.append(_key(ws, "installer"))
        # One transaction on one slot: every key carries the workspace's hash tag.
        pipe = self.r.pipeline(transaction=True)
        pipe.delete(*keys)
        if people:
            pipe.srem(_key(ws, "installers"), *people)
        return int(pipe.execute()[0])

    # -- which workspaces have paperbot --------------------------------------------------------

    @_redis_errors
    def bot_for_team(self, team: str) -> Bot | None:
        """The bot that serves workspace `team`: its own install, or its org's org-wide one."""
        bot = self.bot(team)
        if bot is not None:
            return bot
        org = self.r.hget(ORG_TEAMS, team)
        return self.bot(org.decode()) if org else None

    @_redis_errors
    def serves(self, team: str) -> bool:
        """Whether workspace `team` has paperbot installed (its digests may go out)."""
        if self.r.exists(_key(team, "bot")):
            return True
        org = self.r.hget(ORG_TEAMS, team)
        return bool(org) and bool(self.r.exists(_key(org.decode(), "bot")))

    @_redis_errors
    def note_org_team(self, team: str, enterprise_id: str) -> None:
        """Remember that workspace `team` is served by the org-wide install of its org."""
        if (team, enterprise_id) in self._noted:
            return
        if not (_ID.match(team) and _ID.match(enterprise_id)):
            return
        self.r.hset(ORG_TEAMS, team, enterprise_id)
        self._noted.add((team, enterprise_id))

    @_redis_errors
    def org_teams(self, enterprise_id: str) -> list[str]:
        """Workspaces seen using an org's org-wide install."""
        raw = self.r.hgetall(ORG_TEAMS)
        return sorted(k.decode() for k, v in raw.items() if v.decode() == enterprise_id)

    @_redis_errors
    def forget_org_teams(self, teams: list[str]) -> None:
        """Drop workspace -> org entries (after an org's data was deleted)."""
        if teams:
            self.r.hdel(ORG_TEAMS, *teams)

    @_redis_errors
    def workspaces(self) -> list[WorkspaceRecord]:
        """Every workspace paperbot was ever installed in and has data of, by id."""
        raw = self.r.hgetall(WORKSPACES)
        return sorted((WorkspaceRecord.from_json(v) for v in raw.values()), key=lambda w: w.id)

    @_redis_errors
    def workspace(self, ws: str) -> WorkspaceRecord | None:
        """One workspace's record, or None."""
        raw = self.r.hget(WORKSPACES, ws)
        return WorkspaceRecord.from_json(raw) if raw else None

    @_redis_errors
    def drop_workspace(self, ws: str) -> None:
        """Remove a workspace's record (after its data was deleted)."""
        self.r.hdel(WORKSPACES, ws)

    def _installed(self, ws: str, *, name: str, enterprise_id: str | None, org: bool) -> None:
        """Record an install (a reinstall cancels a pending deletion)."""
        record = self.workspace(ws) or WorkspaceRecord(id=ws)
        again = record.removed_at is not None
        record.name = name or record.name
        record.enterprise_id = enterprise_id
        record.org = org
        record.installed_at = time.time()
        record.removed_at = None
        self.r.hset(WORKSPACES, ws, record.to_json())
        log.info("slack: paperbot %sinstalled in %s %s", "re" if again else "", _kind(org), ws)

    def _removed(self, ws: str) -> None:
        """Record an uninstall: digests stop now, data goes after the grace period."""
        record = self.workspace(ws) or WorkspaceRecord(id=ws)
        if record.removed_at is None:
            record.removed_at = time.time()
            self.r.hset(WORKSPACES, ws, record.to_json())
            log.info(
                "slack: paperbot uninstalled from %s %s; its digests stopped", _kind(record.org), ws
            )


class RedisOAuthStateStore(AsyncOAuthStateStore):
    """OAuth `state` values in Redis: random, single use, expiring; any replica can check one."""

    def __init__(
        self,
        store: Store,
        *,
        expiration_seconds: int = STATE_TTL,
        logger: logging.Logger | None = None,
    ) -> None:
        self.store = store
        self.r = store.r
        self.expiration_seconds = expiration_seconds
        self._logger = logger or log

    @property
    def logger(self) -> logging.Logger:
        """The logger Bolt expects a store to have."""
        return self._logger

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        """A new state, valid for `expiration_seconds`."""
        state = secrets.token_urlsafe(32)
        await asyncio.to_thread(self._issue, state)
        return state

    async def async_consume(self, state: str) -> bool:
        """True once for a state that was issued and has not expired; False ever after."""
        if not isinstance(state, str) or not _STATE.match(state):
            return False
        try:
            return await asyncio.to_thread(self._consume, state)
        except StoreUnavailable as exc:
            self._logger.error("slack: could not check an install's state: %s", exc)
            return False

    @_redis_errors
    def _issue(self, state: str) -> None:
        """Store a state with its expiry."""
        self.r.set(_state_key(state), b"1", ex=self.expiration_seconds, nx=True)

    @_redis_errors
    def _consume(self, state: str) -> bool:
        """Delete a state; only the caller that deleted it gets True (DEL is atomic)."""
        return bool(self.r.delete(_state_key(state)))


def _state_key(state: str) -> str:
    """Where one state lives."""
    return f"{PREFIX}slack:state:{{{state}}}"


def _kind(org: bool) -> str:
    """`org` or `workspace`, for log lines."""
    return "org" if org else "workspace"
