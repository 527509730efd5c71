"""The clock as real `paperbot scheduler` processes: takeover, one ingest at a time, fencing.

- kill -9 the lease holder: the standby runs the clock within lease TTL + 5 s, and does not
  ingest again at once (the last run time is in Redis);
- a holder paused past its TTL (SIGSTOP) while it ingests: the new holder does not start
  the same ingest until the old run has ended (per-source lock), and the old one's
  writes are refused (fencing).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bot.repo.clock import HOLDER_KEY, LAST_RUN_KEY
from recommender.store import Store
from tests.integration.roles_support import ROOT, SEED, Role, role_env, wait_for

TTL = 3.0
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def holder_pid(store: Store) -> int | None:
    """The pid recorded by the current lease holder."""
    raw = store.r.hget(HOLDER_KEY, "pid")
    return int(raw) if raw else None


def holder_fence(store: Store) -> int:
    """The fence recorded by the current lease holder."""
    raw = store.r.hget(HOLDER_KEY, "fence")
    return int(raw) if raw else 0


def test_a_killed_holder_is_replaced_within_ttl_plus_5s(
    store: Store, redis_url: str, tmp_path: Path
) -> None:
    env = role_env(
        redis_url,
        tmp_path,
        PAPERBOT_SOURCES="jsonl",
        PAPERBOT_JSONL_PATH=str(SEED),
        PAPERBOT_LEASE_TTL=str(TTL),
        PAPERBOT_CLOCK_STAGGER_SECONDS="0",
    )
    roles = [Role(env, "scheduler"), Role(env, "scheduler")]
    try:
        wait_for(lambda: store.paper_count() == 95, 60, "the first ingest")
        wait_for(lambda: store.r.hexists(LAST_RUN_KEY, "ingest:jsonl"), 10, "last run stored")
        by_pid = {role.pid: role for role in roles}
        holder = by_pid[holder_pid(store)]
        standby = next(role for role in roles if role is not holder)
        wait_for(lambda: standby.has("standing by"), 30, "the standby")
        jobs = holder.find(r"holding the scheduler lease; jobs: ([a-z:, -]+)")
        assert jobs and sorted(jobs.group(1).split(", ")) == ["digests", "ingest:jsonl", "retrain"]
        assert not standby.has("holding the scheduler lease")
        first_fence = holder_fence(store)

        holder.proc.send_signal(signal.SIGKILL)
        holder.proc.wait(timeout=10)
        killed = time.monotonic()
        wait_for(lambda: standby.has("holding the scheduler lease"), TTL + 10, "takeover")
        took = time.monotonic() - killed
        print(f"takeover after kill -9: {took:.2f} s (lease TTL {TTL:g} s)")
        assert took <= TTL + 5
        assert holder_pid(store) == standby.pid
        assert holder_fence(store) == first_fence + 1
        assert standby.has(f"scheduler lease taken (fence {first_fence + 1})")

        # The jsonl ingest ran less than an interval ago: the new holder keeps its rhythm.
        time.sleep(2)
        assert "ingest jsonl:" not in standby.err, standby.err
        err = standby.stop(signal.SIGTERM)
        assert standby.proc.returncode == 0, err
        assert "Traceback" not in err
        assert "paperbot scheduler stopped." in err
    finally:
        for role in roles:
            role.kill()


@pytest.fixture
def slow_hf() -> Iterator[dict[str, object]]:
    """A fake Hugging Face daily papers API that answers after 6 s and counts overlaps."""
    body = (FIXTURES / "hf_daily_papers_2026-06-12.json").read_bytes()
    state: dict[str, object] = {"active": 0, "max_active": 0, "requests": 0}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with lock:
                state["requests"] = int(state["requests"]) + 1  # type: ignore[call-overload]
                state["active"] = int(state["active"]) + 1  # type: ignore[call-overload]
                state["max_active"] = max(int(state["max_active"]), int(state["active"]))  # type: ignore[call-overload]
            try:
                time.sleep(6)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            finally:
                with lock:
                    state["active"] = int(state["active"]) - 1  # type: ignore[call-overload]

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    state["url"] = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield state
    httpd.shutdown()
    httpd.server_close()


def test_a_paused_holder_neither_overlaps_nor_writes(
    store: Store, redis_url: str, tmp_path: Path, slow_hf: dict[str, object]
) -> None:
    env = role_env(
        redis_url,
        tmp_path,
        PAPERBOT_SOURCES="hf",
        HF_API_URL=str(slow_hf["url"]),
        PAPERBOT_HTTP_TIMEOUT="30",
        PAPERBOT_LEASE_TTL=str(TTL),
        PAPERBOT_CLOCK_STAGGER_SECONDS="0",
    )
    first = Role(env, "scheduler")
    second = None
    try:
        wait_for(lambda: slow_hf["requests"] == 1, 60, "the first fetch")
        assert holder_pid(store) == first.pid
        second = Role(env, "scheduler")
        wait_for(lambda: second.has("standing by"), 30, "the standby")

        # The holder stops mid-fetch (a long GC pause, a frozen VM): its lease runs out.
        os.kill(first.pid, signal.SIGSTOP)
        wait_for(lambda: second.has("holding the scheduler lease"), TTL + 10, "takeover")
        wait_for(lambda: second.has("ingest hf: running in another process"), 10, "the wait")
        time.sleep(1)
        assert slow_hf["requests"] == 1 and slow_hf["max_active"] == 1

        # It wakes up with the fetched page in hand: its write is refused, nothing stored;
        # only then does the new holder fetch, and it stores the papers.
        os.kill(first.pid, signal.SIGCONT)
        wait_for(lambda: first.has("ingest hf stopped"), 20, "the fenced write")
        assert "the scheduler lease ended" in first.err
        wait_for(lambda: first.has("scheduler lease lost"), 10, "the old holder stops")
        wait_for(lambda: second.find(r"ingest hf: \d+ new"), 30, "the new holder's ingest")
        assert slow_hf["requests"] == 2
        assert slow_hf["max_active"] == 1
        logged = store.ingest_log(count=10)
        assert len(logged) == 1 and logged[0].new == store.paper_count() > 0
        assert holder_pid(store) == second.pid
        for role in (first, second):
            err = role.stop(signal.SIGTERM)
            assert role.proc.returncode == 0, err
            assert "Traceback" not in err
        print(json.dumps({"requests": slow_hf["requests"], "max_active": slow_hf["max_active"]}))
    finally:
        first.kill()
        if second is not None:
            second.kill()


def test_a_hand_run_ingest_waits_for_the_scheduled_one(
    store: Store, redis_url: str, tmp_path: Path
) -> None:
    """`paperbot ingest` takes the same per-source lock as the clock's job."""
    store.r.set("pb:{clock}:running:ingest:jsonl", b"the-scheduler", px=10_000)
    env = role_env(redis_url, tmp_path)
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "bot", "ingest", "--source", "jsonl", str(SEED)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "jsonl: the scheduler is ingesting this source; waiting for it to end" in done.stderr
    assert "95 new" in done.stdout
    assert time.monotonic() - began >= 10
    assert store.r.get("pb:{clock}:running:ingest:jsonl") is None
