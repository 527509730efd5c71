"""The ingest pipeline as plain functions: fetch/parse -> ingest -> embed -> index.

Everything arrives as an explicit argument (no environment, no settings object), so the
scheduler, the CLI and the tests drive the same code with whatever configuration they have.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime
from os import PathLike
from typing import Any

import numpy as np

from recommender import ids
from recommender.embeddings import TextEncoder, embed_cached
from recommender.index import SearchIndex
from recommender.ingest import ingest
from recommender.sources import SOURCE_NAMES, SourceError, arxiv_api, arxiv_rss, hf_daily, jsonl
from recommender.sources import parse_body as _parse_body
from recommender.sources.http import DEFAULT_MAX_BYTES
from recommender.store import Store
from recommender.types import IngestReport, ParseResult

__all__ = [
    "Progress",
    "StoreVectorCache",
    "arxiv_search_query",
    "build_index",
    "embed_new",
    "fetch_and_parse",
    "ingest_source",
    "refresh_index",
    "rss_feed_name",
]

log = logging.getLogger(__name__)

# Sources that publish once per announcement day (an empty answer is a day off).
DAILY_SOURCES = frozenset({"hf", "rss"})
NO_ANNOUNCEMENT = "no announcement today"
# Download caps per source; `fetch_and_parse(max_bytes=...)` overrides them.
SOURCE_MAX_BYTES: dict[str, int] = {
    "hf": DEFAULT_MAX_BYTES,
    "rss": DEFAULT_MAX_BYTES,
    "arxiv": DEFAULT_MAX_BYTES,
}

# `progress(stage, done, total)`: stage is "fetch", "ingest" or "embed"; total may be None.
Progress = Callable[[str, int, int | None], None]


def _noop(stage: str, done: int, total: int | None) -> None:
    """Progress sink used when the caller gives none."""


def arxiv_search_query(query: str | None, categories: Sequence[str] = ()) -> str:
    """The arXiv API `search_query` for free text and any of several categories."""
    text = arxiv_api.build_query(query, None) if query and query.strip() else ""
    cats = [c.strip() for c in categories if c and c.strip()]
    if len(cats) == 1:
        cat_part = f"cat:{cats[0]}"
    elif cats:
        cat_part = "(" + " OR ".join(f"cat:{c}" for c in cats) + ")"
    else:
        cat_part = ""
    if text and cat_part:
        return f"{text} AND {cat_part}"
    return text or cat_part or arxiv_api.build_query(None, None)


def rss_feed_name(categories: Sequence[str]) -> str:
    """The feed path for several categories at once (`cs.LG+cs.CL`): one request, not N."""
    cats = [c.strip() for c in categories if c and c.strip()]
    return "+".join(dict.fromkeys(cats)) or "cs.LG"


def _merge(results: Iterable[ParseResult]) -> ParseResult:
    """One ParseResult from several pages."""
    out = ParseResult()
    for result in results:
        out.papers.extend(result.papers)
        out.skipped.extend(result.skipped)
        out.replace_only |= result.replace_only
    return out


def fetch_and_parse(
    kind: str,
    *,
    body: bytes | None = None,
    path: str | PathLike[str] | None = None,
    base_url: str | None = None,
    day: date | None = None,
    query: str | None = None,
    categories: Sequence[str] = (),
    timeout: float = 20.0,
    max_results: int = 200,
    min_interval: float = 3.0,
    attempts: int = 3,
    max_bytes: int | None = None,
    redirect_hosts: Sequence[str] = (),
    now: datetime | None = None,
    progress: Progress = _noop,
) -> tuple[ParseResult, SourceError | None]:
    """Fetch (or read `body`/`path`) and parse one source.

    Returns what was parsed and the error that stopped it, if any: arXiv pages already
    parsed when a later page fails are kept, so one bad page does not waste the others.
    Downloads are refused past `max_bytes` (default: the source's `SOURCE_MAX_BYTES`).
    """
    if kind not in SOURCE_NAMES:
        raise ValueError(f"unknown source {kind!r} (expected one of {', '.join(SOURCE_NAMES)})")
    http: dict[str, Any] = {
        "timeout": timeout,
        "attempts": attempts,
        "max_bytes": max_bytes or SOURCE_MAX_BYTES.get(kind, DEFAULT_MAX_BYTES),
        # Other hosts an https redirect of this source may lead to (same host always may).
        "allow_hosts": tuple(redirect_hosts),
    }
    pages: list[ParseResult] = []
    try:
        if body is None and path is not None:
            body = jsonl.read(path) if kind == "jsonl" else _read_saved(kind, path)
        if body is not None:
            progress("fetch", 1, 1)
            pages.append(_parse_body(kind, body, now=now))
        elif kind == "hf":
            raw = hf_daily.fetch(base_url or hf_daily.DEFAULT_BASE_URL, day, **http)
            progress("fetch", 1, 1)
            pages.append(hf_daily.parse(raw, now=now))
        elif kind == "rss":
            raw = arxiv_rss.fetch(
                base_url or arxiv_rss.DEFAULT_BASE_URL, rss_feed_name(categories), **http
            )
            progress("fetch", 1, 1)
            pages.append(arxiv_rss.parse(raw, now=now))
        elif kind == "arxiv":
            fetched = 0
            cats = [c.strip() for c in categories if c and c.strip()]
            if len(cats) > 1:
                text, category = arxiv_search_query(query, cats), None
            else:
                text, category = query, (cats[0] if cats else None)
            for raw in arxiv_api.fetch_pages(
                base_url or arxiv_api.DEFAULT_BASE_URL,
                query=text,
                category=category,
                max_results=max_results,
                min_interval=min_interval,
                **http,
            ):
                page = arxiv_api.parse(raw, now=now)
                pages.append(page)
                fetched += len(page.papers) + len(page.skipped)
                progress("fetch", min(fetched, max_results), max_results)
        else:
            raise SourceError(kind, "needs a file: give a path to a JSON Lines file")
    except SourceError as exc:
        return _merge(pages), exc
    return _merge(pages), None


def _read_saved(kind: str, path: str | PathLike[str]) -> bytes:
    """A saved response body, or a one-line SourceError naming the source."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise SourceError(kind, f"cannot read {path} ({exc.strerror or exc})") from exc


def ingest_source(
    store: Store,
    kind: str,
    *,
    label: str | None = None,
    progress: Progress | None = None,
    now: datetime | None = None,
    **fetch_kwargs: Any,
) -> IngestReport:
    """Fetch/parse one source and store its papers; the run is logged with `store.log_ingest`.

    A `SourceError` does not raise: it ends up in `report.error` (one line, without the
    source prefix) so a caller running several sources can go on with the next one.
    `fetch_kwargs` are those of `fetch_and_parse` (body, path, base_url, day, query, ...).
    """
    sink = progress or _noop
    started = now or datetime.now(UTC)
    clock = time.perf_counter()
    result, error = fetch_and_parse(kind, now=started, progress=sink, **fetch_kwargs)
    total = len(result.papers)
    done = 0

    def step(count: int) -> None:
        """Forward ingest batches to the caller's progress as a running total."""
        nonlocal done
        done += count
        sink("ingest", done, total)

    report = ingest(store, result, label or kind, now=started, progress=step)
    report.seconds = time.perf_counter() - clock
    if error is not None:
        report.error = error.message
    elif kind in DAILY_SOURCES and not result.papers and not result.skipped:
        # Weekends and holidays: the feed is there and empty, which is not a failure.
        report.note = NO_ANNOUNCEMENT
    store.log_ingest(report)
    return report


class StoreVectorCache:
    """The embedding cache in Redis (`Store.get_vectors/put_vectors`) as a `VectorCache`."""

    def __init__(self, store: Store, model: str, dim: int) -> None:
        """Vectors of `dim` floats from encoder `model`."""
        self.store = store
        self.model = model
        self.dim = dim

    def get_many(self, keys: Sequence[str]) -> list[np.ndarray | None]:
        """Cached vectors or None."""
        return self.store.get_vectors(self.model, keys, self.dim)

    def put_many(self, vectors: dict[str, np.ndarray]) -> None:
        """Store vectors."""
        self.store.put_vectors(self.model, vectors)


def embed_new(
    store: Store,
    encoder: TextEncoder | None,
    paper_ids: Sequence[str],
    *,
    progress: Progress | None = None,
) -> int:
    """Embed the text of these papers once, into the store's cache; returns how many.

    Nothing happens without an encoder (the content models fall back to TF-IDF). Texts
    already cached (same text, same model) are not embedded again.
    """
    if encoder is None or not paper_ids:
        return 0
    papers = [p for p in store.get_papers(list(dict.fromkeys(paper_ids))) if p is not None]
    if not papers:
        return 0
    sink = progress or _noop
    total = len(papers)
    done = 0

    def step(count: int) -> None:
        """Running total for the caller's progress."""
        nonlocal done
        done += count
        sink("embed", done, total)

    embed_cached(
        encoder,
        [p.text for p in papers],
        StoreVectorCache(store, encoder.name, encoder.dim),
        progress=step,
    )
    return total


def build_index(store: Store) -> SearchIndex:
    """A search index of every stored paper (the index lives in process memory)."""
    index = SearchIndex()
    index.add(store.iter_papers())
    return index


def refresh_index(
    index: SearchIndex,
    store: Store,
    *,
    paper_ids: Iterable[str] = (),
    since: float | None = None,
) -> int:
    """Add new or updated papers to `index`: the given ids and/or those first seen since `since`.

    `since` (epoch seconds) lets a process that did not run the ingest itself catch up.
    Returns how many papers were (re-)indexed.
    """
    wanted = list(dict.fromkeys(paper_ids))
    if since is not None:
        wanted = list(dict.fromkeys([*wanted, *store.paper_ids_since(since)]))
    if not wanted:
        return 0
    papers = [p for p in store.get_papers(wanted) if p is not None]
    # A paper first stored from a title-only source is adopted by its arXiv id when that
    # arrives; the retired `title:` entry must go, or search would show the paper twice.
    stale = [tid for p in papers if p.is_arxiv and (tid := ids.title_id(p.title)) in index]
    if stale:
        index.remove(stale)
    return index.add(papers) if papers else 0
