"""Choosing blend weights on a validation split: coordinate ascent on recall at several
depths, then the one-standard-error rule: of the blends between the lead signal and the
one found, keep the closest to the lead whose recall the validation users cannot tell
apart from the best (within one paired standard error)."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from recommender.metrics import hits_matrix, top_k

# Relative weights tried for each signal during coordinate ascent.
GRID = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
# A blend may not lose more than this fraction of the best single signal at any depth.
TOLERANCE = 0.01
# A weight change must lift the objective by this much (relative recall) to be kept:
# smaller gains are as likely to be validation noise as real.
MIN_GAIN = 1e-5
# Shares of the searched deviation from the lead signal tried by the one-SE rule.
SHRINK_STEPS = (0.0, 0.25, 0.5, 0.75, 1.0)
# How many paired standard errors a simpler blend may lose and still be preferred.
TOLERANCE_SE = 1.0


@dataclass(slots=True)
class ValidationSet:
    """Z-scored signal values of validation users on their candidate pools.

    `z[u, s, j]` is signal s for user u on pool item j; `relevant[u, j]` marks held-out
    items; `n_relevant[u]` counts all held-out items of u (some may fall outside the pool).
    """

    signals: list[str]
    z: np.ndarray
    relevant: np.ndarray
    n_relevant: np.ndarray
    ks: tuple[int, ...]
    _pairs: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    def recall(self, weights: np.ndarray) -> np.ndarray:
        """Mean recall at each depth in `ks` for one weight vector."""
        return self.per_user(weights).sum(axis=0) / max(self.z.shape[0], 1)

    def prepare(self) -> None:
        """Build the search's cache once (before searches share this set across threads).

        Only users with a held-out paper in their pool can score: the rest add zero to
        every depth, so they are dropped from the search (the mean still counts them).
        Signal-major copy: a weighted sum is then a few contiguous adds.
        """
        if self._pairs is not None:
            return
        users, slots = np.nonzero(self.relevant)
        active, users = np.unique(users, return_inverse=True)
        self._pairs = (
            users,
            slots,
            np.ascontiguousarray(self.z[active].transpose(1, 0, 2)),
            self.n_relevant[active],
            active,
        )

    def per_user(self, weights: np.ndarray) -> np.ndarray:
        """Recall of every validation user (rows) at each depth in `ks` (columns).

        Counts, for each held-out paper, how many pool papers outscore it: far cheaper than
        sorting every pool.
        """
        self.prepare()
        users, slots, by_signal, n_relevant, active = self._pairs
        scores = np.zeros(by_signal.shape[1:], dtype=np.float32)
        for s, w in enumerate(weights):
            if w:
                scores += np.float32(w) * by_signal[s]
        mine = scores[users, slots]
        rows = scores[users]
        above = (rows > mine[:, None]).sum(axis=1)
        # Ties are broken at random: the chance of landing in the top k among equals.
        tied = (rows == mine[:, None]).sum(axis=1)
        out = np.zeros((self.z.shape[0], len(self.ks)))
        for i, k in enumerate(self.ks):
            chance = np.clip(k - above, 0, tied) / tied
            hits = np.bincount(users, weights=chance, minlength=len(n_relevant))
            out[active, i] = hits / n_relevant
        return out


def pool_candidates(
    scores: Sequence[np.ndarray], pool_size: int, excluded: np.ndarray | None
) -> np.ndarray:
    """Per user, the union of each signal's top items (the only ones a blend can rank high)."""
    n_users, n_items = scores[0].shape
    if pool_size * len(scores) >= n_items:
        return np.tile(np.arange(n_items), (n_users, 1))
    tops = []
    for s in scores:
        masked = s if excluded is None else np.where(excluded, -np.inf, s)
        tops.append(top_k(masked, pool_size, ordered=False))
    stacked = np.concatenate(tops, axis=1)
    width = stacked.shape[1]
    out = np.empty((n_users, width), dtype=np.int64)
    for u in range(n_users):
        uniq = np.unique(stacked[u])
        # Pad with repeats of the first entry, scored -inf later so they never count.
        out[u, : len(uniq)] = uniq
        out[u, len(uniq) :] = -1
    return out


def build_validation(
    names: list[str],
    zscores: Sequence[np.ndarray],
    pools: np.ndarray,
    relevant_sets: Sequence[np.ndarray],
    excluded: np.ndarray | None,
    ks: tuple[int, ...],
) -> ValidationSet:
    """Gather z-scores on each user's pool into one dense array for fast weight search."""
    n_users, width = pools.shape
    safe = np.where(pools < 0, 0, pools)
    z = np.zeros((n_users, len(names), width), dtype=np.float32)
    for s, zs in enumerate(zscores):
        z[:, s, :] = np.take_along_axis(zs, safe, axis=1)
    dead = pools < 0
    if excluded is not None:
        dead |= np.take_along_axis(excluded, safe, axis=1)
    # Dead slots (padding, the user's own training items) can never be ranked.
    z[np.broadcast_to(dead[:, None, :], z.shape)] = -1e9
    relevant = hits_matrix(safe, relevant_sets) & ~dead
    n_relevant = np.array([max(1, len(r)) for r in relevant_sets])
    return ValidationSet(list(names), z, relevant, n_relevant, ks)


class _Objective:
    """Recall relative to each task's best single signal, averaged over depths and tasks,
    minus a heavy penalty wherever a depth falls more than TOLERANCE below that signal."""

    def __init__(self, vals: Sequence[ValidationSet]) -> None:
        self.vals = vals
        n = len(vals[0].signals)
        self.singles = [np.stack([v.recall(np.eye(n)[s]) for s in range(n)]) for v in vals]
        self.bests = [np.maximum(single.max(axis=0), 1e-9) for single in self.singles]

    def __call__(self, weights: np.ndarray) -> float:
        """The objective of one weight vector."""
        total = 0.0
        for val, best in zip(self.vals, self.bests, strict=True):
            r = val.recall(weights)
            shortfall = np.maximum(0.0, best * (1 - TOLERANCE) - r) / best
            total += float((r / best).mean() - 10.0 * shortfall.sum())
        return total / len(self.vals)

    def per_user(self, weights: np.ndarray) -> np.ndarray:
        """Each validation user's relative recall (all tasks' users, one after another)."""
        return np.concatenate(
            [
                (val.per_user(weights) / best).mean(axis=1)
                for val, best in zip(self.vals, self.bests, strict=True)
            ]
        )

    def paired_se(self, a: np.ndarray, b: np.ndarray) -> float:
        """Standard error of the mean per-user difference between two blends."""
        d = self.per_user(a) - self.per_user(b)
        return float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0


def _search(objective: _Objective, start: int, n: int) -> np.ndarray:
    """Coordinate ascent over GRID from one signal alone."""
    weights = np.zeros(n)
    weights[start] = 1.0
    current = objective(weights)
    for _ in range(3):
        improved = False
        for s in range(n):
            if s == start:
                continue
            for g in GRID:
                if g == weights[s]:
                    continue
                trial = weights.copy()
                trial[s] = g
                score = objective(trial)
                if score > current + MIN_GAIN:
                    current, weights, improved = score, trial, True
        if not improved:
            break
    return weights


def tune_weights(
    vals: Sequence[ValidationSet], prior: np.ndarray | None = None
) -> tuple[np.ndarray, dict[str, list[float]]]:
    """Weights that do well on every validation task at once, and the evidence.

    The search starts from the best single signal and from `prior` (the default blend)
    when that scores better, so a good default is never lost to a greedy path. Gains
    found on validation shrink on new data (the winner's curse), so the result is the
    least departure from the lead signal that stays within one paired standard error of
    the best blend found.
    """
    n = len(vals[0].signals)
    objective = _Objective(vals)
    start = int(np.argmax([objective(np.eye(n)[s]) for s in range(n)]))
    found = _search(objective, start, n)
    if prior is not None and prior.any() and objective(prior) > objective(found):
        found = prior / prior.max()
    lead = np.eye(n)[start]
    # Scale-free blends (scores are z-scored), so compare on a common scale.
    found = found / found.sum()
    best_score = objective(found)
    weights = found
    for t in SHRINK_STEPS:
        trial = (1 - t) * lead + t * found
        if objective(trial) >= best_score - TOLERANCE_SE * objective.paired_se(trial, found):
            weights = trial
            break
    weights = weights / weights.max()
    evidence: dict[str, list[float]] = {"ks": list(vals[0].ks)}
    for t, (val, single) in enumerate(zip(vals, objective.singles, strict=True)):
        for i, name in enumerate(val.signals):
            evidence[f"task{t}:single:{name}"] = single[i].round(4).tolist()
        evidence[f"task{t}:blend"] = val.recall(weights).round(4).tolist()
    return weights, evidence


def robust_weights(
    vals: Sequence[ValidationSet], prior: np.ndarray | None = None
) -> tuple[np.ndarray, dict[str, list[float]]]:
    """Weights for several views of the future that may disagree (saves like the past
    ones, saves on rarely saved papers): the blend tuned on each view alone and on all
    together compete, and the one whose worst view loses least against that view's own
    tuned blend wins (minimax regret), so no view's future is given up for another's."""
    if len(vals) == 1:
        return tune_weights(vals, prior=prior)
    for v in vals:
        v.prepare()  # the shared caches are built before the searches run side by side
    # The searches are independent and mostly numpy (which releases the GIL): in threads.
    with ThreadPoolExecutor(len(vals) + 1, thread_name_prefix="blend") as pool:
        runs = [pool.submit(tune_weights, [v], prior) for v in vals]
        runs.append(pool.submit(tune_weights, vals, prior))
        options = [run.result()[0] for run in runs]
    # Each view's best achievable: the best of the candidates on it, averaged over depths.
    table = np.array([[v.recall(w).mean() for v in vals] for w in options])
    regret = table / np.maximum(table.max(axis=0), 1e-12)
    pick = int(np.argmax(regret.min(axis=1)))
    weights = options[pick]
    evidence: dict[str, list[float]] = {"ks": list(vals[0].ks)}
    # Each candidate's weights (tuned on view 0, 1, ..., then on all views together).
    evidence["candidates"] = [np.round(w, 3).tolist() for w in options]
    evidence["candidates_worst_view_share"] = regret.min(axis=1).round(4).tolist()
    evidence["picked"] = [float(pick)]
    n = len(vals[0].signals)
    for t, val in enumerate(vals):
        for i, name in enumerate(val.signals):
            evidence[f"task{t}:single:{name}"] = val.recall(np.eye(n)[i]).round(4).tolist()
        evidence[f"task{t}:blend"] = val.recall(weights).round(4).tolist()
    return weights, evidence
