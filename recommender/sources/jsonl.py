"""A local JSON Lines file: one paper object per line (also reads `Paper.to_dict` output)."""

from __future__ import annotations

import json
import re
from datetime import datetime
from os import PathLike
from pathlib import Path
from typing import Any

from recommender import ids
from recommender.sources import _common as c
from recommender.sources.http import SourceError
from recommender.types import Paper, ParseResult, Skipped

SOURCE = "jsonl"

_TITLE_ID = re.compile(r"^title:[0-9a-f]{16}$")


def read(path: str | PathLike[str]) -> bytes:
    """The file's bytes, or SourceError with one line saying why it cannot be read."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise SourceError(SOURCE, f"cannot read {path} ({exc.strerror or exc})") from exc


def parse(body: bytes, *, now: datetime | None = None) -> ParseResult:
    """Papers from JSON Lines; a bad line is skipped, a body with no JSON at all raises."""
    seen = c.now_utc(now)
    result = ParseResult()
    lines = 0
    not_json = 0
    for number, raw in enumerate(body.split(b"\n"), start=1):
        if number == 1:
            raw = raw.removeprefix(b"\xef\xbb\xbf")
        if not raw.strip():
            continue
        lines += 1
        where = f"line {number}"
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            result.skipped.append(Skipped(c.INVALID_UTF8, where))
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError:
            not_json += 1
            result.skipped.append(Skipped(c.NOT_JSON, where))
            continue
        try:
            result.papers.append(_paper(record, seen))
        except c.Skip as skip:
            result.skipped.append(Skipped(skip.reason, where))
    if lines and not_json == lines:
        raise SourceError(SOURCE, f"not JSON Lines (no line of {len(body)} bytes is JSON)")
    return result


def _arxiv_id(record: dict[str, Any]) -> tuple[str | None, int | None]:
    """The arXiv id and version from `arxiv_id`, `id` or an arXiv `url`, or Skip."""
    for key in ("arxiv_id", "id"):
        raw = record.get(key)
        if raw is None or raw == "":
            continue
        if not isinstance(raw, str):
            # A JSON number would have lost trailing zeros (2401.10 vs 2401.1).
            raise c.Skip(c.BAD_ID)
        if key == "id" and _TITLE_ID.match(raw):
            return raw, None
        try:
            return ids.parse_arxiv_id(raw)
        except ids.InvalidId as exc:
            raise c.Skip(c.BAD_ID) from exc
    url = record.get("url")
    if isinstance(url, str) and ids.is_arxiv_id(url.strip()):
        return ids.parse_arxiv_id(url.strip())
    return None, None


def _paper(record: Any, seen: datetime) -> Paper:
    """One JSON object -> Paper, or Skip."""
    if not isinstance(record, dict):
        raise c.Skip(c.NOT_OBJECT)
    title = c.clean(record.get("title"))
    if not title:
        raise c.Skip(c.MISSING_TITLE)
    paper_id, version = _arxiv_id(record)
    abstract = c.clean(record.get("abstract"))
    raw_authors = record.get("authors")
    if isinstance(raw_authors, list) and len(raw_authors) > c.MAX_AUTHORS:
        raise c.Skip(c.TOO_LONG)
    authors = [c.clean_author(a) for a in c.clean_list(raw_authors, dedupe=False)]
    summary = c.clean(record.get("summary"))
    c.check_limits(title, abstract, authors)
    if len(summary) > c.MAX_ABSTRACT:
        raise c.Skip(c.TOO_LONG)
    if version is None and isinstance(record.get("version"), int):
        version = c.count(record["version"]) or None

    categories = record.get("categories")
    if isinstance(categories, str):
        categories = categories.replace(",", " ").split()
    is_arxiv = paper_id is not None and not paper_id.startswith("title:")
    url = c.clean_url(record.get("url"))
    abs_link = c.clean_url(record.get("abs_url"))
    if not abs_link:
        abs_link = ids.abs_url(paper_id) if is_arxiv and paper_id else url
    pdf_link = c.clean_url(record.get("pdf_url"))
    if not pdf_link and is_arxiv and paper_id:
        pdf_link = ids.pdf_url(paper_id)
    return Paper(
        id=paper_id or ids.title_id(title),
        title=title,
        abstract=abstract,
        authors=authors,
        version=version,
        categories=c.clean_list(categories),
        primary_category=c.clean(record.get("primary_category")) or None,
        published=c.parse_date(record.get("published")),
        updated=c.parse_date(record.get("updated")),
        abs_url=abs_link,
        pdf_url=pdf_link,
        code_url=c.clean_url(record.get("code_url")),
        project_url=c.clean_url(record.get("project_url")),
        doi=c.clean(record.get("doi")) or None,
        upvotes=c.count(record.get("upvotes")),
        github_stars=c.count(record.get("github_stars")),
        comments=c.count(record.get("comments")),
        keywords=c.clean_list(record.get("keywords")),
        summary=summary,
        sources=[SOURCE],
        first_seen=seen,
    )
