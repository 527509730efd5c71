"""Helpers shared by the source parsers: text cleaning, dates, limits, JSON and XML loading."""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from recommender.sources.http import SourceError, rate_exceeded

# Skip reasons: a small fixed vocabulary so ingest summaries can count them.
MISSING_TITLE = "missing title"
BAD_ID = "bad id"
BAD_DATE = "bad date"
TOO_LONG = "too long"
INVALID_UTF8 = "invalid utf-8"
NOT_JSON = "not json"
NOT_OBJECT = "not an object"
MALFORMED = "malformed"
API_ERROR = "api error"

MAX_TITLE = 1_000
MAX_ABSTRACT = 20_000
MAX_AUTHORS = 2_000
MAX_URL = 2_000

ATOM = "{http://www.w3.org/2005/Atom}"
ARXIV = "{http://arxiv.org/schemas/atom}"
OPENSEARCH = "{http://a9.com/-/spec/opensearch/1.1/}"
DC = "{http://purl.org/dc/elements/1.1/}"

# C0/C1 controls, zero-width characters and bidi overrides: invisible in chat, and the
# bidi ones can make a title display as something other than what it says.
_INVISIBLE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]"
)
_URL_OK = re.compile(r"^https?://[^\s<>\"'`{}|\\^]+$", re.IGNORECASE)
_TEX_ACCENTS = {
    "'": "\u0301",
    "`": "\u0300",
    "^": "\u0302",
    '"': "\u0308",
    "~": "\u0303",
    "=": "\u0304",
    ".": "\u0307",
    "c": "\u0327",
    "u": "\u0306",
    "v": "\u030c",
    "H": "\u030b",
    "k": "\u0328",
    "r": "\u030a",
}
_TEX_SYMBOL = re.compile(r"\{?\\(['`^\"~=.])\{?\\?([A-Za-z])\}?\}?")
_TEX_LETTER = re.compile(r"\{?\\([cuvHkr])\{([A-Za-z])\}\}?")


class Skip(Exception):
    """Raised inside a parser for one record that must be skipped with `reason`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def now_utc(now: datetime | None) -> datetime:
    """`now` as an aware UTC datetime, or the current time."""
    if now is None:
        return datetime.now(UTC)
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def clean(value: Any) -> str:
    """Text without invisible characters, whitespace collapsed to single spaces."""
    if value is None:
        return ""
    if not isinstance(value, str):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Skip(MALFORMED)
        value = str(value)
    return " ".join(_INVISIBLE.sub("", value).split())


def clean_author(value: Any) -> str:
    """An author name with TeX accents (`Andr\\'e`) turned into Unicode (`André`)."""
    name = clean(value)
    if "\\" in name:
        name = _TEX_LETTER.sub(lambda m: m.group(2) + _TEX_ACCENTS[m.group(1)], name)
        name = _TEX_SYMBOL.sub(lambda m: m.group(2) + _TEX_ACCENTS[m.group(1)], name)
        name = unicodedata.normalize("NFC", name)
    return name


def clean_url(value: Any) -> str | None:
    """An http(s) URL, or None for anything else (chat clients would render it as a link)."""
    if not isinstance(value, str):
        return None
    url = value.strip()
    if len(url) > MAX_URL or not _URL_OK.match(url):
        return None
    return url


def clean_list(values: Any, *, dedupe: bool = True) -> list[str]:
    """Cleaned, non-empty strings from a list (or a comma-separated string)."""
    if values is None:
        return []
    if isinstance(values, str):
        values = values.split(",")
    if not isinstance(values, list | tuple):
        raise Skip(MALFORMED)
    texts = [text for text in (clean(v) for v in values) if text]
    return list(dict.fromkeys(texts)) if dedupe else texts


def count(value: Any) -> int:
    """A non-negative integer count; anything unusable counts as 0."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int | float):
        return max(int(value), 0) if value == value and abs(value) < 1e15 else 0
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return 0


def parse_date(value: Any) -> datetime | None:
    """An aware UTC datetime from ISO 8601 or RFC 822 text; None when empty; Skip when bad."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise Skip(BAD_DATE)
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        try:
            parsed = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError) as exc:
            raise Skip(BAD_DATE) from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def check_limits(title: str, abstract: str, authors: list[str]) -> None:
    """Skip a record whose title, abstract or author list is beyond any real paper's."""
    if len(title) > MAX_TITLE or len(abstract) > MAX_ABSTRACT or len(authors) > MAX_AUTHORS:
        raise Skip(TOO_LONG)


def _size(body: bytes) -> str:
    """A body's size for an error line (its bytes never go to a log or the ingest log)."""
    return f"{len(body)} bytes"


def _refuse_rate_limit(body: bytes, source: str) -> None:
    """Raise the rate-limit error when a body is arXiv's `Rate exceeded.` answer."""
    if rate_exceeded(body):
        raise SourceError(source, "rate limited: the server answered 'Rate exceeded.'")


def looks_like_json(body: bytes) -> str | None:
    """None when a body could be JSON (starts with `[` or `{`), else a reason (`check`)."""
    head = body[:512].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head[:1] in (b"[", b"{"):
        return None
    return f"not JSON, {_size(body)}"


def looks_like_xml(body: bytes) -> str | None:
    """None when a body could be an XML feed (starts with `<`), else a reason (`check`)."""
    head = body[:512].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head[:1] == b"<" and not head[:15].lower().startswith((b"<!doctype html", b"<html")):
        return None
    return f"not an XML feed, {_size(body)}"


def load_json(body: bytes, source: str) -> Any:
    """Decode a whole JSON body, or raise a one-line SourceError naming the source."""
    if not body.strip():
        raise SourceError(source, "response is empty")
    _refuse_rate_limit(body, source)
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceError(source, f"response is not valid UTF-8 (at byte {exc.start})") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        # An unterminated string, like an error at the very end, means the scanner hit EOF.
        if exc.msg.startswith("Unterminated string") or exc.pos >= len(text.rstrip()):
            detail = f"truncated at byte {len(body)}?"
        else:
            detail = f"{exc.msg}: char {exc.pos} of {_size(body)}"
        raise SourceError(source, f"response is not valid JSON ({detail})") from exc


def load_xml(body: bytes, source: str) -> Element:
    """Parse a whole XML body safely, or raise a one-line SourceError naming the source."""
    if not body.strip():
        raise SourceError(source, "response is empty")
    _refuse_rate_limit(body, source)
    try:
        return SafeET.fromstring(body)
    except DefusedXmlException as exc:
        raise SourceError(source, f"response refused: unsafe XML ({type(exc).__name__})") from exc
    except (LookupError, ValueError) as exc:
        # expat hands an encoding named in the XML declaration to Python's codecs: an
        # unknown, multi-byte or non-text one raises these instead of a ParseError.
        raise SourceError(
            source,
            f"response is not valid XML (its declared encoding cannot be read, {_size(body)})",
        ) from exc
    except ParseError as exc:
        message = str(exc)
        if message.startswith("no element found"):
            detail = f"truncated? {message}"
        else:
            detail = f"{message}, {_size(body)}"
        raise SourceError(source, f"response is not valid XML ({detail})") from exc


def local_name(tag: str) -> str:
    """`{ns}name` -> `name`."""
    return tag.rsplit("}", 1)[-1]


def child_text(element: Element, tag: str) -> str | None:
    """The text of the first `tag` child, or None when there is no such child."""
    child = element.find(tag)
    if child is None:
        return None
    return "".join(child.itertext())
