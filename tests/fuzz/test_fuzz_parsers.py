"""Mutated versions of every captured fixture through its parser.

Byte-level mutations (flips, cuts, splices, repeats) may break a whole body: the parser then
raises a one-line `SourceError` and nothing else. Record-level mutations break one record
of a valid body: that record is parsed or counted as skipped with a reason, and every good
record around it is kept.
"""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from recommender.sources import PARSERS, SourceError
from recommender.sources import _common as c
from recommender.types import ParseResult
from tests.fuzz.strategies import fuzz_settings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REASONS = {
    c.MISSING_TITLE,
    c.BAD_ID,
    c.BAD_DATE,
    c.TOO_LONG,
    c.INVALID_UTF8,
    c.NOT_JSON,
    c.NOT_OBJECT,
    c.MALFORMED,
}


@dataclass(frozen=True)
class Fixture:
    """A captured body and the parser it belongs to."""

    name: str
    kind: str
    file: str

    @property
    def body(self) -> bytes:
        """The captured bytes."""
        return (FIXTURES / self.file).read_bytes()


FIXTURE_SET = (
    Fixture("hf-june", "hf", "hf_daily_papers_2026-06-12.json"),
    Fixture("hf-august", "hf", "hf_daily_papers_2026-08-03.json"),
    Fixture("arxiv-atom", "arxiv", "arxiv_api_query_transformer_cs.LG.atom.xml"),
    Fixture("rss2", "rss", "arxiv_rss2_cs.LG_trimmed.xml"),
    Fixture("rss-atom", "rss", "arxiv_rss_atom_cs.AI.xml"),
    Fixture("jsonl", "jsonl", "seed_papers.jsonl"),
)
BODIES = {f.name: f.body for f in FIXTURE_SET}
KINDS = {f.name: f.kind for f in FIXTURE_SET}


def parse(kind: str, body: bytes) -> ParseResult | None:
    """Parse; a `SourceError` (one line) is an allowed outcome and gives None."""
    try:
        result = PARSERS[kind](body)
    except SourceError as exc:
        message = str(exc)
        assert "\n" not in message and message.startswith(f"{kind}: ")
        return None
    check_result(result)
    return result


def check_result(result: ParseResult) -> None:
    """Every paper is usable, every skip has a known reason."""
    for paper in result.papers:
        assert paper.id and paper.title and paper.title == paper.title.strip()
        assert len(paper.title) <= c.MAX_TITLE and len(paper.abstract) <= c.MAX_ABSTRACT
        for url in (paper.abs_url, paper.pdf_url, paper.code_url, paper.project_url):
            assert url is None or url.startswith(("http://", "https://"))
    for skipped in result.skipped:
        assert skipped.reason in REASONS or skipped.reason.startswith(c.API_ERROR), skipped


# -- byte-level mutations ----------------------------------------------------------------------


@st.composite
def byte_mutations(draw: st.DrawFn) -> tuple[str, bytes]:
    """A fixture with a few random edits to its bytes."""
    name = draw(st.sampled_from(sorted(BODIES)))
    body = bytearray(BODIES[name])
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "delete", "repeat", "truncate"]))
        at = draw(st.integers(0, max(len(body) - 1, 0)))
        if op == "flip" and body:
            body[at] = draw(st.integers(0, 255))
        elif op == "insert":
            body[at:at] = draw(
                st.one_of(
                    st.binary(max_size=40),
                    st.sampled_from(
                        [
                            b"<",
                            b"&",
                            b"]]>",
                            b'"',
                            b"\\u0000",
                            b"\xff\xfe",
                            b"\x00",
                            b"{",
                            b"</entry>",
                            b"<!DOCTYPE x [<!ENTITY a 'aaaa'>]>",
                            b"&a;",
                            b"\n",
                            b"\r\n",
                            b"\xef\xbb\xbf",
                        ]
                    ),
                )
            )
        elif op == "delete":
            del body[at : at + draw(st.integers(1, 200))]
        elif op == "repeat":
            piece = bytes(body[at : at + draw(st.integers(1, 400))])
            body[at:at] = piece * draw(st.integers(1, 5))
        elif op == "cut":
            end = draw(st.integers(at, len(body)))
            splice = draw(st.integers(0, len(body)))
            body[splice:splice] = bytes(body[at:end])
        elif op == "truncate":
            del body[at:]
    return name, bytes(body)


@fuzz_settings()
@given(case=byte_mutations())
@example(case=("hf-august", BODIES["hf-august"][:100]))
@example(case=("rss2", b"Rate exceeded."))
@example(case=("jsonl", b"\xef\xbb\xbf\n\n{}\n"))
@example(case=("arxiv-atom", b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>"))
# Found by the 10,000-case run: an XML declaration naming an unusable encoding raised
# LookupError / ValueError / UnicodeError from inside the XML parser.
@example(case=("arxiv-atom", BODIES["arxiv-atom"].replace(b"UTF-8", b"TF-8", 1)))
@example(case=("rss2", b"<?xml version='1.0' encoding='utf-7'?><rss><channel/></rss>"))
@example(case=("rss-atom", b"<?xml version='1.0' encoding='rot13'?><feed/>"))
@example(case=("rss-atom", b"<?xml version='1.0' encoding='idna'?><feed>\x80</feed>"))
def test_byte_mutations_never_crash(case: tuple[str, bytes]) -> None:
    name, body = case
    parse(KINDS[name], body)


# -- record-level mutations --------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.sampled_from(
        [
            "",
            " ",
            "2401.12345",
            "2401.12345v9",
            "not-an-id",
            "x" * 30_000,
            "2026-02-30T00:00:00",
            "https://evil.example",
            "javascript:alert(1)",
        ]
    ),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
# Text an XML document can hold (no C0 controls but tab and newlines, no surrogates).
XML_TEXT = st.one_of(
    st.text(
        alphabet=st.characters(
            blacklist_categories=("Cs",),
            blacklist_characters="".join(chr(i) for i in range(32) if chr(i) not in "\t\n\r")
            + "\ufffe\uffff",
        ),
        max_size=60,
    ),
    st.sampled_from(
        [
            "",
            " ",
            "2401.12345v1",
            "oai:arXiv.org:9999.99999v1",
            "x" * 30_000,
            "Mon, 32 Foo 2026 99:99:99 +9999",
            "arXiv:2401.1 Announce Type: replace",
            "http://arxiv.org/api/errors#x",
        ]
    ),
)


def _ids(result: ParseResult | None) -> list[str]:
    return [p.id for p in result.papers] if result else []


def check_neighbours(kind: str, baseline: list[str], index: int, body: bytes) -> None:
    """Record `index` was mutated: it is parsed or skipped, and every other record is kept.

    `baseline` holds the ids the unmutated body gives, one per record, in order.
    """
    result = parse(kind, body)
    assert result is not None, "a valid body with one bad record must not fail as a whole"
    assert len(result.papers) + len(result.skipped) == len(baseline)
    others = {pid for i, pid in enumerate(baseline) if i != index}
    assert others <= set(_ids(result))


def _serialise(kind: str, records: list[Any]) -> bytes:
    """JSON records back to a body of `kind`."""
    if kind == "hf":
        return json.dumps(records).encode()
    return "\n".join(json.dumps(r) for r in records).encode()


# JSON fixtures as records (JSON Lines cut to 30 lines: every line is alike, and parsing the
# whole file for every case would only slow the run down).
RECORDS = {
    "hf-june": json.loads(BODIES["hf-june"]),
    "hf-august": json.loads(BODIES["hf-august"]),
    "jsonl": [json.loads(x) for x in BODIES["jsonl"].splitlines()[:30]],
}
BASELINE = {
    name: _ids(parse(KINDS[name], _serialise(KINDS[name], r))) for name, r in RECORDS.items()
}


@st.composite
def json_record_mutations(draw: st.DrawFn) -> tuple[str, int, list[Any]]:
    """(fixture, index, mutated records) for HF JSON and JSON Lines."""
    name = draw(st.sampled_from(sorted(RECORDS)))
    records = RECORDS[name]
    index = draw(st.integers(0, len(records) - 1))
    mutated = copy.deepcopy(records)
    target = mutated[index]
    how = draw(st.sampled_from(["replace", "field", "nested", "drop"]))
    if how == "replace":
        mutated[index] = draw(JSON_VALUES)
    else:
        holder = target.get("paper", target) if how == "nested" else target
        keys = [*sorted(holder), "id", "title", "authors", "summary", "publishedAt", "upvotes"]
        key = draw(st.sampled_from(keys))
        if how == "drop":
            holder.pop(key, None)
        else:
            holder[key] = draw(JSON_VALUES)
    return name, index, mutated


@fuzz_settings()
@given(case=json_record_mutations())
@example(case=("hf-august", 0, [float("inf"), *RECORDS["hf-august"][1:]]))
def test_one_bad_json_record_keeps_the_others(case: tuple[str, int, list[Any]]) -> None:
    name, index, mutated = case
    kind = KINDS[name]
    check_neighbours(kind, BASELINE[name], index, _serialise(kind, mutated))


@fuzz_settings()
@given(
    index=st.integers(0, len(RECORDS["jsonl"]) - 1),
    line=st.one_of(st.binary(max_size=80), st.sampled_from([b"\xff\xfe{", b"[", b"null", b"{}"])),
)
@example(index=3, line=b"\xff\xfe{")
@example(index=0, line=b"\xef\xbb\xbf")  # found by the 10,000-case run (a test-side slip)
def test_one_bad_jsonl_line_keeps_the_others(index: int, line: bytes) -> None:
    lines = _serialise("jsonl", RECORDS["jsonl"]).split(b"\n")
    # A blank line (a byte-order mark alone counts as blank on line 1) is not a record.
    if not line.removeprefix(b"\xef\xbb\xbf").strip() or b"\n" in line or b"\r" in line:
        line = b"{not json"
    lines[index] = line
    check_neighbours("jsonl", BASELINE["jsonl"], index, b"\n".join(lines))


ATOM = "{http://www.w3.org/2005/Atom}"
XML_FIXTURES = {
    "arxiv-atom": f"{ATOM}entry",
    "rss-atom": f"{ATOM}entry",
    "rss2": "channel/item",
}


@st.composite
def xml_record_mutations(draw: st.DrawFn) -> tuple[str, int, bytes, bytes]:
    """(fixture, entry index, original body re-serialised, mutated body) for the XML feeds."""
    name = draw(st.sampled_from(sorted(XML_FIXTURES)))
    # No default namespace: an RSS 2.0 root must stay un-namespaced when written back.
    for prefix, uri in (
        ("atom", "http://www.w3.org/2005/Atom"),
        ("arxiv", "http://arxiv.org/schemas/atom"),
        ("opensearch", "http://a9.com/-/spec/opensearch/1.1/"),
        ("dc", "http://purl.org/dc/elements/1.1/"),
    ):
        ET.register_namespace(prefix, uri)
    root = ET.fromstring(BODIES[name])
    entries = root.findall(XML_FIXTURES[name])
    original = ET.tostring(root)
    index = draw(st.integers(0, len(entries) - 1))
    entry = entries[index]
    children = list(entry)
    how = draw(st.sampled_from(["text", "drop", "attr", "add", "empty", "nest"]))
    if how == "text" and children:
        draw(st.sampled_from(children)).text = draw(XML_TEXT)
    elif how == "drop" and children:
        entry.remove(draw(st.sampled_from(children)))
    elif how == "attr" and children:
        child = draw(st.sampled_from(children))
        child.set(draw(st.sampled_from(["href", "rel", "term", "type"])), draw(XML_TEXT))
    elif how == "add":
        tag = draw(
            st.sampled_from(
                [
                    f"{ATOM}id",
                    f"{ATOM}title",
                    f"{ATOM}author",
                    "guid",
                    "title",
                    f"{ATOM}link",
                    "category",
                    "{http://purl.org/dc/elements/1.1/}creator",
                ]
            )
        )
        ET.SubElement(entry, tag).text = draw(XML_TEXT)
    elif how == "empty":
        for child in children:
            entry.remove(child)
    elif children:
        child = draw(st.sampled_from(children))
        ET.SubElement(child, "b").text = draw(XML_TEXT)
    return name, index, original, ET.tostring(root)


@fuzz_settings()
@given(case=xml_record_mutations())
def test_one_bad_xml_entry_keeps_the_others(case: tuple[str, int, bytes, bytes]) -> None:
    name, index, original, mutated = case
    kind = KINDS[name]
    before = parse(kind, original)
    assert before is not None
    count = len(before.papers) + len(before.skipped)
    result = parse(kind, mutated)
    assert result is not None, "a valid feed with one bad entry must not fail as a whole"
    assert len(result.papers) + len(result.skipped) == count
    others = {pid for i, pid in enumerate(_ids(before)) if i != index}
    assert others <= set(_ids(result))


@pytest.mark.parametrize("fixture", FIXTURE_SET, ids=lambda f: f.name)
def test_every_fixture_parses_cleanly(fixture: Fixture) -> None:
    """The baseline the mutations start from."""
    result = parse(fixture.kind, fixture.body)
    assert result is not None and result.papers and not result.skipped
