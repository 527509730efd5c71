"""Synthetic datasets with known structure, and the blend procedure on them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from recommender import synthetic
from recommender.datasets import load_dataset
from recommender.evaluate import evaluate_model

SMALL = {"users": 400, "papers": 1600, "groups": 16, "vocabulary": 1600}


def spec(kind: str, **extra: object) -> synthetic.SynthSpec:
    """A small spec of one kind (the procedure test fits it several times)."""
    return replace(synthetic.SynthSpec(kind), **{**SMALL, **extra})


def word_overlap(papers: list[dict[str, str]], pairs: list[tuple[int, int]]) -> float:
    """Mean Jaccard overlap of the word sets of paper pairs."""
    sets = [set((p["title"] + " " + p["abstract"]).split()) for p in papers]
    return float(np.mean([len(sets[a] & sets[b]) / len(sets[a] | sets[b]) for a, b in pairs]))


def co_saved_pairs(train: list[tuple[str, str]], limit: int = 400) -> list[tuple[int, int]]:
    """Pairs of papers saved by the same person."""
    by_user: dict[str, list[int]] = {}
    for u, p in train:
        by_user.setdefault(u, []).append(int(p[1:]))
    pairs = [(ps[0], ps[1]) for ps in by_user.values() if len(ps) > 1]
    return pairs[:limit]


def test_same_spec_same_data_and_seed_changes_it() -> None:
    a = synthetic.generate(spec("mixed"))
    assert a == synthetic.generate(spec("mixed"))
    assert a != synthetic.generate(spec("mixed", seed=1))


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown kind"):
        synthetic.generate(spec("bogus"))


def test_text_kind_puts_the_signal_in_words_and_cf_kind_does_not() -> None:
    """Papers saved by one person share words in `text`, hardly more than chance in `cf`."""
    rng = np.random.default_rng(0)
    overlaps = {}
    for kind in ("text", "cf"):
        papers, train, _ = synthetic.generate(spec(kind))
        random_pairs = [tuple(rng.choice(len(papers), 2, replace=False)) for _ in range(400)]
        overlaps[kind] = (
            word_overlap(papers, co_saved_pairs(train)),
            word_overlap(papers, random_pairs),
        )
    text_saved, text_random = overlaps["text"]
    cf_saved, cf_random = overlaps["cf"]
    assert text_saved > 1.5 * text_random
    assert cf_saved < 1.15 * cf_random


def test_cf_kind_concentrates_saves_on_a_core() -> None:
    """In `cf`, each saved paper is saved by several people; in `text` saves spread thin."""
    counts = {}
    for kind in ("cf", "text"):
        _, train, test = synthetic.generate(spec(kind, papers=3200 if kind == "text" else 1600))
        saves: dict[str, int] = {}
        for _, p in train + test:
            saves[p] = saves.get(p, 0) + 1
        counts[kind] = np.mean(list(saves.values()))
    assert counts["cf"] > 2 * counts["text"]


def test_written_dataset_loads(tmp_path: Path) -> None:
    out = synthetic.write(spec("cf"), tmp_path / "synth")
    dataset = load_dataset(out)
    assert len(dataset.papers) == SMALL["papers"]
    assert dataset.train and dataset.test and dataset.candidates is None
    users_train = {u for u, _, _ in dataset.train}
    assert {u for u, _, _ in dataset.test} <= users_train  # every test user has history


@pytest.mark.parametrize("kind", ["cf", "text"])
def test_hybrid_holds_up_where_one_signal_carries_the_data(kind: str, tmp_path: Path) -> None:
    """The blend procedure, through the bot's ranking path, is at least as good as its
    best single signal and as the plain ALS + TF-IDF blend, whichever signal that is."""
    # As in `spec_for`: the text kind spreads saves over a catalogue eight times the team.
    small = spec(kind, users=250, papers=2000 if kind == "text" else 1000)
    _, train, test = synthetic.generate(small)
    dataset = load_dataset(synthetic.write(small, tmp_path / kind))
    assert len(dataset.train) == len(train) and len(dataset.test) == len(test)
    ks = (20, 300)  # the depths the bar is set at
    results = {
        name: evaluate_model(name, dataset, None, ks).metrics
        for name in ("hybrid", "tfidf", "als", "baseline")
    }
    for k in ks:
        key = f"recall@{k}"
        others = max(results[m][key] for m in ("tfidf", "als", "baseline"))
        assert results["hybrid"][key] >= others - 0.02, (kind, key, results)
    # The construction did what it says: the carrying signal leads the other.
    lead, other = ("als", "tfidf") if kind == "cf" else ("tfidf", "als")
    assert results[lead]["recall@20"] > results[other]["recall@20"]

