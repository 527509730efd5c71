"""A real three-node Redis Cluster for a test: started on free ports, stopped after."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

TOOLS = ("redis-server", "redis-cli")
MISSING = [tool for tool in TOOLS if shutil.which(tool) is None]
# The only reason to skip: without the server binaries there is no cluster to start.
needs_cluster_tools = pytest.mark.skipif(
    bool(MISSING), reason=f"a Redis Cluster test needs {' and '.join(MISSING)} on PATH"
)


def free_ports(n: int) -> list[int]:
    """`n` ports free right now (a cluster node also uses port + 10000 for its bus)."""
    out: list[int] = []
    while len(out) < n:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port + 10000 < 65536 and port not in out:
            out.append(port)
    return out


def _cli(port: int, *args: str) -> str:
    """One redis-cli command against a node; its output ('' when it does not answer)."""
    done = subprocess.run(
        ["redis-cli", "-p", str(port), *args], capture_output=True, text=True, timeout=10
    )
    return done.stdout


def _wait(check: object, what: str, seconds: float = 15.0) -> None:
    """Poll `check()` until true, or fail the test naming `what`."""
    deadline = time.monotonic() + seconds
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise RuntimeError(f"Redis Cluster test harness: {what} within {seconds:.0f} s")
        time.sleep(0.05)


@contextlib.contextmanager
def running_cluster(workdir: Path, nodes: int = 3) -> Iterator[list[int]]:
    """Start `nodes` cluster-enabled servers in `workdir`, join them, yield their ports."""
    ports = free_ports(nodes)
    try:
        for port in ports:
            subprocess.run(
                [
                    "redis-server",
                    "--port", str(port),
                    "--bind", "127.0.0.1",
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", f"nodes-{port}.conf",
                    "--save", "", "--appendonly", "no", "--daemonize", "yes",
                    "--dir", str(workdir),
                    "--logfile", str(workdir / f"redis-{port}.log"),
                ],
                check=True,
            )  # fmt: skip
        for port in ports:
            _wait(lambda p=port: _cli(p, "ping").strip() == "PONG", f"node {port} answering")
        subprocess.run(
            [
                "redis-cli", "--cluster", "create",
                *(f"127.0.0.1:{p}" for p in ports),
                "--cluster-replicas", "0", "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )  # fmt: skip
        for port in ports:
            _wait(
                lambda p=port: "cluster_state:ok" in _cli(p, "cluster", "info"),
                f"node {port} reporting cluster_state:ok",
            )
        yield ports
    finally:
        for port in ports:
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                _cli(port, "shutdown", "nosave")


def move_slot(ports: list[int], slot: int) -> tuple[int, int]:
    """Move one slot, with its keys, to another node (as a resharding does);
    returns (old owner's port, new owner's port). Clients learn of it by MOVED."""
    import redis

    nodes = {p: redis.Redis(port=p) for p in ports}
    try:
        ids = {p: c.execute_command("CLUSTER MYID").decode() for p, c in nodes.items()}
        slots = nodes[ports[0]].execute_command("CLUSTER SLOTS")
        owner = next(int(s[2][1]) for s in slots if int(s[0]) <= slot <= int(s[1]))
        target = next(p for p in ports if p != owner)
        nodes[target].execute_command("CLUSTER SETSLOT", slot, "IMPORTING", ids[owner])
        nodes[owner].execute_command("CLUSTER SETSLOT", slot, "MIGRATING", ids[target])
        while keys := nodes[owner].execute_command("CLUSTER GETKEYSINSLOT", slot, 100):
            nodes[owner].execute_command("MIGRATE", "127.0.0.1", target, "", 0, 5000, "KEYS", *keys)
        for client in nodes.values():
            client.execute_command("CLUSTER SETSLOT", slot, "NODE", ids[target])
        return owner, target
    finally:
        for client in nodes.values():
            client.close()
