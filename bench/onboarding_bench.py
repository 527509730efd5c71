"""Onboarding quality on CiteULike-a: how much a first-use card helps a new person.

Held-out people are new: none of their papers is in the training data. For each of them
the card is simulated (a pick is 👍 when it is in the person's library, else 👎), the
answers are folded in as the bot folds in any feedback (`model.people.from_feedback`), and
the whole catalogue is ranked through the bot's one ranking path (`model.ranking.rank`,
with the digest's diversification). recall@50 of the rest of their library is compared for:

  areas    the product's card (`recommender.onboarding.card_picks`: one paper per area)
  random   8 random papers of the same pool
  popular  the 8 most popular papers of the pool (highest community prior)
  none     no card at all (the community prior alone)

The pool stands in for "recent papers": CiteULike-a has no dates, so it is a fixed random
sample of POOL papers, the same for every strategy. Libraries are the full `users.dat`
(train ∪ test of the CVAE split files), since a held-out person's whole library is hidden.

    python bench/onboarding_bench.py --users 1000 --seed 0
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recommender.content import paper_text
from recommender.datasets import convert_citeulike, load_dataset
from recommender.embeddings import DiskVectorCache, default_encoder, embed_cached
from recommender.metrics import hits_matrix, recall_ndcg
from recommender.model import HybridRecommender
from recommender.model.people import from_feedback
from recommender.model.ranking import Options, candidates, rank
from recommender.onboarding import CARD_SIZE, card_picks, popular_picks

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "citeulike-a"
K = 50
POOL = 2000


def load(split_dir: Path) -> tuple[list, dict[str, list[str]]]:
    """Papers and every person's full library (train ∪ test of the split files)."""
    if not (split_dir / "papers.jsonl").exists():
        convert_citeulike(DATA, split_dir, "cvae-10")
    dataset = load_dataset(split_dir)
    libraries: dict[str, list[str]] = {}
    for user, pid, weight in dataset.train + dataset.test:
        if weight > 0:
            libraries.setdefault(user, []).append(pid)
    return dataset.papers, libraries


def embeddings(papers: list, use: bool) -> np.ndarray | None:
    """Sentence embeddings, cached on disk where `paperbot eval` keeps them."""
    if not use:
        return None
    encoder = default_encoder()
    if encoder is None:
        print("sentence encoder not installed: content is TF-IDF only")
        return None
    data_dir = Path(os.environ.get("PAPERBOT_DATA_DIR", ROOT / ".paperbot-data"))
    cache = DiskVectorCache(data_dir / "embeddings" / encoder.name, encoder.dim)
    started = time.perf_counter()
    out = embed_cached(encoder, [paper_text(p) for p in papers], cache)
    print(f"embeddings: {len(papers)} papers in {time.perf_counter() - started:.1f}s")
    return out


def main() -> None:
    """Fit on everyone but the held-out people, then measure each card strategy."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=1000, help="held-out new people")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-embeddings", action="store_true", help="TF-IDF content only")
    parser.add_argument(
        "--cache", default=str(Path(tempfile.gettempdir()) / "paperbot-citeulike-cvae-10")
    )
    args = parser.parse_args()
    if not DATA.exists():
        sys.exit(f"CiteULike-a not found at {DATA}")

    papers, libraries = load(Path(args.cache))
    rng = np.random.default_rng(args.seed)
    people = sorted(libraries, key=int)
    held = set(rng.choice(people, size=min(args.users, len(people) // 5), replace=False).tolist())
    train = [(u, p, 1.0) for u in people if u not in held for p in libraries[u]]
    vectors = embeddings(papers, not args.no_embeddings)

    started = time.perf_counter()
    with threadpool_limits(1, "blas"):
        model = HybridRecommender().fit(train, papers, embeddings=vectors)
    state = model.state
    assert state is not None
    print(
        f"fit: {len(train)} interactions of {len(people) - len(held)} people, "
        f"{len(papers)} papers in {time.perf_counter() - started:.1f}s; "
        f"{len(held)} held-out new people"
    )

    pool_ids = rng.choice(state.paper_ids, size=POOL, replace=False).tolist()
    pool = candidates(state, pool_ids)
    started = time.perf_counter()
    picks = {
        "areas": [pool.ids[j] for j in card_picks(pool, CARD_SIZE, seed=args.seed)],
        "popular": [pool.ids[j] for j in popular_picks(pool, CARD_SIZE)],
    }
    print(f"card picks: {time.perf_counter() - started:.2f}s for a pool of {POOL}")
    everything = candidates(state, state.paper_ids)
    position = {pid: j for j, pid in enumerate(everything.ids)}
    users = sorted(held, key=int)
    random_cards = {u: rng.choice(pool_ids, size=CARD_SIZE, replace=False).tolist() for u in users}

    results: dict[str, float] = {}
    thumbs: dict[str, float] = {}
    split: dict[str, tuple[float, float, int]] = {}
    kept_likes: list[int] = []
    # "+likes only": the same cards with the 👎 answers left out (as if they were skips),
    # to show what the 👎-only profiles of people who liked nothing on the card cost.
    names = ("none", "random", "popular", "areas", "popular+likes only", "areas+likes only")
    for name in names:
        strategy, _, variant = name.partition("+")
        started = time.perf_counter()
        scores, liked = [], []
        for start in range(0, len(users), 250):
            chunk = users[start : start + 250]
            feedback, truth = [], []
            for u in chunk:
                card = {"none": [], "random": random_cards[u]}.get(strategy) or picks.get(
                    strategy, []
                )
                mine = set(libraries[u])
                answers = {pid: (1.0 if pid in mine else -1.0) for pid in card}
                liked.append(sum(v > 0 for v in answers.values()))
                if variant:
                    answers = {pid: v for pid, v in answers.items() if v > 0}
                feedback.append((u, answers))
                truth.append(np.array([position[p] for p in mine - set(card) if p in position]))
            with threadpool_limits(1, "blas"):
                ranked = rank(
                    state,
                    from_feedback(state, feedback),
                    everything,
                    Options(n=K, diversify=True, exclude_rated=True),
                ).positions
            keep = [i for i, t in enumerate(truth) if len(t)]
            hits = hits_matrix(ranked[keep], [truth[i] for i in keep])
            n_rel = np.array([len(truth[i]) for i in keep])
            scores += recall_ndcg(hits, n_rel, (K,))[f"recall@{K}"].tolist()
            # Each measured person's number of 👍 on this chunk's cards, in the same order.
            liked_rows = liked[-len(chunk) :]
            kept_likes.extend(liked_rows[i] for i in keep)
        results[name] = float(np.mean(scores))
        thumbs[name] = float(np.mean(liked))
        got = np.array(kept_likes[-len(scores) :]) > 0
        values = np.array(scores)
        split[name] = (
            float(values[got].mean()) if got.any() else float("nan"),
            float(values[~got].mean()) if (~got).any() else float("nan"),
            int(got.sum()),
        )
        print(
            f"{name:20s} recall@{K} {results[name]:.4f}  (👍 per card {thumbs[name]:.2f}; "
            f"people with a 👍: {split[name][2]}, recall {split[name][0]:.4f}; "
            f"without: {split[name][1]:.4f}; {time.perf_counter() - started:.1f}s)"
        )
    base = results["none"]
    print(f"\nratios against no card (same run, {len(users)} new people, seed {args.seed}):")
    for name in names[1:]:
        print(f"  {name:20s} x{results[name] / base:.3f}")
    best = max(("random", "popular", "areas"), key=lambda n: results[n])
    runner = max((n for n in ("random", "popular", "areas") if n != best), key=lambda n: results[n])
    print(
        f"best card: {best} (recall@{K} {results[best]:.4f}), "
        f"x{results[best] / results[runner]:.3f} of the next best ({runner}), "
        f"x{results[best] / base:.3f} of no card"
    )


if __name__ == "__main__":
    main()
