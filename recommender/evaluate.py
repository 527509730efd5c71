"""Offline evaluation: fit each model on train.tsv, rank for every test user, report recall/nDCG."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recommender.datasets import Dataset
from recommender.metrics import hits_matrix, intra_list_similarity, recall_ndcg, top_k
from recommender.model import SIGNALS, FitConfig, HybridRecommender

DEFAULT_KS = (10, 20, 50, 100, 300)
# Model name -> the signals it may use. Single-signal models share the hybrid's code path.
MODELS: dict[str, tuple[str, ...]] = {
    "hybrid": SIGNALS,
    "content": ("content",),
    "tfidf": ("tfidf",),
    "imc": ("imc",),
    "knn": ("knn",),
    "als": ("als",),
    "popularity": ("pop",),
}


class EvaluationError(ValueError):
    """A bad argument to the evaluation (unknown model, bad k)."""


@dataclass(slots=True)
class ModelResult:
    """Metrics and timings of one model on one dataset."""

    name: str
    metrics: dict[str, float]
    fit_seconds: float
    score_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape written by `paperbot eval --json`."""
        return {
            **self.metrics,
            "fit_seconds": round(self.fit_seconds, 3),
            "score_seconds": round(self.score_seconds, 3),
            **self.extra,
        }


def parse_models(text: str) -> list[str]:
    """`hybrid,als` -> ["hybrid", "als"], or an EvaluationError naming the valid choices."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in MODELS]
    if bad or not names:
        raise EvaluationError(
            f"unknown model {bad[0] if bad else '(none)'!r}: choose from {', '.join(MODELS)}"
        )
    return names


def parse_ks(text: str) -> tuple[int, ...]:
    """`10,20,50` -> (10, 20, 50)."""
    try:
        ks = tuple(sorted({int(k) for k in text.split(",") if k.strip()}))
    except ValueError:
        raise EvaluationError(f"--k expects comma-separated integers, got {text!r}") from None
    if not ks or ks[0] <= 0:
        raise EvaluationError("--k values must be positive integers")
    return ks


def evaluate_model(
    name: str,
    dataset: Dataset,
    embeddings: np.ndarray | None,
    ks: Sequence[int] = DEFAULT_KS,
    *,
    diversity_users: int = 1000,
    log: Callable[[str], None] | None = None,
) -> ModelResult:
    """Fit one model on the dataset's train split and measure it on its test split."""
    say = log or (lambda _m: None)
    config = FitConfig(signals=MODELS[name])
    started = time.perf_counter()
    model = HybridRecommender(config).fit(
        dataset.train, dataset.papers, embeddings=embeddings, progress=lambda m: say(f"{name}: {m}")
    )
    fit_seconds = time.perf_counter() - started

    truth: dict[str, list[int]] = {}
    for user, pid, weight in dataset.test:
        if weight > 0:
            truth.setdefault(user, []).append(model.pidx[pid])
    users = sorted(truth)
    cols = (
        np.arange(len(model.paper_ids))
        if dataset.candidates is None
        else np.array([model.pidx[c] for c in dataset.candidates])
    )
    position = np.full(len(model.paper_ids), -1)
    position[cols] = np.arange(len(cols))
    # Users whose held-out papers are all outside the candidates cannot be measured.
    users = [u for u in users if (position[np.asarray(truth[u])] >= 0).any()]
    depth = max(ks)
    sums: dict[str, float] = {}
    started = time.perf_counter()
    for start in range(0, len(users), 1000):
        chunk = users[start : start + 1000]
        scores = model.score(chunk, cols)
        _exclude_training(model, chunk, scores, position)
        ranked = top_k(scores, depth)
        relevant = [position[np.asarray(truth[u])] for u in chunk]
        relevant = [r[r >= 0] for r in relevant]
        hits = hits_matrix(ranked, relevant)
        n_rel = np.array([max(1, len(r)) for r in relevant])
        for key, values in recall_ndcg(hits, n_rel, ks).items():
            sums[key] = sums.get(key, 0.0) + float(values.sum())
    score_seconds = time.perf_counter() - started
    metrics = {key: round(total / max(len(users), 1), 4) for key, total in sums.items()}
    metrics = dict(sorted(metrics.items(), key=lambda kv: (kv[0].split("@")[0] != "recall",)))
    extra: dict[str, Any] = {"users": len(users)}
    if name == "hybrid":
        extra["diversity"] = _diversity(model, users[:diversity_users], truth, dataset, cols)
        extra["procedure"] = model.report
    return ModelResult(name, metrics, fit_seconds, score_seconds, extra)


def _exclude_training(
    model: HybridRecommender, users: Sequence[str], scores: np.ndarray, position: np.ndarray
) -> None:
    """A user's own training papers are never counted as recommendations."""
    for j, user in enumerate(users):
        u = model.uidx.get(user)
        if u is None:
            continue
        cols = position[model.R[u].indices]
        scores[j, cols[cols >= 0]] = -np.inf


def _diversity(
    model: HybridRecommender,
    users: list[str],
    truth: dict[str, list[int]],
    dataset: Dataset,
    cols: np.ndarray,
) -> dict[str, float]:
    """Intra-list similarity and recall@10 of the top-10 without and with MMR re-ranking."""
    candidates = None if dataset.candidates is None else dataset.candidates
    out: dict[str, float] = {}
    for label, diversify in (("plain", False), ("mmr", True)):
        recs = model.recommend(users, candidates, n=10, diversify=diversify)
        lists = np.array([[model.pidx[r.paper_id] for r in rec] for rec in recs if len(rec) == 10])
        out[f"ils@10_{label}"] = round(intra_list_similarity(model.items.dense, lists), 4)
        recall = [
            len({model.pidx[r.paper_id] for r in rec} & set(truth[u])) / len(truth[u])
            for u, rec in zip(users, recs, strict=True)
        ]
        out[f"recall@10_{label}"] = round(float(np.mean(recall)), 4)
    return out
