"""arXiv id normalisation and stable ids for papers that have none."""

from __future__ import annotations

import hashlib
import re
import unicodedata

# New-style ids (2007 onwards): YYMM.NNNN (to 2014) or YYMM.NNNNN, optional version.
_NEW = re.compile(r"(?P<id>\d{4}\.\d{4,5})(?:v(?P<v>\d+))?")
# Old-style ids: archive(.subject)/YYMMNNN, optional version.
_OLD = re.compile(r"(?P<id>[a-z][a-z\-]*(?:\.[A-Za-z]{2})?/\d{7})(?:v(?P<v>\d+))?")
_URL = re.compile(
    r"^(?:https?://)?(?:www\.|export\.)?arxiv\.org/(?:abs|pdf|html)/(?P<rest>.+?)(?:\.pdf)?/?$",
    re.IGNORECASE,
)
_PREFIX = re.compile(r"^(?:arxiv:|oai:arxiv\.org:)", re.IGNORECASE)


class InvalidId(ValueError):
    """Raised for a string that is not an arXiv id in any known form."""


def parse_arxiv_id(raw: str) -> tuple[str, int | None]:
    """Return `(id_without_version, version)` for any known spelling of an arXiv id.

    Accepts `2401.12345v3`, `arXiv:2401.12345`, `hep-th/9901001v2`, and abs/pdf URLs
    (http or https, with or without `.pdf`). Raises `InvalidId` otherwise.
    """
    text = (raw or "").strip()
    match_url = _URL.match(text)
    if match_url:
        text = match_url.group("rest")
    text = _PREFIX.sub("", text)
    for pattern in (_NEW, _OLD):
        match = pattern.fullmatch(text)
        if match:
            version = match.group("v")
            return match.group("id"), int(version) if version else None
    raise InvalidId(f"not an arXiv id: {(raw or '')[:60]!r}")


def normalize_arxiv_id(raw: str) -> str:
    """The version-less arXiv id of `raw` (see `parse_arxiv_id`)."""
    return parse_arxiv_id(raw)[0]


def is_arxiv_id(raw: str) -> bool:
    """Whether `raw` parses as an arXiv id."""
    try:
        parse_arxiv_id(raw)
    except InvalidId:
        return False
    return True


def normalize_title(title: str) -> str:
    """Lower-case, accent-free, punctuation-free, single-spaced title for matching."""
    text = unicodedata.normalize("NFKD", title or "")
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = re.sub(r"[^\w]+", " ", text.casefold())
    return " ".join(text.split())


def title_key(title: str) -> str:
    """A short stable hash of the normalised title (used to match papers across sources)."""
    return hashlib.sha1(normalize_title(title).encode("utf-8")).hexdigest()[:16]


def title_id(title: str) -> str:
    """The stable paper id for a paper with no arXiv id: `title:<hash>`."""
    return f"title:{title_key(title)}"


def abs_url(arxiv_id: str) -> str:
    """The abstract page of an arXiv paper."""
    return f"https://arxiv.org/abs/{arxiv_id}"


def pdf_url(arxiv_id: str) -> str:
    """The PDF of an arXiv paper."""
    return f"https://arxiv.org/pdf/{arxiv_id}"
