"""The clock as real processes: `paperbot scheduler` twice plus `paperbot worker`.

- kill -9 the lease holder: the standby runs the clock within lease TTL + 5 s, and does not
  enqueue the ingest that just ran again (the last run time is in Redis);
- a holder paused (SIGSTOP) past its TTL: the new holder enqueues the due ingest once;
  when the old one wakes up, it enqueues nothing (its writes are fenced), so the source is
  fetched once, never twice at once;
- `paperbot ingest` by hand waits for the per-source lock of a running ingest.
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


def last_run(store: Store, job: str) -> float | None:
    """When the clock last ran (or enqueued) `job`."""
    raw = store.r.hget(LAST_RUN_KEY, job)
    return float(raw) if raw else None


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
        PAPERBOT_WORKER_THREADS="2",
    )
    worker = Role(env, "worker")
    roles = [Role(env, "scheduler"), Role(env, "scheduler")]
    try:
        wait_for(lambda: store.paper_count() == 95, 90, "the first ingest, by the worker")
        enqueued = last_run(store, "ingest:jsonl")
        assert enqueued is not None
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
        assert last_run(store, "ingest:jsonl") == enqueued
        assert worker.err.count("ingest jsonl:") == 1, worker.err
        # The schedulers only enqueue: the ingest ran in the worker.
        assert "ingest jsonl:" not in holder.err + standby.err
        for role in (standby, worker):
            err = role.stop(signal.SIGTERM)
            assert role.proc.returncode == 0, err
            assert "Traceback" not in err
        assert "paperbot scheduler stopped." in standby.err
    finally:
        for role in (*roles, worker):
            role.kill()


@pytest.fixture
def slow_hf() -> Iterator[dict[str, object]]:
    """A fake Hugging Face daily papers API that answers after 6 s and counts overlaps."""
    body = (FIXTURES / "hf_daily_papers_2026-06-12.json").read_bytes()
    state: dict[str, object] = {"active": 0, "max_active": 0, "requests": 0}
    lock = threading.Lock()

    def bump(name: str, by: int) -> None:
        """Count under the lock."""
        with lock:
            state[name] = int(state[name]) + by  # type: ignore[call-overload]
            state["max_active"] = max(int(state["max_active"]), int(state["active"]))  # type: ignore[call-overload]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            bump("requests", 1)
            bump("active", 1)
            try:
                time.sleep(6)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            finally:
                bump("active", -1)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    state["url"] = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield state
    httpd.shutdown()
    httpd.server_close()


DUE = 30.0  # seconds from the start of the test until the hf ingest falls due


def test_a_paused_holder_enqueues_nothing_and_the_source_is_fetched_once(
    store: Store, redis_url: str, tmp_path: Path, slow_hf: dict[str, object]
) -> None:
    # The previous holder ingested hf an interval minus DUE seconds ago.
    due_at = time.time() + DUE
    store.r.hset(LAST_RUN_KEY, "ingest:hf", due_at - 3600)
    env = role_env(
        redis_url,
        tmp_path,
        PAPERBOT_SOURCES="hf",
        HF_API_URL=str(slow_hf["url"]),
        PAPERBOT_HTTP_TIMEOUT="30",
        PAPERBOT_LEASE_TTL=str(TTL),
        PAPERBOT_CLOCK_STAGGER_SECONDS="0",
        PAPERBOT_WORKER_THREADS="2",
    )
    workers = [Role(env, "worker"), Role(env, "worker")]
    first = Role(env, "scheduler")
    second = None
    try:
        wait_for(lambda: first.has("holding the scheduler lease"), 60, "the first holder")
        second = Role(env, "scheduler")
        wait_for(lambda: second.has("standing by"), 60, "the standby")
        assert time.time() < due_at - TTL - 2, "processes started too slowly for this test"

        # The holder freezes (a long GC pause, a stopped VM) before its ingest falls due.
        os.kill(first.pid, signal.SIGSTOP)
        wait_for(lambda: second.has("holding the scheduler lease"), TTL + 10, "takeover")
        wait_for(lambda: slow_hf["requests"] == 1, DUE + 20, "the ingest the new holder enqueued")
        assert last_run(store, "ingest:hf") is not None

        # It wakes up past its ingest's due time, mid-fetch: it must write nothing.
        os.kill(first.pid, signal.SIGCONT)
        wait_for(lambda: first.has("scheduler lease lost"), 20, "the old holder stops")
        wait_for(lambda: any("ingest hf:" in w.err for w in workers), 30, "the ingest")
        time.sleep(3)
        assert slow_hf["requests"] == 1
        assert slow_hf["max_active"] == 1
        assert not any("another ingest is running" in w.err for w in workers)
        assert holder_pid(store) == second.pid
        refused = first.has("ingest hf not enqueued: ingest hf: the scheduler lease ended")
        print(
            json.dumps({**{k: slow_hf[k] for k in ("requests", "max_active")}, "refused": refused})
        )
        for role in (first, second, *workers):
            err = role.stop(signal.SIGTERM)
            assert role.proc.returncode == 0, err
            assert "Traceback" not in err
    finally:
        for role in (first, *workers):
            role.kill()
        if second is not None:
            second.kill()


def test_a_hand_run_ingest_waits_for_the_scheduled_one(
    store: Store, redis_url: str, tmp_path: Path
) -> None:
    """`paperbot ingest` takes the same per-source lock as the clock's job."""
    key = "pb:{clock}:running:ingest:jsonl"
    # Held until the hand-run ingest says it waits (a loaded machine may take many seconds
    # to start a process), then released as the scheduled ingest's end would release it.
    store.r.set(key, b"the-scheduler", px=120_000)
    env = role_env(redis_url, tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "ingest", "--source", "jsonl", str(SEED)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        assert "jsonl: the scheduler is ingesting this source; waiting for it to end" in first
        time.sleep(2)
        assert proc.poll() is None  # still waiting while the lock is held
        store.r.delete(key)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "95 new" in out
    assert store.r.get(key) is None
