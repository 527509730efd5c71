"""Digest fan-out at Slack's rate limits: `paperbot run` plus worker processes on one Redis.

A local fake Slack Web API answers every call after `--latency` (100 ms) and enforces one
message per second per channel and a workspace budget of W = `--workspace-rate` (50)
messages per second, in whole-second windows (429 + Retry-After beyond). `--subscribers`
(1,000) DM subscribers fall due in the same minute; `paperbot run` (scheduler and an
in-process worker) and `--workers` (2) `paperbot worker` processes share one Redis server
started for the run, and paperbot is told the same W.

Reported: digests lost and messages duplicated (both must be 0), the achieved message rate
from the first post to the last as a share of W (target >= 90 %), digests per second, and
the serial baseline measured in the same run: the one-at-a-time design (`Delivery.send`,
digest after digest, the Web API client waiting out 429s) sending other subscribers'
digests through the same fake, as ratios: `--baseline` (30) with the fake's limits off
(latency alone, as the serial figure of 1.36 digests/s was measured) and
`--baseline-limited` (5) with them on.

With `--workspaces N` (1) the subscribers are spread over N Slack workspaces, served as the
install flow serves many: no SLACK_BOT_TOKEN, one installation per workspace saved in the
installation store before the processes start, each with its own bot token. The fake counts
W per workspace (the token's) and refuses a post to a DM with another workspace's token;
the rate is reported as a share of N x W, and per workspace as a share of W.

    python bench/fanout_bench.py
    python bench/fanout_bench.py --subscribers 100 --baseline 10
    python bench/fanout_bench.py --workspaces 3
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.core import BotCore  # noqa: E402
from bot.repo import ChatRepo  # noqa: E402
from bot.slack_app import SlackPort, make_client  # noqa: E402
from bot.subscriptions import Subscription  # noqa: E402
from recommender.service import PaperService  # noqa: E402
from recommender.store import Store  # noqa: E402
from tests.e2e.slack_fakes import BOT_TOKEN  # noqa: E402
from tests.support import fanout  # noqa: E402


def start_redis(workdir: Path) -> tuple[subprocess.Popen, str]:
    """A Redis server of the run's own, on a free port."""
    port = fanout.free_port()
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(100):
        try:
            Store.connect(url).close()
            return proc, url
        except Exception:
            time.sleep(0.05)
    raise SystemExit("redis-server did not start")


def baseline(store: Store, served: fanout.Served, count: int, prefix: str) -> float:
    """Digests per second of the serial design, over `count` subscribers of their own."""
    periods = fanout.seed(store, count, prefix=prefix)
    core = BotCore(PaperService(store, encoder=None))
    core.register(SlackPort(make_client(BOT_TOKEN, served.api_url)))
    chat = ChatRepo(store)
    subs = [Subscription.from_dict(chat.get_subscription(s)) for s in periods]

    async def serial() -> float:
        started = time.perf_counter()
        for sub in subs:
            await core.delivery.send(sub, periods[sub.id])
        return time.perf_counter() - started

    elapsed = served.run(serial(), timeout=3600)
    tally = fanout.tally(served.fake, periods)
    if tally["lost"] or tally["duplicated"]:
        print(f"  baseline: {tally}")
    return count / elapsed


def rate_of(times: list[float]) -> tuple[float, float]:
    """Messages per second from the first post to the last, and that span in seconds."""
    posts = sorted(times)
    span = (posts[-1] - posts[0]) if len(posts) > 1 else 0.0
    return ((len(posts) - 1) / span if span > 0 else 0.0), span


def report_workspaces(fake: fanout.RateLimitedSlack, teams: tuple[str, ...], w: int) -> None:
    """Each workspace's achieved rate as a share of W, and posts with a foreign token."""
    for team in teams:
        times = fake.workspace_times.get(team, [])
        rate, span = rate_of(times)
        print(
            f"  {team}:  {len(times)} messages, {rate:.1f} msg/s over {span:.1f}s = "
            f"{100 * rate / w:.1f}% of W"
        )
    print(f"  wrong token: {fake.foreign} posts to a DM with another workspace's token")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8, help="threads per process")
    parser.add_argument("--size", type=int, default=5, help="papers per digest")
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--workspace-rate", type=int, default=50)
    parser.add_argument(
        "--workspaces", type=int, default=1, help="Slack workspaces (more than 1: install flow)"
    )
    parser.add_argument("--baseline", type=int, default=30, help="subscribers sent serially")
    parser.add_argument(
        "--baseline-limited",
        type=int,
        default=5,
        help="subscribers sent serially with the limits on (about 10 s each)",
    )
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--timeline", action="store_true", help="print posts per second")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="fanout-"))
    redis, url = start_redis(workdir)
    store = Store.connect(url)
    fake = fanout.RateLimitedSlack(latency=args.latency, workspace_rate=args.workspace_rate)
    served = fanout.Served(fake)
    procs: list[subprocess.Popen] = []
    try:
        base_rate = baseline(store, served, args.baseline_limited, "UB")
        # The same design without the platform's limits: what network latency alone allows.
        limits = fake.channel_rate, fake.workspace_rate
        fake.channel_rate = fake.workspace_rate = 1_000_000
        free_rate = baseline(store, served, args.baseline, "UF")
        fake.channel_rate, fake.workspace_rate = limits
        fake.post_times.clear()
        fake.workspace_times.clear()
        limited_before = fake.limited
        teams = fanout.teams_for(args.workspaces)
        many = args.workspaces > 1
        if many:
            fanout.install(store, fake, teams)
        periods = fanout.seed(store, args.subscribers, teams=teams, size=args.size)
        if many:
            fanout.claim_dms(fake, periods)
        env = fanout.env_for(
            url, served.api_url, workdir, workspace_rate=args.workspace_rate, install_flow=many
        )
        threads = ["--threads", str(args.threads)]
        started = time.time()
        procs.append(fanout.start(["run", "--no-console", *threads], env, workdir / "run.log"))
        for i in range(args.workers):
            procs.append(fanout.start(["worker", *threads], env, workdir / f"worker{i}.log"))
        done = fanout.wait_until(
            lambda: fanout.sent_count(store, periods) == len(periods), args.timeout, 0.5
        )
        finished = time.time()
        time.sleep(2)  # anything still in flight would show up as a duplicate
        tally = fanout.tally(fake, periods)
        posts = sorted(fake.post_times)
        span = (posts[-1] - posts[0]) if len(posts) > 1 else float("nan")
        rate = (len(posts) - 1) / span if span and span > 0 else 0.0
        digests_per_s = len(periods) / (posts[-1] - posts[0]) if span else 0.0
        spread = f" over {args.workspaces} workspaces (install flow)" if many else ""
        print(
            f"fan-out: {args.subscribers} DM subscribers{spread} x {args.size} papers, "
            f"latency {args.latency * 1000:.0f} ms, W = {args.workspace_rate} msg/s, "
            f"`paperbot run` + {args.workers} workers x {args.threads} threads"
        )
        print(f"  all sent:    {done} ({finished - started:.1f}s after the processes started)")
        print(f"  lost:        {tally['lost']}")
        print(f"  duplicated:  {tally['duplicated']}")
        print(f"  messages:    {tally['messages']} ({fake.limited - limited_before} answered 429)")
        allowed = args.workspaces * args.workspace_rate
        print(
            f"  rate:        {rate:.1f} msg/s first post to last ({span:.1f}s) = "
            f"{100 * rate / allowed:.1f}% of {'N x W' if many else 'W'}"
        )
        if many:
            report_workspaces(fake, teams, args.workspace_rate)
        print(f"  digests/s:   {digests_per_s:.2f}")
        print(
            f"  serial:      {base_rate:.2f} digests/s ({args.baseline_limited} subscribers, "
            f"same fake and limits): {digests_per_s / base_rate:.1f}x"
        )
        print(
            f"  serial:      {free_rate:.2f} digests/s ({args.baseline} subscribers, same fake, "
            "limits off, latency only): "
            f"{digests_per_s / free_rate:.1f}x"
        )
        if args.timeline:
            first = int(posts[0]) if posts else 0
            counts = [0] * (int(posts[-1]) - first + 1) if posts else []
            for t in posts:
                counts[int(t) - first] += 1
            print("  per second:  " + " ".join(map(str, counts)))
        ok = done and not tally["lost"] and not tally["duplicated"] and not fake.foreign
        return 0 if ok else 1
    finally:
        for proc in procs:
            fanout.stop(proc)
        served.stop()
        store.close()
        redis.terminate()
        redis.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
