"""Paper sources: each has a thin `fetch` (network only) and a pure `parse` (bytes -> papers)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from recommender.sources import arxiv_api, arxiv_rss, hf_daily, jsonl
from recommender.sources.http import SourceError
from recommender.types import ParseResult

__all__ = ["PARSERS", "SOURCE_NAMES", "SourceError", "parse_body"]

SOURCE_NAMES = ("hf", "arxiv", "rss", "jsonl")

PARSERS: dict[str, Callable[..., ParseResult]] = {
    "hf": hf_daily.parse,
    "arxiv": arxiv_api.parse,
    "rss": arxiv_rss.parse,
    "jsonl": jsonl.parse,
}


def parse_body(kind: str, body: bytes, *, now: datetime | None = None) -> ParseResult:
    """Parse `body` with the parser of source `kind` (one of `SOURCE_NAMES`)."""
    try:
        parser = PARSERS[kind]
    except KeyError:
        raise ValueError(
            f"unknown source {kind!r} (expected one of {', '.join(SOURCE_NAMES)})"
        ) from None
    return parser(body, now=now)
