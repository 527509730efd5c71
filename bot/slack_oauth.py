"""Slack for many workspaces: Bolt's OAuth flow wired to Redis, per-workspace Web API clients,
clear install error pages, and a log filter that keeps codes and tokens out of the logs."""

from __future__ import annotations

import asyncio
import html
import logging
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any

from slack_bolt.authorization import AuthorizeResult
from slack_bolt.authorization.async_authorize import AsyncInstallationStoreAuthorize
from slack_bolt.oauth.async_callback_options import (
    AsyncCallbackOptions,
    AsyncFailureArgs,
    AsyncSuccessArgs,
)
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackTokenRotationError
from slack_sdk.oauth.token_rotation.async_rotator import AsyncTokenRotator
from slack_sdk.web.async_client import AsyncWebClient

from bot.ports import DeliveryError
from bot.slack_install import RedisInstallationStore, RedisOAuthStateStore
from recommender.store import StoreUnavailable

__all__ = [
    "BOT_SCOPES",
    "INSTALL_PATH",
    "REDIRECT_PATH",
    "InstallConfig",
    "RedactSecrets",
    "WorkspaceClients",
    "failure_page",
    "not_installed_message",
    "oauth_settings",
]

log = logging.getLogger(__name__)

INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"
# What the bot needs, no more (the manifest lists the same scopes).
BOT_SCOPES = (
    "commands",
    "chat:write",
    "im:write",
    "reactions:read",
    "users:read",
    # Looking up a digest post after a failed try, so it is never posted twice.
    "channels:history",
    "groups:history",
    "im:history",
    # A library file dropped into the DM with paperbot is imported; the trends chart.
    "files:read",
    "files:write",
)
# Bolt's default: a rotating token is refreshed when it has less than this left.
ROTATION_MINUTES = 120

# What an installer reads when the install did not complete, per Bolt's failure reason.
_REASONS = {
    "access_denied": "The install was cancelled in Slack, so nothing was installed.",
    "invalid_browser": "This install was not started in this browser, or it took too long.",
    "invalid_state": "This install link has expired or was already used.",
    "missing_code": "Slack's answer did not include an install code.",
    "invalid_code": "Slack did not accept the install code (each one works once, for minutes).",
    "storage_error": "paperbot could not save the installation: its database is not reachable.",
    "slack_unreachable": "paperbot could not reach Slack to finish the install.",
}
# Reasons Bolt has already logged in a line of its own.
_LOGGED_BY_BOLT = frozenset({"invalid_code"})


@dataclass(frozen=True, slots=True)
class InstallConfig:
    """What the install flow needs (from SLACK_CLIENT_ID, SLACK_CLIENT_SECRET, ...)."""

    client_id: str
    client_secret: str
    redirect_uri: str | None = None
    rotation_minutes: int = ROTATION_MINUTES
    state_seconds: int = 600


# -- log hygiene ---------------------------------------------------------------------------------

# Slack tokens (xoxb-, xoxp-, rotating xoxe.xoxb-, refresh xoxe-), and install codes or secrets
# as they appear in Bolt's messages (`code: x`, `'code': ['x']`, `code=x`).
_TOKEN = re.compile(r"xox[a-z.]*-[A-Za-z0-9-]+")
_FIELD = re.compile(
    r"(?P<key>\b(?:code|state|client_secret|refresh_token|access_token)['\"]?\s*[:=]\s*\[?['\"]?)"
    r"[^\s'\",&\]]+"
)
_SLACK_ERROR = re.compile(r"'error': '([a-z_]+)'")


def redact(text: str) -> str:
    """`text` cut to its first line, tokens and codes masked, Slack's error code kept."""
    lines = text.strip().splitlines()
    first = lines[0] if lines else ""
    error = _SLACK_ERROR.search(text)
    if error and error.group(1) not in first:
        first = f"{first} ({error.group(1)})"
    return _FIELD.sub(r"\g<key>***", _TOKEN.sub("xox***", first))


class RedactSecrets(logging.Filter):
    """Rewrite a record to one line without tokens or install codes (Bolt's messages quote them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Always keep the record, redacted."""
        text = redact(record.getMessage())
        record.msg, record.args = text, None
        record.exc_info, record.exc_text = None, None
        return True


# -- Bolt's OAuth flow, configured --------------------------------------------------------------


def failure_page(reason: str, install_path: str = INSTALL_PATH) -> str:
    """A short HTML page saying why the install did not complete and where to start again."""
    text = _REASONS.get(reason) or f"Slack reported “{reason[:80]}”, so nothing was installed."
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>paperbot: not installed</title>"
        "</head><body style='font-family: sans-serif; text-align: center; padding: 2em'>"
        f"<h2>paperbot was not installed</h2><p>{html.escape(text)}</p>"
        f"<p><a href='{html.escape(install_path)}'>Start the install again</a></p>"
        "</body></html>"
    )


async def _success(args: AsyncSuccessArgs) -> BoltResponse:
    """Bolt's own success page (it sends the installer on to the Slack app)."""
    return await args.default.success(args)


async def _failure(args: AsyncFailureArgs) -> BoltResponse:
    """A clear page and (unless Bolt already wrote one) one log line; nothing is stored."""
    reason = str(args.reason or "error")
    if reason not in _LOGGED_BY_BOLT:
        log.warning("slack: an install did not complete (%s)", redact(reason)[:80])
    return BoltResponse(
        status=args.suggested_status_code,
        body=failure_page(reason, args.settings.install_path),
        headers={
            "Content-Type": "text/html; charset=utf-8",
            "Set-Cookie": args.settings.state_utils.build_set_cookie_for_deletion(),
        },
    )


class _Authorize(AsyncInstallationStoreAuthorize):
    """Bolt's authorize step (token lookup and rotation), naming a workspace it cannot serve."""

    async def __call__(self, **kwargs: Any) -> AuthorizeResult | None:
        """Bolt's result; a request it cannot serve gets one log line saying why."""
        result = await super().__call__(**kwargs)
        if result is not None:
            return result
        where = kwargs.get("team_id") or kwargs.get("enterprise_id") or "an unknown workspace"
        context = kwargs.get("context")
        try:
            # Bolt reads a failed lookup as "not installed": look again to tell them apart.
            bot = await self.installation_store.async_find_bot(
                enterprise_id=kwargs.get("enterprise_id"),
                team_id=kwargs.get("team_id"),
                is_enterprise_install=getattr(context, "is_enterprise_install", False),
            )
        except StoreUnavailable as exc:
            log.error("slack: a request from %s was ignored: %s", where, exc)
            return None
        if bot is None:
            log.warning("slack: a request from %s, which has no installation, was ignored", where)
        else:
            log.error(
                "slack: a request from %s was ignored: Slack refused its token, or the token "
                "could not be refreshed",
                where,
            )
        return None


def not_installed_message(redirect_uri: str | None) -> str:
    """What a person in a workspace without an installation reads after a command."""
    text = (
        "paperbot could not find its installation in this workspace, so nothing was done. "
        "If it was removed, a workspace admin can add it again"
    )
    if redirect_uri:
        parts = urllib.parse.urlsplit(redirect_uri)
        text += f": {parts.scheme}://{parts.netloc}{INSTALL_PATH}"
    else:
        text += " from paperbot's install page"
    return text + "; otherwise, please try again in a minute."


def oauth_settings(
    config: InstallConfig,
    installs: RedisInstallationStore,
    states: RedisOAuthStateStore,
    *,
    client: AsyncWebClient,
    logger: logging.Logger,
) -> tuple[AsyncOAuthSettings, AsyncInstallationStoreAuthorize]:
    """Bolt's OAuth settings on the Redis stores, and the authorize step that finds (and
    rotates) each request's bot token; `client` is where token refreshes go."""
    settings = AsyncOAuthSettings(
        client_id=config.client_id,
        client_secret=config.client_secret,
        scopes=list(BOT_SCOPES),
        user_scopes=[],
        redirect_uri=config.redirect_uri,
        install_path=INSTALL_PATH,
        redirect_uri_path=REDIRECT_PATH,
        callback_options=AsyncCallbackOptions(success=_success, failure=_failure),
        installation_store=installs,
        # paperbot asks for bot scopes only: one lookup per request, by workspace.
        installation_store_bot_only=True,
        token_rotation_expiration_minutes=config.rotation_minutes,
        state_store=states,
        state_expiration_seconds=config.state_seconds,
        logger=logger,
    )
    authorize = _Authorize(
        logger=logger,
        installation_store=installs,
        client_id=config.client_id,
        client_secret=config.client_secret,
        token_rotation_expiration_minutes=config.rotation_minutes,
        bot_only=True,
        client=client,
    )
    return settings, authorize


# -- per-workspace clients for digests ------------------------------------------------------------


class WorkspaceClients:
    """The Web API client of each workspace, with its own (rotated when due) bot token."""

    def __init__(
        self,
        installs: RedisInstallationStore,
        base: AsyncWebClient,
        config: InstallConfig,
    ) -> None:
        self.installs = installs
        self.base = base
        self.minutes = config.rotation_minutes
        self.rotator = AsyncTokenRotator(
            client_id=config.client_id, client_secret=config.client_secret, client=base
        )

    def serves(self, team: str) -> bool:
        """Whether workspace `team` has paperbot installed (else its digests wait)."""
        return self.installs.serves(team)

    async def client_for(self, team: str) -> AsyncWebClient:
        """A client carrying `team`'s bot token; DeliveryError when there is none."""
        try:
            bot = await asyncio.to_thread(self.installs.bot_for_team, team)
        except StoreUnavailable as exc:
            raise DeliveryError(f"installation lookup: {exc}") from None
        if bot is None:
            raise DeliveryError(f"workspace {team} has no installation of paperbot", permanent=True)
        if bot.bot_refresh_token:
            try:
                fresh = await self.rotator.perform_bot_token_rotation(
                    bot=bot, minutes_before_expiration=self.minutes
                )
            except SlackTokenRotationError as exc:
                raise DeliveryError(f"token refresh for {team}: {redact(str(exc))}") from None
            if fresh is not None:
                await self.installs.async_save_bot(fresh)
                bot = fresh
        return AsyncWebClient(
            token=bot.bot_token,
            base_url=self.base.base_url,
            session=self.base.session,
            timeout=self.base.timeout,
            logger=self.base.logger,
            team_id=team,
            retry_handlers=list(self.base.retry_handlers or []),
        )
