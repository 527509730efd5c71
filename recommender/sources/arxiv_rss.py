"""arXiv's daily announcement feeds (`rss.arxiv.org`), RSS 2.0 or Atom, auto-detected."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from xml.etree.ElementTree import Element

from recommender import ids
from recommender.sources import _common as c
from recommender.sources.http import SourceError
from recommender.sources.http import fetch as http_fetch
from recommender.types import Paper, ParseResult, Skipped

SOURCE = "rss"
DEFAULT_BASE_URL = "https://rss.arxiv.org"
FLAVOURS = ("rss", "atom")
# Announce types that only revise a paper announced earlier.
REPLACE_TYPES = frozenset({"replace", "replace-cross"})

_PREFIX = re.compile(
    r"^\s*arXiv:(?P<id>\S+)\s+Announce Type:\s*(?P<type>[\w-]+)\s*(?:Abstract:\s*)?",
    re.IGNORECASE,
)
# Titles in the pre-2024 feed format ended with "(arXiv:2401.12345v1 [cs.LG] UPDATED)".
_OLD_TITLE_SUFFIX = re.compile(r"\s*\(arXiv:\S+\s*\[[^\]]*\](?:\s*[A-Z]+)?\)\s*$")


def fetch(
    base_url: str = DEFAULT_BASE_URL,
    category: str = "cs.LG",
    flavour: str = "rss",
    **http_kwargs: Any,
) -> bytes:
    """Today's feed for `category` (e.g. `cs.LG`, or `cs.LG+stat.ML`) as raw bytes."""
    if flavour not in FLAVOURS:
        raise ValueError(f"flavour must be one of {FLAVOURS}, not {flavour!r}")
    url = f"{base_url.rstrip('/')}/{flavour}/{category.strip()}"
    http_kwargs.setdefault("check", c.looks_like_xml)
    return http_fetch(url, source=SOURCE, **http_kwargs)


def parse(body: bytes, *, now: datetime | None = None) -> ParseResult:
    """Papers from an RSS 2.0 or Atom feed; replacements are listed in `replace_only`."""
    root = c.load_xml(body, SOURCE)
    if root.tag == "rss":
        records = root.findall("channel/item")
        read, label = _rss_item, "item"
    elif root.tag == f"{c.ATOM}feed":
        records = root.findall(f"{c.ATOM}entry")
        read, label = _atom_entry, "entry"
    else:
        raise SourceError(
            SOURCE, f"response is not an RSS or Atom feed (root <{c.local_name(root.tag)}>)"
        )
    seen = c.now_utc(now)
    result = ParseResult()
    for number, record in enumerate(records, start=1):
        try:
            paper, announce_type = read(record, seen)
        except c.Skip as skip:
            result.skipped.append(Skipped(skip.reason, f"{label} {number}"))
            continue
        result.papers.append(paper)
        if announce_type in REPLACE_TYPES:
            result.replace_only.add(paper.id)
    return result


def _rss_item(item: Element, seen: datetime) -> tuple[Paper, str]:
    """One RSS 2.0 `<item>` -> (Paper, announce type), or Skip."""
    return _build(
        seen,
        guid=c.child_text(item, "guid"),
        title=c.child_text(item, "title"),
        description=c.child_text(item, "description"),
        link=c.child_text(item, "link"),
        announce=c.child_text(item, f"{c.ARXIV}announce_type"),
        authors=_authors(item),
        categories=[cat.text for cat in item.findall("category")],
        published=c.child_text(item, "pubDate"),
    )


def _atom_entry(entry: Element, seen: datetime) -> tuple[Paper, str]:
    """One Atom `<entry>` -> (Paper, announce type), or Skip."""
    link = None
    for element in entry.findall(f"{c.ATOM}link"):
        if element.get("rel", "alternate") == "alternate":
            link = element.get("href")
            break
    return _build(
        seen,
        guid=c.child_text(entry, f"{c.ATOM}id"),
        title=c.child_text(entry, f"{c.ATOM}title"),
        description=c.child_text(entry, f"{c.ATOM}summary"),
        link=link,
        announce=c.child_text(entry, f"{c.ARXIV}announce_type"),
        authors=_authors(entry),
        categories=[cat.get("term") for cat in entry.findall(f"{c.ATOM}category")],
        published=c.child_text(entry, f"{c.ATOM}published"),
    )


def _authors(record: Element) -> list[str]:
    """Authors from `dc:creator` (one comma-separated list) or Atom `<author>` elements."""
    names: list[str] = []
    for creator in record.findall(f"{c.DC}creator"):
        for part in (creator.text or "").split(","):
            name = c.clean_author(part)
            name = name[4:] if name.startswith("and ") else name
            if name:
                names.append(name)
    if not names:
        for author in record.findall(f"{c.ATOM}author"):
            name = c.clean_author(c.child_text(author, f"{c.ATOM}name"))
            if name:
                names.append(name)
    return names


def _build(
    seen: datetime,
    *,
    guid: str | None,
    title: str | None,
    description: str | None,
    link: str | None,
    announce: str | None,
    authors: list[str],
    categories: list[str | None],
    published: str | None,
) -> tuple[Paper, str]:
    """The fields shared by both flavours -> (Paper, announce type), or Skip."""
    text = description or ""
    prefix = _PREFIX.match(text)
    if prefix:
        text = text[prefix.end() :]
    announce_type = c.clean(announce).lower() or (prefix.group("type").lower() if prefix else "")

    parsed: tuple[str, int | None] | None = None
    candidates = (guid, prefix.group("id") if prefix else None, link)
    for candidate in candidates:
        if candidate:
            try:
                parsed = ids.parse_arxiv_id(candidate.strip())
                break
            except ids.InvalidId:
                continue
    if parsed is None:
        raise c.Skip(c.BAD_ID)
    arxiv_id, version = parsed

    clean_title = _OLD_TITLE_SUFFIX.sub("", c.clean(title))
    if not clean_title:
        raise c.Skip(c.MISSING_TITLE)
    abstract = c.clean(text)
    c.check_limits(clean_title, abstract, authors)
    paper = Paper(
        id=arxiv_id,
        title=clean_title,
        abstract=abstract,
        authors=authors,
        version=version,
        categories=list(dict.fromkeys(t for t in (c.clean(x) for x in categories) if t)),
        # The announcement day; `<updated>` in these feeds is only the feed's build time.
        published=c.parse_date(published),
        abs_url=c.clean_url(link) or ids.abs_url(arxiv_id),
        pdf_url=ids.pdf_url(arxiv_id),
        sources=[SOURCE],
        first_seen=seen,
    )
    return paper, announce_type
