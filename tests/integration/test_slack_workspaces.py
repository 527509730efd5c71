"""Installed Slack workspaces outside the chat: `paperbot stats` and the scheduled purge."""

from __future__ import annotations

import logging
import re
import socket
import time
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from slack_sdk.oauth.installation_store.models.installation import Installation

from bot import scheduler as sched
from bot.__main__ import main
from bot.config import Settings, load_settings
from bot.slack_install import RedisInstallationStore
from recommender.store import Store
from tests.conftest import redis_test_url

DAY = 86400


def install(store: Store, team: str, name: str) -> None:
    """A workspace installed, as Bolt's flow saves it."""
    RedisInstallationStore(store).save(
        Installation(
            app_id="A1",
            team_id=team,
            team_name=name,
            bot_token=f"xoxb-{team}-secret",
            bot_id="B1",
            bot_user_id="UBOT",
            user_id="U1",
        )
    )


def test_stats_lists_installed_and_uninstalled_workspaces(
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`paperbot stats` shows each workspace, and when an uninstalled one's data goes."""
    for info in Settings.model_fields.values():
        if isinstance(info.validation_alias, str):
            monkeypatch.delenv(info.validation_alias, raising=False)
    monkeypatch.setenv("REDIS_URL", redis_test_url())
    monkeypatch.setenv("PAPERBOT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SLACK_UNINSTALL_GRACE_DAYS", "10")
    assert main(["stats"]) == 0
    assert "Slack workspaces" not in capsys.readouterr().out

    install(store, "TALPHA01", "Alpha Lab")
    install(store, "TBETA002", "Beta Lab")
    RedisInstallationStore(store).delete_bot("TBETA002")
    assert main(["stats"]) == 0
    out = capsys.readouterr().out
    assert "Slack workspaces: 1 installed" in out
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert re.search(rf"TALPHA01\s+│\s+Alpha Lab\s+│\s+installed {today}", out)
    gone = RedisInstallationStore(store).workspace("TBETA002")
    assert gone is not None and gone.removed_at is not None
    when = time.strftime("%Y-%m-%d", time.gmtime(gone.removed_at + 10 * DAY))
    assert re.search(rf"TBETA002\s+│\s+Beta Lab\s+│.*uninstalled; data deleted after {when}", out)
    assert "xoxb-" not in out


def test_the_purge_job_runs_only_for_the_install_flow_and_never_raises(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """The hourly purge is scheduled with the install flow; it deletes due workspaces and
    logs (not raises) when Redis is down."""
    single = sched.Runtime(load_settings(SLACK_BOT_TOKEN="xoxb-1"), store, core=object())
    scheduler = sched.build_scheduler(single, run_now=False)
    assert sched.SLACK_PURGE_JOB not in {j.id for j in scheduler.get_jobs()}
    settings = load_settings(SLACK_CLIENT_ID="1.2", SLACK_CLIENT_SECRET="s", SLACK_BOT_TOKEN=None)
    many = sched.Runtime(settings, store, core=object())
    scheduler = sched.build_scheduler(many, run_now=False)
    assert sched.SLACK_PURGE_JOB in {j.id for j in scheduler.get_jobs()}

    install(store, "TALPHA01", "Alpha Lab")
    store.set_profile("slack:TALPHA01:U1", name="ada")
    RedisInstallationStore(store).delete_bot("TALPHA01")
    assert sched.slack_purge_job(many) == {}
    done = sched.slack_purge_job(many, time.time() + 31 * DAY)
    assert list(done) == ["TALPHA01"] and done["TALPHA01"] > 0
    assert store.get_profile("slack:TALPHA01:U1") == {}

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dead = Store(redis.Redis(port=port, retry=Retry(NoBackoff(), 0)), where=f"127.0.0.1:{port}")
    caplog.set_level(logging.ERROR)
    assert sched.slack_purge_job(sched.Runtime(settings, dead, core=object())) == {}
    assert any("slack purge failed" in r.getMessage() for r in caplog.records)
    dead.close()
