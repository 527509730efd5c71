"""Digest fan-out on real processes: several workers, kill -9, a Redis restart.

Each test starts `paperbot worker` / `paperbot run` processes against a rate-limited fake
Slack Web API and checks that every due digest arrives exactly once.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.config import load_settings
from bot.jobs.actors import Jobs
from bot.jobs.broker import build_broker
from recommender.store import Store
from tests.support import fanout

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server")
RECOVERY = 60.0  # a killed process's half-sent digests go out within this


@pytest.fixture
def slack() -> Iterator[fanout.RateLimitedSlack]:
    """The fake Web API: 20 ms per call, 1 message/s per channel, 10 per workspace."""
    fake = fanout.RateLimitedSlack(latency=0.02, workspace_rate=10)
    served = fanout.Served(fake)
    yield fake
    served.stop()


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen]]:
    """Processes a test starts; stopped at the end."""
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        fanout.stop(proc, kill=True)


def plan(store: Store, url: str) -> Jobs:
    """Enqueue the digest plan for now, as the scheduler's tick does."""
    jobs = Jobs(build_broker(load_settings(REDIS_URL=url), store.r))
    jobs.plan()
    return jobs


def all_sent(store: Store, periods: dict[str, str]) -> bool:
    """Whether every digest went out."""
    return fanout.sent_count(store, periods) == len(periods)


def test_several_workers_send_each_digest_once(
    store: Store, redis_url: str, slack: fanout.RateLimitedSlack, procs: list, tmp_path: Path
) -> None:
    periods = fanout.seed(store, 24, size=3)
    env = fanout.env_for(redis_url, slack.api_url, tmp_path, workspace_rate=10)
    for i in range(2):
        procs.append(fanout.start(["worker", "--threads", "4"], env, tmp_path / f"w{i}.log"))
    jobs = plan(store, redis_url)
    jobs.plan()  # a second tick for the same minute plans nothing twice
    for sub_id, period in list(periods.items())[:8]:  # redelivered jobs change nothing
        jobs.deliver(sub_id, "slack", period)
    assert fanout.wait_until(lambda: all_sent(store, periods), 90, 0.2)
    time.sleep(1.5)
    assert fanout.tally(slack, periods) == {"lost": 0, "duplicated": 0, "messages": 24 * 4}
    assert slack.limited <= 3  # the shared limiter keeps within the fake's limits


def _killed_mid_fanout(
    store: Store,
    url: str,
    slack: fanout.RateLimitedSlack,
    procs: list,
    tmp_path: Path,
    roles: list[list[str]],
) -> float:
    """Start `roles`, kill -9 the first mid fan-out, restart it; seconds from kill to done."""
    periods = fanout.seed(store, 20, size=5)
    env = fanout.env_for(url, slack.api_url, tmp_path, workspace_rate=10)
    for i, role in enumerate(roles):
        procs.append(fanout.start(role, env, tmp_path / f"p{i}.log"))
    if roles[0][0] == "worker":
        plan(store, url)
    assert fanout.wait_until(lambda: slack.posts() >= 30, 90, 0.05)
    fanout.stop(procs[0], kill=True)
    killed = time.monotonic()
    assert not all_sent(store, periods), "the fan-out ended before the kill"
    procs.append(fanout.start(roles[0], env, tmp_path / "restarted.log"))
    assert fanout.wait_until(lambda: all_sent(store, periods), RECOVERY + 30, 0.2)
    recovery = time.monotonic() - killed
    time.sleep(1.5)
    tally = fanout.tally(slack, periods)
    assert tally == {"lost": 0, "duplicated": 0, "messages": 20 * 6}
    return recovery


def test_a_worker_killed_mid_fanout_leaves_nothing_half_sent_or_twice(
    store: Store, redis_url: str, slack: fanout.RateLimitedSlack, procs: list, tmp_path: Path
) -> None:
    threads = ["--threads", "4"]
    roles = [["worker", *threads], ["worker", *threads]]
    recovery = _killed_mid_fanout(store, redis_url, slack, procs, tmp_path, roles)
    print(f"worker kill -9: every digest out {recovery:.1f}s after the kill")
    assert recovery < RECOVERY


def test_paperbot_run_killed_mid_fanout_and_restarted_sends_the_rest_once(
    store: Store, redis_url: str, slack: fanout.RateLimitedSlack, procs: list, tmp_path: Path
) -> None:
    roles = [["run", "--no-console", "--threads", "4"]]
    recovery = _killed_mid_fanout(store, redis_url, slack, procs, tmp_path, roles)
    print(f"paperbot run kill -9: every digest out {recovery:.1f}s after the kill")
    assert recovery < RECOVERY


def test_a_redis_restart_mid_fanout_loses_nothing_and_repeats_nothing(
    slack: fanout.RateLimitedSlack, procs: list, tmp_path: Path
) -> None:
    port = fanout.free_port()
    data = tmp_path / "redis"
    data.mkdir()
    args = ["redis-server", "--port", str(port), "--dir", str(data), "--appendonly", "yes"]
    args += ["--appendfsync", "everysec", "--save", ""]
    server = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        assert fanout.wait_until(lambda: _answers(url), 10)
        store = Store.connect(url)
        periods = fanout.seed(store, 20, size=5)
        env = fanout.env_for(url, slack.api_url, tmp_path, workspace_rate=10)
        for i in range(2):
            procs.append(fanout.start(["worker", "--threads", "4"], env, tmp_path / f"w{i}.log"))
        plan(store, url)
        assert fanout.wait_until(lambda: slack.posts() >= 30, 90, 0.05)
        server.terminate()  # SIGTERM: Redis writes its append-only file and stops
        server.wait(10)
        before = slack.posts()
        time.sleep(2)
        server = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        restarted = time.monotonic()
        assert fanout.wait_until(lambda: slack.posts() > before, 30, 0.05)
        recovery = time.monotonic() - restarted
        assert fanout.wait_until(lambda: _answers(url) and all_sent(store, periods), 120, 0.2)
        time.sleep(1.5)
        print(f"Redis restart: posting again {recovery:.1f}s after Redis was back")
        assert fanout.tally(slack, periods) == {"lost": 0, "duplicated": 0, "messages": 20 * 6}
        assert recovery < 10
        store.close()
    finally:
        server.terminate()
        server.wait(10)


def _answers(url: str) -> bool:
    """Whether a Redis server answers at `url`."""
    try:
        Store.connect(url).close()
        return True
    except Exception:
        return False


def _bench(tmp_path: Path, *extra: str) -> str:
    """Run `bench/fanout_bench.py` CI-sized; its report."""
    bench = fanout.ROOT / "bench" / "fanout_bench.py"
    args = ["--baseline", "2", "--baseline-limited", "1", "--size", "2", *extra]
    done = subprocess.run(
        [fanout.sys.executable, str(bench), *args, "--latency", "0.02", "--workspace-rate", "20"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "lost:        0" in done.stdout and "duplicated:  0" in done.stdout
    return done.stdout


def test_the_fanout_bench_runs_small(tmp_path: Path) -> None:
    """`bench/fanout_bench.py` end to end, CI-sized."""
    _bench(tmp_path, "--subscribers", "20")


def test_the_fanout_bench_runs_small_over_three_workspaces(tmp_path: Path) -> None:
    """The bench with 20 subscribers in each of 3 installed workspaces: each workspace's
    messages go out with its own token, within its own budget."""
    out = _bench(tmp_path, "--subscribers", "60", "--workspaces", "3")
    assert "wrong token: 0 " in out
    for team in fanout.teams_for(3):
        assert f"{team}:  60 messages" in out, out


def test_the_fake_refuses_a_post_with_another_workspaces_token(store: Store) -> None:
    """What the bench relies on: a DM of one workspace takes no post with another's token."""
    fake = fanout.RateLimitedSlack(latency=0.0, channel_rate=10)
    served = fanout.Served(fake)
    try:
        teams = fanout.teams_for(2)
        tokens = fanout.install(store, fake, teams)
        fanout.claim_dms(fake, {f"dm:slack:{teams[0]}:U1": "2026-01-01"})
        client = WebClient(token=tokens[teams[1]], base_url=served.api_url)
        with pytest.raises(SlackApiError, match="channel_not_found"):
            client.chat_postMessage(channel="DU1", text="hello")
        assert fake.foreign == 1
        WebClient(token=tokens[teams[0]], base_url=served.api_url).chat_postMessage(
            channel="DU1", text="hello"
        )
        assert fake.foreign == 1 and len(fake.workspace_times[teams[0]]) == 1
    finally:
        served.stop()
