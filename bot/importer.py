"""`/papers import`: a reference library, a list of arXiv ids, or an author's papers.

Entries are matched to papers by arXiv id, DOI or normalised title. Papers with an arXiv
id that are not in the library yet are fetched from the arXiv API (politely: one request
every 3 s) and ingested. The matches are then applied to the person in one step: an
import lands whole or not at all.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bot.digest import card
from bot.ports import Context, Reply
from recommender.ids import normalize_title, title_key
from recommender.ingest import ingest
from recommender.library import Entry, Library, LibraryError, normal_doi, read_ids, read_library
from recommender.model import Explanation, Ranked
from recommender.service import PaperService
from recommender.sources import SourceError, arxiv_api
from recommender.types import Paper, ParseResult

log = logging.getLogger(__name__)

# arXiv asks for one request every 3 s; 100 ids per request keeps the URL short.
ARXIV_INTERVAL = 3.0
IDS_PER_REQUEST = 100
# Papers fetched from arXiv in one import (3 requests): the rest are reported as not found.
MAX_FETCH = 300
AUTHOR_RESULTS = 50
AUTHOR_SHOWN = 5
CONFIRM_SECONDS = 15 * 60
SAVE_EXCLUSIVE = {"save": ("dislike",), "like": ("dislike",)}


class ArxivLookup:
    """Papers by id and by author from the arXiv API, at most one request per interval."""

    _lock = threading.Lock()
    _last = 0.0

    def __init__(
        self,
        base_url: str = arxiv_api.DEFAULT_BASE_URL,
        *,
        interval: float = ARXIV_INTERVAL,
        timeout: float = 20.0,
    ) -> None:
        self.base_url = base_url
        self.interval = interval
        self.timeout = timeout

    def _fetch(self, **query: object) -> list[Paper]:
        """One API request, spaced from the previous one of this process."""
        with ArxivLookup._lock:
            wait = ArxivLookup._last + self.interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                body = arxiv_api.fetch(
                    self.base_url, timeout=self.timeout, backoff=self.interval, **query
                )
            finally:
                ArxivLookup._last = time.monotonic()
        return arxiv_api.parse(body).papers

    def by_ids(self, ids: Sequence[str]) -> list[Paper]:
        """The papers of these arXiv ids that exist (unknown ids are simply absent)."""
        out: list[Paper] = []
        for start in range(0, len(ids), IDS_PER_REQUEST):
            chunk = list(ids[start : start + IDS_PER_REQUEST])
            out += self._fetch(id_list=chunk, max_results=len(chunk))
        wanted = set(ids)
        return [p for p in out if p.id in wanted]

    def by_author(self, name: str, limit: int = AUTHOR_RESULTS) -> list[Paper]:
        """An author's papers, newest first (arXiv's author search)."""
        quoted = name.replace('"', " ").strip()
        papers = self._fetch(search_query=f'au:"{quoted}"', max_results=limit)
        # arXiv's author search also matches partial names: keep papers that list the name.
        key = _name_key(quoted)
        return [p for p in papers if any(_name_key(a) == key for a in p.authors)] or papers


@dataclass(slots=True)
class Matches:
    """How a library's entries map to papers."""

    found: dict[str, str] = field(default_factory=dict)  # paper id -> how (id, doi, title)
    fetched: list[Paper] = field(default_factory=list)
    missing: list[Entry] = field(default_factory=list)
    over_limit: int = 0


class Importer:
    """Matches imported references to papers and applies them to a person at once."""

    def __init__(self, service: PaperService, lookup: ArxivLookup | None = None) -> None:
        self.service = service
        self.store = service.store
        self.lookup = lookup or ArxivLookup()

    # -- entry points -----------------------------------------------------------------

    def file(self, ctx: Context, name: str, data: bytes) -> Reply:
        """A BibTeX or RIS file: every match becomes a 🔖 save."""
        try:
            library = read_library(data)
        except LibraryError as exc:
            return Reply(f"Nothing imported from {_shown(name)}: {exc}")
        try:
            matches = self.match(library.entries)
        except SourceError as exc:
            return Reply(f"Nothing imported from {_shown(name)}: arXiv did not answer ({exc}).")
        return self._apply(ctx, matches, "save", f"{library.format} file {_shown(name)}", library)

    def ids(self, ctx: Context, text: str) -> Reply:
        """arXiv ids or URLs: each becomes a 🔖 save."""
        try:
            ids, bad = read_ids(text)
        except LibraryError as exc:
            return Reply(f"Nothing imported: {exc}")
        if bad:
            shown = ", ".join(f"“{b}”" for b in bad[:3])
            return Reply(
                f"Nothing imported: {shown} {'is' if len(bad) == 1 else 'are'} not an arXiv id "
                "or URL. Example: `/papers import 2401.12345 https://arxiv.org/abs/1706.03762`"
            )
        if not ids:
            return Reply(IMPORT_HELP)
        try:
            matches = self.match([Entry(arxiv_id=i) for i in ids])
        except SourceError as exc:
            return Reply(f"Nothing imported: arXiv did not answer ({exc}).")
        return self._apply(ctx, matches, "save", "your list", None)

    def author(self, ctx: Context, name: str) -> Reply:
        """An author's arXiv papers, shown for confirmation before they become 👍."""
        name = " ".join(name.strip().strip("\"'“”").split())[:100]
        if name.lower() == "confirm":
            return self.confirm_author(ctx)
        if name.lower() == "cancel":
            gone = self.store.delete_user_key(ctx.uid, "import")
            return Reply("Author import cancelled." if gone else "No author import was waiting.")
        if len(name) < 3:
            return Reply('Give the author\'s full name: `/papers import author "Ada Lovelace"`')
        try:
            papers = self.lookup.by_author(name)
        except SourceError as exc:
            return Reply(f"Could not ask arXiv about “{name}” right now ({exc}).")
        if not papers:
            return Reply(f"arXiv has no papers by “{name}”. Check the spelling (full name).")
        self.store.put_user_json(
            ctx.uid,
            "import",
            {"author": name, "papers": [p.to_dict() for p in papers]},
            CONFIRM_SECONDS,
        )
        shown = [Ranked(p, 0.0, Explanation(reason=f"By {name}"), 0) for p in papers[:AUTHOR_SHOWN]]
        more = len(papers) - len(shown)
        return Reply(
            f"arXiv lists {len(papers)} paper{'s' if len(papers) != 1 else ''} by “{name}”"
            + (f"; the newest {len(shown)}:" if more else ":"),
            cards=[card(r, i + 1) for i, r in enumerate(shown)],
            footer=(
                f"Is that you (or the author you follow)? `/papers import author confirm` "
                f"turns all {len(papers)} into 👍 likes; `/papers import author cancel` "
                "drops them. This offer stays open for 15 minutes."
            ),
        )

    def confirm_author(self, ctx: Context) -> Reply:
        """Apply a pending author import as likes."""
        pending = self.store.get_user_json(ctx.uid, "import")
        if not pending:
            return Reply(
                "No author import is waiting (offers last 15 minutes). Start with "
                '`/papers import author "Full Name"`.'
            )
        papers = [Paper.from_dict(p) for p in pending.get("papers", [])]
        known = {p.id for p in self.store.get_papers([p.id for p in papers]) if p}
        matches = Matches(
            found={p.id: "id" for p in papers if p.id in known},
            fetched=[p for p in papers if p.id not in known],
        )
        reply = self._apply(ctx, matches, "like", f"“{pending.get('author', '')}”", None)
        self.store.delete_user_key(ctx.uid, "import")
        return reply

    # -- matching ------------------------------------------------------------------------

    def match(self, entries: Sequence[Entry]) -> Matches:
        """Find each entry's paper: by arXiv id (fetched when new), then DOI, then title."""
        out = Matches()
        by_arxiv = [e for e in entries if e.arxiv_id]
        stored = self.store.get_papers([e.arxiv_id for e in by_arxiv])  # type: ignore[misc]
        unresolved: list[Entry] = []
        to_fetch: dict[str, Entry] = {}
        for entry, paper in zip(by_arxiv, stored, strict=True):
            if paper is not None:
                out.found.setdefault(paper.id, "id")
            else:
                to_fetch.setdefault(entry.arxiv_id or "", entry)
        rest = [e for e in entries if not e.arxiv_id]
        with_doi = [e for e in rest if e.doi]
        if with_doi:
            dois = self._doi_index()
            for entry in with_doi:
                pid = dois.get(entry.doi or "")
                if pid:
                    out.found.setdefault(pid, "doi")
                else:
                    unresolved.append(entry)
        unresolved += [e for e in rest if not e.doi]
        titled = [e for e in unresolved if normalize_title(e.title)]
        hits = self.store.lookup_titles([title_key(e.title) for e in titled])
        for entry, pid in zip(titled, hits, strict=True):
            if pid:
                out.found.setdefault(pid, "title")
            else:
                out.missing.append(entry)
        out.missing += [e for e in unresolved if not normalize_title(e.title)]
        if to_fetch:
            ids = list(to_fetch)
            asked, skipped = ids[:MAX_FETCH], ids[MAX_FETCH:]
            fetched = self.lookup.by_ids(asked)
            got = {p.id for p in fetched}
            out.fetched = [p for p in fetched if p.id not in out.found]
            out.missing += [to_fetch[i] for i in asked if i not in got]
            out.missing += [to_fetch[i] for i in skipped]
            out.over_limit = len(skipped)
        # Not-found entries are listed in the file's own order.
        order = {id(e): i for i, e in enumerate(entries)}
        out.missing.sort(key=lambda e: order.get(id(e), 0))
        return out

    def _doi_index(self) -> dict[str, str]:
        """DOI -> paper id over the library (built when an import has DOIs to match)."""
        out: dict[str, str] = {}
        for paper in self.store.iter_papers():
            doi = normal_doi(paper.doi)
            if doi:
                out.setdefault(doi, paper.id)
        return out

    # -- applying ------------------------------------------------------------------------

    def _apply(
        self, ctx: Context, matches: Matches, kind: str, what: str, library: Library | None
    ) -> Reply:
        """Ingest fetched papers, then record every match for the person in one step."""
        if matches.fetched:
            report = ingest(self.store, ParseResult(papers=matches.fetched), "arxiv")
            log.info("import: %d papers added from arXiv", report.new)
            self.service.embed_papers(matches.fetched)
            self.service.refresh()
        # An id the ingest merged into another paper resolves to that paper.
        ids = self.store.resolve_ids(list(matches.found) + [p.id for p in matches.fetched])
        kinds = dict.fromkeys(ids, kind)
        if kinds:
            self.store.apply_feedback_many(ctx.uid, kinds, exclusive=SAVE_EXCLUSIVE)
        verb = "🔖 saves" if kind == "save" else "👍 likes"
        lines = []
        if kinds:
            lines.append(
                f"Imported {len(kinds)} paper{'s' if len(kinds) != 1 else ''} from {what} "
                f"as {verb}: {len(matches.found)} matched papers already in the library, "
                f"{len(matches.fetched)} added from arXiv."
            )
        else:
            lines.append(f"Nothing imported from {what}: no entry matched a paper.")
        if matches.missing:
            names = "; ".join(_cut(e.label, 60) for e in matches.missing[:3])
            more = len(matches.missing) - 3
            lines.append(
                f"{len(matches.missing)} not found: {names}"
                + (f" and {more} more." if more > 0 else ".")
            )
            if matches.over_limit:
                lines.append(
                    f"({matches.over_limit} of them were not fetched: an import adds at most "
                    f"{MAX_FETCH} papers from arXiv at once. Import the file again to add more.)"
                )
        if library is not None and library.malformed:
            bad = library.malformed
            lines.append(f"{bad} entr{'ies' if bad != 1 else 'y'} could not be read.")
        if kinds:
            lines.append("Your next digest already takes them into account.")
        return Reply("\n".join(lines))


IMPORT_HELP = (
    "Bring your library: upload a BibTeX or RIS export (Zotero, Mendeley, …), paste arXiv "
    "ids or URLs (`/papers import 2401.12345 1706.03762`), or take an author's papers "
    '(`/papers import author "Full Name"`).'
)


def _name_key(name: str) -> str:
    """An author name for loose comparison: accents, case and punctuation ignored."""
    return normalize_title(name)


def _cut(text: str, limit: int) -> str:
    """Text cut to `limit` characters with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _shown(name: str) -> str:
    """A file name as shown in a reply."""
    return f"“{_cut(name or 'the file', 60)}”"


Fetcher = Callable[[Sequence[str]], list[Paper]]

__all__ = ["IMPORT_HELP", "ArxivLookup", "Importer", "Matches"]
