"""The Slack installation and OAuth state stores on a real Redis (and on a Redis Cluster)."""

from __future__ import annotations

import asyncio
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from slack_bolt.error import BoltError
from slack_sdk.oauth.installation_store.models.installation import Installation

from bot.slack_install import RedisInstallationStore, RedisOAuthStateStore, workspace_key
from recommender.store import PREFIX, Store


def installation(
    team: str | None = "T1",
    *,
    user: str = "U1",
    token: str = "xoxb-1-secret",
    enterprise: str | None = None,
    org: bool = False,
    refresh: str | None = None,
) -> Installation:
    """An installation as Bolt builds it from oauth.v2.access."""
    return Installation(
        app_id="A1",
        enterprise_id=enterprise,
        team_id=None if org else team,
        team_name="Team One" if not org else None,
        enterprise_name="Org" if enterprise else None,
        bot_token=token,
        bot_id="B1",
        bot_user_id="UBOT",
        bot_scopes="commands,chat:write",
        bot_refresh_token=refresh,
        bot_token_expires_in=43200 if refresh else None,
        user_id=user,
        is_enterprise_install=org,
        token_type="bot",
    )


def keys(store: Store) -> list[str]:
    """Every Slack key, sorted."""
    return sorted(k.decode() for k in store.r.scan_iter(match=f"{PREFIX}slack:*"))


def test_workspace_key_prefers_the_org_for_org_wide_installs() -> None:
    """Org-wide installs live under the org id; everything else under the workspace id."""
    assert workspace_key("E1", "T1", False) == "T1"
    assert workspace_key("E1", "T1", True) == "E1"
    assert workspace_key("E1", None, False) == "E1"
    assert workspace_key(None, "T1") == "T1"
    assert workspace_key(None, None) is None


async def test_save_find_and_delete_a_workspace(store: Store) -> None:
    """Bot and installation round-trip; deleting the bot marks the workspace uninstalled."""
    installs = RedisInstallationStore(store)
    await installs.async_save(installation())
    await installs.async_save(installation(user="U2", token="xoxb-2-secret"))
    bot = await installs.async_find_bot(enterprise_id=None, team_id="T1")
    assert bot is not None and bot.bot_token == "xoxb-2-secret"
    latest = await installs.async_find_installation(enterprise_id=None, team_id="T1")
    assert latest is not None and latest.user_id == "U2"
    first = await installs.async_find_installation(enterprise_id=None, team_id="T1", user_id="U1")
    # A person's old record hands out the current bot token, never a stale one.
    assert first is not None and first.user_id == "U1" and first.bot_token == "xoxb-2-secret"
    # Every key of the workspace carries its hash tag: one cluster slot.
    assert all("{T1}" in k for k in keys(store) if k != f"{PREFIX}slack:workspaces")

    await installs.async_delete_installation(enterprise_id=None, team_id="T1", user_id="U1")
    gone = await installs.async_find_installation(enterprise_id=None, team_id="T1", user_id="U1")
    assert gone is None and installs.installation("T1", "U2") is not None
    assert installs.serves("T1")
    await installs.async_delete_all(enterprise_id=None, team_id="T1")
    assert keys(store) == [f"{PREFIX}slack:workspaces"]
    assert not installs.serves("T1")
    [record] = installs.workspaces()
    assert record.id == "T1" and record.removed_at is not None and not record.installed
    # A reinstall clears the pending deletion.
    await installs.async_save(installation(token="xoxb-3-secret"))
    assert installs.workspace("T1").installed


async def test_a_revoked_bot_leaves_no_token_in_installation_records(store: Store) -> None:
    """After `tokens_revoked` for the bot only, the installer records hand out no token."""
    installs = RedisInstallationStore(store)
    await installs.async_save(installation())
    await installs.async_delete_bot(enterprise_id=None, team_id="T1")
    record = installs.installation("T1")
    assert record is not None and record.bot_token is None and record.bot_refresh_token is None
    assert installs.bot_for_team("T1") is None


async def test_org_wide_installs_serve_the_org_workspaces(store: Store) -> None:
    """An org install lives under the org; a workspace seen using it is served by it."""
    installs = RedisInstallationStore(store)
    await installs.async_save(installation(enterprise="E1", org=True, token="xoxb-org-secret"))
    assert installs.bot("E1").bot_token == "xoxb-org-secret"
    found = await installs.async_find_bot(
        enterprise_id="E1", team_id="T7", is_enterprise_install=True
    )
    assert found is not None and found.bot_token == "xoxb-org-secret"
    assert installs.bot_for_team("T7") is None and not installs.serves("T7")
    installs.note_org_team("T7", "E1")
    assert installs.bot_for_team("T7").bot_token == "xoxb-org-secret" and installs.serves("T7")
    assert installs.org_teams("E1") == ["T7"]
    # A workspace's own install (on a Grid) is kept under the workspace, not the org.
    await installs.async_save(installation("T8", enterprise="E1", token="xoxb-t8-secret"))
    assert installs.bot("T8").bot_token == "xoxb-t8-secret"
    assert installs.bot("E1").bot_token == "xoxb-org-secret"


async def test_bad_or_unreachable_storage_is_bolts_storage_error(store: Store) -> None:
    """A malformed installation or a Redis that is down: BoltError (the storage_error page)."""
    installs = RedisInstallationStore(store)
    with pytest.raises(BoltError, match="workspace id"):
        await installs.async_save(installation(team="not a team id"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dead = Store(
        redis.Redis(port=port, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)),
        where=f"127.0.0.1:{port}",
    )
    with pytest.raises(BoltError, match="cannot reach Redis"):
        await RedisInstallationStore(dead).async_save(installation())
    assert not await RedisOAuthStateStore(dead).async_consume("s" * 43)
    assert keys(store) == []
    dead.close()


async def test_states_are_single_use_and_expire(store: Store) -> None:
    """A state is consumed once, even by racing replicas; malformed or unknown ones never."""
    states = RedisOAuthStateStore(store, expiration_seconds=600)
    state = await states.async_issue()
    [key] = keys(store)
    assert state in key and 590 <= store.r.ttl(key) <= 600

    def consume() -> bool:
        return asyncio.run(RedisOAuthStateStore(store).async_consume(state))

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: consume(), range(8)))
    assert sorted(results) == [False] * 7 + [True]
    assert not await states.async_consume(state)
    for bad in ("", "short", "x" * 300, "{state}*", state + "\n"):
        assert not await states.async_consume(bad)
    other = await states.async_issue()
    assert other != state
    store.r.pexpire(keys(store)[0], 1)
    time.sleep(0.01)
    assert not await states.async_consume(other)


# -- on a Redis Cluster ---------------------------------------------------------------------------


async def test_installations_work_on_a_redis_cluster(cluster_store: Store) -> None:
    """Every operation keeps to one slot per command: save, find, rotate, delete, states."""
    store = cluster_store
    installs = RedisInstallationStore(store)
    for team in ("T1", "T2", "T3", "T4"):
        await installs.async_save(installation(team, token=f"xoxb-{team}-secret"))
    await installs.async_save(installation(enterprise="E1", org=True, token="xoxb-org-secret"))
    installs.note_org_team("T9", "E1")
    assert installs.bot_for_team("T9").bot_token == "xoxb-org-secret"
    assert [w.id for w in installs.workspaces()] == ["E1", "T1", "T2", "T3", "T4"]
    bot = installs.bot("T2")
    bot.bot_token = "xoxb-T2-rotated"
    await installs.async_save_bot(bot)
    assert installs.installation("T2").bot_token == "xoxb-T2-rotated"
    await installs.async_delete_all(enterprise_id=None, team_id="T3")
    assert not installs.serves("T3") and installs.serves("T4")
    states = RedisOAuthStateStore(store)
    state = await states.async_issue()
    assert await states.async_consume(state) and not await states.async_consume(state)
