"""Kill the scheduler lease holder with SIGKILL: how soon does a standby run the clock?

Two `paperbot scheduler` processes on one Redis (the jsonl seed source), repeated
`--rounds` times: wait until one holds the lease and the other stands by, `kill -9` the
holder, and time until the standby logs that it holds the lease. A replacement standby is
started after each kill. Goal: every takeover within lease TTL + 5 s. Baseline, same
run: the TTL itself (the earliest a crashed holder's lease can run out).

    python bench/lease_takeover.py --redis-url redis://127.0.0.1:6379/15 [--ttl 30] [--rounds 3]

The database named by --redis-url is flushed first: give it one of its own.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "tests" / "fixtures" / "seed_papers.jsonl"
HOLDER_KEY = "pb:{clock}:holder"
sys.path.insert(0, str(ROOT))

from tests.integration.roles_support import Role  # noqa: E402


def Scheduler(env: dict[str, str]) -> Role:
    """One `python -m bot scheduler` process; stderr collected."""
    return Role(env, "scheduler")


def wait(check, timeout: float) -> None:
    """Poll until `check()`; SystemExit past `timeout`."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        time.sleep(0.02)


def one_round(client: redis.Redis, running: list[Role], ttl: float) -> tuple[float, Role]:
    """Kill the holder of `running`; seconds until the other one holds the lease, and it."""
    wait(lambda: client.hget(HOLDER_KEY, "pid") is not None, 120)
    holder_pid = int(client.hget(HOLDER_KEY, "pid") or 0)
    holder = next(s for s in running if s.proc.pid == holder_pid)
    standby = next(s for s in running if s is not holder)
    wait(lambda: holder.has("holding the scheduler lease;"), 60)
    wait(lambda: standby.has("standing by"), 60)
    time.sleep(1)  # a renewal or two in between, as in a running deployment
    holder.proc.send_signal(signal.SIGKILL)
    holder.proc.wait()
    killed = time.monotonic()
    wait(lambda: standby.has("holding the scheduler lease;"), ttl + 30)
    return time.monotonic() - killed, standby


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--ttl", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    client = redis.Redis.from_url(args.redis_url)
    client.flushdb()
    data = tempfile.mkdtemp(prefix="paperbot-bench-")
    prefixes = ("PAPERBOT_", "REDIS_", "SLACK_", "DISCORD_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update(
        {
            "REDIS_URL": args.redis_url,
            "PAPERBOT_DATA_DIR": data,
            "PAPERBOT_SOURCES": "jsonl",
            "PAPERBOT_JSONL_PATH": str(SEED),
            "PAPERBOT_EMBEDDINGS": "false",
            "PAPERBOT_LEASE_TTL": str(args.ttl),
            "PYTHONPATH": str(ROOT),
        }
    )
    running = [Scheduler(env), Scheduler(env)]
    times = []
    try:
        for number in range(1, args.rounds + 1):
            took, standby = one_round(client, running, args.ttl)
            times.append(took)
            print(f"round {number}: takeover {took:.2f} s after kill -9 (TTL {args.ttl:g} s)")
            running = [standby, Scheduler(env)]
    finally:
        for s in running:
            if s.proc.poll() is None:
                s.proc.send_signal(signal.SIGTERM)
                s.proc.wait(60)
    worst = max(times)
    print(
        f"takeover: median {statistics.median(times):.2f} s, worst {worst:.2f} s; "
        f"baseline TTL {args.ttl:g} s; worst/TTL {worst / args.ttl:.2f}; "
        f"goal TTL + 5 s: {'met' if worst <= args.ttl + 5 else 'MISSED'}"
    )
    return 0 if worst <= args.ttl + 5 else 1


if __name__ == "__main__":
    sys.exit(main())
