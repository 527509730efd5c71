"""Ingest: turn parsed papers into stored ones, deduplicated across sources and versions."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from recommender.ids import title_key
from recommender.store import Store, chunked
from recommender.types import IngestReport, Paper, ParseResult

BATCH = 2000
Progress = Callable[[int], None]
REPLACEMENT_UNKNOWN = "replacement for a paper not stored"

_FIELDS = tuple(f.name for f in dataclasses.fields(Paper))
# What an arXiv record replaces when it supersedes a record that carries no version.
_TEXT_FIELDS = ("title", "abstract", "authors", "version", "updated", "primary_category")


@dataclass(slots=True)
class _Seen:
    """Ids already counted in this run: counts are of papers, not of records.

    Two records can reach one paper (its arXiv record and a title-only copy, maybe in
    different batches); the paper is counted once, as new, updated or unchanged.
    """

    report: IngestReport
    new: set[str] = field(default_factory=set)
    updated: set[str] = field(default_factory=set)
    unchanged: set[str] = field(default_factory=set)

    def count_new(self, paper_id: str) -> None:
        """A paper this run stored for the first time."""
        self.new.add(paper_id)
        self.report.new += 1
        self.report.new_ids.append(paper_id)

    def count_updated(self, paper_id: str) -> None:
        """A stored paper this run changed (counted once, even if changed twice)."""
        if paper_id in self.new or paper_id in self.updated:
            return
        if paper_id in self.unchanged:
            self.unchanged.discard(paper_id)
            self.report.unchanged -= 1
        self.updated.add(paper_id)
        self.report.updated += 1
        self.report.updated_ids.append(paper_id)

    def count_adopted(self, retired: str, paper_id: str) -> None:
        """A paper known by its title id (maybe counted already) now lives under `paper_id`."""
        for ids, listed in (
            (self.new, self.report.new_ids),
            (self.updated, self.report.updated_ids),
        ):
            if retired in ids:
                ids.discard(retired)
                ids.add(paper_id)
                listed[listed.index(retired)] = paper_id
                return
        if retired in self.unchanged:
            self.unchanged.discard(retired)
            self.report.unchanged -= 1
        self.count_updated(paper_id)

    def count_unchanged(self, paper_id: str) -> None:
        """A stored paper a record of this run left as it was."""
        if paper_id in self.new or paper_id in self.updated or paper_id in self.unchanged:
            return
        self.unchanged.add(paper_id)
        self.report.unchanged += 1


def _collapse(papers: Iterable[Paper]) -> dict[str, Paper]:
    """Merge records that share an id inside one batch (a feed listing a paper twice)."""
    out: dict[str, Paper] = {}
    for paper in papers:
        if paper.id in out:
            out[paper.id] = _merge(out[paper.id], paper)
        else:
            out[paper.id] = paper
    return out


def _merge(stored: Paper, incoming: Paper) -> Paper:
    """`stored.merged_with(incoming)`, where a versioned record beats one with no version.

    HF and JSONL records carry no version; a record from arXiv itself (API or RSS) does,
    and it is the authority on title, abstract and authors. Once it is stored, a record
    without a version only fills gaps, so re-ingesting either source changes nothing.
    """
    merged = stored.merged_with(incoming)
    if stored.version is None and incoming.version is not None:
        for name in _TEXT_FIELDS:
            value = getattr(incoming, name)
            if value:
                setattr(merged, name, value)
    return merged


def _same(first: Paper, second: Paper) -> bool:
    """Whether two records would be stored identically."""
    for name in _FIELDS:
        a, b = getattr(first, name), getattr(second, name)
        # Empty values (None, "", [], 0) are all dropped when stored, so they are alike.
        if a != b and (a or b):
            return False
    return True


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
    seen = _Seen(report)
    for batch in chunked(_collapse(result.papers).values(), BATCH):
        _ingest_batch(store, batch, result.replace_only, started, report, seen)
        if progress:
            progress(len(batch))
    report.seconds = time.perf_counter() - clock
    return report


def _fetch(store: Store, ids: list[str]) -> dict[str, Paper]:
    """Stored papers by id: under their own id and under the id asked for (maybe an alias)."""
    found: dict[str, Paper] = {}
    for wanted, paper in zip(ids, store.get_papers(ids), strict=True):
        if paper is not None:
            found[paper.id] = found[wanted] = paper
    return found


def _ingest_batch(
    store: Store,
    batch: list[Paper],
    replace_only: set[str],
    now: datetime,
    report: IngestReport,
    seen: _Seen,
) -> None:
    """Dedup one batch against the store and write the changes in one transaction."""
    stored = _fetch(store, [p.id for p in batch])
    # Titles matter only for papers not stored under their own id: a title-only record of
    # a paper another source stored first, or the arXiv record of a title-only paper.
    # Skipping the rest keeps a re-ingest (most papers already stored) cheap.
    keys = {p.id: title_key(p.title) for p in batch if p.id not in stored}
    titles: dict[str, str] = {}  # title key -> paper id, stored or added by this batch
    if keys:
        unique = list(dict.fromkeys(keys.values()))
        titles = {k: v for k, v in zip(unique, store.lookup_titles(unique), strict=True) if v}
        missing = [i for i in dict.fromkeys(titles.values()) if i not in stored]
        if missing:
            stored.update(_fetch(store, missing))

    writes: dict[str, Paper] = {}
    new_titles: dict[str, str] = {}
    aliases: dict[str, str] = {}
    new_count = 0
    for paper in batch:
        key = keys.get(paper.id)
        hit = titles.get(key) if key else None
        target = hit if hit and not paper.is_arxiv else paper.id
        found = stored.get(target)
        # A paper changed earlier in this batch is merged into its changed form.
        old = writes.get(target) or (writes.get(found.id, found) if found else None)
        if old is None and paper.is_arxiv and key and hit and hit.startswith("title:"):
            retired = writes.get(hit) or stored.get(hit)
            # A title key that already leads to another arXiv id is a different paper.
            if retired is not None and retired.id == hit:
                writes.pop(hit, None)
                # The arXiv record of a paper first seen from a title-only source: adopt it.
                writes[paper.id] = _adopt(retired, paper)
                aliases[hit] = paper.id
                titles[key] = new_titles[key] = paper.id
                seen.count_adopted(hit, paper.id)
                continue
        if old is None:
            if paper.id in replace_only:
                report.skip(REPLACEMENT_UNKNOWN)
                continue
            fresh = _with_first_seen(paper, now)
            writes[fresh.id] = fresh
            if key is not None and key not in titles:
                titles[key] = new_titles[key] = fresh.id
            new_count += 1
            seen.count_new(fresh.id)
            continue
        merged = _merge(old, paper)
        if _same(merged, old):
            seen.count_unchanged(old.id)
            continue
        writes[old.id] = merged
        seen.count_updated(old.id)
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
    # The arXiv metadata is authoritative for text; the older record keeps its first-seen
    # time, and categories stay the union of both.
    for name in _TEXT_FIELDS:
        value = getattr(arxiv, name)
        if value:
            setattr(merged, name, value)
    return merged
