"""What keeping every command on one slot costs: one server, one server split per slot,
and a real three-node Redis Cluster, on the same data in the same run.

The reads and writes that span many keys: a batch of papers written (`write_papers`)
and fetched (`get_papers`), many people's feedback read (`feedback_rows_of`, the fold-in
and retrain read), who liked a batch of papers (`likers`), the catalogue paged through
(`iter_papers`). Each is timed on a server of its own started here and on a cluster
started here; the baseline is the one-server path (one MGET, one script, one MULTI),
and each row prints its ratio to it. The split path on one server shows what grouping
by slot would cost if it were used everywhere.

    python bench/cluster_bench.py [--papers 2000] [--people 2000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recommender.store import Store  # noqa: E402
from recommender.types import Paper  # noqa: E402
from tests.support.redis_cluster import free_ports, running_cluster  # noqa: E402

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def papers(n: int) -> list[Paper]:
    """`n` synthetic papers with abstracts of a realistic length."""
    words = [
        "graph",
        "diffusion",
        "model",
        "language",
        "agent",
        "vision",
        "retrieval",
        "robot",
        "policy",
        "data",
    ]
    return [
        Paper(
            id=f"2603.{i:05d}",
            title=f"Paper {i} on {words[i % 10]} and {words[(i * 7) % 10]}",
            abstract=" ".join(words[(i + k) % 10] for k in range(150)),
            authors=[f"Author {i % 97}", f"Author {i % 89}"],
            published=T0,
            first_seen=T0,
            sources=["jsonl"],
        )
        for i in range(n)
    ]


def fill(store: Store, batch: list[Paper], people: int) -> tuple[list[str], list[str]]:
    """Write the papers and 20 feedback rows per person; (paper ids, person ids)."""
    store.write_papers(batch)
    ids = [p.id for p in batch]
    uids = [f"slack:T1:U{i:05d}" for i in range(people)]
    for i, uid in enumerate(uids):
        picks = {ids[(i * 13 + k * 31) % len(ids)]: "like" for k in range(20)}
        store.apply_feedback_many(uid, picks)
    return ids, uids


def timed(work: Callable[[], object], repeat: int) -> float:
    """Median wall time of `work` in milliseconds."""
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        runs.append((time.perf_counter() - start) * 1000)
    return statistics.median(runs)


def measure(store: Store, batch: list[Paper], people: int, repeat: int) -> dict[str, float]:
    """Every operation's median time on one store (emptied first)."""
    store.flush_prefix()
    ids, uids = fill(store, batch, people)
    out = {
        "write_papers": timed(lambda: store.write_papers(batch), repeat),
        "get_papers": timed(lambda: store.get_papers(ids), repeat),
        "feedback_rows_of": timed(lambda: store.feedback_rows_of(uids), repeat),
        "likers(200)": timed(lambda: store.likers(ids[:200]), repeat),
        "iter_papers": timed(lambda: sum(1 for _ in store.iter_papers()), repeat),
    }
    store.flush_prefix()
    return out


def main() -> int:
    """Run the three setups and print one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=int, default=2000)
    parser.add_argument("--people", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    batch = papers(args.papers)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        [port] = free_ports(1)
        subprocess.run(
            [
                "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--daemonize", "yes", "--dir", tmp,
            ],
            check=True,
        )  # fmt: skip
        time.sleep(0.3)
        try:
            url = f"redis://127.0.0.1:{port}/0"
            single = Store.connect(url)
            results["one server"] = measure(single, batch, args.people, args.repeat)
            split = Store(single.r, by_slot=True)
            results["one server, split per slot"] = measure(split, batch, args.people, args.repeat)
            single.close()
        finally:
            subprocess.run(["redis-cli", "-p", str(port), "shutdown", "nosave"], check=False)
        with running_cluster(Path(tmp)) as ports:
            cluster = Store.connect(f"redis+cluster://127.0.0.1:{ports[0]}")
            results["3-node cluster"] = measure(cluster, batch, args.people, args.repeat)
            cluster.close()
    base = results["one server"]
    print(f"{args.papers} papers, {args.people} people x 20 likes; median of {args.repeat} (ms)")
    print(f"{'operation':<18}" + "".join(f"{name:>30}" for name in results))
    for op in base:
        cells = "".join(f"{r[op]:>20.1f} ({r[op] / base[op]:>5.2f}x)" for r in results.values())
        print(f"{op:<18}{cells}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
