"""deploy/: the compose files run real paperbot commands, with the replicas the README names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.__main__ import build_parser

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
# The workers' command comes with the task engine; it is checked once it is registered.
LATER = {"worker"}


def compose(name: str) -> dict[str, Any]:
    """A compose file, parsed."""
    return yaml.safe_load((DEPLOY / name).read_text())


def registered() -> set[str]:
    """The subcommands `paperbot` knows."""
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return set(sub.choices)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["docker-compose.yml", "docker-compose.single.yml"])
def test_every_paperbot_service_runs_a_command_that_parses(name: str) -> None:
    known = registered()
    parser = build_parser()
    for service, spec in compose(name)["services"].items():
        if spec.get("image") != "paperbot:latest":
            continue
        command = spec["command"]
        if command[0] in LATER and command[0] not in known:
            continue
        args = parser.parse_args(command)
        assert args.command == command[0], service
        env = spec.get("environment", {})
        assert env.get("REDIS_URL") == "redis://redis:6379/0", service


def test_the_scale_layout_has_the_roles_and_replicas() -> None:
    services = compose("docker-compose.yml")["services"]
    replicas = {
        name: (spec.get("deploy") or {}).get("replicas", 1)
        for name, spec in services.items()
        if spec.get("image") == "paperbot:latest"
    }
    roles = {name: spec["command"][0] for name, spec in services.items() if name in replicas}
    count: dict[str, int] = {}
    for name, role in roles.items():
        count[role] = count.get(role, 0) + replicas[name]
    assert count == {"scheduler": 1, "web": 2, "worker": 3, "discord": 2}
    shards = sorted(
        services[name]["command"][2] for name, role in roles.items() if role == "discord"
    )
    assert shards == ["0,1", "2,3"]
    assert all(services[n]["command"][-1] == "4" for n, r in roles.items() if r == "discord")
    # Redis keeps an append-only file; the load balancer fronts the web replicas.
    assert "--appendonly" in services["redis"]["command"]
    assert services["lb"]["depends_on"] == ["web"]
    assert "server web:3000" in (DEPLOY / "nginx.conf").read_text()
    assert services["rabbitmq"]["profiles"] == ["rabbitmq"]
