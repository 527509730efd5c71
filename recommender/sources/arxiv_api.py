"""The arXiv API (`export.arxiv.org/api/query`): Atom pages, fetched politely in order."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any
from xml.etree.ElementTree import Element

from recommender import ids
from recommender.sources import _common as c
from recommender.sources.http import SourceError
from recommender.sources.http import fetch as http_fetch
from recommender.types import Paper, ParseResult, Skipped

SOURCE = "arxiv"
DEFAULT_BASE_URL = "https://export.arxiv.org/api/query"
MAX_PAGE_SIZE = 2000  # the API refuses larger pages
DEFAULT_CATEGORY = "cs.LG"

_ERROR_ID = "arxiv.org/api/errors"
_GITHUB = re.compile(r"https?://(?:www\.)?github\.com/[\w.-]+/[\w.-]+", re.IGNORECASE)
_PROJECT = re.compile(r"project\s*(?:page|website)\s*:?\s*(https?://\S+)", re.IGNORECASE)
_DOI_URL = re.compile(r"^https?://(?:dx\.)?doi\.org/", re.IGNORECASE)
_FIELD_QUERY = re.compile(r"\b(?:ti|au|abs|co|jr|cat|rn|id|all):|\b(?:AND|OR|ANDNOT)\b")


def build_query(query: str | None = None, category: str | None = None) -> str:
    """The `search_query` for free text and/or a category, e.g. `all:"q" AND cat:cs.LG`."""
    parts = []
    text = " ".join((query or "").split())
    if text:
        # Text already written in the API's field syntax is passed through as-is.
        if _FIELD_QUERY.search(text):
            parts.append(f"({text})")
        else:
            parts.append('all:"{}"'.format(text.replace('"', "")))
    if category:
        parts.append(f"cat:{category.strip()}")
    return " AND ".join(parts) if parts else f"cat:{DEFAULT_CATEGORY}"


def fetch(
    base_url: str = DEFAULT_BASE_URL,
    *,
    search_query: str | None = None,
    id_list: list[str] | None = None,
    start: int = 0,
    max_results: int = 100,
    **http_kwargs: Any,
) -> bytes:
    """One API page; an HTTP 400 is reported with the API's own error text."""
    params: dict[str, Any] = {
        "search_query": search_query or "",
        "start": start,
        "max_results": min(max_results, MAX_PAGE_SIZE),
        "sortBy": "submittedDate",
        "sortOrder": "descending",
    }
    if id_list:
        params["id_list"] = ",".join(id_list)
    try:
        http_kwargs.setdefault("check", c.looks_like_xml)
        return http_fetch(base_url, params=params, source=SOURCE, **http_kwargs)
    except SourceError as exc:
        explained = error_message(exc.body) if exc.status == 400 and exc.body else None
        if explained:
            raise SourceError(
                SOURCE, f"{exc.message}: {explained}", status=exc.status, body=exc.body
            ) from exc
        raise


def fetch_pages(
    base_url: str = DEFAULT_BASE_URL,
    *,
    query: str | None = None,
    category: str | None = None,
    max_results: int = 200,
    page_size: int = 100,
    min_interval: float = 3.0,
    sleep: Callable[[float], Any] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    **http_kwargs: Any,
) -> Iterator[bytes]:
    """Raw pages, newest first, until `max_results`, an empty page or the end of the results.

    At most one request every `min_interval` seconds, as the API's terms ask; retries
    back off at least as long.
    """
    page_size = max(1, min(page_size, MAX_PAGE_SIZE))
    http_kwargs.setdefault("backoff", min_interval)
    search_query = build_query(query, category)
    start = 0
    last_request: float | None = None
    while start < max_results:
        if last_request is not None:
            wait = min_interval - (clock() - last_request)
            if wait > 0:
                sleep(wait)
        try:
            body = fetch(
                base_url,
                search_query=search_query,
                start=start,
                max_results=min(page_size, max_results - start),
                sleep=sleep,
                **http_kwargs,
            )
        finally:
            last_request = clock()
        yield body
        entries, total = page_info(body)
        if entries == 0:
            return
        start += entries
        if total is not None and start >= total:
            return


def page_info(body: bytes) -> tuple[int, int | None]:
    """`(entries on this page, opensearch:totalResults)` of one API page."""
    root = _feed(body)
    total = c.child_text(root, f"{c.OPENSEARCH}totalResults")
    try:
        total_results = int(total.strip()) if total else None
    except ValueError:
        total_results = None
    return len(root.findall(f"{c.ATOM}entry")), total_results


def total_results(body: bytes) -> int | None:
    """`opensearch:totalResults` of one API page, when present."""
    return page_info(body)[1]


def error_message(body: bytes) -> str | None:
    """The text of an arXiv error feed (`<id>…/api/errors#…</id>`), or None."""
    try:
        root = _feed(body)
    except SourceError:
        return None
    for entry in root.findall(f"{c.ATOM}entry"):
        if _ERROR_ID in (c.child_text(entry, f"{c.ATOM}id") or ""):
            return c.clean(c.child_text(entry, f"{c.ATOM}summary")) or "unknown error"
    return None


def parse(body: bytes, *, now: datetime | None = None) -> ParseResult:
    """Papers from one API page; malformed entries (and API error entries) are skipped."""
    root = _feed(body)
    seen = c.now_utc(now)
    result = ParseResult()
    for number, entry in enumerate(root.findall(f"{c.ATOM}entry"), start=1):
        try:
            result.papers.append(_paper(entry, seen))
        except c.Skip as skip:
            result.skipped.append(Skipped(skip.reason, f"entry {number}"))
    return result


def _feed(body: bytes) -> Element:
    """The Atom root of an API response, or SourceError."""
    root = c.load_xml(body, SOURCE)
    if root.tag != f"{c.ATOM}feed":
        raise SourceError(SOURCE, f"response is not an Atom feed (root <{c.local_name(root.tag)}>)")
    return root


def _paper(entry: Element, seen: datetime) -> Paper:
    """One Atom entry -> Paper, or Skip."""
    raw_id = (c.child_text(entry, f"{c.ATOM}id") or "").strip()
    if _ERROR_ID in raw_id:
        message = c.clean(c.child_text(entry, f"{c.ATOM}summary")) or "unknown error"
        raise c.Skip(f"{c.API_ERROR}: {message[:200]}")
    try:
        arxiv_id, version = ids.parse_arxiv_id(raw_id)
    except ids.InvalidId as exc:
        raise c.Skip(c.BAD_ID) from exc
    title = c.clean(c.child_text(entry, f"{c.ATOM}title"))
    if not title:
        raise c.Skip(c.MISSING_TITLE)
    abstract = c.clean(c.child_text(entry, f"{c.ATOM}summary"))
    author_elements = entry.findall(f"{c.ATOM}author")
    if len(author_elements) > c.MAX_AUTHORS:
        raise c.Skip(c.TOO_LONG)
    authors = [
        name
        for name in (c.clean_author(c.child_text(a, f"{c.ATOM}name")) for a in author_elements)
        if name
    ]
    c.check_limits(title, abstract, authors)
    published = c.parse_date(c.child_text(entry, f"{c.ATOM}published"))
    updated = c.parse_date(c.child_text(entry, f"{c.ATOM}updated"))
    categories = list(
        dict.fromkeys(
            term
            for term in (c.clean(cat.get("term")) for cat in entry.findall(f"{c.ATOM}category"))
            if term
        )
    )
    primary = entry.find(f"{c.ARXIV}primary_category")
    primary_category = c.clean(primary.get("term")) if primary is not None else ""

    abs_link = pdf_link = doi = None
    for link in entry.findall(f"{c.ATOM}link"):
        href = c.clean_url(link.get("href"))
        if not href:
            continue
        if link.get("title") == "pdf":
            pdf_link = pdf_link or href
        elif link.get("title") == "doi":
            doi = doi or _DOI_URL.sub("", href)
        elif link.get("rel", "alternate") == "alternate":
            abs_link = abs_link or href
    doi = c.clean(c.child_text(entry, f"{c.ARXIV}doi")) or doi

    comment = c.clean(c.child_text(entry, f"{c.ARXIV}comment"))
    code = _GITHUB.search(comment)
    project = _PROJECT.search(comment)
    return Paper(
        id=arxiv_id,
        title=title,
        abstract=abstract,
        authors=authors,
        version=version,
        categories=categories,
        primary_category=primary_category or None,
        published=published,
        updated=updated,
        abs_url=abs_link or ids.abs_url(arxiv_id),
        pdf_url=pdf_link or ids.pdf_url(arxiv_id),
        code_url=_code_url(code.group(0)) if code else None,
        project_url=c.clean_url(project.group(1).rstrip(".,;)")) if project else None,
        doi=doi or None,
        sources=[SOURCE],
        first_seen=seen,
    )


def _code_url(url: str) -> str | None:
    """A GitHub repository URL from a comment, without trailing punctuation or `.git`."""
    url = url.rstrip(".")
    return c.clean_url(url.removesuffix(".git"))
