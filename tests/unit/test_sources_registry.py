"""The source registry and the text rules shared by every parser."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from recommender.sources import PARSERS, SOURCE_NAMES, SourceError, parse_body
from recommender.sources import _common as common

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("kind", "fixture", "count"),
    [
        ("hf", "hf_daily_papers_2026-08-03.json", 3),
        ("arxiv", "arxiv_api_query_transformer_cs.LG.atom.xml", 5),
        ("rss", "arxiv_rss2_cs.LG_trimmed.xml", 3),
        ("rss", "arxiv_rss_atom_cs.AI.xml", 7),
        ("jsonl", "seed_papers.jsonl", 95),
    ],
)
def test_parse_body_dispatches(kind: str, fixture: str, count: int) -> None:
    result = parse_body(kind, (FIXTURES / fixture).read_bytes(), now=NOW)
    assert len(result.papers) == count
    assert {p.first_seen for p in result.papers} == {NOW}
    assert all(p.sources == [kind] for p in result.papers)


def test_registry_names() -> None:
    assert SOURCE_NAMES == ("hf", "arxiv", "rss", "jsonl")
    assert set(PARSERS) == set(SOURCE_NAMES)


def test_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown source 'pubmed'"):
        parse_body("pubmed", b"")


def test_naive_now_is_taken_as_utc() -> None:
    body = json.dumps({"title": "T"}).encode()
    (paper,) = parse_body("jsonl", body, now=datetime(2026, 1, 1, 12)).papers
    assert paper.first_seen == datetime(2026, 1, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2024-01-02T03:04:05Z", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-02T03:04:05.000Z", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-02T00:00:00-04:00", datetime(2024, 1, 2, 4, tzinfo=UTC)),
        ("2024-01-02", datetime(2024, 1, 2, tzinfo=UTC)),
        ("Mon, 27 Apr 2026 00:00:00 -0400", datetime(2026, 4, 27, 4, tzinfo=UTC)),
        ("2025-08-20T04:00:19.899254+00:00", datetime(2025, 8, 20, 4, 0, 19, 899254, tzinfo=UTC)),
        (None, None),
        ("  ", None),
    ],
)
def test_dates_are_aware_utc(raw: str | None, expected: datetime | None) -> None:
    parsed = common.parse_date(raw)
    assert parsed == expected
    if parsed is not None:
        assert parsed.utcoffset() == timedelta(0)
        assert parsed.tzinfo is UTC


@pytest.mark.parametrize("raw", ["yesterday", "2024-13-01", "31/02/2024", 1700000000, ["2024"]])
def test_bad_dates_skip(raw: object) -> None:
    with pytest.raises(common.Skip) as info:
        common.parse_date(raw)
    assert info.value.reason == "bad date"


def test_offset_dates_convert() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert common.now_utc(datetime(2026, 1, 1, 2, tzinfo=plus_two)) == NOW


def test_clean_text() -> None:
    assert common.clean("  a\n\t b\u200b\u202e c\x00\x07\x9f ") == "a b c"
    assert common.clean(None) == ""
    assert common.clean(12) == "12"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Paulo Andr\\'e Lima de Castro", "Paulo André Lima de Castro"),
        ('J\\"urgen Schmidhuber', "Jürgen Schmidhuber"),
        ("Fran\\c{c}ois Chollet", "François Chollet"),
        ("{\\'E}mile Borel", "Émile Borel"),
        ("Plain Name", "Plain Name"),
    ],
)
def test_tex_accents_in_author_names(raw: str, expected: str) -> None:
    assert common.clean_author(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://github.com/a/b", "https://github.com/a/b"),
        (" http://example.org/x?y=1 ", "http://example.org/x?y=1"),
        ("javascript:alert(1)", None),
        ("ftp://example.org/x", None),
        ("https://exa mple.org", None),
        ("https://x.org/<script>", None),
        ("", None),
        (None, None),
        (42, None),
        ("https://x.org/" + "a" * 3000, None),
    ],
)
def test_only_http_urls_are_kept(raw: object, expected: str | None) -> None:
    assert common.clean_url(raw) == expected


def test_counts() -> None:
    assert [common.count(v) for v in (3, "4", 2.9, -1, None, True, "x", float("nan"))] == [
        3,
        4,
        2,
        0,
        0,
        0,
        0,
        0,
    ]


def test_source_error_is_one_line() -> None:
    error = SourceError("hf", "something\nwent   wrong")
    assert str(error) == "hf: something went wrong"
    assert error.source == "hf"
