"""arXiv RSS parser (RSS 2.0 and Atom flavours), on captured feeds and on broken ones."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from recommender.sources import arxiv_rss
from recommender.sources.http import SourceError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
NOW = datetime(2026, 4, 27, 6, tzinfo=UTC)


@pytest.fixture(scope="module")
def rss2() -> bytes:
    return (FIXTURES / "arxiv_rss2_cs.LG_trimmed.xml").read_bytes()


@pytest.fixture(scope="module")
def atom() -> bytes:
    return (FIXTURES / "arxiv_rss_atom_cs.AI.xml").read_bytes()


def test_rss2_feed(rss2: bytes) -> None:
    result = arxiv_rss.parse(rss2, now=NOW)
    assert [p.id for p in result.papers] == ["2604.21952", "2604.21953", "2604.21956"]
    assert result.skipped == []
    assert result.replace_only == set()
    first = result.papers[0]
    assert first.title == (
        "Focus Session: Hardware and Software Techniques for Accelerating Multimodal "
        "Foundation Models"
    )
    assert first.version == 1
    assert first.abstract.startswith("This work presents a multi-layered methodology")
    assert "Announce Type" not in first.abstract
    assert "visual resolution & stride" in first.abstract
    assert first.authors == [
        "Muhammad Shafique",
        "Abdul Basit",
        "Muhammad Abdullah Hanif",
        "Alberto Marchisio",
        "Rachmad Vidya Wicaksana Putra",
        "Minghao Shao",
    ]
    assert first.categories == ["cs.LG", "cs.AI", "cs.AR", "cs.NE", "cs.RO"]
    # "Mon, 27 Apr 2026 00:00:00 -0400" in UTC.
    assert first.published == datetime(2026, 4, 27, 4, tzinfo=UTC)
    assert first.abs_url == "https://arxiv.org/abs/2604.21952"
    assert first.pdf_url == "https://arxiv.org/pdf/2604.21952"
    assert first.sources == ["rss"]
    assert first.first_seen == NOW
    assert len(result.papers[2].authors) == 5
    assert result.papers[2].categories == ["cs.LG"]


def test_atom_feed(atom: bytes) -> None:
    result = arxiv_rss.parse(atom, now=NOW)
    assert [p.id for p in result.papers] == [
        "2508.13426",
        "2508.13428",
        "2508.13429",
        "2508.13434",
        "2508.13435",
        "2508.14001",
        "2508.14002",
    ]
    assert result.skipped == []
    assert result.replace_only == set()
    align = result.papers[0]
    assert align.title.startswith("ALIGN: Word Association Learning")
    assert align.authors == ["Chunhua Liu", "Kabir Manandhar Shrestha", "Sukai Huang"]
    assert align.categories == ["cs.CL", "cs.AI"]
    assert align.abstract.startswith("As large language models (LLMs) increasingly mediate")
    assert align.published == datetime(2025, 8, 20, 4, tzinfo=UTC)
    assert align.updated is None
    # dc:creator carries TeX accents: "Paulo Andr\'e Lima de Castro".
    assert result.papers[2].authors == ["Paulo André Lima de Castro"]
    assert len(result.papers[3].authors) == 7


def _retype(body: bytes, tag: str, number: int, new_type: str) -> bytes:
    """The feed with the announce type of record `number` (1-based) changed to `new_type`."""
    parts = body.decode().split(f"<{tag}>")
    parts[number] = re.sub(
        r"(Announce Type: |<arxiv:announce_type>)[\w-]+", rf"\g<1>{new_type}", parts[number]
    )
    return f"<{tag}>".join(parts).encode()


def test_replacements_update_but_never_add(rss2: bytes) -> None:
    body = _retype(_retype(rss2, "item", 2, "replace"), "item", 3, "replace-cross")
    result = arxiv_rss.parse(body)
    assert [p.id for p in result.papers] == ["2604.21952", "2604.21953", "2604.21956"]
    assert result.replace_only == {"2604.21953", "2604.21956"}
    assert result.papers[1].abstract.startswith("Anti-doping programs rely on biological")


def test_atom_replacements(atom: bytes) -> None:
    result = arxiv_rss.parse(_retype(atom, "entry", 6, "replace"))
    assert result.replace_only == {"2508.14001"}
    assert len(result.papers) == 7


def test_announce_type_from_description_when_element_is_missing(rss2: bytes) -> None:
    text = rss2.decode().replace("<arxiv:announce_type>new</arxiv:announce_type>", "", 1)
    text = text.replace("Announce Type: new", "Announce Type: replace", 1)
    assert arxiv_rss.parse(text.encode()).replace_only == {"2604.21952"}


RSS_HEAD = (
    '<rss xmlns:arxiv="http://arxiv.org/schemas/atom" '
    'xmlns:dc="http://purl.org/dc/elements/1.1/" version="2.0"><channel><title>t</title>'
)


def item(
    guid: str = "oai:arXiv.org:2604.00001v2",
    title: str = "A Title",
    date: str = "Mon, 27 Apr 2026 00:00:00 -0400",
    creator: str = "Ada Lovelace, Alan Turing",
) -> str:
    return (
        f"<item><title>{title}</title><link>https://arxiv.org/abs/2604.00001</link>"
        f"<description>arXiv:2604.00001v2 Announce Type: new \nAbstract: Text.</description>"
        f'<guid isPermaLink="false">{guid}</guid><pubDate>{date}</pubDate>'
        f"<arxiv:announce_type>new</arxiv:announce_type><dc:creator>{creator}</dc:creator></item>"
    )


def rss(*items: str) -> bytes:
    return (RSS_HEAD + "".join(items) + "</channel></rss>").encode()


def test_synthetic_item() -> None:
    (paper,) = arxiv_rss.parse(rss(item())).papers
    assert (paper.id, paper.version) == ("2604.00001", 2)
    assert paper.abstract == "Text."
    assert paper.authors == ["Ada Lovelace", "Alan Turing"]


def test_old_format_title_suffix_is_dropped() -> None:
    body = rss(item(title="Deep Nets. (arXiv:2604.00001v2 [cs.LG] UPDATED)"))
    (paper,) = arxiv_rss.parse(body).papers
    assert paper.title == "Deep Nets."


def test_id_falls_back_to_the_description_and_link() -> None:
    (paper,) = arxiv_rss.parse(rss(item(guid="something-else"))).papers
    assert (paper.id, paper.version) == ("2604.00001", 2)


def test_malformed_items_are_skipped_and_the_rest_parse() -> None:
    broken_id = (
        item()
        .replace("oai:arXiv.org:2604.00001v2", "x")
        .replace("arXiv:2604.00001v2", "arXiv:nope")
        .replace("https://arxiv.org/abs/2604.00001", "https://example.org/")
    )
    body = rss(
        item(),
        broken_id,
        item(title=""),
        item(date="the day after tomorrow"),
        item(creator=", ".join(f"Author {i}" for i in range(2001))),
        item(guid="oai:arXiv.org:2604.00009v1"),
    )
    result = arxiv_rss.parse(body)
    assert [p.id for p in result.papers] == ["2604.00001", "2604.00009"]
    assert [(s.reason, s.where) for s in result.skipped] == [
        ("bad id", "item 2"),
        ("missing title", "item 3"),
        ("bad date", "item 4"),
        ("too long", "item 5"),
    ]


def test_empty_feed_is_not_an_error() -> None:
    result = arxiv_rss.parse(rss())
    assert result.papers == [] and result.skipped == []


def test_truncated_feed_raises_one_line(rss2: bytes) -> None:
    with pytest.raises(SourceError) as info:
        arxiv_rss.parse(rss2[: len(rss2) // 2])
    assert str(info.value).startswith("rss: response is not valid XML")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"Rate exceeded.", "rss: rate limited: the server answered 'Rate exceeded.'"),
        (b"<html><head><title>503</title></head></html>", "rss: response is not an RSS or Atom"),
        (b"  \n", "rss: response is empty"),
        (
            b"<?xml version='1.0' encoding='TF-8'?><rss/>",
            "rss: response is not valid XML (its declared encoding cannot be read, 43 bytes)",
        ),
        (b"<?xml version='1.0' encoding='utf-7'?><rss/>", "rss: response is not valid XML"),
    ],
)
def test_unusable_bodies_raise_one_line(body: bytes, expected: str) -> None:
    with pytest.raises(SourceError) as info:
        arxiv_rss.parse(body)
    assert str(info.value).startswith(expected)
    assert "\n" not in str(info.value)


def test_unknown_flavour_is_refused() -> None:
    with pytest.raises(ValueError, match="flavour"):
        arxiv_rss.fetch("http://127.0.0.1:9", "cs.LG", flavour="json")
