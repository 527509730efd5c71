"""Offline evaluation: fit each model on train.tsv, rank for every test user, report recall/nDCG."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recommender.cf import AlsParams
from recommender.datasets import Dataset
from recommender.metrics import hits_matrix, intra_list_similarity, recall_ndcg
from recommender.model import SIGNALS, FitConfig, HybridRecommender
from recommender.model.ranking import Candidates, Options, rank

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
    "baseline": ("tfidf", "als"),
}
# Fixed configurations: "baseline" is the plain blend a hybrid must beat, an equal-weight
# sum of per-person z-scored ALS (64 factors, regularisation 0.1, alpha 20, 15 iterations,
# no grid search) and a TF-IDF profile.
FIXED: dict[str, dict[str, Any]] = {
    "baseline": {
        "weights": {"tfidf": 1.0, "als": 1.0},
        "als": AlsParams(64, 0.1, 20.0, 15),
        "als_grid": (),
    },
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
    diversify: bool = False,
    diversity_users: int = 1000,
    log: Callable[[str], None] | None = None,
    rankings: dict[str, list[str]] | None = None,
) -> ModelResult:
    """Fit one model on the dataset's train split and measure it on its test split.

    Ranking goes through the bot's own path (`model.ranking.rank`), with the person's own
    training papers excluded, as in a digest; `diversify` applies the digest's MMR.
    `rankings`, when given, receives each measured user's ranked paper ids.
    """
    say = log or (lambda _m: None)
    config = FitConfig(signals=MODELS[name], **FIXED.get(name, {}))
    started = time.perf_counter()
    model = HybridRecommender(config).fit(
        dataset.train, dataset.papers, embeddings=embeddings, progress=lambda m: say(f"{name}: {m}")
    )
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    metrics, users, truth, cands = measure(
        model, dataset, ks, diversify=diversify, rankings=rankings
    )
    score_seconds = time.perf_counter() - started
    extra: dict[str, Any] = {"users": len(users), "diversify": diversify}
    if name == "hybrid":
        sample = users[:diversity_users]
        extra["diversity"] = _diversity(model, sample, truth, cands)
        extra["procedure"] = model.report
    return ModelResult(name, metrics, fit_seconds, score_seconds, extra)


def measure(
    model: HybridRecommender,
    dataset: Dataset,
    ks: Sequence[int] = DEFAULT_KS,
    *,
    diversify: bool = False,
    rankings: dict[str, list[str]] | None = None,
) -> tuple[dict[str, float], list[str], dict[str, list[str]], Candidates]:
    """Mean recall@k and nDCG@k of a fitted model on the dataset's test split, ranked
    through `rank_for`; also the measured users, their test papers and the candidates."""
    assert model.state is not None
    truth: dict[str, list[str]] = {}
    for user, pid, weight in dataset.test:
        if weight > 0:
            truth.setdefault(user, []).append(pid)
    cands = model.candidates(dataset.candidates)
    position = {pid: j for j, pid in enumerate(cands.ids)}
    # Users whose held-out papers are all outside the candidates cannot be measured.
    users = sorted(u for u in truth if any(p in position for p in truth[u]))
    depth = max(ks)
    sums: dict[str, float] = {}
    for start in range(0, len(users), 1000):
        chunk = users[start : start + 1000]
        ranked = rank_for(model, chunk, cands, depth, diversify=diversify)
        if rankings is not None:
            for user, row in zip(chunk, ranked, strict=True):
                rankings[user] = [cands.ids[j] for j in row if j >= 0]
        relevant = [np.array([position[p] for p in truth[u] if p in position]) for u in chunk]
        hits = hits_matrix(ranked, relevant)
        n_rel = np.array([max(1, len(r)) for r in relevant])
        for key, values in recall_ndcg(hits, n_rel, ks).items():
            sums[key] = sums.get(key, 0.0) + float(values.sum())
    metrics = {key: round(total / max(len(users), 1), 4) for key, total in sums.items()}
    metrics = dict(sorted(metrics.items(), key=lambda kv: (kv[0].split("@")[0] != "recall",)))
    return metrics, users, truth, cands


def rank_for(
    model: HybridRecommender,
    users: Sequence[str],
    cands: Candidates,
    n: int,
    *,
    diversify: bool = False,
) -> np.ndarray:
    """Candidate positions (users × n, -1 where fewer) through the bot's ranking path:
    the same `rank` a digest calls, each person's own rated papers excluded."""
    assert model.state is not None
    options = Options(n=n, diversify=diversify, exclude_rated=True)
    return rank(model.state, model.people(list(users)), cands, options).positions


def _diversity(
    model: HybridRecommender,
    users: list[str],
    truth: dict[str, list[str]],
    cands: Candidates,
) -> dict[str, float]:
    """Intra-list similarity and recall@10 of the top-10 without and with the digest's MMR."""
    out: dict[str, float] = {}
    position = {pid: j for j, pid in enumerate(cands.ids)}
    for label, diversify in (("plain", False), ("mmr", True)):
        ranked = rank_for(model, users, cands, 10, diversify=diversify)
        full = np.array([row for row in ranked if (row >= 0).all()])
        out[f"ils@10_{label}"] = round(intra_list_similarity(cands.dense, full), 4)
        recall = [
            len(set(row[row >= 0].tolist()) & {position[p] for p in truth[u] if p in position})
            / len(truth[u])
            for u, row in zip(users, ranked, strict=True)
        ]
        out[f"recall@10_{label}"] = round(float(np.mean(recall)), 4) if recall else 0.0
    return out
