"""Redis stopped for 20 s under traffic: how soon after it returns does paperbot serve again?

A redis-server of its own (append-only file, so the data survives), the seed corpus, one
subscribed person. Commands, button clicks and reactions run every 0.2 s from a thread; a
digest is being posted (slowly) when Redis stops. Redis is stopped for `--outage` seconds,
then started again. Reported per kind of action: its answers during the outage (each must
be the one clear "cannot reach its database" line), and the time from Redis answering
again to that action's first success. Goal: every kind back within 10 s. The baseline,
same run: a command's latency with Redis up, and the ratio of the first command after the
outage to it.

    python bench/redis_outage.py [--outage 20]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot import scheduler as sched  # noqa: E402
from bot.config import load_settings  # noqa: E402
from bot.core import UNAVAILABLE, BotCore  # noqa: E402
from bot.feedback import button_value  # noqa: E402
from bot.ports import Context, Sent  # noqa: E402
from bot.repo import ChatRepo  # noqa: E402
from recommender.ingest import ingest  # noqa: E402
from recommender.service import PaperService  # noqa: E402
from recommender.sources import parse_body  # noqa: E402
from recommender.store import Store  # noqa: E402
from recommender.types import Feedback  # noqa: E402
from tests.integration.test_digest_delivery import FakePort  # noqa: E402
from tests.integration.test_redis_outage import RedisServer  # noqa: E402

SEED = ROOT / "tests" / "fixtures" / "seed_papers.jsonl"
CTX = Context("slack", "T1", "U1", channel="D1", is_dm=True, timezone="UTC")
GOAL = 10.0


class SlowPort(FakePort):
    """A port whose posts take 0.3 s (so the outage cuts a digest mid-way), and that finds
    its own posts as the Slack port does through history."""

    async def post_card(self, target, digest, card, thread):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.3)
        return await super().post_card(target, digest, card, thread)

    async def find_sent(self, target, digest, card, thread):  # type: ignore[no-untyped-def]
        for _, posted, _, key in self.cards:
            if card is not None and posted.paper_id == card.paper_id:
                return Sent(key, card.paper_id)
        return None


def next_due() -> datetime:
    """When a daily 09:00 UTC digest made now is next due (half an hour past)."""
    now = datetime.now(UTC)
    due = now.replace(hour=9, minute=30, second=0, microsecond=0)
    return due if due > now else due + timedelta(days=1)


def main() -> int:
    """Run the outage once and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outage", type=float, default=20.0, help="seconds Redis is down")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp))
        server.start()
        try:
            return run(server, args.outage)
        finally:
            server.stop()


class Lines(logging.Handler):
    """Collects log lines (instead of printing them) to count them."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def run(server: RedisServer, outage: float) -> int:
    """The measured run."""
    lines = Lines()
    logging.getLogger().addHandler(lines)
    logging.getLogger().setLevel(logging.ERROR)
    store = Store.connect(server.url)
    ingest(store, parse_body("jsonl", SEED.read_bytes()), "jsonl")
    core = BotCore(PaperService(store, encoder=None))
    port = SlowPort()
    core.register(port)
    core.answer(CTX, "subscribe daily 09:00 UTC")
    papers = store.all_paper_ids()
    ChatRepo(store).remember_message("slack:D1:1.0", {"paper": papers[1], "workspace": "T1"})
    runtime = sched.Runtime(settings=load_settings(), store=store, core=core)
    due = next_due()

    baseline = []
    for _ in range(30):
        started = time.perf_counter()
        assert core.answer(CTX, "settings").text != UNAVAILABLE
        baseline.append(time.perf_counter() - started)
    base = statistics.median(baseline)

    # (kind, time, ok) of every action the traffic thread ran.
    events: list[tuple[str, float, bool]] = []
    stop = threading.Event()

    def traffic() -> None:
        """Commands, clicks and reactions every 0.2 s until told to stop."""
        n = 0
        while not stop.is_set():
            n += 1
            reply = core.answer(CTX, "settings").text
            events.append(("command", time.monotonic(), reply != UNAVAILABLE))
            kind = (Feedback.LIKE, Feedback.SAVE)[n % 2]
            click = core.button(CTX, button_value(kind, papers[2 + n % 5]))
            events.append(("click", time.monotonic(), click != UNAVAILABLE))
            reacted = core.reaction(CTX, "slack:D1:1.0", "+1", removed=n % 2 == 0)
            events.append(("reaction", time.monotonic(), reacted is not None))
            stop.wait(0.2)

    digest_results: list[tuple[float, dict[str, str]]] = []

    def digests() -> None:
        """The scheduler's digest job every 0.5 s until the digest went out."""
        while not stop.is_set():
            results = sched.digest_job(runtime, due)
            digest_results.append((time.monotonic(), results))
            if results and all(v == "sent" for v in results.values()):
                return
            stop.wait(0.5)

    workers = [threading.Thread(target=traffic), threading.Thread(target=digests)]
    for worker in workers:
        worker.start()
    while len(port.cards) < 3:  # the digest is under way
        time.sleep(0.01)
    server.stop()
    down = time.monotonic()
    time.sleep(outage)
    server.start()
    back = time.monotonic()
    deadline = back + 60
    while time.monotonic() < deadline:
        kinds = {k for k, t, ok in events if ok and t > back}
        if kinds >= {"command", "click", "reaction"} and not workers[1].is_alive():
            break
        time.sleep(0.05)
    stop.set()
    for worker in workers:
        worker.join(30)

    print(f"Redis down {back - down:.1f} s (asked for {outage:g} s), under traffic")
    during = Counter((k, ok) for k, t, ok in events if down < t < back)
    worst = 0.0
    for kind in ("command", "click", "reaction"):
        first = min((t for k, t, ok in events if k == kind and ok and t > back), default=None)
        recovery = (first - back) if first is not None else float("inf")
        worst = max(worst, recovery)
        print(
            f"  {kind:8s}: {during[(kind, False)]} refused with the one-line answer during the "
            f"outage ({during[(kind, True)]} succeeded); first success {recovery:.2f} s "
            "after Redis returned"
        )
    sent_at = next((t for t, r in digest_results if r and set(r.values()) == {"sent"}), None)
    digest_recovery = (sent_at - back) if sent_at is not None else float("inf")
    worst = max(worst, digest_recovery)
    ids = port.paper_ids()
    print(
        f"  digest  : cut after {3} of 10 papers; sent {digest_recovery:.2f} s after Redis "
        f"returned; {len(ids)} papers posted, {len(ids) - len(set(ids))} repeated, "
        f"{len(port.intros)} intro(s)"
    )
    started = time.perf_counter()
    core.answer(CTX, "settings")
    after = time.perf_counter() - started
    print(
        f"  command latency: {base * 1000:.1f} ms before (median of 30), "
        f"{after * 1000:.1f} ms after: ratio {after / base:.2f}"
    )
    clear = sum("paperbot cannot reach its database" in line for line in lines.lines)
    multi = sum("\n" in line for line in lines.lines)
    refused = sum(n for (_, ok), n in during.items() if not ok)
    print(
        f"  log: {len(lines.lines)} error lines, {clear} of them the one clear line, "
        f"{multi} with more than one line ({refused} actions refused during the outage "
        "plus the digest runs)"
    )
    verdict = "within" if worst <= GOAL else "OVER"
    print(f"slowest recovery {worst:.2f} s: {verdict} the {GOAL:g} s goal")
    store.close()
    return 0 if worst <= GOAL and len(ids) == len(set(ids)) else 1


if __name__ == "__main__":
    sys.exit(main())
