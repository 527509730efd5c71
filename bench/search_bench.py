"""Search latency: `SearchIndex` against a plain `bm25s` index over the same corpus.

The corpus is synthetic but made of real text: titles from citeulike-a and the seed papers,
abstracts rebuilt from real abstract sentences, with seeded authors, categories and dates.

    python bench/search_bench.py --n 200000
"""

from __future__ import annotations

import argparse
import csv
import gc
import itertools
import json
import random
import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recommender.index import Query, SearchIndex, parse_query  # noqa: E402
from recommender.types import Paper  # noqa: E402

DATA = ROOT.parent / "shared" / "data"

_FIRST_NAMES = """
Yann Geoffrey Yoshua Fei-Fei Andrew Daphne Michael Jordan Percy Christopher Dan Chelsea
Sergey Pieter Ilya Oriol Alex Kaiming Ross Jitendra Trevor Jia Li Wei Xin Yang Hao Jun
Ming Lei Tao Yu Zhe Chen Hui Ying Ahmed Fatima Omar Layla Mehdi Reza Arash Priya Rahul
Ananya Vikram Sanjay Deepak Aditi Kavya Hiroshi Yuki Takeshi Kenji Sakura Min-jun Ji-woo
Seo-yeon Hyun Olga Dmitri Ivan Anastasia Sergei Elena Pierre Camille Julien Amelie Lucas
Sofia Mateo Valentina Diego Lucia Joao Ana Pedro Hans Katrin Jurgen Lena Matthias Anna
Lars Ingrid Sven Emma Noah Olivia Liam Ava Ethan Mia James Sarah David Laura Thomas Maria
Jose Carlos Gabriel Isabel Nikolai Zoe Samuel Grace Benjamin Hannah Kwame Amara Chidi
Ngozi Tariq Leila Yusuf Aylin Emre Elif Mehmet Rosa Marco Giulia Francesca Luca
"""
FIRST_NAMES = _FIRST_NAMES.split()

_LAST_NAMES = """
LeCun Hinton Bengio Li Ng Koller Jordan Liang Manning Jurafsky Finn Levine Abbeel
Sutskever Vinyals Krizhevsky He Girshick Malik Darrell Deng Wang Zhang Liu Chen Yang Huang
Zhao Wu Zhou Xu Sun Ma Zhu Hu Guo Lin He Gao Luo Zheng Liang Xie Tang Han Feng Cao Kim Lee
Park Choi Jung Kang Cho Yoon Jang Lim Tanaka Suzuki Takahashi Watanabe Ito Yamamoto
Nakamura Kobayashi Sato Kato Gupta Sharma Singh Patel Kumar Reddy Iyer Nair Rao Mehta
Agarwal Banerjee Chatterjee Mukherjee Das Ivanov Smirnov Kuznetsov Popov Sokolov Petrov
Mueller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann Martin Bernard
Dubois Thomas Robert Richard Petit Durand Leroy Moreau Garcia Rodriguez Martinez Lopez
Gonzalez Perez Sanchez Ramirez Torres Flores Rossi Russo Ferrari Esposito Bianchi Romano
Silva Santos Oliveira Souza Costa Pereira Smith Johnson Williams Brown Jones Miller Davis
Wilson Anderson Taylor Moore Jackson White Harris Clark Lewis Walker Hall Allen Young King
Wright Scott Green Baker Adams Nelson Hill Campbell Mitchell Roberts Carter Phillips Evans
Turner Parker Collins Edwards Stewart Morris Murphy Cook Rogers Morgan Cooper Peterson
Okafor Mensah Nkemelu Haddad Hosseini Karimi Rahimi Yilmaz Kaya Demir Sahin Celik Nguyen
Tran Pham Hoang Vu Andersen Nielsen Hansen Johansson Karlsson Nilsson Eriksson Larsson
Schoelkopf Mueller-Brandt Oezdemir
"""
LAST_NAMES = _LAST_NAMES.split()

CATEGORIES = [
    ("cs.LG", 25),
    ("cs.CV", 15),
    ("cs.CL", 12),
    ("cs.AI", 8),
    ("stat.ML", 6),
    ("cs.RO", 4),
    ("cs.IR", 3),
    ("cs.NE", 2),
    ("cs.CR", 2),
    ("cs.DC", 2),
    ("cs.HC", 2),
    ("cs.SE", 2),
    ("eess.IV", 2),
    ("eess.SP", 2),
    ("math.OC", 2),
    ("math.ST", 1),
    ("q-bio.NC", 2),
    ("q-bio.QM", 1),
    ("physics.comp-ph", 1),
    ("cond-mat.dis-nn", 1),
    ("quant-ph", 2),
    ("hep-th", 1),
    ("astro-ph.IM", 1),
    ("econ.EM", 1),
]

BROAD_WORDS = ["learning", "network", "model", "data", "analysis", "neural", "deep", "method"]
STOP = {"the", "of", "and", "a", "an", "in", "for", "on", "to", "with", "by", "from", "is", "at"}


@dataclass
class Corpus:
    """Synthetic papers plus the pools that queries are drawn from."""

    papers: list[Paper]
    titles: list[str]
    authors: list[str]


def _clean(text: str) -> str:
    """Drop the BibTeX braces and escapes that citeulike abstracts carry."""
    text = re.sub(r"\\[a-zA-Z]+\s*", "", text.replace("\\&", "&"))
    return " ".join(text.replace("{", "").replace("}", "").replace("\\", "").split())


def load_text() -> tuple[list[str], list[list[str]]]:
    """Real titles and real abstracts (as sentence lists)."""
    seed = [json.loads(line) for line in (DATA / "seed_papers.jsonl").open()]
    titles = [r["title"] for r in seed]
    titles += [t.strip() for t in (DATA / "citeulike-a" / "titles.txt").open() if t.strip()]
    abstracts = [r["abstract"] for r in seed if r.get("abstract")]
    with (DATA / "citeulike-a" / "abstracts_subset.csv").open(newline="") as handle:
        abstracts += [row["abstract"] for row in csv.DictReader(handle) if row["abstract"]]
    split = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
    sentences = [[s for s in split.split(_clean(a)) if len(s) > 20] for a in abstracts]
    return [_clean(t) for t in titles], [s for s in sentences if s]


def _person(rng: random.Random) -> str:
    """A random name, one in five with a middle initial."""
    middle = rng.choice("ABCDEFGHJKLMNPRSTW") + ". " if rng.random() < 0.2 else ""
    return f"{rng.choice(FIRST_NAMES)} {middle}{rng.choice(LAST_NAMES)}"


def make_corpus(n: int, seed: int = 7) -> Corpus:
    """`n` papers recombined from real titles and abstract sentences, seeded."""
    rng = random.Random(seed)
    titles, abstracts = load_text()
    pool = [s for a in abstracts for s in a]
    people = sorted({_person(rng) for _ in range(max(2000, n // 2))})
    rng.shuffle(people)
    # Zipf-like productivity: a few authors write hundreds of papers, most write one or two.
    author_cum = list(itertools.accumulate(1.0 / (i + 10) ** 0.9 for i in range(len(people))))
    cat_names = [c for c, _ in CATEGORIES]
    cat_cum = list(itertools.accumulate(w for _, w in CATEGORIES))
    start = datetime(2018, 1, 1, tzinfo=UTC)
    span = (datetime(2025, 12, 31, tzinfo=UTC) - start).total_seconds()
    papers = []
    for i in range(n):
        title = rng.choice(titles)
        if rng.random() < 0.5:
            other = rng.choice(titles).split()
            words = title.split()
            cut = max(1, len(words) // 2)
            title = " ".join(words[:cut] + other[len(other) // 2 :])
        base = rng.choice(abstracts)
        sentences = [s if rng.random() < 0.5 else rng.choice(pool) for s in base[:9]]
        while len(sentences) < 4:
            sentences.append(rng.choice(pool))
        published = start + timedelta(seconds=rng.random() * span)
        primary = rng.choices(cat_names, cum_weights=cat_cum)[0]
        cross = rng.choices(cat_names, cum_weights=cat_cum, k=rng.randint(0, 2))
        cats = list(dict.fromkeys([primary, *cross]))
        authors = rng.choices(people, cum_weights=author_cum, k=rng.randint(1, 8))
        authors = list(dict.fromkeys(authors))
        papers.append(
            Paper(
                id=f"{published:%y%m}.{i:06d}",
                title=title,
                abstract=" ".join(sentences),
                authors=authors,
                categories=cats,
                primary_category=primary,
                published=published,
            )
        )
    return Corpus(papers, titles, people[:2000])


def make_queries(corpus: Corpus, count: int, seed: int = 11) -> list[str]:
    """Realistic queries: title words, broad words, and filters alone or combined."""
    rng = random.Random(seed)
    cat_names = [c for c, _ in CATEGORIES]
    out = []
    for i in range(count):
        words = [w for w in re.findall(r"[A-Za-z][A-Za-z-]{2,}", rng.choice(corpus.titles))]
        words = [w.lower() for w in words if w.lower() not in STOP] or ["learning"]
        text = " ".join(rng.sample(words, min(len(words), rng.randint(1, 4))))
        since = f"since:{date(2018, 1, 1) + timedelta(days=rng.randint(0, 2900))}"
        author = rng.choice(corpus.authors)
        author_filter = f"author:{author.split()[-1]}" if i % 2 else f'author:"{author}"'
        cat = f"cat:{rng.choice([*cat_names, 'cs', 'math', 'q-bio'])}"
        kind = i % 20
        if kind < 10:
            out.append(text)
        elif kind < 12:
            out.append(rng.choice(BROAD_WORDS) + " " + rng.choice(BROAD_WORDS))
        elif kind < 14:
            out.append(f"{text} {cat}")
        elif kind == 14:
            out.append(f"{text} {since}")
        elif kind == 15:
            out.append(f"{text} {author_filter}")
        elif kind == 16:
            out.append(f"{text} {cat} {since}")
        elif kind == 17:
            out.append(author_filter)
        elif kind == 18:
            out.append(f"{cat} {since}")
        else:
            out.append(f"{author_filter} {cat}")
    return out


class Bm25sBaseline:
    """Plain bm25s over the same text, with filters as a brute-force numpy weight mask."""

    def __init__(self, papers: list[Paper]) -> None:
        """Tokenise and index the corpus; build plain per-doc arrays for filters."""
        import bm25s

        self._bm25s = bm25s
        texts = [f"{p.title} {p.abstract} {' '.join(p.authors)}" for p in papers]
        tokens = bm25s.tokenize(texts, stopwords="en", show_progress=False)
        self.retriever = bm25s.BM25()
        self.retriever.index(tokens, show_progress=False)
        self.n = len(papers)
        self.days = np.array(
            [(p.published.date() - date(1970, 1, 1)).days for p in papers], np.int64
        )
        self.cats: dict[str, np.ndarray] = {}
        by_cat: dict[str, list[int]] = {}
        self.by_author: dict[str, list[int]] = {}
        for row, paper in enumerate(papers):
            for cat in paper.categories:
                by_cat.setdefault(cat.lower(), []).append(row)
            for name in paper.authors:
                for token in re.findall(r"\w+", name.lower()):
                    self.by_author.setdefault(token, []).append(row)
        for cat, rows in by_cat.items():
            mask = np.zeros(self.n, bool)
            mask[rows] = True
            self.cats[cat] = mask

    def _mask(self, q: Query) -> np.ndarray | None:
        """Docs passing the filters (author by name tokens, cat by prefix), or None."""
        if not q.has_filters:
            return None
        mask = np.ones(self.n, bool)
        if q.since:
            mask &= self.days >= (q.since - date(1970, 1, 1)).days
        if q.categories:
            any_cat = np.zeros(self.n, bool)
            for cat, cat_mask in self.cats.items():
                if any(cat == c or cat.startswith((c + ".", c + "-")) for c in q.categories):
                    any_cat |= cat_mask
            mask &= any_cat
        for author in q.authors:
            rows: set[int] | None = None
            for token in re.findall(r"\w+", author.lower()):
                if len(token) > 1:
                    found = set(self.by_author.get(token, ()))
                    rows = found if rows is None else rows & found
            author_mask = np.zeros(self.n, bool)
            author_mask[list(rows or ())] = True
            mask &= author_mask
        return mask

    def search(self, raw: str, k: int) -> list[int]:
        """Top-k doc rows for the text of `raw`, filtered by its filters."""
        q = parse_query(raw)
        tokens = self._bm25s.tokenize(
            [q.text], stopwords="en", return_ids=False, show_progress=False
        )
        mask = self._mask(q)
        weight_mask = None if mask is None else mask.astype(np.float32)
        docs, scores = self.retriever.retrieve(
            tokens, k=min(k, self.n), show_progress=False, weight_mask=weight_mask
        )
        return [int(d) for d, s in zip(docs[0], scores[0], strict=True) if s > 0]


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    """Seconds taken by `fn()`, and its result."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def latencies(fn: Callable[[str], object], queries: list[str]) -> list[float]:
    """Per-query latency in milliseconds (after a short warm-up)."""
    for q in queries[:20]:
        fn(q)
    out = []
    for q in queries:
        t0 = time.perf_counter()
        fn(q)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def summary(ms: list[float]) -> str:
    """p50 / p99 / mean / max of a latency list."""
    arr = np.array(ms)
    return (
        f"p50 {np.percentile(arr, 50):7.2f} ms  p99 {np.percentile(arr, 99):7.2f} ms  "
        f"mean {arr.mean():7.2f} ms  max {arr.max():7.2f} ms  (n={len(arr)})"
    )


def main() -> None:
    """Build both indexes over one corpus and print build time, latency and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000, help="corpus size")
    parser.add_argument("--queries", type=int, default=400, help="number of queries")
    parser.add_argument("--k", type=int, default=100, help="hits per query")
    args = parser.parse_args()

    secs, corpus = timed(lambda: make_corpus(args.n))
    papers = corpus.papers
    n_tokens = sum(len(p.abstract.split()) + len(p.title.split()) for p in papers)
    print(
        f"corpus: {len(papers):,} papers, ~{n_tokens / len(papers):.0f} words each ({secs:.1f} s)"
    )
    queries = make_queries(corpus, args.queries)
    text_only = [q for q in queries if not parse_query(q).has_filters]
    filtered = [q for q in queries if parse_query(q).has_filters]

    gc.collect()
    build, index = timed(lambda: _build_index(papers))
    assert isinstance(index, SearchIndex)
    gc.collect()
    base_build, baseline = timed(lambda: Bm25sBaseline(papers))
    assert isinstance(baseline, Bm25sBaseline)
    st = index._state
    nnz = len(st.main.terms.indices) + len(st.delta.terms.indices)
    print(f"build:    SearchIndex {build:6.1f} s   bm25s (tokenize+index) {base_build:6.1f} s")
    print(f"index:    {nnz:,} postings, {len(index._vocab.terms):,} terms")

    k = args.k
    results = {}
    for name, subset in (("text-only", text_only), ("filtered", filtered), ("all", queries)):
        ours = latencies(lambda q: index.search(q, k), subset)
        base = latencies(lambda q: baseline.search(q, k), subset)
        results[name] = (ours, base)
        print(f"\nsearch n={k}, {name} queries")
        print(f"  SearchIndex  {summary(ours)}")
        print(f"  bm25s        {summary(base)}")
        p99 = np.percentile(ours, 99)
        print(
            f"  ratio bm25s/SearchIndex: p50 {np.median(base) / np.median(ours):.1f}x  "
            f"p99 {np.percentile(base, 99) / p99:.1f}x  "
            f"mean {np.mean(base) / np.mean(ours):.1f}x   "
            f"[p99 < 50 ms: {'yes' if p99 < 50 else 'NO'}]"
        )
    small = latencies(lambda q: index.search(q, 10), queries)
    print(f"\nsearch n=10, all queries\n  SearchIndex  {summary(small)}")

    overlap = []
    for q in text_only:
        ours_ids = {h.paper_id for h in index.search(q, 10)}
        base_ids = {papers[r].id for r in baseline.search(q, 10)}
        if base_ids:
            overlap.append(len(ours_ids & base_ids) / len(base_ids))
    agreement = statistics.mean(overlap)
    print(f"\nagreement with bm25s, top-10 overlap on text-only queries: {agreement:.2f}")

    fresh = make_corpus(600, seed=99).papers
    add_ms = []
    for batch in range(5):
        chunk = [
            Paper.from_dict({**p.to_dict(), "id": f"2601.{batch}{j:04d}"})
            for j, p in enumerate(fresh[batch * 100 : (batch + 1) * 100])
        ]
        secs, _ = timed(lambda chunk=chunk: index.add(chunk))
        add_ms.append(secs * 1000)
    print(
        f"\nadd(100 papers) into {args.n:,}: median {statistics.median(add_ms):.1f} ms, "
        f"max {max(add_ms):.1f} ms over 5 batches (delta segment, no merge)"
    )
    probe = f"{fresh[0].title} {fresh[0].abstract[:200]}"
    found = [h.paper_id for h in index.search(probe, 10)]
    print(f"  a just-added paper, searched by its title and first words: rank {_rank(found)}")
    replace = [
        Paper.from_dict({**p.to_dict(), "title": p.title + " revised"}) for p in papers[:100]
    ]
    secs, _ = timed(lambda: index.add(replace))
    print(f"add(100 replacements): {secs * 1000:.1f} ms")
    secs, _ = timed(index.merge)
    print(f"merge() of the delta into {len(index):,} papers: {secs * 1000:.0f} ms")
    after = latencies(lambda q: index.search(q, k), queries)
    print(f"search n={k} after merge, all queries\n  SearchIndex  {summary(after)}")


def _rank(found: list[str]) -> str:
    """1-based rank of the first just-added paper in `found`, or 'not in top 10'."""
    for rank, paper_id in enumerate(found, 1):
        if paper_id.startswith("2601."):
            return str(rank)
    return "not in top 10"


def _build_index(papers: list[Paper]) -> SearchIndex:
    """One `add` of the whole corpus."""
    index = SearchIndex()
    index.add(papers)
    return index


if __name__ == "__main__":
    main()
