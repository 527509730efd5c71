"""Core value types shared by every part of paperbot: papers, feedback, ingest reports."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

# Fields where the record from the newer arXiv version replaces the older one.
_VERSIONED_FIELDS = (
    "title",
    "abstract",
    "authors",
    "updated",
    "version",
    "pdf_url",
    "doi",
    "primary_category",
)
# Links and free text where any non-empty value fills a gap left by the other record.
_FILL_FIELDS = (
    "abs_url",
    "pdf_url",
    "code_url",
    "project_url",
    "doi",
    "summary",
    "published",
    "primary_category",
    "abstract",
)
# Community signals: counts only grow, so the larger one is the fresher.
_MAX_FIELDS = ("upvotes", "github_stars", "comments")
# Sets: the union of both records.
_UNION_FIELDS = ("categories", "keywords", "sources")


def _dt_to_str(value: datetime | None) -> str | None:
    """ISO-8601 in UTC, or None."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


def _dt_from_str(value: str | None) -> datetime | None:
    """Parse what `_dt_to_str` wrote."""
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _union(first: list[str], second: list[str]) -> list[str]:
    """Order-preserving union of two string lists."""
    seen = dict.fromkeys(first)
    seen.update(dict.fromkeys(second))
    return list(seen)


@dataclass(slots=True)
class Paper:
    """One paper, whatever source it came from.

    `id` is the arXiv id without version (`2401.12345`, `hep-th/9901001`) or, for a paper
    with no arXiv id, `title:<hash>` derived from its normalised title (see `ids.title_id`).
    """

    id: str
    title: str
    abstract: str = ""
    authors: list[str] = field(default_factory=list)
    version: int | None = None
    categories: list[str] = field(default_factory=list)
    primary_category: str | None = None
    published: datetime | None = None
    updated: datetime | None = None
    abs_url: str | None = None
    pdf_url: str | None = None
    code_url: str | None = None
    project_url: str | None = None
    doi: str | None = None
    upvotes: int = 0
    github_stars: int = 0
    comments: int = 0
    keywords: list[str] = field(default_factory=list)
    summary: str = ""
    sources: list[str] = field(default_factory=list)
    first_seen: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (datetimes as ISO strings, empty values dropped)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, datetime):
                value = _dt_to_str(value)
            if value in (None, "", [], 0) and f.name not in ("id", "title"):
                continue
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Paper:
        """Inverse of `to_dict`; unknown keys are ignored so old records still load."""
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names}
        for key in ("published", "updated", "first_seen"):
            if key in kwargs:
                kwargs[key] = _dt_from_str(kwargs[key])
        return cls(**kwargs)

    @property
    def is_arxiv(self) -> bool:
        """True when `id` is a real arXiv id rather than a title-derived one."""
        return not self.id.startswith("title:")

    @property
    def text(self) -> str:
        """Title, then abstract (either may be empty): the text content models read."""
        title, abstract = (self.title or "").strip(), (self.abstract or "").strip()
        if title and abstract:
            return f"{title}. {abstract}"
        return title or abstract

    def merged_with(self, other: Paper) -> Paper:
        """Merge two records of the same paper: the newer version wins, signals are unioned.

        `self` is the stored record, `other` the incoming one. `first_seen` and `id` of the
        stored record are kept.
        """
        merged = dataclasses.replace(self)
        newer = _is_newer(other, self)
        for name in _VERSIONED_FIELDS:
            value = getattr(other, name)
            if newer and value not in (None, "", []):
                setattr(merged, name, value)
        for name in _FILL_FIELDS:
            if getattr(merged, name) in (None, "") and getattr(other, name) not in (None, ""):
                setattr(merged, name, getattr(other, name))
        if not merged.authors and other.authors:
            merged.authors = list(other.authors)
        for name in _MAX_FIELDS:
            setattr(merged, name, max(getattr(self, name), getattr(other, name)))
        for name in _UNION_FIELDS:
            setattr(merged, name, _union(getattr(self, name), getattr(other, name)))
        if merged.version is None or (other.version or 0) > merged.version:
            merged.version = other.version or merged.version
        if self.first_seen is None:
            merged.first_seen = other.first_seen
        return merged


def _is_newer(candidate: Paper, current: Paper) -> bool:
    """Whether `candidate` describes a newer version of the paper than `current`."""
    versions = (candidate.version, current.version)
    if None not in versions and candidate.version != current.version:
        return candidate.version > current.version
    if candidate.updated and current.updated and candidate.updated != current.updated:
        return candidate.updated > current.updated
    # Same version (or unknown): only fill gaps, so a re-ingest changes nothing.
    return False


@dataclass(slots=True, frozen=True)
class Skipped:
    """A record a parser or the ingest refused, and why (for the ingest summary)."""

    reason: str
    where: str = ""


@dataclass(slots=True)
class ParseResult:
    """What a pure parser returns: the good papers, and the records it skipped."""

    papers: list[Paper] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    # Ids of papers that the feed only announced as replacements (arXiv RSS
    # `announce_type: replace`): they update a stored paper but never add one.
    replace_only: set[str] = field(default_factory=set)


class Feedback(StrEnum):
    """The kinds of feedback a person can give on a paper."""

    LIKE = "like"
    SAVE = "save"
    DISLIKE = "dislike"
    MUTE = "mute"  # mute the paper's authors: a filter, never a training weight


@dataclass(slots=True, frozen=True)
class Interaction:
    """One feedback event: `user` gave `kind` on `paper_id` (or took it back)."""

    user: str
    paper_id: str
    kind: Feedback
    ts: float
    removed: bool = False


@dataclass(slots=True)
class IngestReport:
    """Counts from one ingest run of one source."""

    source: str
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    new_ids: list[str] = field(default_factory=list)
    updated_ids: list[str] = field(default_factory=list)
    started: datetime | None = None
    seconds: float = 0.0
    error: str | None = None
    # A remark that is not an error, e.g. "no announcement today" for an empty daily feed.
    note: str | None = None

    def skip(self, reason: str, count: int = 1) -> None:
        """Count `count` skipped records under `reason`."""
        self.skipped += count
        self.reasons[reason] = self.reasons.get(reason, 0) + count

    def summary(self) -> str:
        """One human line: `hf: 12 new, 3 updated, 40 unchanged, 1 skipped (bad date: 1)`."""
        line = (
            f"{self.source}: {self.new} new, {self.updated} updated, "
            f"{self.unchanged} unchanged, {self.skipped} skipped"
        )
        if self.reasons:
            detail = ", ".join(f"{r}: {n}" for r, n in sorted(self.reasons.items()))
            line += f" ({detail})"
        if self.error:
            line += f" — error: {self.error}"
        elif self.note:
            line += f" — {self.note}"
        return line
