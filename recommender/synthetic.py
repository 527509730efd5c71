"""Synthetic evaluation datasets with a known structure, in the dataset directory format.

Each person belongs to a few hidden interest groups and saves papers of those groups.
What differs between kinds is where a paper's group shows:

  cf     only in who saves it: a paper's words come from a topic drawn independently of
         its group, so text says little and co-saving says almost everything;
  text   in its words: each group writes with its own vocabulary, and saves are spread
         so thinly over a large catalogue that co-saving says little;
  mixed  in both, each half of the time.

Words are made-up syllable strings, like a preprocessed bag of stemmed words: a general
sentence encoder knows nothing about them, so only models that learn from the corpus
itself (TF-IDF, CF) can read them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

KINDS = ("cf", "text", "mixed")
_SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]


@dataclass(frozen=True, slots=True)
class SynthSpec:
    """The shape of a synthetic dataset."""

    kind: str
    users: int = 1500
    papers: int = 6000
    groups: int = 40
    groups_per_user: int = 2
    saves: tuple[int, int] = (12, 40)  # per person, uniform in this range
    words_per_paper: int = 40
    vocabulary: int = 4000
    test_fraction: float = 0.2
    seed: int = 0


def spec_for(kind: str, seed: int = 0) -> SynthSpec:
    """The default spec of a kind: the text kind spreads saves over a larger catalogue."""
    if kind == "text":
        # Few saves each over a large catalogue: most papers are saved by one or two
        # people, so co-saving has little to go on and words carry the signal.
        return SynthSpec(kind, papers=12000, saves=(6, 16), seed=seed)
    return SynthSpec(kind, seed=seed)


def _vocabulary(n: int, rng: np.random.Generator) -> list[str]:
    """`n` distinct made-up words of two to four syllables."""
    words: set[str] = set()
    while len(words) < n:
        k = int(rng.integers(2, 5))
        words.add("".join(rng.choice(_SYLLABLES, k)))
    # Sorted for determinism, then shuffled so a topic's words share no prefix.
    return list(rng.permutation(sorted(words)))


Pairs = list[tuple[str, str]]


def generate(spec: SynthSpec) -> tuple[list[dict[str, str]], Pairs, Pairs]:
    """(papers, train pairs, test pairs) for one spec; the same spec gives the same data."""
    if spec.kind not in KINDS:
        raise ValueError(f"unknown kind {spec.kind!r}: choose one of {', '.join(KINDS)}")
    rng = np.random.default_rng(spec.seed)
    words = np.array(_vocabulary(spec.vocabulary, rng))
    # Each topic owns a disjoint slice of the vocabulary, plus shared common words.
    common = spec.vocabulary // 5
    per_topic = (spec.vocabulary - common) // spec.groups
    group_of = rng.integers(0, spec.groups, spec.papers)
    if spec.kind == "cf":
        text_topic = rng.integers(0, spec.groups, spec.papers)
    elif spec.kind == "text":
        text_topic = group_of
    else:
        other = rng.integers(0, spec.groups, spec.papers)
        text_topic = np.where(rng.random(spec.papers) < 0.5, group_of, other)
    papers = []
    for i in range(spec.papers):
        own = common + text_topic[i] * per_topic
        own = own + rng.integers(0, per_topic, spec.words_per_paper // 2)
        shared = rng.integers(0, common, spec.words_per_paper - len(own))
        bag = words[np.concatenate([own, shared])]
        rng.shuffle(bag)
        papers.append({"id": f"s{i}", "title": " ".join(bag[:8]), "abstract": " ".join(bag[8:])})
    members = [np.flatnonzero(group_of == g) for g in range(spec.groups)]
    if spec.kind == "cf":
        # Co-saving carries the signal: within a group, a small core of papers is what
        # people save, so teammates' saves overlap strongly.
        members = [m[: max(10, len(m) // 4)] for m in members]
    train, test = [], []
    for u in range(spec.users):
        mine = rng.choice(spec.groups, spec.groups_per_user, replace=False)
        pool = np.concatenate([members[g] for g in mine])
        n = min(len(pool), int(rng.integers(spec.saves[0], spec.saves[1] + 1)))
        saved = rng.choice(pool, n, replace=False)
        n_test = max(1, round(n * spec.test_fraction))
        for j, p in enumerate(saved):
            (test if j < n_test else train).append((f"u{u}", f"s{p}"))
    return papers, train, test


def write(spec: SynthSpec, out: str | Path) -> Path:
    """Write one synthetic dataset directory; returns it."""
    out = Path(out)
    papers, train, test = generate(spec)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "papers.jsonl").open("w", encoding="utf-8") as handle:
        for row in papers:
            handle.write(json.dumps(row) + "\n")
    for name, pairs in (("train.tsv", train), ("test.tsv", test)):
        with (out / name).open("w", encoding="utf-8") as handle:
            handle.writelines(f"{u}\t{i}\n" for u, i in pairs)
    (out / "candidates.txt").unlink(missing_ok=True)
    return out
