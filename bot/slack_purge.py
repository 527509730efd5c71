"""Deleting the data of Slack workspaces that uninstalled paperbot, after a grace period.

An uninstall stops a workspace's digests at once (its tokens are gone). Its people's
feedback, profiles, subscriptions and delivery records stay for the grace period
(SLACK_UNINSTALL_GRACE_DAYS), so a reinstall picks up where it left off; after that, a
purge deletes them and the workspace's record.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator

from bot.repo import ChatRepo
from bot.slack_install import RedisInstallationStore, WorkspaceRecord
from recommender.store import PREFIX, Store, chunked

__all__ = ["due_for_purge", "purge_due", "purge_team"]

log = logging.getLogger(__name__)

DAY = 86400


def due_for_purge(
    installs: RedisInstallationStore, grace_days: int, now: float | None = None
) -> list[WorkspaceRecord]:
    """Workspaces uninstalled at least `grace_days` ago and not installed again since."""
    now = time.time() if now is None else now
    cutoff = now - grace_days * DAY
    return [w for w in installs.workspaces() if w.removed_at is not None and w.removed_at <= cutoff]


def purge_due(store: Store, grace_days: int, now: float | None = None) -> dict[str, int]:
    """Delete the data of every workspace whose grace period is over; returns id -> keys gone."""
    installs = RedisInstallationStore(store)
    done: dict[str, int] = {}
    for record in due_for_purge(installs, grace_days, now):
        # Read again just before deleting: a reinstall since the listing cancels the purge.
        current = installs.workspace(record.id)
        if current is None or current.removed_at is None:
            continue
        teams = [record.id]
        if record.org:
            teams += installs.org_teams(record.id)
        deleted = sum(purge_team(store, team) for team in teams)
        deleted += installs.delete_installation(record.id)
        installs.forget_org_teams(teams)
        installs.drop_workspace(record.id)
        done[record.id] = deleted
        log.info(
            "slack: deleted the data of %s %s (%d records), %d days after its uninstall",
            "org" if record.org else "workspace",
            record.id,
            deleted,
            grace_days,
        )
    return done


def purge_team(store: Store, team: str) -> int:
    """Delete everything kept about workspace `team`'s people; returns how many records went."""
    prefix = f"slack:{team}:"
    people = sorted(
        u for u in (m.decode() for m in store.r.smembers(f"{PREFIX}users")) if u.startswith(prefix)
    )
    chat = ChatRepo(store)
    deleted = sum(store.forget_user(uid) + chat.forget_subscriber(uid) for uid in people)
    for sub in chat.subscriptions():
        if sub.get("platform") == "slack" and sub.get("workspace") == team:
            deleted += int(chat.delete_subscription(str(sub["id"])))
    tag = _glob(team)
    # Channel teams, parked digests and "sent" markers name people and channels in their keys.
    for pattern in (
        f"{PREFIX}channel:{{slack:{tag}:*}}:members",
        f"{PREFIX}outbox:*slack:{tag}:*",
        f"{PREFIX}once:*slack:{tag}:*",
    ):
        deleted += _delete(store, store.r.scan_iter(match=pattern, count=1000))
    deleted += _delete(store, _messages_of(store, team))
    return deleted


def _messages_of(store: Store, team: str) -> Iterator[bytes]:
    """Keys of sent-message records of one workspace (which subscription got which paper)."""
    keys = store.r.scan_iter(match=f"{PREFIX}msg:slack:*", count=1000)
    for batch in chunked(keys, 1000):
        pipe = store.r.pipeline(transaction=False)
        for key in batch:
            pipe.get(key)
        for key, raw in zip(batch, pipe.execute(), strict=True):
            if raw and json.loads(raw).get("workspace") == team:
                yield key


def _delete(store: Store, keys: Iterator[bytes]) -> int:
    """Delete keys one command each (they may live on different cluster slots)."""
    deleted = 0
    for batch in chunked(keys, 1000):
        pipe = store.r.pipeline(transaction=False)
        for key in batch:
            pipe.delete(key)
        deleted += sum(int(n) for n in pipe.execute())
    return deleted


def _glob(text: str) -> str:
    """Escape glob specials so an id matches only itself in SCAN patterns."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)
