"""Ingest throughput against a real Redis: parse, parse + dedup + store, and pipelining.

The feeds are synthetic but made of real text: titles from the seed papers and
citeulike-a, abstracts rebuilt from real abstract sentences, authors, keywords and
AI summaries from the captured Hugging Face responses, each paper under a unique arXiv id.
The same papers are written as JSON Lines and as one Hugging Face daily-papers response.

Targets: a full ingest (parse + dedup + store) of at least 5,000 papers/s in every
phase, and pipelined writes at least 5x faster than one round trip per key, both
measured in this run.

    python bench/ingest_bench.py --n 50000 --redis-url redis://127.0.0.1:6379/14
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recommender import ingest as ingest_mod  # noqa: E402
from recommender.ingest import ingest  # noqa: E402
from recommender.sources import parse_body  # noqa: E402
from recommender.store import PREFIX, Store, chunked, paper_json  # noqa: E402
from recommender.types import IngestReport, Paper, ParseResult  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures"
CITEULIKE_TITLES = ROOT.parent / "shared" / "data" / "citeulike-a" / "titles.txt"
INGEST_TARGET = 5_000.0
PIPELINE_TARGET = 5.0
CATEGORIES = ["cs.LG", "cs.CV", "cs.CL", "cs.AI", "stat.ML", "cs.RO", "cs.IR", "cs.NE"]
NOW = datetime(2026, 6, 12, 9, 0, tzinfo=UTC)


@dataclass
class Pools:
    """Real text the synthetic papers are recombined from."""

    titles: list[str]
    sentences: list[str]
    authors: list[str]
    keywords: list[str]
    summaries: list[str]
    hf_entries: list[dict[str, Any]]


def load_pools() -> Pools:
    """Titles, abstract sentences and HF metadata from the fixtures (and citeulike-a)."""
    seed = [json.loads(line) for line in (FIXTURES / "seed_papers.jsonl").open(encoding="utf-8")]
    titles = [r["title"] for r in seed if r.get("title")]
    if CITEULIKE_TITLES.exists():
        titles += [t.strip() for t in CITEULIKE_TITLES.open(encoding="utf-8") if t.strip()]
    split = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
    sentences = [s for r in seed for s in split.split(r.get("abstract") or "") if len(s) > 20]
    hf_entries: list[dict[str, Any]] = []
    for name in ("hf_daily_papers_2026-06-12.json", "hf_daily_papers_2026-08-03.json"):
        hf_entries += json.loads((FIXTURES / name).read_bytes())
    authors = sorted({a["name"] for e in hf_entries for a in e["paper"]["authors"]})
    keywords = sorted({k for e in hf_entries for k in e["paper"].get("ai_keywords", [])})
    summaries = [e["paper"]["ai_summary"] for e in hf_entries if e["paper"].get("ai_summary")]
    return Pools(titles, sentences, authors, keywords, summaries, hf_entries)


def make_records(n: int, pools: Pools, seed: int = 7) -> list[dict[str, Any]]:
    """`n` paper records with unique arXiv ids, recombined from real text, seeded."""
    rng = random.Random(seed)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    records = []
    for i in range(n):
        title = pools.titles[i % len(pools.titles)]
        if i >= len(pools.titles):
            # Past the real titles, join two of them the way subtitled titles read.
            title = f"{title}: {rng.choice(pools.titles)}"
        published = start + timedelta(days=i // 2000, seconds=rng.randrange(86_400))
        primary = rng.choice(CATEGORIES)
        records.append(
            {
                # 2000 papers a month, numbered from 00001, as arXiv does.
                "arxiv_id": f"{24 + i // 24_000:02d}{1 + (i // 2000) % 12:02d}.{1 + i % 2000:05d}",
                "title": title,
                "abstract": " ".join(rng.sample(pools.sentences, rng.randint(4, 8))),
                "authors": rng.sample(pools.authors, rng.randint(1, 9)),
                "categories": list(dict.fromkeys([primary, *rng.sample(CATEGORIES, 2)])),
                "primary_category": primary,
                "published": published.isoformat(),
                "upvotes": rng.randint(0, 150),
                "keywords": rng.sample(pools.keywords, rng.randint(3, 12)),
                "summary": rng.choice(pools.summaries),
                "code_url": f"https://github.com/lab{i % 977}/repo{i}" if i % 3 == 0 else None,
            }
        )
    return records


def revised(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records as a later listing shows them: version 2, revised text, more upvotes."""
    out = []
    for record in records:
        new = dict(record)
        new["arxiv_id"] = f"{record['arxiv_id']}v2"
        new["title"] = f"{record['title']} (revised)"
        new["abstract"] = record["abstract"] + " We add experiments on two more benchmarks."
        new["upvotes"] = record["upvotes"] + 5
        out.append(new)
    return out


def jsonl_body(records: list[dict[str, Any]]) -> bytes:
    """The records as a JSON Lines file."""
    lines = (json.dumps({k: v for k, v in r.items() if v is not None}) for r in records)
    return ("\n".join(lines) + "\n").encode("utf-8")


def hf_body(records: list[dict[str, Any]], templates: list[dict[str, Any]]) -> bytes:
    """The records as one daily-papers response, each entry shaped like a captured one."""
    entries = []
    for i, record in enumerate(records):
        entry = copy.deepcopy(templates[i % len(templates)])
        paper = entry["paper"]
        paper["id"] = record["arxiv_id"]
        paper["title"] = entry["title"] = record["title"]
        paper["summary"] = entry["summary"] = record["abstract"]
        paper["authors"] = [
            {"_id": f"{i:012x}{j:012x}", "name": name, "hidden": False}
            for j, name in enumerate(record["authors"])
        ]
        paper["publishedAt"] = entry["publishedAt"] = record["published"]
        paper["upvotes"] = record["upvotes"]
        paper["ai_keywords"] = record["keywords"]
        paper["ai_summary"] = record["summary"]
        paper.pop("githubRepo", None)
        if record["code_url"]:
            paper["githubRepo"] = record["code_url"]
        entries.append(entry)
    return json.dumps(entries, ensure_ascii=False).encode("utf-8")


def timed(action: Callable[[], Any]) -> tuple[Any, float]:
    """Run `action` once; return its result and the seconds it took."""
    start = time.perf_counter()
    value = action()
    return value, time.perf_counter() - start


def parse_and_ingest(store: Store, kind: str, body: bytes) -> IngestReport:
    """What the scheduler does with one fetched body."""
    return ingest(store, parse_body(kind, body, now=NOW), kind)


def check(report: IngestReport, field: str, n: int) -> None:
    """Stop the run when an ingest phase did not do what it is meant to."""
    if getattr(report, field) != n or report.skipped:
        raise SystemExit(f"unexpected ingest result, wanted {n} {field}: {report.summary()}")


def bench_feed(store: Store, kind: str, first: bytes, second: bytes, n: int) -> list[float]:
    """Time parse, first ingest, re-ingest and updated ingest of one feed; return rates."""
    result, seconds = timed(lambda: parse_body(kind, first, now=NOW))
    assert isinstance(result, ParseResult) and len(result.papers) == n
    print(f"  {kind:5} parse only            {n / seconds:>10,.0f} papers/s  ({seconds:.2f} s)")
    del result
    rates = []
    store.flush_prefix()
    for label, body, field in (
        ("first ingest (new)", first, "new"),
        ("same feed (unchanged)", first, "unchanged"),
        ("v2 feed (updated)", second, "updated"),
    ):
        report, seconds = timed(lambda body=body: parse_and_ingest(store, kind, body))
        check(report, field, n)
        rates.append(n / seconds)
        print(f"  {kind:5} {label:22} {n / seconds:>10,.0f} papers/s  ({seconds:.2f} s)")
    if store.paper_count() != n:
        raise SystemExit(f"expected {n} stored papers, found {store.paper_count()}")
    return rates


def one_round_trip_per_key(store: Store, papers: list[Paper]) -> None:
    """The naive write: SET the paper, then ZADD its first-seen time, one command at a time."""
    for paper in papers:
        store.r.set(f"{PREFIX}paper:{paper.id}", paper_json(paper))
        seen = paper.first_seen.timestamp() if paper.first_seen else time.time()
        store.r.zadd(f"{PREFIX}papers:seen", {paper.id: seen}, nx=True)


def pipelined(store: Store, papers: list[Paper]) -> None:
    """The store's write: one pipelined transaction per ingest batch."""
    for batch in chunked(papers, ingest_mod.BATCH):
        store.write_papers(batch)


def bench_writes(store: Store, papers: list[Paper], rounds: int = 2) -> float:
    """How many times faster pipelined writes are than one round trip per key.

    The two are run in turns, `rounds` times each, and the best time of each counts, so
    a burst of load from elsewhere on the machine does not decide the ratio.
    """
    ways = {"one round trip per key": one_round_trip_per_key, "pipelined": pipelined}
    best = dict.fromkeys(ways, float("inf"))
    for _ in range(rounds):
        for label, write in ways.items():
            store.flush_prefix()
            _, seconds = timed(lambda write=write: write(store, papers))
            if store.paper_count() != len(papers):
                raise SystemExit(f"{label}: expected {len(papers)} papers stored")
            best[label] = min(best[label], seconds)
    for label, seconds in best.items():
        rate = len(papers) / seconds
        print(f"  writes {label:23} {rate:>10,.0f} papers/s  ({seconds:.2f} s, best of {rounds})")
    return best["one round trip per key"] / best["pipelined"]


def main() -> int:
    """Run every phase and print a PASS/FAIL line per target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000, help="synthetic papers per feed")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    args = parser.parse_args()
    n = args.n

    pools = load_pools()
    records = make_records(n, pools)
    later = revised(records)
    feeds = {
        "jsonl": (jsonl_body(records), jsonl_body(later)),
        "hf": (hf_body(records, pools.hf_entries), hf_body(later, pools.hf_entries)),
    }
    sizes = ", ".join(f"{k} {len(v[0]) / 1e6:.0f} MB" for k, v in feeds.items())
    print(f"{n:,} synthetic papers ({sizes}); Redis {args.redis_url}")

    store = Store.connect(args.redis_url)
    server = store.r.info("server")
    print(
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"Redis {server.get('redis_version')}, batch {ingest_mod.BATCH}"
    )
    try:
        rates: list[float] = []
        for kind, (first, second) in feeds.items():
            rates += bench_feed(store, kind, first, second, n)
        papers = parse_body("jsonl", feeds["jsonl"][0], now=NOW).papers
        ratio = bench_writes(store, papers)
    finally:
        store.flush_prefix()
        store.close()

    slowest = min(rates)
    ingest_ok = slowest >= INGEST_TARGET
    pipeline_ok = ratio >= PIPELINE_TARGET
    print(f"  pipelined / one round trip per key: {ratio:.1f}x")
    print(
        f"{'PASS' if ingest_ok else 'FAIL'} ingest: slowest phase {slowest:,.0f} papers/s "
        f"(target >= {INGEST_TARGET:,.0f})"
    )
    print(
        f"{'PASS' if pipeline_ok else 'FAIL'} pipelining: {ratio:.1f}x faster than one "
        f"round trip per key (target >= {PIPELINE_TARGET:.0f}x)"
    )
    return 0 if ingest_ok and pipeline_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
