"""Hugging Face Daily Papers: `GET /api/daily_papers?date=YYYY-MM-DD`, a JSON list."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from recommender import ids
from recommender.sources import _common as c
from recommender.sources.http import SourceError
from recommender.sources.http import fetch as http_fetch
from recommender.types import Paper, ParseResult, Skipped

SOURCE = "hf"
DEFAULT_BASE_URL = "https://huggingface.co"


def fetch(base_url: str = DEFAULT_BASE_URL, day: date | None = None, **http_kwargs: Any) -> bytes:
    """The raw daily-papers JSON for `day` (the latest day when None)."""
    params = {"date": day.isoformat()} if day else None
    url = f"{base_url.rstrip('/')}/api/daily_papers"
    http_kwargs.setdefault("check", c.looks_like_json)
    return http_fetch(url, params=params, source=SOURCE, **http_kwargs)


def parse(body: bytes, *, now: datetime | None = None) -> ParseResult:
    """Papers from a daily-papers response; malformed entries are skipped, not fatal."""
    data = c.load_json(body, SOURCE)
    if isinstance(data, dict) and "error" in data:
        raise SourceError(SOURCE, f"API error: {c.clean(str(data['error']))[:200]}")
    if not isinstance(data, list):
        raise SourceError(SOURCE, f"expected a JSON list of papers, got {type(data).__name__}")
    seen = c.now_utc(now)
    result = ParseResult()
    for number, entry in enumerate(data, start=1):
        try:
            result.papers.append(_paper(entry, seen))
        except c.Skip as skip:
            result.skipped.append(Skipped(skip.reason, f"entry {number}"))
    return result


def _paper(entry: Any, seen: datetime) -> Paper:
    """One daily-papers entry -> Paper, or Skip."""
    if not isinstance(entry, dict):
        raise c.Skip(c.NOT_OBJECT)
    # Entries wrap the paper (`{"paper": {...}, "numComments": ...}`); other HF endpoints
    # return the paper object itself, so accept both.
    paper = entry.get("paper", entry)
    if not isinstance(paper, dict):
        raise c.Skip(c.NOT_OBJECT)
    raw_id = paper.get("id")
    if not isinstance(raw_id, str):
        raise c.Skip(c.BAD_ID)
    try:
        arxiv_id, version = ids.parse_arxiv_id(raw_id)
    except ids.InvalidId as exc:
        raise c.Skip(c.BAD_ID) from exc
    title = c.clean(paper.get("title") or entry.get("title"))
    if not title:
        raise c.Skip(c.MISSING_TITLE)
    abstract = c.clean(paper.get("summary") or entry.get("summary"))
    raw_authors = paper.get("authors") or []
    if not isinstance(raw_authors, list):
        raise c.Skip(c.MALFORMED)
    if len(raw_authors) > c.MAX_AUTHORS:
        raise c.Skip(c.TOO_LONG)
    authors = [
        name
        for name in (
            c.clean_author(a.get("name") if isinstance(a, dict) else a) for a in raw_authors
        )
        if name
    ]
    summary = c.clean(paper.get("ai_summary"))
    c.check_limits(title, abstract, authors)
    if len(summary) > c.MAX_ABSTRACT:
        raise c.Skip(c.TOO_LONG)
    published = c.parse_date(paper.get("publishedAt") or entry.get("publishedAt"))
    comments = entry.get("numComments", paper.get("numComments"))
    return Paper(
        id=arxiv_id,
        title=title,
        abstract=abstract,
        authors=authors,
        version=version,
        published=published,
        abs_url=ids.abs_url(arxiv_id),
        pdf_url=ids.pdf_url(arxiv_id),
        code_url=c.clean_url(paper.get("githubRepo")),
        project_url=c.clean_url(paper.get("projectPage")),
        upvotes=c.count(paper.get("upvotes")),
        github_stars=c.count(paper.get("githubStars")),
        comments=c.count(comments),
        keywords=c.clean_list(paper.get("ai_keywords")),
        summary=summary,
        sources=[SOURCE],
        first_seen=seen,
    )
