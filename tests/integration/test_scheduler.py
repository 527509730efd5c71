"""The scheduler: job registration, ingest jobs against a local server, the lease, `run`."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import redis
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bot import scheduler as sched
from bot.config import Settings, load_settings
from bot.repo.clock import LEASE_KEY, ClockLease, Fence, FencedOut, FencedStore, job_lock, last_runs
from recommender import pipeline
from recommender.index import SearchIndex
from recommender.store import Store
from tests.conftest import redis_test_url
from tests.integration.roles_support import Role

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
ROOT = Path(__file__).resolve().parents[2]
TEST_REDIS = redis_test_url(11)


@pytest.fixture
def server() -> Iterator[tuple[str, dict[str, tuple[int, bytes]]]]:
    """A local HTTP server answering from a path -> (status, body) table."""
    routes: dict[str, tuple[int, bytes]] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = routes.get(self.path.split("?")[0], (404, b"not found"))
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", routes
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def store() -> Iterator[Store]:
    """A store on the dedicated test database, flushed before and after."""
    client = redis.Redis.from_url(TEST_REDIS)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.fail(f"these tests need a Redis server at {TEST_REDIS} (bash .ci/run starts one)")
    client.flushdb()
    s = Store.connect(TEST_REDIS)
    yield s
    client.flushdb()
    client.close()
    s.close()


def settings_for(base_url: str, **overrides: object) -> Settings:
    """Settings pointing every remote source at the local server."""
    values: dict[str, object] = {
        "redis_url": TEST_REDIS,
        "hf_api_url": base_url,
        "arxiv_api_url": f"{base_url}/api/query",
        "arxiv_rss_url": base_url,
        "categories": ["cs.LG"],
        "embeddings": False,
        "http_timeout": 2.0,
    }
    values.update(overrides)
    return load_settings(**values)


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    """Poll until `condition()` holds or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


# ---------------------------------------------------------------------------------------
# Jobs
# ---------------------------------------------------------------------------------------


def test_jobs_have_explicit_ids_and_safe_defaults(server, store: Store) -> None:
    """One interval job per source, explicit ids, coalesced, one instance, a grace time."""
    settings = settings_for(server[0], sources=["hf", "rss", "arxiv"], ingest_interval_minutes=30)
    scheduler = sched.build_scheduler(sched.Runtime(settings, store), run_now=False)
    scheduler.start(paused=True)
    try:
        jobs = {job.id: job for job in scheduler.get_jobs()}
        assert set(jobs) == {"ingest:hf", "ingest:rss", "ingest:arxiv"}
        for kind in ("hf", "rss", "arxiv"):
            job = jobs[f"ingest:{kind}"]
            assert job.func is sched.ingest_job
            assert job.args[1] == kind
            assert job.coalesce is True
            assert job.max_instances == 1
            assert job.misfire_grace_time == 15 * 60
            assert isinstance(job.trigger, IntervalTrigger)
            assert job.trigger.interval.total_seconds() == 30 * 60
        # Registering again replaces rather than duplicates.
        sched.add_ingest_jobs(scheduler, sched.Runtime(settings, store), run_now=False)
        assert len(scheduler.get_jobs()) == 3
    finally:
        scheduler.shutdown(wait=False)


def test_ingest_job_against_a_local_server(server, store: Store) -> None:
    """The job fetches through HF_API_URL, stores, logs the run and refreshes the index."""
    url, routes = server
    routes["/api/daily_papers"] = (200, (FIXTURES / "hf_daily_papers_2026-06-12.json").read_bytes())
    index = SearchIndex()
    runtime = sched.Runtime(settings_for(url, sources=["hf"]), store, index=index)
    report = sched.ingest_job(runtime, "hf")
    assert report is not None and report.error is None
    assert report.new == 30
    assert store.paper_count() == 30
    assert len(index) == 30
    assert index.search("adaptability internalized priors", 1)[0].paper_id == "2606.00467"
    log = store.ingest_log(1)
    assert log[0].source == "hf" and log[0].new == 30
    again = sched.ingest_job(runtime, "hf")
    assert again is not None and again.unchanged == 30 and again.new == 0


def test_failing_job_logs_one_line_and_returns(
    server, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """A source error is logged as one line; the job never raises."""
    url, routes = server
    routes["/api/daily_papers"] = (200, b"<html>oops</html>")
    runtime = sched.Runtime(settings_for(url, sources=["hf"]), store)
    with caplog.at_level("ERROR", logger="bot.scheduler"):
        report = sched.ingest_job(runtime, "hf")
    assert report is not None and report.error is not None
    messages = [r.getMessage() for r in caplog.records if r.name == "bot.scheduler"]
    assert len(messages) == 1 and "unexpected response" in messages[0]
    assert "not JSON, 17 bytes" in messages[0] and "oops" not in messages[0]
    assert "\n" not in messages[0]
    assert store.ingest_log(1)[0].error


def test_scheduler_runs_other_sources_when_one_fails(server, store: Store) -> None:
    """Started with run_now, every source is ingested at once; one failure stops nothing."""
    url, routes = server
    routes["/api/daily_papers"] = (500, b"down")
    routes["/rss/cs.LG"] = (200, (FIXTURES / "arxiv_rss2_cs.LG_trimmed.xml").read_bytes())
    settings = settings_for(
        url,
        sources=["hf", "rss", "jsonl"],
        jsonl_path=FIXTURES / "seed_papers.jsonl",
        http_timeout=0.5,
    )
    runtime = sched.Runtime(settings, store, index=SearchIndex())
    scheduler = sched.build_scheduler(runtime, run_now=True)
    scheduler.start()
    try:
        assert wait_for(lambda: len(runtime.last_reports) == 3, timeout=30)
    finally:
        scheduler.shutdown(wait=True)
    reports = runtime.last_reports
    assert reports["hf"].error is not None and "HTTP 500" in reports["hf"].error
    assert reports["rss"].error is None and reports["rss"].new == 3
    assert reports["jsonl"].error is None and reports["jsonl"].new == 95
    assert runtime.index is not None and len(runtime.index) == 98


# ---------------------------------------------------------------------------------------
# Pipeline pieces the jobs rely on
# ---------------------------------------------------------------------------------------


class CountingEncoder:
    """A stand-in for the sentence encoder that records what it embeds."""

    name = "counting-test"
    dim = 4

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """A fixed unit vector per text."""
        self.calls.append(list(texts))
        return np.tile(np.array([1, 0, 0, 0], np.float32), (len(texts), 1))


def test_embeddings_are_computed_once_per_text(server, store: Store, tmp_path: Path) -> None:
    """The job embeds new papers; a re-ingest or a second embed costs no encoder call."""
    encoder = CountingEncoder()
    path = tmp_path / "p.jsonl"
    rows = [{"id": f"2401.0000{i}", "title": f"Paper {i}", "abstract": "x"} for i in range(3)]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    settings = settings_for(server[0], sources=["jsonl"], jsonl_path=path)
    runtime = sched.Runtime(settings, store, encoder=encoder)
    sched.ingest_job(runtime, "jsonl")
    assert sum(len(c) for c in encoder.calls) == 3
    sched.ingest_job(runtime, "jsonl")
    assert pipeline.embed_new(store, encoder, ["2401.00000", "2401.00001"]) == 2
    assert sum(len(c) for c in encoder.calls) == 3
    assert pipeline.embed_new(store, None, ["2401.00000"]) == 0


def test_refresh_drops_a_retired_title_id(store: Store) -> None:
    """A title-only paper later adopted by its arXiv id shows once in search."""
    index = pipeline.build_index(store)
    title = "A Very Particular Paper About Zebras"
    first = pipeline.ingest_source(
        store, "jsonl", body=json.dumps({"title": title, "abstract": "stripes"}).encode()
    )
    pipeline.refresh_index(index, store, paper_ids=first.new_ids)
    assert [h.paper_id for h in index.search("zebras")] == first.new_ids
    record = {"id": "2401.55555", "title": title, "abstract": "stripes and more"}
    second = pipeline.ingest_source(store, "jsonl", body=json.dumps(record).encode())
    pipeline.refresh_index(index, store, paper_ids=[*second.new_ids, *second.updated_ids])
    assert [h.paper_id for h in index.search("zebras")] == ["2401.55555"]


def test_refresh_since_catches_up(store: Store) -> None:
    """A process that did not ingest can add what arrived since a time."""
    index = SearchIndex()
    start = time.time() - 1
    pipeline.ingest_source(store, "jsonl", path=FIXTURES / "seed_papers.jsonl")
    assert pipeline.refresh_index(index, store, since=start) == 95
    assert len(pipeline.build_index(store)) == 95


def test_arxiv_search_query() -> None:
    """Several categories are OR-ed, free text AND-ed."""
    assert pipeline.arxiv_search_query(None, ["cs.LG"]) == "cat:cs.LG"
    assert (
        pipeline.arxiv_search_query("graph nets", ["cs.LG", "stat.ML"])
        == 'all:"graph nets" AND (cat:cs.LG OR cat:stat.ML)'
    )
    assert pipeline.rss_feed_name(["cs.LG", "cs.CL", "cs.LG"]) == "cs.LG+cs.CL"


# ---------------------------------------------------------------------------------------
# The lease: one scheduler only
# ---------------------------------------------------------------------------------------


def test_lease_is_exclusive_and_fenced(store: Store) -> None:
    """Only one holder; each acquisition takes a higher fence; an old fence is refused."""
    first = ClockLease(store.r, ttl=5)
    second = ClockLease(store.r, ttl=5)
    fence = first.acquire()
    assert fence is not None and fence.valid()
    assert second.acquire() is None
    assert not second.renew()
    assert first.renew()
    assert first.holder()["fence"] == str(fence.token)
    assert fence.record_run("ingest:hf", 123.0)
    first.release()
    assert not fence.valid()
    newer = second.acquire()
    assert newer is not None and newer.token == fence.token + 1
    assert not first.renew()
    with pytest.raises(FencedOut):
        fence.check("a late write")
    assert not fence.record_run("ingest:hf", 456.0)
    assert last_runs(store.r) == {"ingest:hf": 123.0}
    second.release()


def test_stats_names_the_process_running_the_clock(store: Store) -> None:
    """`paperbot stats` says who holds the lease, or that nobody does."""
    from rich.console import Console

    from bot.__main__ import _print_clock
    from bot.cli_app import App

    out = Console(record=True, width=200)
    app = App(settings_for("http://127.0.0.1:9"), out, out)
    _print_clock(app, store)
    lease = ClockLease(store.r, ttl=5)
    fence = lease.acquire()
    assert fence is not None
    _print_clock(app, store)
    lease.release()
    lines = out.export_text().splitlines()
    assert lines[0].startswith("Scheduler: nobody holds the lease")
    assert f"pid {os.getpid()}" in lines[1] and f"(fence {fence.token})" in lines[1]


def test_lease_expires_without_renewal(store: Store) -> None:
    """A crashed holder's lease runs out, and another process takes over."""
    first = ClockLease(store.r, ttl=0.2)
    second = ClockLease(store.r, ttl=0.2)
    old = first.acquire()
    assert old is not None
    assert wait_for(lambda: second.acquire() is not None, timeout=2)
    assert not first.renew()
    assert not old.valid()


def test_fenced_store_checks_before_writes_only(store: Store) -> None:
    """Reads pass; a write after the lease moved raises FencedOut and writes nothing."""
    lease = ClockLease(store.r, ttl=5)
    fence = lease.acquire()
    assert fence is not None
    fenced_store = FencedStore(store, fence, "ingest jsonl")
    report = pipeline.ingest_source(fenced_store, "jsonl", path=FIXTURES / "seed_papers.jsonl")
    assert report.new == 95
    store.r.delete(LEASE_KEY)  # the lease ran out while this holder was paused
    ClockLease(store.r, ttl=5).acquire()
    assert fenced_store.paper_count() == 95
    with pytest.raises(FencedOut):
        fenced_store.log_ingest(report)
    assert len(store.ingest_log(count=10)) == 1


def test_first_run_times_keep_rhythm_and_stagger() -> None:
    """Jobs run recently keep their rhythm; due ones start a stagger apart, not at once."""
    jobs = [("ingest:hf", 3600.0), ("ingest:arxiv", 3600.0), ("ingest:rss", 3600.0)]
    last = {"ingest:hf": 1000.0 - 600, "ingest:arxiv": 1000.0 - 7200}
    times = sched.first_run_times(jobs, last, 1000.0, stagger=10)
    assert times == {"ingest:hf": 4000.0, "ingest:arxiv": 1000.0, "ingest:rss": 1010.0}
    quiet = sched.first_run_times(jobs, {}, 1000.0, stagger=10, run_now=False)
    assert set(quiet.values()) == {4600.0}


def test_a_job_runs_in_one_process_at_a_time(store: Store) -> None:
    """The per-job lock: a second holder is refused while the first runs, then allowed."""
    with job_lock(store.r, "ingest:hf", ttl=0.3) as first:
        assert first
        with job_lock(store.r, "ingest:hf", ttl=0.3) as second:
            assert not second
        time.sleep(0.5)  # kept alive past its TTL by the extender
        with job_lock(store.r, "ingest:hf", ttl=0.3) as third:
            assert not third
    with job_lock(store.r, "ingest:hf", ttl=0.3) as again:
        assert again
        waited: list[float] = []
        began = time.monotonic()
        with job_lock(
            store.r, "ingest:hf", ttl=0.3, wait=0.2, on_wait=lambda: waited.append(1)
        ) as late:
            assert not late and waited == [1]
        assert time.monotonic() - began >= 0.1  # it did wait (redis-py polls every 0.1 s)
    # A crashed holder's lock (never extended) runs out; a waiting job then gets it.
    store.r.set("pb:{clock}:running:ingest:hf", b"dead", px=300)
    with job_lock(store.r, "ingest:hf", ttl=0.3, wait=2) as after_crash:
        assert after_crash


def test_a_stale_holder_neither_publishes_a_model_nor_runs_digests(store: Store) -> None:
    """The retrain publish and the digest run check the fence of their lease term."""
    from bot.core import BotCore
    from recommender.service import PaperService

    pipeline.ingest_source(store, "jsonl", path=FIXTURES / "seed_papers.jsonl")
    core = BotCore(PaperService(store, encoder=None))
    runtime = sched.Runtime(settings_for("http://127.0.0.1:9"), store, core=core)
    fence = ClockLease(store.r, ttl=5).acquire()
    assert fence is not None
    store.r.delete(LEASE_KEY)
    assert ClockLease(store.r, ttl=5).acquire() is not None  # another process took over
    assert sched.retrain_job(runtime, fence) is False
    assert store.current_model() is None
    assert sched.digest_job(runtime, fence=fence) == {}
    assert "retrain" not in last_runs(store.r)
    # The current holder's fence publishes.
    current = ClockLease(store.r, ttl=120)  # nobody renews it here: outlast the fit
    store.r.delete(LEASE_KEY)
    fresh = current.acquire()
    assert fresh is not None
    assert sched.retrain_job(runtime, fresh) is True
    assert store.current_model() is not None
    assert "retrain" in last_runs(store.r)


def _quiet_scheduler(
    runtime: sched.Runtime, *, run_now: bool = True, fence: Fence | None = None
) -> BackgroundScheduler:
    """The real scheduler without the start-up ingest (these tests are about the lease)."""
    return sched.build_scheduler(runtime, run_now=False, fence=fence)


def test_second_service_stands_by_then_takes_over(server, store: Store) -> None:
    """Two `paperbot run` services on one Redis: one schedules; the other waits its turn."""
    settings = settings_for(server[0], sources=["hf"])
    one = sched.SchedulerService(
        sched.Runtime(settings, store), lease_ttl=5, scheduler_factory=_quiet_scheduler
    )
    two = sched.SchedulerService(
        sched.Runtime(settings, store), lease_ttl=5, scheduler_factory=_quiet_scheduler
    )
    try:
        assert one.tick() is True
        assert one.scheduler is not None and one.scheduler.get_job("ingest:hf") is not None
        assert two.tick() is False and two.scheduler is None
        assert one.tick() is True  # renewal keeps it
        one.shutdown()
        assert one.scheduler is None
        assert two.tick() is True
        assert two.fence is not None and two.fence.valid()
    finally:
        one.shutdown()
        two.shutdown()


def test_service_stops_scheduling_when_the_lease_is_lost(server, store: Store) -> None:
    """If another process took the lease (e.g. after a long pause), this one stops its jobs."""
    settings = settings_for(server[0], sources=["hf"])
    service = sched.SchedulerService(
        sched.Runtime(settings, store), lease_ttl=5, scheduler_factory=_quiet_scheduler
    )
    try:
        assert service.tick()
        store.r.set(LEASE_KEY, b"someone-else")
        assert service.tick() is False
        assert service.scheduler is None
    finally:
        service.shutdown()
    assert store.r.get(LEASE_KEY) == b"someone-else"


def test_losing_the_lease_lets_the_running_job_finish_without_blocking(store: Store) -> None:
    """The tick that finds the lease gone returns at once; the running job ends; no second
    clock starts here until it has."""
    started, release = threading.Event(), threading.Event()

    def slow_job() -> None:
        started.set()
        release.wait(10)

    def factory(
        runtime: sched.Runtime, *, run_now: bool = True, fence: Fence | None = None
    ) -> BackgroundScheduler:
        scheduler = BackgroundScheduler()
        scheduler.add_job(slow_job, "date", id="slow")
        return scheduler

    settings = settings_for("http://127.0.0.1:9", sources=["hf"])
    service = sched.SchedulerService(
        sched.Runtime(settings, store), lease_ttl=5, scheduler_factory=factory
    )
    try:
        assert service.tick()
        assert started.wait(5)
        store.r.delete(LEASE_KEY)  # expired while this process was busy
        began = time.monotonic()
        assert service.tick() is False
        assert time.monotonic() - began < 1.0
        stopping = service._stopping
        assert stopping is not None and stopping.is_alive()
        assert service.tick() is False  # the lease is free, but the old term still runs
        assert store.r.get(LEASE_KEY) is None
        release.set()
        stopping.join(5)
        assert not stopping.is_alive()
        assert service.tick() is True  # now it may hold the clock again, with a new fence
    finally:
        release.set()
        service.shutdown()


# ---------------------------------------------------------------------------------------
# `paperbot run` as a real process
# ---------------------------------------------------------------------------------------


def _spawn_run(env: dict[str, str]) -> Role:
    """Start `python -m bot run` with `env`, stderr collected."""
    return Role(env, "run")


def test_run_ingests_stands_by_and_stops_cleanly(store: Store, tmp_path: Path) -> None:
    """`paperbot run`: ingests at start, a second process stands by, Ctrl-C/SIGTERM stop."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAPERBOT_", "REDIS_"))}
    env.update(
        {
            "REDIS_URL": TEST_REDIS,
            "PAPERBOT_DATA_DIR": str(tmp_path),
            "PAPERBOT_SOURCES": "jsonl",
            "PAPERBOT_JSONL_PATH": str(FIXTURES / "seed_papers.jsonl"),
            "PAPERBOT_EMBEDDINGS": "false",
            "PAPERBOT_LOG_LEVEL": "INFO",
            "PYTHONPATH": str(ROOT),
        }
    )
    first = _spawn_run(env)
    second = None
    try:
        assert wait_for(lambda: store.paper_count() == 95, timeout=30), "no ingest"
        second = _spawn_run(env)
        assert wait_for(lambda: "standing by" in second.err, timeout=60), second.err
        assert second.proc.poll() is None
        err_two = second.stop(signal.SIGTERM)
        assert second.proc.returncode == 0, err_two
        assert "Traceback" not in err_two

        err_one = first.stop(signal.SIGINT)
        assert first.proc.returncode == 0, err_one
        jobs = re.search(r"holding the scheduler lease; jobs: ([a-z:, ]+)", err_one)
        assert jobs and sorted(jobs.group(1).split(", ")) == ["digests", "ingest:jsonl", "retrain"]
        assert "ingest jsonl: 95 new" in err_one
        assert "paperbot stopped." in err_one
        assert "Traceback" not in err_one
        # The lease was released on the way out, so a restart need not wait for the TTL.
        assert store.r.get(LEASE_KEY) is None
    finally:
        for run in (first, second):
            if run is not None and run.proc.poll() is None:
                run.proc.kill()
                run.proc.wait(timeout=10)
