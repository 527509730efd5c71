"""The role commands' arguments and refusals, without starting anything."""

from __future__ import annotations

import argparse

import pytest

from bot.__main__ import build_parser, main
from bot.discord_app import Shards
from bot.roles.discord import shard_ids

ROLES = ("run", "scheduler", "web", "discord")


def test_shard_ids_accept_lists_and_ranges() -> None:
    assert shard_ids("0,1") == (0, 1)
    assert shard_ids("2-3") == (2, 3)
    assert shard_ids("0, 2-3") == (0, 2, 3)
    for bad in ("", "a", "1-x", ","):
        with pytest.raises(argparse.ArgumentTypeError):
            shard_ids(bad)


def test_shards_must_lie_within_the_count_and_shard_0_syncs() -> None:
    assert Shards((0, 1), 4).syncs_commands
    assert not Shards((2, 3), 4).syncs_commands
    for ids, count in (((0, 4), 4), ((1, 1), 2), ((), 2), ((0,), 0)):
        with pytest.raises(ValueError):
            Shards(ids, count)


def test_every_role_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for role in ROLES:
        assert role in sub.choices  # type: ignore[operator]
        assert main([role, "--help"]) == 0
        out = capsys.readouterr().out
        assert f"usage: paperbot {role}" in out
    assert main(["discord", "--help"]) == 0
    assert "--shard-count" in capsys.readouterr().out


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> pytest.MonkeyPatch:
    """No chat tokens or Redis from the calling shell."""
    import os

    for name in list(os.environ):
        if name.startswith(("SLACK_", "DISCORD_", "PAPERBOT_", "REDIS_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PAPERBOT_DATA_DIR", str(tmp_path))
    return monkeypatch


def test_roles_refuse_a_configuration_they_cannot_serve(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["discord", "--shards", "0,5", "--shard-count", "4"]) == 2
    assert "shard ids must be from 0 to 3" in capsys.readouterr().err
    assert main(["discord"]) == 2
    assert "needs DISCORD_TOKEN" in capsys.readouterr().err
    assert main(["web"]) == 2
    assert "needs SLACK_SIGNING_SECRET" in capsys.readouterr().err
    clean_env.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    clean_env.setenv("SLACK_APP_TOKEN", "xapp-1")
    assert main(["web"]) == 2
    assert "unset SLACK_APP_TOKEN" in capsys.readouterr().err
