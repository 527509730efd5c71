"""Hugging Face Daily Papers parser, on captured responses and on broken ones."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from recommender.sources import hf_daily
from recommender.sources.http import SourceError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
NOW = datetime(2026, 6, 12, 9, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def june() -> bytes:
    return (FIXTURES / "hf_daily_papers_2026-06-12.json").read_bytes()


@pytest.fixture(scope="module")
def august() -> bytes:
    return (FIXTURES / "hf_daily_papers_2026-08-03.json").read_bytes()


def test_parses_every_entry_of_a_real_day(june: bytes) -> None:
    result = hf_daily.parse(june, now=NOW)
    assert len(result.papers) == 30
    assert result.skipped == []
    assert result.replace_only == set()
    assert len({p.id for p in result.papers}) == 30
    assert all(p.sources == ["hf"] and p.first_seen == NOW for p in result.papers)


def test_real_entry_fields(june: bytes) -> None:
    papers = {p.id: p for p in hf_daily.parse(june, now=NOW).papers}
    msa = papers["2606.13392"]
    assert msa.upvotes == 103
    assert msa.code_url == "https://github.com/MiniMax-AI/MSA"
    assert msa.github_stars == 251
    assert msa.comments == 4
    assert len(msa.authors) == 11
    assert msa.version is None
    assert msa.abs_url == "https://arxiv.org/abs/2606.13392"
    assert msa.pdf_url == "https://arxiv.org/pdf/2606.13392"

    first = papers["2606.00467"]
    assert first.title == (
        "On the Limits of LLM Adaptability: Impact of Model-Internalized Priors on "
        "Annotation Task Performance"
    )
    assert first.authors == ["Etienne Casanova", "Rafal Kocielnik", "R. Michael Alvarez"]
    assert first.published == datetime(2026, 5, 30, tzinfo=UTC)
    assert first.published.tzinfo is UTC
    assert first.comments == 2
    assert first.upvotes == 0
    assert first.code_url is None
    assert first.keywords[:2] == ["zero-shot annotation", "LLM-as-a-judge"]
    assert len(first.keywords) == 14
    assert first.summary.startswith("Large language models exhibit limited ability")
    assert first.abstract.startswith("Large Language Models (LLMs) are increasingly used")

    arena = papers["2606.13681"]
    assert (arena.upvotes, arena.github_stars) == (118, 9)
    assert arena.project_url == "https://aiden0526.github.io/EvoArena/"
    assert arena.code_url == "https://github.com/Aiden0526/EvoArena"


def test_hidden_authors_are_kept(june: bytes) -> None:
    entries = json.loads(june)
    hidden = [e for e in entries if any(a.get("hidden") for a in e["paper"]["authors"])]
    assert [e["paper"]["id"] for e in hidden] == ["2606.12575"]
    paper = next(p for p in hf_daily.parse(june).papers if p.id == "2606.12575")
    assert len(paper.authors) == 10


def test_pretty_printed_day_with_project_pages_and_stars(august: bytes) -> None:
    result = hf_daily.parse(august, now=NOW)
    assert [p.id for p in result.papers] == ["2607.26654", "2607.28229", "2607.27851"]
    paper = result.papers[0]
    assert paper.title == "Constitutional Midtraining: Content Presence Drives Alignment Gains"
    assert paper.code_url == "https://github.com/desBugger/constitutional-mt"
    assert paper.project_url == "https://www.lesswrong.com/posts/n5htoDGvKKJFAjji2"
    assert (paper.upvotes, paper.github_stars, paper.comments) == (3, 2, 1)
    assert paper.authors[0] == "Desiree Cho"
    assert len(paper.authors) == 7
    assert result.papers[1].github_stars == 8
    assert len(result.papers[1].authors) == 12


def test_first_seen_defaults_to_now(august: bytes) -> None:
    before = datetime.now(UTC)
    paper = hf_daily.parse(august).papers[0]
    assert paper.first_seen is not None
    assert before <= paper.first_seen <= datetime.now(UTC)


def _entry(**paper: object) -> dict[str, object]:
    base: dict[str, object] = {
        "id": "2401.00001",
        "title": "A Title",
        "summary": "An abstract.",
        "authors": [{"name": "Ada Lovelace"}],
        "publishedAt": "2024-01-01T00:00:00.000Z",
        "upvotes": 1,
    }
    base.update(paper)
    return {"paper": base, "numComments": 0}


def test_malformed_entries_are_skipped_and_the_rest_parse(june: bytes) -> None:
    good = json.loads(june)[:3]
    bad = [
        _entry(title=""),
        _entry(id="not-an-id"),
        _entry(id=None),
        _entry(publishedAt="yesterday-ish"),
        _entry(title="x" * 1001),
        _entry(summary="y" * 20_001),
        _entry(authors=[{"name": f"A{i}"} for i in range(2001)]),
        "just a string",
        {"paper": ["not", "a", "dict"]},
        _entry(authors="Ada, Bob"),
    ]
    body = json.dumps(good[:1] + bad + good[1:]).encode()
    result = hf_daily.parse(body, now=NOW)
    assert [p.id for p in result.papers] == [e["paper"]["id"] for e in good]
    assert [(s.reason, s.where) for s in result.skipped] == [
        ("missing title", "entry 2"),
        ("bad id", "entry 3"),
        ("bad id", "entry 4"),
        ("bad date", "entry 5"),
        ("too long", "entry 6"),
        ("too long", "entry 7"),
        ("too long", "entry 8"),
        ("not an object", "entry 9"),
        ("not an object", "entry 10"),
        ("malformed", "entry 11"),
    ]


def test_text_is_cleaned() -> None:
    body = json.dumps(
        [
            _entry(
                title="  Deep\n    Learning\u0000 for\tAll\u202e ",
                summary="Line one.\n\n  Line\u0007 two.",
                githubRepo="javascript:alert(1)",
                upvotes="12",
                githubStars=-5,
            )
        ]
    ).encode()
    paper = hf_daily.parse(body).papers[0]
    assert paper.title == "Deep Learning for All"
    assert paper.abstract == "Line one. Line two."
    assert paper.code_url is None
    assert paper.upvotes == 12
    assert paper.github_stars == 0


def test_versioned_id_keeps_its_version() -> None:
    paper = hf_daily.parse(json.dumps([_entry(id="2401.00001v2")]).encode()).papers[0]
    assert (paper.id, paper.version) == ("2401.00001", 2)


def test_truncated_body_raises_one_line(june: bytes) -> None:
    with pytest.raises(SourceError) as info:
        hf_daily.parse(june[:1234])
    message = str(info.value)
    assert message.startswith("hf: response is not valid JSON")
    assert "truncated" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"<!DOCTYPE html><html><body>Bad gateway</body></html>", "hf: response is not valid JSON"),
        (b"", "hf: response is empty"),
        (b'{"error": "Invalid date"}', "hf: API error: Invalid date"),
        (b'{"papers": []}', "hf: expected a JSON list of papers, got dict"),
        (b"\xff\xfe[]", "hf: response is not valid UTF-8"),
    ],
)
def test_unusable_bodies_raise_one_line(body: bytes, expected: str) -> None:
    with pytest.raises(SourceError) as info:
        hf_daily.parse(body)
    assert str(info.value).startswith(expected)
    assert "\n" not in str(info.value)


def test_empty_day_is_not_an_error() -> None:
    assert hf_daily.parse(b"[]").papers == []
