"""Blend tuning: validation tasks, content variants and blend weights, on a fit's split.

Two tasks, as the bot faces them: rank the catalogue (a person's held-out saves) and rank
only new papers (the newest papers, every save on them held out). Each gives its own
blend: the catalogue blend serves search and catalogue-wide ranking, the new-papers blend
serves digests of papers nobody has rated yet. Each task's validation users are scored
once per signal; the weights search itself lives in `blend.py`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from recommender.model import blend
from recommender.model.config import SIGNALS, TUNE_KS

if TYPE_CHECKING:
    from recommender.model.training import Trainer


@dataclass(slots=True)
class Task:
    """One validation task: users, their held-out papers, and what those are ranked among."""

    name: str
    users: np.ndarray
    truth: dict[int, np.ndarray]
    cands: np.ndarray | None  # candidate columns, sorted (None: the whole catalogue)
    exclude_seen: bool  # a user's own training papers are not candidates
    ks: tuple[int, ...]


def named(weights: np.ndarray) -> dict[str, float]:
    """Weights keyed by signal name."""
    return {s: round(float(w), 3) for s, w in zip(SIGNALS, weights, strict=True) if w}


def default_weights(default: dict[str, float], names: list[str]) -> np.ndarray:
    """The default blend over the signals in use (indexed like SIGNALS); a model with
    none of the default's signals weighs what it has equally."""
    w = np.array([default.get(s, 0.0) if s in names else 0.0 for s in SIGNALS])
    if not w.any():
        w = np.array([1.0 if s in names else 0.0 for s in SIGNALS])
    return w


def _pad(array: np.ndarray, width: int, value: Any) -> np.ndarray:
    """Pad the last axis of `array` to `width`."""
    extra = width - array.shape[-1]
    if extra <= 0:
        return array
    pad = [(0, 0)] * (array.ndim - 1) + [(0, extra)]
    return np.pad(array, pad, constant_values=value)


@dataclass(slots=True)
class Plan:
    """The validation tasks of one fit: catalogue views and the new-papers task."""

    names: list[str]
    catalog: list[Task]
    cold: list[Task]

    @property
    def tasks(self) -> list[Task]:
        """Every task."""
        return self.catalog + self.cold


def plan(
    tr: Trainer,
    catalog_val: dict,
    cold_val: dict,
    cold_items: np.ndarray,
    rare_val: dict | None = None,
) -> Plan | None:
    """The validation tasks, or None when the blend is fixed or cannot be validated (the
    weights are then set here: the configured blend, or the default one)."""
    cfg = tr.config
    names = [s for s in SIGNALS if s in cfg.signals]
    if cfg.weights is not None:
        # A fixed blend (a baseline, or an operator's choice): nothing to tune.
        w = np.array([cfg.weights.get(s, 0.0) if s in names else 0.0 for s in SIGNALS])
        tr.weights = {"catalog": w, "cold": w.copy()}
        tr.report["blend"] = {"note": "fixed weights", "catalog": named(w), "cold": named(w)}
        return None
    # `catalog_val` holds what a person saves next, wherever it lies: held-out saves plus
    # saves on the newest papers, in the proportion these occur (averaging in a separate
    # new-papers task would over-weight papers collaborative filtering cannot score).
    cold_users = np.array(sorted(cold_val))
    # `rare_val` holds saves off the beaten track (drawn toward rarely saved papers):
    # a second view of the future, where co-saving knows least.
    rare_val = rare_val or {}
    sample, ks = validation_columns(tr, [catalog_val, rare_val])
    catalog_tasks = []
    if catalog_val:
        users = np.array(sorted(catalog_val))
        catalog_tasks.append(Task("held-out", users, catalog_val, sample, True, ks))
    if rare_val:
        users = np.array(sorted(rare_val))
        catalog_tasks.append(Task("held-out-rare", users, rare_val, sample, True, ks))
    cold_ks = tuple(k for k in TUNE_KS if k <= max(10, len(cold_items) // 3))
    cold_tasks = (
        [Task("new-only", cold_users, cold_val, cold_items, False, cold_ks)] if cold_val else []
    )
    # A blend chosen on a handful of people says more about them than about the data.
    catalog_tasks = [t for t in catalog_tasks if len(t.users) >= cfg.min_validation_users]
    cold_tasks = [t for t in cold_tasks if len(t.users) >= cfg.min_validation_users]
    if not catalog_tasks and not cold_tasks:
        # Nothing to validate on (one paper per user): the default blend.
        w = default_weights(cfg.default_weights, names)
        tr.weights = {"catalog": w, "cold": w.copy()}
        tr.report["blend"] = {
            "note": "too little feedback to validate a blend yet; default weights",
            "catalog": named(w),
            "cold": named(w),
        }
        return None
    return Plan(names, catalog_tasks, cold_tasks)


def choose_variants(tr: Trainer, plan: Plan) -> dict[str, Any]:
    """Whitening of content and the imc ridge, each variant scored alone on every task
    (content signals only: this runs while collaborative filtering is still fitting)."""
    evidence: dict[str, Any] = {}
    papers: dict[int, np.ndarray] = {}  # each pass's candidate rows, gathered once
    for signal, attr, options in (
        ("content", "shrink", tr.config.whitening),
        ("imc", "imc_ridge", tr.config.imc_ridge),
    ):
        if signal not in plan.names:
            continue
        scores = {option: variant_score(tr, signal, option, plan, papers) for option in options}
        before = getattr(tr, attr)
        setattr(tr, attr, max(scores, key=scores.get))
        evidence[f"{signal} variants"] = {str(k): round(v, 4) for k, v in scores.items()}
        if getattr(tr, attr) == before:
            continue  # the sides and vectors already in place are this variant's
        if signal == "imc":
            tr._set_imc()  # the ridge changes how a history maps to imc's axes, no side
        else:
            tr.set_item_side((signal,))
        tr.refresh_users((signal,))
    tr.report["whitening"] = tr.shrink
    tr.report["imc_ridge"] = tr.imc_ridge
    return evidence


def choose_blend(tr: Trainer, plan: Plan, evidence: dict[str, Any]) -> None:
    """The catalogue and new-papers blend weights, on every signal's validation scores."""
    names = plan.names
    # Tasks ranking the same papers are scored in one pass over their users; the
    # catalogue and new-papers tasks rank different papers, so each kind has its own
    # pass (scoring the union and gathering each task's columns costs more).
    split = {
        "catalog": validations(tr, names, plan.catalog) if plan.catalog else [],
        "cold": validations(tr, names, plan.cold) if plan.cold else [],
    }
    prior = default_weights(tr.config.default_weights, names)[[SIGNALS.index(s) for s in names]]
    for kind, tasks in (("catalog", plan.catalog), ("cold", plan.cold)):
        if not tasks:
            continue
        weights, ev = blend.robust_weights(split[kind], prior=prior)
        full = np.zeros(len(SIGNALS))
        for i, s in enumerate(names):
            full[SIGNALS.index(s)] = weights[i]
        tr.weights[kind] = full
        evidence[kind] = {"tasks": [t.name for t in tasks], "weights": named(full), **ev}
    if not plan.cold:
        tr.weights["cold"] = tr.weights["catalog"].copy()
    if not plan.catalog:
        tr.weights["catalog"] = tr.weights["cold"].copy()
    tr.report["blend"] = evidence


def validation_columns(
    tr: Trainer, truths: list[dict[int, np.ndarray]]
) -> tuple[np.ndarray | None, tuple[int, ...]]:
    """Papers the catalogue tasks rank among, and the depths that match `TUNE_KS`.

    A large catalogue is sampled uniformly (every held-out paper kept): a paper's rank
    among the sample, scaled by the sampling rate, estimates its rank in the catalogue.
    """
    n = len(tr.paper_ids)
    limit = tr.config.validation_items
    if n <= limit:
        return None, tuple(k for k in TUNE_KS if k <= max(10, n // 3))
    rng = np.random.default_rng(tr.config.seed + 2)
    held = [np.asarray(v, dtype=np.int64) for truth in truths for v in truth.values()]
    sample = np.union1d(rng.choice(n, limit, replace=False), np.concatenate([[], *held]))
    scale = limit / n
    ks = tuple(dict.fromkeys(max(1, round(k * scale)) for k in TUNE_KS if k <= n // 3))
    return sample.astype(np.int64), ks


def _columns(tasks: list[Task]) -> np.ndarray | None:
    """Every column some task ranks (None: the whole catalogue)."""
    if any(t.cands is None for t in tasks):
        return None
    return np.unique(np.concatenate([t.cands for t in tasks]))


def _positions_in(cols: np.ndarray | None, cands: np.ndarray | None) -> np.ndarray | None:
    """Where a task's candidates sit among the scored columns (None: they are all)."""
    if cands is None or (cols is not None and len(cols) == len(cands)):
        # `cols` is the sorted union of the tasks' candidates: the same length means
        # the same papers, and a task's rows need no column gather.
        return None
    return cands if cols is None else np.searchsorted(cols, cands)


def _task_batches(
    tr: Trainer, tasks: list[Task], cols: np.ndarray | None, matrices: int
) -> Iterator[tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray | None]]]]:
    """Every validation user once, in batches sized so `matrices` score matrices of a
    batch stay small: (batch users, per task: its rows in the batch, and where its
    candidates sit among the scored columns, None = all)."""
    everyone = np.unique(np.concatenate([t.users for t in tasks]))
    width = len(tr.paper_ids) if cols is None else len(cols)
    # A few MB per matrix: the allocator reuses blocks that size, while every fresh
    # temporary of tens of MB is paged in anew (page faults cost more than the scoring).
    batch = max(50, int(4e6 / max(width, 1) / max(matrices, 1)))
    where = [_positions_in(cols, t.cands) for t in tasks]
    for start in range(0, len(everyone), batch):
        ub = everyone[start : start + batch]
        rows = [np.flatnonzero(np.isin(ub, t.users)) for t in tasks]
        yield ub, list(zip(rows, where, strict=True))


def _task_rows(scores: np.ndarray, rows: np.ndarray, where: np.ndarray | None) -> np.ndarray:
    """A task's rows of a batch's scores, on its candidates only (a copy)."""
    return scores[rows] if where is None else scores[np.ix_(rows, where)]


def validations(tr: Trainer, names: list[str], tasks: list[Task]) -> list[blend.ValidationSet]:
    """Pooled z-scores for several tasks, scoring each validation user once for all."""
    cols = _columns(tasks)
    items = tr.column_items(cols)
    parts: list[list[blend.ValidationSet]] = [[] for _ in tasks]
    for ub, per_task in _task_batches(tr, tasks, cols, len(names)):
        scores = tr.signal_scores(ub, names, cols=cols, items=items)
        for task, part, (mine, where) in zip(tasks, parts, per_task, strict=True):
            if len(mine):
                mats = [_task_rows(scores[s], mine, where) for s in names]
                part.append(_task_part(tr, names, ub[mine], mats, task))
    out = []
    for task_parts in parts:
        width = max(p.z.shape[2] for p in task_parts)
        z = np.concatenate([_pad(p.z, width, -1e9) for p in task_parts])
        relevant = np.concatenate([_pad(p.relevant, width, False) for p in task_parts])
        n_rel = np.concatenate([p.n_relevant for p in task_parts])
        out.append(blend.ValidationSet(names, z, relevant, n_rel, task_parts[0].ks))
    return out


def _task_view(
    tr: Trainer, users: np.ndarray, task: Task
) -> tuple[tuple[np.ndarray, np.ndarray] | None, list[np.ndarray]]:
    """(cells of the users' own training papers among the task's candidates, or None;
    each user's held-out papers as candidate positions)."""
    n = len(tr.paper_ids)
    position = np.full(n, -1, dtype=np.int64)
    cands = np.arange(n) if task.cands is None else task.cands
    position[cands] = np.arange(len(cands))
    seen = None
    if task.exclude_seen:
        rows = tr.R[users]
        r = np.repeat(np.arange(len(users)), np.diff(rows.indptr))
        c = position[rows.indices]
        seen = (r[c >= 0], c[c >= 0])
    truth = []
    for u in users:
        pos = position[np.asarray(task.truth[int(u)], dtype=np.int64)]
        truth.append(pos[pos >= 0])
    return seen, truth


def _task_part(
    tr: Trainer, names: list[str], users: np.ndarray, mats: list[np.ndarray], task: Task
) -> blend.ValidationSet:
    """One task's pooled z-scores for a batch of its users (`mats`: their own copies)."""
    seen, truth_cols = _task_view(tr, users, task)
    excluded = None
    if seen is not None:
        excluded = np.zeros(mats[0].shape, dtype=bool)
        excluded[seen] = True
        for m in mats:
            # The copies are this task's own: mask seen papers in place, not per pool.
            m[seen] = -np.inf
    pools = blend.pool_candidates(mats, max(task.ks), None)
    return blend.build_validation(names, mats, pools, truth_cols, excluded, task.ks)


def _variant_map(tr: Trainer, signal: str, option: Any) -> np.ndarray | None:
    """The d × d map a history goes through before meeting the papers' dense vectors, for
    one variant of a signal (None: none). Built from the content vectors, so trying one
    changes no state: whitened content scores (h W)(x W)ᵀ = h (W Wᵀ) xᵀ."""
    if signal == "content":
        if option is None:
            return None  # centring only: the whitener is the identity
        mapping = tr.content_model.whitener(option)
        return (mapping @ mapping.T).astype(np.float32)
    return tr.imc_matrix(option)


def variant_score(
    tr: Trainer, signal: str, option: Any, plan: Plan, papers: dict[int, np.ndarray]
) -> float:
    """Summed mean recall (over tuning depths) of one signal variant alone on every task.

    One signal needs no pools or standardising: a held-out paper's rank is the number
    of eligible papers that outscore it in the raw scores. The catalogue tasks and the
    new-papers task rank different papers, so each kind is scored in its own pass
    (`papers`: each pass's candidate rows, kept across variants).
    """
    mapping = _variant_map(tr, signal, option)
    total = 0.0
    for i, tasks in enumerate((plan.catalog, plan.cold)):
        if tasks:
            if i not in papers:
                cols = _columns(tasks)
                papers[i] = tr.items.dense if cols is None else tr.items.dense[cols]
            total += _variant_pass(tr, mapping, papers[i], tasks)
    return total


def _variant_pass(
    tr: Trainer, mapping: np.ndarray | None, papers: np.ndarray, tasks: list[Task]
) -> float:
    """Summed mean recall of one variant on tasks that rank the same candidates (each
    validation user scored once for all of them; `papers`: the candidates' rows)."""
    cols = _columns(tasks)
    totals = [np.zeros(0) for _ in tasks]
    counts = [0 for _ in tasks]
    for ub, per_task in _task_batches(tr, tasks, cols, 1):
        history = tr.history[ub]  # R X of these users, computed once by the imc fit
        raw_all = (history if mapping is None else history @ mapping) @ papers.T
        for i, (task, (mine, where)) in enumerate(zip(tasks, per_task, strict=True)):
            if not len(mine):
                continue
            # Tasks of one pass rank the same candidates and exclude the same training
            # papers, so the batch's own scores serve a task that has every batch user
            # (masking them again for another task changes nothing).
            whole = where is None and len(mine) == len(ub)
            raw = raw_all if whole else _task_rows(raw_all, mine, where)
            part = _single_task_recall(tr, raw, ub[mine], task)
            totals[i] = part if not len(totals[i]) else totals[i] + part
            counts[i] += len(mine)
    return float(sum(t.mean() / max(c, 1) for t, c in zip(totals, counts, strict=True) if len(t)))


def _single_task_recall(tr: Trainer, raw: np.ndarray, users: np.ndarray, task: Task) -> np.ndarray:
    """Summed recall at each tuning depth over a batch of one task's users (`raw`: their
    scores on the task's candidates, a copy this may change)."""
    ks = np.array(task.ks)
    seen, targets = _task_view(tr, users, task)
    if seen is not None:
        raw[seen] = -np.inf
    total = np.zeros(len(ks))
    for j, t in enumerate(targets):
        if len(t) == 0:
            continue
        mine = raw[j, t]
        above = (raw[j][None, :] > mine[:, None]).sum(axis=1)
        tied = (raw[j][None, :] == mine[:, None]).sum(axis=1)
        # Random tie-breaking, as in the blend search.
        chance = np.clip(ks[:, None] - above[None, :], 0, tied) / tied
        total += chance.sum(axis=1) / len(t)
    return total
