"""JSON Lines parser, on the seed file and on broken lines."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from recommender import ids
from recommender.sources import jsonl
from recommender.sources.http import SourceError
from recommender.types import Paper

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SEED = FIXTURES / "seed_papers.jsonl"
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def line(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def test_seed_file() -> None:
    result = jsonl.parse(jsonl.read(SEED), now=NOW)
    assert len(result.papers) == 95
    assert result.skipped == []
    first = result.papers[0]
    assert first.title == "InvDiff: Invariant Guidance for Bias Mitigation in Diffusion Models"
    assert first.id == ids.title_id(first.title)
    assert not first.is_arxiv
    assert first.code_url == "https://github.com/Hundredl/InvDiff"
    assert first.abstract.startswith("As one of the most successful generative models")
    assert first.sources == ["jsonl"]
    assert first.first_seen == NOW
    assert result.papers[1].code_url == "https://github.com/ChaoningZhang/MobileSAM"
    assert result.papers[2].code_url is None
    assert sum(1 for p in result.papers if p.code_url) == 32
    assert len({p.id for p in result.papers}) == 95


def test_optional_fields() -> None:
    body = line(
        title="A Paper",
        abstract="Text.",
        arxiv_id="arXiv:2401.12345v2",
        authors="Ada Lovelace, Alan Turing",
        categories="cs.LG cs.AI",
        published="2024-01-02",
        upvotes=7,
    )
    (paper,) = jsonl.parse(body).papers
    assert (paper.id, paper.version) == ("2401.12345", 2)
    assert paper.authors == ["Ada Lovelace", "Alan Turing"]
    assert paper.categories == ["cs.LG", "cs.AI"]
    assert paper.published == datetime(2024, 1, 2, tzinfo=UTC)
    assert paper.upvotes == 7
    assert paper.abs_url == "https://arxiv.org/abs/2401.12345"
    assert paper.pdf_url == "https://arxiv.org/pdf/2401.12345"


@pytest.mark.parametrize(
    ("fields", "expected_id"),
    [
        ({"id": "2401.12345"}, "2401.12345"),
        ({"id": "hep-th/9901001v1"}, "hep-th/9901001"),
        ({"url": "https://arxiv.org/pdf/2401.12345v3.pdf"}, "2401.12345"),
        ({"url": "https://openreview.net/forum?id=abc"}, None),
    ],
)
def test_id_sources(fields: dict[str, str], expected_id: str | None) -> None:
    (paper,) = jsonl.parse(line(title="Same Title", **fields)).papers
    assert paper.id == (expected_id or ids.title_id("Same Title"))


def test_non_arxiv_url_becomes_the_abstract_link() -> None:
    (paper,) = jsonl.parse(line(title="T", url="https://openreview.net/forum?id=abc")).papers
    assert paper.abs_url == "https://openreview.net/forum?id=abc"
    assert paper.pdf_url is None


def test_reads_paper_to_dict_output() -> None:
    original = Paper(
        id="2401.12345",
        title="Round Trip",
        abstract="Abstract.",
        authors=["Ada Lovelace"],
        version=3,
        categories=["cs.LG"],
        primary_category="cs.LG",
        published=datetime(2024, 1, 2, tzinfo=UTC),
        updated=datetime(2024, 2, 3, tzinfo=UTC),
        code_url="https://github.com/a/b",
        project_url="https://a.github.io/b",
        doi="10.1000/xyz",
        upvotes=5,
        github_stars=6,
        comments=2,
        keywords=["ranking"],
        summary="Short.",
        sources=["hf"],
        first_seen=datetime(2024, 1, 5, tzinfo=UTC),
    )
    (paper,) = jsonl.parse(json.dumps(original.to_dict()).encode(), now=NOW).papers
    for name in (
        "id",
        "title",
        "abstract",
        "authors",
        "categories",
        "primary_category",
        "published",
        "updated",
        "code_url",
        "project_url",
        "doi",
        "upvotes",
        "github_stars",
        "comments",
        "keywords",
        "summary",
    ):
        assert getattr(paper, name) == getattr(original, name), name
    assert paper.version == 3
    assert paper.sources == ["jsonl"]
    assert paper.first_seen == NOW


def test_title_derived_id_is_kept() -> None:
    paper_id = ids.title_id("Old Title")
    (paper,) = jsonl.parse(line(id=paper_id, title="New Title")).papers
    assert paper.id == paper_id


def test_malformed_lines_are_skipped_and_the_rest_parse() -> None:
    seed_lines = jsonl.read(SEED).splitlines()
    body = b"\n".join(
        [
            seed_lines[0],
            b'{"title": "Caf\xe9 au lait"}',  # latin-1, not UTF-8
            b'{"title": "truncated',
            b"[1, 2, 3]",
            line(abstract="no title"),
            line(title="Bad id", arxiv_id="24-01"),
            line(title="Bad id type", id=2401.1),
            line(title="Bad date", published="13/13/2024"),
            line(title="t" * 1001),
            line(title="Long abstract", abstract="a" * 20_001),
            line(title="Many authors", authors=[f"A{i}" for i in range(2001)]),
            line(title="Bad authors", authors={"name": "x"}),
            b"",
            b"   ",
            seed_lines[1],
        ]
    )
    result = jsonl.parse(body)
    assert [p.code_url for p in result.papers] == [
        "https://github.com/Hundredl/InvDiff",
        "https://github.com/ChaoningZhang/MobileSAM",
    ]
    assert [(s.reason, s.where) for s in result.skipped] == [
        ("invalid utf-8", "line 2"),
        ("not json", "line 3"),
        ("not an object", "line 4"),
        ("missing title", "line 5"),
        ("bad id", "line 6"),
        ("bad id", "line 7"),
        ("bad date", "line 8"),
        ("too long", "line 9"),
        ("too long", "line 10"),
        ("too long", "line 11"),
        ("malformed", "line 12"),
    ]


def test_crlf_bom_and_control_characters() -> None:
    body = (
        b"\xef\xbb\xbf" + line(title="One\x00 \x1b[31mRed") + b"\r\n" + line(title="Two") + b"\r\n"
    )
    result = jsonl.parse(body)
    assert [p.title for p in result.papers] == ["One [31mRed", "Two"]
    assert result.skipped == []


def test_empty_file_is_empty() -> None:
    assert jsonl.parse(b"").papers == []
    assert jsonl.parse(b"\n\n").skipped == []


def test_a_body_with_no_json_at_all_raises_one_line() -> None:
    with pytest.raises(SourceError) as info:
        jsonl.parse(b"title,abstract\nA,B\n")
    assert str(info.value).startswith("jsonl: not JSON Lines")
    assert "\n" not in str(info.value)


def test_read_missing_file_raises_one_line(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as info:
        jsonl.read(tmp_path / "nope.jsonl")
    message = str(info.value)
    assert message.startswith("jsonl: cannot read ")
    assert "No such file or directory" in message
