"""Ingest: turn parsed papers into stored ones, deduplicated across sources and versions."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from recommender.ids import title_key
from recommender.store import Store, chunked
from recommender.types import IngestReport, Paper, ParseResult

BATCH = 2000
Progress = Callable[[int], None]


def _collapse(papers: Iterable[Paper]) -> dict[str, Paper]:
    """Merge records that share an id inside one batch (a feed listing a paper twice)."""
    out: dict[str, Paper] = {}
    for paper in papers:
        if paper.id in out:
            out[paper.id] = out[paper.id].merged_with(paper)
        else:
            out[paper.id] = paper
    return out


def _same(first: Paper, second: Paper) -> bool:
    """Whether two records would be stored identically."""
    return first.to_dict() == second.to_dict()


def ingest(
    store: Store,
    result: ParseResult,
    source: str,
    *,
    now: datetime | None = None,
    progress: Progress | None = None,
) -> IngestReport:
    """Store the papers of one parsed feed; return what was new, updated, unchanged, skipped.

    Rules: one record per arXiv id whatever the version (the newer version wins, signals
    are unioned); a paper without an arXiv id is matched to any stored paper with the same
    normalised title; a `replace` announcement only updates a stored paper.
    """
    started = now or datetime.now(UTC)
    clock = time.perf_counter()
    report = IngestReport(source=source, started=started)
    for skipped in result.skipped:
        report.skip(skipped.reason)
    for batch in chunked(_collapse(result.papers).values(), BATCH):
        _ingest_batch(store, batch, result.replace_only, started, report)
        if progress:
            progress(len(batch))
    report.seconds = time.perf_counter() - clock
    return report


def _ingest_batch(
    store: Store,
    batch: list[Paper],
    replace_only: set[str],
    now: datetime,
    report: IngestReport,
) -> None:
    """Dedup one batch against the store and write the changes in one round trip."""
    keys = [title_key(p.title) for p in batch]
    # Title key -> paper id, for what is stored and for what this batch adds.
    titles: dict[str, str] = {
        k: v for k, v in zip(keys, store.lookup_titles(keys), strict=True) if v
    }
    targets = [
        titles[key] if not paper.is_arxiv and key in titles else paper.id
        for paper, key in zip(batch, keys, strict=True)
    ]
    stored = {
        p.id: p for p in store.get_papers(list(dict.fromkeys(targets + list(titles.values())))) if p
    }

    writes: dict[str, Paper] = {}
    new_titles: dict[str, str] = {}
    aliases: dict[str, str] = {}
    new_count = 0
    for paper, key in zip(batch, keys, strict=True):
        hit = titles.get(key)
        target = hit if not paper.is_arxiv and hit else paper.id
        old = writes.get(target) or stored.get(target)
        if old is None and paper.is_arxiv and hit and hit.startswith("title:"):
            retired = writes.pop(hit, None) or stored.get(hit)
            if retired is not None:
                # The arXiv record of a paper first seen from a title-only source: adopt it.
                writes[paper.id] = _adopt(retired, paper)
                aliases[hit] = paper.id
                titles[key] = new_titles[key] = paper.id
                if hit in report.new_ids:
                    report.new_ids[report.new_ids.index(hit)] = paper.id
                else:
                    report.updated += 1
                    report.updated_ids.append(paper.id)
                continue
        if old is None:
            if paper.id in replace_only:
                report.skip("replacement for a paper not stored")
                continue
            fresh = _with_first_seen(paper, now)
            writes[fresh.id] = fresh
            if key not in titles:
                titles[key] = new_titles[key] = fresh.id
            new_count += 1
            report.new += 1
            report.new_ids.append(fresh.id)
            continue
        merged = old.merged_with(paper)
        if _same(merged, old):
            if old.id not in writes:
                report.unchanged += 1
            continue
        writes[old.id] = merged
        if old.id not in report.new_ids and old.id not in report.updated_ids:
            report.updated += 1
            report.updated_ids.append(old.id)
    # A retired id that was written in this same batch must not be written back.
    for old_id in aliases:
        writes.pop(old_id, None)
    if writes:
        store.write_papers(
            list(writes.values()),
            title_keys=new_titles,
            aliases=aliases,
            new_sources={report.source: new_count} if new_count else None,
        )


def _with_first_seen(paper: Paper, now: datetime) -> Paper:
    """The paper with `first_seen` set (the parse time, or now)."""
    if paper.first_seen is None:
        paper.first_seen = now
    return paper


def _adopt(retired: Paper, arxiv: Paper) -> Paper:
    """Merge a title-keyed record into the arXiv record that supersedes it."""
    merged = retired.merged_with(arxiv)
    merged.id = arxiv.id
    # The arXiv metadata is authoritative for text; the older record keeps its first-seen time.
    for name in ("title", "abstract", "authors", "version", "updated", "categories"):
        value = getattr(arxiv, name)
        if value:
            setattr(merged, name, value)
    return merged
