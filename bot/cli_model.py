"""Recommender commands: `paperbot train`, `paperbot eval`, `paperbot dataset`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from bot.cli_app import App, CommandError, add_command, bars
from recommender import synthetic
from recommender.content import paper_text
from recommender.datasets import SPLITS, DatasetError, convert_citeulike, load_dataset
from recommender.embeddings import DiskVectorCache, embed_cached
from recommender.evaluate import (
    DEFAULT_KS,
    MODELS,
    EvaluationError,
    ModelResult,
    evaluate_model,
    parse_ks,
    parse_models,
)
from recommender.service import PaperService


def service_for(app: App) -> PaperService:
    """The recommender service over the configured store, saving models in the data dir."""
    return app.service()


# -- train ------------------------------------------------------------------------------------


def cmd_train(args: argparse.Namespace, app: App) -> int:
    """Fit the hybrid model on every piece of feedback in the store and save it."""
    service = service_for(app)
    with app.err.status("training…") as status:
        model = service.train(
            progress=lambda stage: status.update(f"training: {stage}"), retune=args.retune
        )
    report = model.report
    app.out.print(
        f"Trained on {report['interactions']} interactions from {report['users']} people over "
        f"{report['papers']} papers in {report['fit_seconds']:.1f}s "
        f"(content: {report['content']})."
    )
    blend = report.get("blend", {})
    for task in ("catalog", "cold"):
        weights = blend.get(task, {}).get("weights") if isinstance(blend.get(task), dict) else None
        if weights is None and isinstance(blend.get(task), dict):
            weights = blend[task]
        if weights:
            shown = ", ".join(f"{k} {v:g}" for k, v in weights.items())
            label = "catalogue" if task == "catalog" else "new papers"
            app.out.print(f"Blend for {label}: {shown}")
    if "note" in blend:
        app.out.print(blend["note"], style="dim")
    return 0


def add_train(sub: Any) -> None:
    """Register `train`."""
    p = add_command(
        sub,
        "train",
        help="fit the recommender on all feedback in the store",
        description="Fit the hybrid recommender (ALS + content + community signals, blended "
        "on a validation split) on every reaction in the store and save it for `run`. "
        "A fit on a little more feedback than the served model's keeps its tuning.",
    )
    p.add_argument(
        "--retune",
        action="store_true",
        help="choose the ALS settings and the blend afresh even if little feedback is new",
    )
    p.set_defaults(handler=cmd_train)


# -- eval -------------------------------------------------------------------------------------


def _embeddings(app: App, dataset_papers: list, label: str) -> np.ndarray | None:
    """Embeddings of a dataset's papers, cached on disk by text hash (never embedded twice)."""
    encoder = app.encoder()
    if encoder is None:
        app.err.print("sentence encoder not installed: content signals use TF-IDF only")
        return None
    cache = DiskVectorCache(Path(app.settings.data_dir) / "embeddings" / encoder.name, encoder.dim)
    texts = [paper_text(p) for p in dataset_papers]
    with bars(app.err) as b:
        task = b.progress.add_task(f"{label}: embed", total=len(texts))
        return embed_cached(encoder, texts, cache, progress=lambda n: b.progress.advance(task, n))


def _table(results: list[ModelResult], ks: tuple[int, ...]) -> Table:
    """Recall and nDCG per model and depth, with timings."""
    table = Table(title="recall@k / nDCG@k (averaged over test users)")
    table.add_column("model")
    for k in ks:
        table.add_column(f"R@{k}", justify="right")
    for k in ks:
        table.add_column(f"N@{k}", justify="right")
    table.add_column("fit s", justify="right")
    table.add_column("score s", justify="right")
    for r in results:
        row = [r.name]
        row += [f"{r.metrics[f'recall@{k}']:.4f}" for k in ks]
        row += [f"{r.metrics[f'ndcg@{k}']:.4f}" for k in ks]
        row += [f"{r.fit_seconds:.1f}", f"{r.score_seconds:.1f}"]
        table.add_row(*row)
    return table


def _plot(results: list[ModelResult], ks: tuple[int, ...], path: Path, title: str) -> None:
    """Recall@k curves of every model in one PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise CommandError("--plot needs matplotlib: pip install matplotlib==3.11.2") from None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in results:
        ax.plot(ks, [r.metrics[f"recall@{k}"] for k in ks], marker="o", label=r.name)
    ax.set_xlabel("k")
    ax.set_ylabel("recall@k")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def cmd_eval(args: argparse.Namespace, app: App) -> int:
    """Evaluate models on a dataset directory and print (and optionally save) the results."""
    try:
        ks = parse_ks(args.k)
        models = parse_models(args.models)
        dataset = load_dataset(args.dir)
    except (EvaluationError, DatasetError) as exc:
        raise CommandError(str(exc), code=2) from None
    for note in dataset.notes:
        app.err.print(note)
    users = len({u for u, _, _ in dataset.test})
    app.err.print(
        f"{dataset.name}: {len(dataset.papers)} papers, {len(dataset.train)} training and "
        f"{len(dataset.test)} test interactions, {users} test users"
        + (f", {len(dataset.candidates)} candidates" if dataset.candidates else "")
    )
    embeddings = _embeddings(app, dataset.papers, dataset.name) if _needs_content(models) else None
    results = []
    rankings: dict[str, dict[str, list[str]]] = {}
    for name in models:
        with app.err.status(f"{name}: fitting…") as status:
            rankings[name] = {}
            result = evaluate_model(
                name,
                dataset,
                embeddings,
                ks,
                diversify=args.diversify,
                log=lambda msg, s=status: s.update(msg),
                rankings=rankings[name] if args.rankings else None,
            )
        results.append(result)
        app.err.print(
            f"{name}: done in {result.fit_seconds + result.score_seconds:.1f}s", style="dim"
        )
    app.out.print(_table(results, ks))
    for r in results:
        if "diversity" in r.extra:
            d = r.extra["diversity"]
            app.out.print(
                f"{r.name} top-10 diversity: intra-list similarity {d['ils@10_plain']:.3f} → "
                f"{d['ils@10_mmr']:.3f} with MMR (recall@10 {d['recall@10_plain']:.4f} → "
                f"{d['recall@10_mmr']:.4f})"
            )
    if args.json:
        payload = {"dataset": dataset.name, "models": {r.name: r.as_dict() for r in results}}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(payload, indent=2))
        app.err.print(f"wrote {args.json}")
    if args.plot:
        _plot(results, ks, Path(args.plot), f"recall@k on {dataset.name}")
        app.err.print(f"wrote {args.plot}")
    if args.rankings:
        Path(args.rankings).parent.mkdir(parents=True, exist_ok=True)
        Path(args.rankings).write_text(json.dumps(rankings, indent=1))
        app.err.print(f"wrote {args.rankings}")
    return 0


def _needs_content(models: list[str]) -> bool:
    """Whether any requested model reads sentence embeddings."""
    return any(set(MODELS[m]) & {"content", "imc", "als"} for m in models)


def add_eval(sub: Any) -> None:
    """Register `eval`."""
    p = add_command(
        sub,
        "eval",
        help="offline evaluation: recall@k and nDCG@k of each model on a dataset",
        description="Fit each model on DIR/train.tsv and rank papers for every user with a "
        "test paper through the bot's own ranking path (excluding their training papers; "
        "only DIR/candidates.txt when present). Reports recall@k and nDCG@k per model with "
        "fit and scoring time.",
        epilog="example:\n  paperbot dataset citeulike ../shared/data/citeulike-a data/cvae-10 "
        "--split cvae-10\n  paperbot eval data/cvae-10 --json out/cvae-10.json --plot "
        "out/cvae-10.png",
    )
    p.add_argument("dir", help="dataset directory (papers.jsonl, train.tsv, test.tsv)")
    p.add_argument(
        "--k", default=",".join(map(str, DEFAULT_KS)), help="depths (default %(default)s)"
    )
    p.add_argument(
        "--models",
        default="hybrid,als,content,popularity",
        help=f"comma list from {', '.join(MODELS)} (default %(default)s)",
    )
    p.add_argument(
        "--diversify",
        action="store_true",
        help="rank as a digest does, with its diversity (MMR) on the first positions",
    )
    p.add_argument("--json", metavar="OUT", help="write the results as JSON")
    p.add_argument(
        "--rankings",
        metavar="OUT",
        help="write each measured user's ranked paper ids (top max(k)) per model as JSON",
    )
    p.add_argument("--plot", metavar="OUT.png", help="draw recall@k curves of all models")
    p.set_defaults(handler=cmd_eval)


# -- dataset --------------------------------------------------------------------------------


def cmd_dataset(args: argparse.Namespace, app: App) -> int:
    """Convert a public dataset into the evaluation format."""
    try:
        if args.name == "synthetic":
            out = synthetic.write(synthetic.spec_for(args.src, seed=args.seed), args.out)
        elif args.split is None:
            raise DatasetError("citeulike needs --split: " + ", ".join(SPLITS))
        else:
            out = convert_citeulike(args.src, args.out, args.split)
        dataset = load_dataset(out)
    except (DatasetError, FileNotFoundError, ValueError) as exc:
        raise CommandError(str(exc), code=2) from None
    app.out.print(
        f"wrote {out}: {len(dataset.papers)} papers, {len(dataset.train)} train / "
        f"{len(dataset.test)} test interactions"
        + (f", {len(dataset.candidates)} candidates" if dataset.candidates else "")
    )
    return 0


def add_dataset(sub: Any) -> None:
    """Register `dataset`."""
    p = add_command(
        sub,
        "dataset",
        help="write CiteULike-a or a synthetic dataset in the evaluation format",
        description="Write papers.jsonl (titles, and abstracts where present), train.tsv, "
        "test.tsv and, for cold-start splits, candidates.txt. `synthetic` writes data with a "
        "known structure: `cf` (co-saving carries the signal), `text` (words do), `mixed`.",
        epilog="examples:\n  paperbot dataset citeulike ../shared/data/citeulike-a data/cvae-10 "
        "--split cvae-10\n  paperbot dataset synthetic cf data/synth-cf",
    )
    p.add_argument("name", choices=["citeulike", "synthetic"], help="which dataset")
    p.add_argument("src", help="the citeulike-a folder, or the synthetic kind (cf, text, mixed)")
    p.add_argument("out", help="output directory")
    p.add_argument("--split", choices=SPLITS, help="which published split (citeulike)")
    p.add_argument("--seed", type=int, default=0, help="random seed (synthetic)")
    p.set_defaults(handler=cmd_dataset)
