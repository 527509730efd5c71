"""Which view of the future does a dataset's test agree with? The blend's trade-offs, measured.

The catalogue blend is tuned on validation saves held out from the training data, in
several ways at once ("views": at random, toward rarely saved papers), and the
minimax-regret rule picks among the blends tuned on each view and on all views together
(`recommender/model/blend.py`). This script fits the hybrid once per hold-out setting
(`FitConfig.holdout`; the first is the baseline, by default the shipped "both") and
ranks every test person as `paperbot eval` does (`evaluate.measure`). It prints
R@20 and R@300 of the blend each setting picks, and of every candidate blend the
baseline's minimax rule chose among, each with its ratio to the baseline's blend.

    paperbot dataset citeulike ../shared/data/citeulike-a data/cvae-10 --split cvae-10
    python bench/blend_views.py data/cvae-10 --holdouts both,random,debiased,newest
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path
from types import MappingProxyType

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recommender.content import paper_text
from recommender.datasets import Dataset, load_dataset
from recommender.embeddings import DiskVectorCache, default_encoder, embed_cached
from recommender.evaluate import measure
from recommender.model import FitConfig, HybridRecommender
from recommender.model.config import SIGNALS

ROOT = Path(__file__).resolve().parents[1]
KS = (20, 300)


def embeddings(papers: list, use: bool) -> np.ndarray | None:
    """Sentence embeddings, cached on disk where `paperbot eval` keeps them."""
    encoder = default_encoder() if use else None
    if encoder is None:
        return None
    data_dir = Path(os.environ.get("PAPERBOT_DATA_DIR", ROOT / ".paperbot-data"))
    cache = DiskVectorCache(data_dir / "embeddings" / encoder.name, encoder.dim)
    return embed_cached(encoder, [paper_text(p) for p in papers], cache)


def recall(model: HybridRecommender, dataset: Dataset) -> dict[int, float]:
    """Test recall at each depth in KS, measured as `paperbot eval` measures (no MMR)."""
    metrics = measure(model, dataset, KS)[0]
    return {k: metrics[f"recall@{k}"] for k in KS}


def with_weights(model: HybridRecommender, weights: np.ndarray) -> HybridRecommender:
    """The same fitted model with another catalogue blend (the state is never edited)."""
    state = model.state
    assert state is not None
    blend = MappingProxyType({**state.weights, "catalog": weights})
    return HybridRecommender(model.config, state=dataclasses.replace(state, weights=blend))


def named(weights: np.ndarray) -> str:
    """A blend as `signal weight` pairs."""
    return " ".join(f"{s} {w:.2f}" for s, w in zip(SIGNALS, weights, strict=True) if w) or "-"


def main() -> None:
    """Fit per hold-out setting; measure each picked blend and the baseline's candidates."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dir", help="dataset directory (papers.jsonl, train.tsv, test.tsv)")
    parser.add_argument(
        "--holdouts",
        default="both,random",
        help="hold-out settings to compare, the first is the baseline (default both,random)",
    )
    parser.add_argument("--no-embeddings", action="store_true", help="TF-IDF content only")
    args = parser.parse_args()
    dataset = load_dataset(args.dir)
    vectors = embeddings(dataset.papers, not args.no_embeddings)
    holdouts = [h.strip() for h in args.holdouts.split(",") if h.strip()]
    rows: list[tuple[str, str, dict[int, float]]] = []
    baseline: dict[int, float] | None = None
    for i, holdout in enumerate(holdouts):
        started = time.perf_counter()
        model = HybridRecommender(FitConfig(holdout=holdout))
        model.fit(dataset.train, dataset.papers, embeddings=vectors)
        state = model.state
        assert state is not None
        picked = recall(model, dataset)
        print(f"{holdout}: fit and measured in {time.perf_counter() - started:.1f}s")
        rows.append((f"holdout={holdout}: picked", named(state.weights["catalog"]), picked))
        if i:
            continue
        baseline = picked
        evidence = model.report.get("blend", {}).get("catalog", {})
        names = [k.split(":")[2] for k in evidence if k.startswith("task0:single:")]
        tasks = evidence.get("tasks", [])
        labels = [*tasks, "all views"] if len(tasks) > 1 else []
        for label, cand in zip(labels, evidence.get("candidates", []), strict=False):
            full = np.zeros(len(SIGNALS))
            for name, w in zip(names, cand, strict=True):
                full[SIGNALS.index(name)] = w
            tag = f"  candidate tuned on {label}"
            rows.append((tag, named(full), recall(with_weights(model, full), dataset)))
    assert baseline is not None
    print(f"\n{Path(args.dir).name}: test recall through the ranking path")
    print(f"{'blend':<44} {'R@20':>7} {'R@300':>7} {'×R@20':>6} {'×R@300':>7}  weights")
    for label, weights, r in rows:
        ratios = [r[k] / baseline[k] if baseline[k] else float("nan") for k in KS]
        print(
            f"{label:<44} {r[20]:>7.4f} {r[300]:>7.4f} {ratios[0]:>6.3f} {ratios[1]:>7.3f}"
            f"  {weights}"
        )


if __name__ == "__main__":
    main()
