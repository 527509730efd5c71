"""arXiv API Atom parser, on captured responses and on broken ones."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from recommender.sources import arxiv_api
from recommender.sources.http import SourceError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
NOW = datetime(2026, 6, 14, tzinfo=UTC)


def recorded(name: str) -> tuple[int, bytes]:
    """Status and body of an arxiv.py recording."""
    data = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return data["status_code"], data["body"].encode("utf-8")


@pytest.fixture(scope="module")
def transformer() -> bytes:
    return (FIXTURES / "arxiv_api_query_transformer_cs.LG.atom.xml").read_bytes()


def test_real_query_page(transformer: bytes) -> None:
    result = arxiv_api.parse(transformer, now=NOW)
    assert [p.id for p in result.papers] == [
        "2606.13677",
        "2606.13591",
        "2606.13568",
        "2606.13515",
        "2606.13501",
    ]
    assert result.skipped == []
    mana = result.papers[0]
    assert mana.title == "Mana: Dexterous Manipulation of Articulated Tools"
    assert mana.version == 1
    assert mana.authors == ["Zhao-Heng Yin", "Guanya Shi", "Pieter Abbeel", "C. Karen Liu"]
    assert mana.categories == ["cs.RO", "cs.AI", "cs.CV", "cs.LG"]
    assert mana.primary_category == "cs.RO"
    assert mana.published == datetime(2026, 6, 11, 17, 59, 49, tzinfo=UTC)
    assert mana.updated == mana.published
    assert mana.abs_url == "https://arxiv.org/abs/2606.13677v1"
    assert mana.pdf_url == "https://arxiv.org/pdf/2606.13677v1"
    # "Project Page: https://zhaohengyin.github.io/mana": a project page, not a code repo.
    assert mana.project_url == "https://zhaohengyin.github.io/mana"
    assert mana.code_url is None
    assert "(<1 minute per tool)" in mana.abstract
    assert mana.sources == ["arxiv"]
    assert mana.first_seen == NOW
    assert (
        result.papers[4].title == "GF-DiT: Scheduling Parallelism for Diffusion Transformer Serving"
    )


def test_total_results_and_page_info(transformer: bytes) -> None:
    assert arxiv_api.total_results(transformer) == 28946
    assert arxiv_api.page_info(transformer) == (5, 28946)


def test_single_id_recording() -> None:
    status, body = recorded("arxivpy_recorded_id_1605.08386_s0_m100_199195aa31ad.json")
    assert status == 200
    (paper,) = arxiv_api.parse(body).papers
    assert paper.id == "1605.08386"
    assert paper.title == "Heat-bath random walks with Markov bases"
    assert paper.authors == ["Caprice Stanley", "Tobias Windisch"]
    assert paper.categories == ["math.CO", "math.ST"]
    assert paper.primary_category == "math.CO"
    assert paper.doi is None


def test_missing_id_is_simply_absent_from_the_feed() -> None:
    _, body = recorded("arxivpy_recorded_id_0808.05394_1707.08567_s0_m100_42e5aa0ec3af.json")
    result = arxiv_api.parse(body)
    assert [p.id for p in result.papers] == ["1707.08567"]
    assert len(result.papers[0].authors) == 34
    assert result.papers[0].primary_category == "cs.IT"


def test_search_page_with_dois_and_multiline_abstracts() -> None:
    _, body = recorded("arxivpy_recorded_q_testing_s0_m10_bc5a6c384fe9.json")
    result = arxiv_api.parse(body)
    assert len(result.papers) == 10
    assert arxiv_api.total_results(body) == 214881
    by_id = {p.id: p for p in result.papers}
    assert by_id["2202.12139"].doi == "10.1109/ICSTW55395.2022.00035"
    assert by_id["1202.4527"].doi is None
    assert by_id["2204.08348"].version == 3
    assert by_id["2302.03287"].title == "ChatGPT and Software Testing Education: Promises & Perils"
    review = by_id["1812.11470"]
    assert "\n" not in review.abstract
    assert "whole. Objective. In this" in review.abstract


def test_error_feed_is_reported_as_skipped() -> None:
    status, body = recorded("arxivpy_recorded_id_abc_s0_m100_b79c8dcf6bc3.json")
    assert status == 400
    result = arxiv_api.parse(body)
    assert result.papers == []
    assert [(s.reason, s.where) for s in result.skipped] == [
        ("api error: incorrect id format for abc", "entry 1")
    ]
    assert arxiv_api.error_message(body) == "incorrect id format for abc"


def test_error_message_is_none_for_normal_and_broken_feeds(transformer: bytes) -> None:
    assert arxiv_api.error_message(transformer) is None
    assert arxiv_api.error_message(b"<html>") is None


ENTRY = """
  <entry>
    <id>{id}</id>
    <title>{title}</title>
    <updated>{updated}</updated>
    <published>2024-01-02T03:04:05Z</published>
    <summary>  An
      abstract. </summary>
    <author><name>Ada Lovelace</name></author>
    <link href="https://arxiv.org/abs/2401.00001v2" rel="alternate" type="text/html"/>
    <link title="doi" href="http://dx.doi.org/10.1000/xyz" rel="related"/>
    <arxiv:comment>{comment}</arxiv:comment>
    <category term="cs.LG"/><category term="cs.LG"/><category term="stat.ML"/>
  </entry>"""


def feed(*entries: str) -> bytes:
    head = (
        '<feed xmlns="http://www.w3.org/2005/Atom" xmlns:arxiv="http://arxiv.org/schemas/atom" '
        'xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">'
        f"<opensearch:totalResults>{len(entries)}</opensearch:totalResults>"
    )
    return (head + "".join(entries) + "</feed>").encode()


def entry(**fields: str) -> str:
    values = {
        "id": "http://arxiv.org/abs/2401.00001v2",
        "title": "A Title",
        "updated": "2024-02-01T00:00:00Z",
        "comment": "10 pages",
    }
    values.update(fields)
    return ENTRY.format(**values)


def test_synthetic_entry_fields() -> None:
    (paper,) = arxiv_api.parse(
        feed(entry(comment="Code: https://github.com/org/repo.git. 12 pages"))
    ).papers
    assert (paper.id, paper.version) == ("2401.00001", 2)
    assert paper.abstract == "An abstract."
    assert paper.code_url == "https://github.com/org/repo"
    assert paper.doi == "10.1000/xyz"
    assert paper.categories == ["cs.LG", "stat.ML"]
    assert paper.primary_category is None
    assert paper.pdf_url == "https://arxiv.org/pdf/2401.00001"
    assert paper.updated == datetime(2024, 2, 1, tzinfo=UTC)


def test_old_style_id() -> None:
    (paper,) = arxiv_api.parse(feed(entry(id="http://arxiv.org/abs/hep-th/9901001v3"))).papers
    assert (paper.id, paper.version) == ("hep-th/9901001", 3)


def test_malformed_entries_are_skipped_and_the_rest_parse() -> None:
    body = feed(
        entry(),
        entry(id="http://arxiv.org/abs/not-an-id"),
        entry(title="   "),
        entry(updated="31/02/2024"),
        entry(title="t" * 1001),
        entry(id="http://arxiv.org/abs/2401.00002v1"),
    )
    result = arxiv_api.parse(body)
    assert [p.id for p in result.papers] == ["2401.00001", "2401.00002"]
    assert [(s.reason, s.where) for s in result.skipped] == [
        ("bad id", "entry 2"),
        ("missing title", "entry 3"),
        ("bad date", "entry 4"),
        ("too long", "entry 5"),
    ]


def test_titles_with_newlines_and_indentation_are_collapsed() -> None:
    body = feed(entry(title="Learning to\n      Rank,\n      Quickly"))
    assert arxiv_api.parse(body).papers[0].title == "Learning to Rank, Quickly"


def test_truncated_feed_raises_one_line(transformer: bytes) -> None:
    with pytest.raises(SourceError) as info:
        arxiv_api.parse(transformer[:5000])
    message = str(info.value)
    assert message.startswith("arxiv: response is not valid XML")
    assert "\n" not in message


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"not": "xml"}', "arxiv: response is not valid XML"),
        (b"<html><body>Service unavailable</body></html>", "arxiv: response is not an Atom feed"),
        (b"", "arxiv: response is empty"),
        (
            b'<?xml version="1.0"?><!DOCTYPE f [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
            b'<feed xmlns="http://www.w3.org/2005/Atom"><title>&b;</title></feed>',
            "arxiv: response refused: unsafe XML",
        ),
        (
            b'<?xml version="1.0"?><!DOCTYPE f [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b'<feed xmlns="http://www.w3.org/2005/Atom"><title>&x;</title></feed>',
            "arxiv: response refused: unsafe XML",
        ),
    ],
)
def test_unusable_bodies_raise_one_line(body: bytes, expected: str) -> None:
    with pytest.raises(SourceError) as info:
        arxiv_api.parse(body)
    assert str(info.value).startswith(expected)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("query", "category", "expected"),
    [
        (None, None, "cat:cs.LG"),
        ("", "", "cat:cs.LG"),
        ("diffusion models", None, 'all:"diffusion models"'),
        ("diffusion models", "cs.CV", 'all:"diffusion models" AND cat:cs.CV'),
        (None, "stat.ML", "cat:stat.ML"),
        ('say "hi"', None, 'all:"say hi"'),
        ("ti:transformer AND au:vaswani", "cs.CL", "(ti:transformer AND au:vaswani) AND cat:cs.CL"),
    ],
)
def test_build_query(query: str | None, category: str | None, expected: str) -> None:
    assert arxiv_api.build_query(query, category) == expected
