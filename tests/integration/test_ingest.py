"""Ingest against a real Redis: dedup across sources and versions, and bad input.

Feeds are the captured responses in tests/fixtures, or records built from them (a
captured entry with its id, version or text changed), parsed by the real parsers.
"""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from recommender import ingest as ingest_module
from recommender.ids import title_id
from recommender.ingest import REPLACEMENT_UNKNOWN, ingest
from recommender.sources import SourceError, parse_body
from recommender.store import PREFIX, Store, StoreUnavailable
from recommender.types import IngestReport, Paper, ParseResult

T1 = datetime(2026, 6, 12, 9, 0, tzinfo=UTC)
T2 = T1 + timedelta(hours=6)
T3 = T1 + timedelta(days=1)

ATOM = "http://www.w3.org/2005/Atom"
ARXIV = "http://arxiv.org/schemas/atom"
HF_JUNE = "hf_daily_papers_2026-06-12.json"
HF_AUGUST = "hf_daily_papers_2026-08-03.json"
ARXIV_API = "arxiv_api_query_transformer_cs.LG.atom.xml"
RSS2 = "arxiv_rss2_cs.LG_trimmed.xml"
RSS_ATOM = "arxiv_rss_atom_cs.AI.xml"
SEED = "seed_papers.jsonl"
ARXIV_TESTING = "arxivpy_recorded_q_testing_s0_m10_bc5a6c384fe9.json"
ARXIV_BAD_ID = "arxivpy_recorded_id_abc_s0_m100_b79c8dcf6bc3.json"

for prefix, uri in (
    ("", ATOM),
    ("arxiv", ARXIV),
    ("opensearch", "http://a9.com/-/spec/opensearch/1.1/"),
    ("dc", "http://purl.org/dc/elements/1.1/"),
    ("atom", ATOM),
):
    ET.register_namespace(prefix, uri)


# -- feeds built from the captured ones --------------------------------------------------


def run(store: Store, kind: str, body: bytes, now: datetime = T1) -> IngestReport:
    """Parse and ingest one fetched body, as the scheduler does."""
    return ingest(store, parse_body(kind, body, now=now), kind, now=now)


def read(fixtures_dir: Path, name: str) -> bytes:
    """A captured response; the arxiv.py recordings keep the Atom body inside JSON."""
    body = (fixtures_dir / name).read_bytes()
    if name.startswith("arxivpy_"):
        return json.loads(body)["body"].encode("utf-8")
    return body


def arxiv_api_feed(fixtures_dir: Path, entries: list[dict[str, Any]]) -> bytes:
    """An arXiv API page shaped like the captured one, holding the given entries.

    Each entry starts as a copy of the captured page's first entry; keys `id` (with
    version), `title`, `summary`, `updated`, `published` and `categories` replace its
    fields.
    """
    root = ET.fromstring((fixtures_dir / ARXIV_API).read_bytes())
    captured = root.findall(f"{{{ATOM}}}entry")
    for element in captured:
        root.remove(element)
    for fields in entries:
        entry = copy.deepcopy(captured[0])
        versioned = fields["id"]
        entry.find(f"{{{ATOM}}}id").text = f"http://arxiv.org/abs/{versioned}"  # type: ignore[union-attr]
        for link in entry.findall(f"{{{ATOM}}}link"):
            kind = "pdf" if link.get("title") == "pdf" else "abs"
            link.set("href", f"https://arxiv.org/{kind}/{versioned}")
        for tag in ("title", "summary", "updated", "published"):
            if tag in fields:
                entry.find(f"{{{ATOM}}}{tag}").text = fields[tag]  # type: ignore[union-attr]
        if "categories" in fields:
            for category in entry.findall(f"{{{ATOM}}}category"):
                entry.remove(category)
            for term in fields["categories"]:
                ET.SubElement(entry, f"{{{ATOM}}}category", term=term)
            primary = entry.find(f"{{{ARXIV}}}primary_category")
            primary.set("term", fields["categories"][0])  # type: ignore[union-attr]
        comment = entry.find(f"{{{ARXIV}}}comment")
        if comment is not None:
            entry.remove(comment)
        root.append(entry)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def rss_feed(fixtures_dir: Path, items: list[dict[str, str]]) -> bytes:
    """An arXiv RSS 2.0 feed shaped like the captured one, holding the given items.

    Keys: `id` (with version), `announce` (new, replace, cross, ...), `title`, `abstract`.
    """
    root = ET.fromstring((fixtures_dir / RSS2).read_bytes())
    channel = root.find("channel")
    assert channel is not None
    captured = channel.findall("item")
    for element in captured:
        channel.remove(element)
    for fields in items:
        item = copy.deepcopy(captured[0])
        bare = fields["id"].split("v")[0]
        announce = fields.get("announce", "new")
        item.find("link").text = f"https://arxiv.org/abs/{bare}"  # type: ignore[union-attr]
        item.find("guid").text = f"oai:arXiv.org:{fields['id']}"  # type: ignore[union-attr]
        item.find(f"{{{ARXIV}}}announce_type").text = announce  # type: ignore[union-attr]
        abstract = fields.get("abstract", "An abstract.")
        description = f"arXiv:{fields['id']} Announce Type: {announce} \nAbstract: {abstract}"
        item.find("description").text = description  # type: ignore[union-attr]
        if "title" in fields:
            item.find("title").text = fields["title"]  # type: ignore[union-attr]
        channel.append(item)
    return ET.tostring(root, encoding="utf-8")


def hf_entries(fixtures_dir: Path) -> list[dict[str, Any]]:
    """The captured June daily-papers entries, as JSON objects to edit."""
    return json.loads((fixtures_dir / HF_JUNE).read_bytes())


def hf_entry(fixtures_dir: Path, paper_id: str, **paper_fields: Any) -> dict[str, Any]:
    """A captured daily-papers entry moved to `paper_id`, with some paper fields changed."""
    entry = copy.deepcopy(hf_entries(fixtures_dir)[0])
    entry["paper"]["id"] = paper_id
    entry["paper"].update(paper_fields)
    return entry


def jsonl(*records: dict[str, Any]) -> bytes:
    """JSON Lines of `records`."""
    return "".join(json.dumps(r) + "\n" for r in records).encode("utf-8")


def snapshot(store: Store) -> dict[bytes, Any]:
    """Every paperbot key and its whole value, to prove that nothing changed."""
    out: dict[bytes, Any] = {}
    for key in sorted(store.r.scan_iter(match=f"{PREFIX}*")):
        kind = store.r.type(key)
        if kind == b"string":
            out[key] = store.r.get(key)
        elif kind == b"hash":
            out[key] = store.r.hgetall(key)
        elif kind == b"zset":
            out[key] = store.r.zrange(key, 0, -1, withscores=True)
        elif kind == b"set":
            out[key] = store.r.smembers(key)
        else:
            out[key] = store.r.xrange(key)
    return out


@pytest.fixture
def writes(store: Store, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """How many papers each `write_papers` call on `store` wrote (the calls still go through)."""
    sizes: list[int] = []
    real = store.write_papers

    def counting(papers: list[Paper], **kwargs: Any) -> None:
        sizes.append(len(papers))
        real(papers, **kwargs)

    monkeypatch.setattr(store, "write_papers", counting)
    yield sizes


# -- the same paper from several sources ---------------------------------------------------


def test_hf_paper_then_its_newer_arxiv_record_is_one_paper(
    store: Store, fixtures_dir: Path
) -> None:
    first = run(store, "hf", (fixtures_dir / HF_JUNE).read_bytes(), T1)
    assert (first.new, first.updated, first.skipped) == (30, 0, 0)
    hf = store.get_paper("2606.13392")
    assert hf is not None and hf.title == "MiniMax Sparse Attention" and hf.version is None

    revised = arxiv_api_feed(
        fixtures_dir,
        [
            {
                "id": "2606.13392v2",
                "title": "MiniMax Sparse Attention: Scaling Sparse Attention to Long Contexts",
                "summary": "We revise the method and add long-context evaluations.",
                "updated": "2026-06-14T10:00:00Z",
                "published": "2026-06-11T09:00:00Z",
                "categories": ["cs.CL", "cs.LG"],
            }
        ],
    )
    second = run(store, "arxiv", revised, T2)

    assert (second.new, second.updated, second.unchanged) == (0, 1, 0)
    assert second.updated_ids == ["2606.13392"]
    assert store.paper_count() == 30
    paper = store.get_paper("2606.13392")
    assert paper is not None
    # The arXiv record is the authority on text...
    assert paper.title == "MiniMax Sparse Attention: Scaling Sparse Attention to Long Contexts"
    assert paper.abstract == "We revise the method and add long-context evaluations."
    assert paper.version == 2
    assert paper.updated == datetime(2026, 6, 14, 10, tzinfo=UTC)
    assert paper.primary_category == "cs.CL"
    # ...while the community signals and links from HF stay, and sets are unioned.
    assert (paper.upvotes, paper.github_stars, paper.comments) == (103, 251, 4)
    assert paper.code_url == "https://github.com/MiniMax-AI/MSA"
    assert paper.keywords == hf.keywords and paper.summary == hf.summary
    assert paper.sources == ["hf", "arxiv"]
    assert paper.categories == ["cs.CL", "cs.LG"]
    assert paper.first_seen == T1
    assert store.source_counts() == {"hf": 30}

    # The HF listing seen again (it has no version) does not undo the arXiv text.
    again = run(store, "hf", (fixtures_dir / HF_JUNE).read_bytes(), T3)
    assert (again.new, again.updated, again.unchanged) == (0, 0, 30)
    assert store.get_paper("2606.13392") == paper


def test_v1_then_v2_newer_text_wins_and_signals_are_unioned(
    store: Store, fixtures_dir: Path
) -> None:
    run(store, "arxiv", (fixtures_dir / ARXIV_API).read_bytes(), T1)
    v1 = store.get_paper("2606.13677")
    assert v1 is not None and v1.version == 1
    assert v1.categories == ["cs.RO", "cs.AI", "cs.CV", "cs.LG"]

    v2 = arxiv_api_feed(
        fixtures_dir,
        [
            {
                "id": "2606.13677v2",
                "title": "Mana: Dexterous Manipulation of Articulated Tools with Animation",
                "summary": "Version 2 adds real-robot results on six more tools.",
                "updated": "2026-06-20T08:00:00Z",
                "categories": ["cs.RO", "cs.GR"],
            }
        ],
    )
    report = run(store, "arxiv", v2, T2)
    assert (report.new, report.updated) == (0, 1)

    paper = store.get_paper("2606.13677")
    assert paper is not None
    assert paper.title == "Mana: Dexterous Manipulation of Articulated Tools with Animation"
    assert paper.abstract == "Version 2 adds real-robot results on six more tools."
    assert paper.version == 2
    assert paper.pdf_url == "https://arxiv.org/pdf/2606.13677v2"
    assert paper.categories == ["cs.RO", "cs.AI", "cs.CV", "cs.LG", "cs.GR"]
    assert paper.published == v1.published
    assert paper.project_url == "https://zhaohengyin.github.io/mana"
    assert paper.first_seen == T1
    assert store.paper_count() == 5

    # HF then reports upvotes: a signal merges in, the arXiv v2 text stays.
    liked = json.dumps([hf_entry(fixtures_dir, "2606.13677", upvotes=40)]).encode()
    assert run(store, "hf", liked, T2).updated == 1
    fewer = json.dumps([hf_entry(fixtures_dir, "2606.13677", upvotes=12)]).encode()
    assert run(store, "hf", fewer, T3).unchanged == 1
    final = store.get_paper("2606.13677")
    assert final is not None
    assert final.upvotes == 40
    assert final.title == paper.title and final.version == 2
    assert final.sources == ["arxiv", "hf"]


def test_v2_then_v1_the_older_version_does_not_overwrite(store: Store, fixtures_dir: Path) -> None:
    run(store, "arxiv", read(fixtures_dir, ARXIV_TESTING), T1)
    stored = store.get_paper("2005.14124")
    assert stored is not None and stored.version == 2

    older = arxiv_api_feed(
        fixtures_dir,
        [
            {
                "id": "2005.14124v1",
                "title": "Active Fuzzing for Testing Cyber-Physical Systems (first draft)",
                "summary": "The first version's abstract.",
                "updated": "2020-05-28T16:19:50Z",
                "categories": ["cs.SE", "cs.CR", "cs.LG"],
            }
        ],
    )
    report = run(store, "arxiv", older, T2)

    assert (report.new, report.updated, report.unchanged) == (0, 0, 1)
    assert store.get_paper("2005.14124") == stored


def test_reingesting_the_same_feed_changes_nothing(
    store: Store, fixtures_dir: Path, writes: list[int]
) -> None:
    feeds = [
        ("hf", HF_JUNE),
        ("hf", HF_AUGUST),
        ("arxiv", ARXIV_API),
        ("arxiv", ARXIV_TESTING),
        ("rss", RSS2),
        ("rss", RSS_ATOM),
        ("jsonl", SEED),
    ]
    total = 0
    for kind, name in feeds:
        report = run(store, kind, read(fixtures_dir, name), T1)
        assert report.new > 0 and report.skipped == 0
        total += report.new
    assert store.paper_count() == total == 30 + 3 + 5 + 10 + 3 + 7 + 95
    before = snapshot(store)
    writes.clear()

    for kind, name in feeds:
        # A later fetch of the very same listing: parsed at another time.
        report = run(store, kind, read(fixtures_dir, name), T3)
        assert (report.new, report.updated, report.skipped) == (0, 0, 0), name
        assert report.unchanged == len(parse_body(kind, read(fixtures_dir, name)).papers)

    assert writes == []
    assert snapshot(store) == before


def test_title_only_paper_is_adopted_by_its_arxiv_record(store: Store, fixtures_dir: Path) -> None:
    seed = (fixtures_dir / SEED).read_bytes()
    record = json.loads(seed.splitlines()[0])
    first = run(store, "jsonl", seed, T1)
    assert first.new == 95
    old_id = title_id(record["title"])
    assert store.get_paper(old_id) is not None

    # The arXiv title differs in case and spacing; the normalised title still matches.
    shouted = "  ".join(record["title"].upper().split())
    arxiv = arxiv_api_feed(
        fixtures_dir,
        [
            {
                "id": "2412.08480v1",
                "title": shouted,
                "summary": "The arXiv abstract of InvDiff.",
                "categories": ["cs.CV", "cs.LG"],
            }
        ],
    )
    report = run(store, "arxiv", arxiv, T2)

    assert (report.new, report.updated) == (0, 1)
    assert report.updated_ids == ["2412.08480"]
    assert store.paper_count() == 95
    paper = store.get_paper("2412.08480")
    assert paper is not None
    assert store.get_paper(old_id) == paper  # the retired id is an alias now
    assert store.resolve_ids([old_id]) == ["2412.08480"]
    assert store.r.exists(f"{PREFIX}paper:{old_id}") == 0
    assert old_id not in store.all_paper_ids()
    assert paper.first_seen == T1
    assert store.paper_ids_since(T1.timestamp(), T1.timestamp())[0] == "2412.08480"
    assert paper.title == " ".join(shouted.split())  # the parser collapses spaces
    assert paper.abstract == "The arXiv abstract of InvDiff."
    assert paper.version == 1
    assert paper.code_url == "https://github.com/Hundredl/InvDiff"
    assert paper.sources == ["jsonl", "arxiv"]

    # Both sources seen again: still one paper, nothing changes.
    before = snapshot(store)
    assert run(store, "jsonl", seed, T3).unchanged == 95
    assert run(store, "arxiv", arxiv, T3).unchanged == 1
    assert snapshot(store) == before


def test_arxiv_record_first_then_its_title_only_copy_merges_in(
    store: Store, fixtures_dir: Path
) -> None:
    run(store, "arxiv", (fixtures_dir / ARXIV_API).read_bytes(), T1)
    copy_ = jsonl(
        {
            "title": "MANA: dexterous manipulation of articulated tools",
            "code_url": "https://github.com/zhaohengyin/mana",
        }
    )
    report = run(store, "jsonl", copy_, T2)

    assert (report.new, report.updated) == (0, 1)
    assert store.paper_count() == 5
    paper = store.get_paper("2606.13677")
    assert paper is not None
    assert paper.code_url == "https://github.com/zhaohengyin/mana"
    assert paper.title == "Mana: Dexterous Manipulation of Articulated Tools"
    assert paper.sources == ["arxiv", "jsonl"]
    assert run(store, "jsonl", copy_, T3).unchanged == 1


def test_title_only_record_and_its_arxiv_record_in_one_batch(store: Store) -> None:
    title_only = parse_body("jsonl", jsonl({"title": "Graph Nets", "upvotes": 7}), now=T1)
    arxiv = parse_body("jsonl", jsonl({"arxiv_id": "1806.01261v3", "title": "Graph nets"}), now=T1)
    both = ParseResult(papers=title_only.papers + arxiv.papers)

    report = ingest(store, both, "jsonl", now=T1)

    assert (report.new, report.updated, report.new_ids) == (1, 0, ["1806.01261"])
    assert store.all_paper_ids() == ["1806.01261"]
    paper = store.get_paper(title_id("Graph Nets"))
    assert paper is not None and paper.id == "1806.01261" and paper.upvotes == 7
    assert store.source_counts() == {"jsonl": 1}


@pytest.mark.parametrize("upvotes", [0, 5])
def test_a_paper_reached_twice_in_one_run_is_counted_once(
    store: Store, monkeypatch: pytest.MonkeyPatch, upvotes: int
) -> None:
    run(store, "jsonl", jsonl({"title": "Graph Nets"}), T1)
    # Three records, two batches: the title-only copy (changing the paper or not), another
    # paper, then the paper's arXiv record, which adopts it in the second batch.
    monkeypatch.setattr(ingest_module, "BATCH", 2)
    records = jsonl(
        {"title": "Graph Nets", "upvotes": upvotes},
        {"arxiv_id": "1806.01262", "title": "Another paper"},
        {"arxiv_id": "1806.01261v3", "title": "Graph nets"},
    )

    report = run(store, "jsonl", records, T2)

    assert (report.new, report.updated, report.unchanged) == (1, 1, 0)
    assert (report.new_ids, report.updated_ids) == (["1806.01262"], ["1806.01261"])
    paper = store.get_paper(title_id("Graph Nets"))
    assert paper is not None and (paper.id, paper.upvotes) == ("1806.01261", upvotes)


# -- RSS replacements ----------------------------------------------------------------------


def test_rss_replacement_of_an_unknown_paper_is_skipped(store: Store, fixtures_dir: Path) -> None:
    feed = rss_feed(
        fixtures_dir,
        [
            {"id": "2604.30001v1", "announce": "new", "title": "A New Paper"},
            {"id": "2603.10001v2", "announce": "replace", "title": "An Old Paper Revised"},
            {"id": "2603.10002v3", "announce": "replace-cross", "title": "Another Revised"},
        ],
    )
    report = run(store, "rss", feed, T1)

    assert (report.new, report.skipped) == (1, 2)
    assert report.reasons == {REPLACEMENT_UNKNOWN: 2}
    assert REPLACEMENT_UNKNOWN in report.summary()
    assert store.all_paper_ids() == ["2604.30001"]


def test_rss_replacement_of_a_known_paper_updates_it(store: Store, fixtures_dir: Path) -> None:
    run(store, "rss", (fixtures_dir / RSS2).read_bytes(), T1)
    original = store.get_paper("2604.21952")
    assert original is not None and original.version == 1

    feed = rss_feed(
        fixtures_dir,
        [
            {
                "id": "2604.21952v2",
                "announce": "replace",
                "title": original.title,
                "abstract": "The revised abstract of version 2.",
            }
        ],
    )
    report = run(store, "rss", feed, T2)

    assert (report.new, report.updated, report.skipped) == (0, 1, 0)
    paper = store.get_paper("2604.21952")
    assert paper is not None
    assert (paper.version, paper.abstract) == (2, "The revised abstract of version 2.")
    assert paper.first_seen == T1
    assert store.paper_count() == 3


# -- batches ---------------------------------------------------------------------------------


def test_duplicate_ids_inside_one_feed_are_merged(store: Store, fixtures_dir: Path) -> None:
    entries = [
        hf_entry(fixtures_dir, "2606.00467", upvotes=5),
        hf_entry(fixtures_dir, "2606.00467v1", upvotes=9),
        hf_entry(fixtures_dir, "2606.00467", upvotes=2),
    ]
    report = run(store, "hf", json.dumps(entries).encode(), T1)

    assert (report.new, report.updated, report.unchanged) == (1, 0, 0)
    assert report.new_ids == ["2606.00467"]
    paper = store.get_paper("2606.00467")
    assert paper is not None and paper.upvotes == 9 and paper.version == 1

    versions = jsonl(
        {"arxiv_id": "2401.00001v1", "title": "First title", "abstract": "v1"},
        {"arxiv_id": "2401.00001v2", "title": "Second title", "abstract": "v2"},
        {"arxiv_id": "2401.00001v1", "title": "First title", "abstract": "v1"},
    )
    assert run(store, "jsonl", versions, T1).new == 1
    paper = store.get_paper("2401.00001")
    assert paper is not None and (paper.title, paper.version) == ("Second title", 2)
    assert store.paper_count() == 2


def seed_records(fixtures_dir: Path, n: int) -> list[dict[str, Any]]:
    """`n` JSONL records with real titles and abstracts under distinct arXiv ids."""
    seed = [json.loads(line) for line in (fixtures_dir / SEED).read_bytes().splitlines()]
    return [
        {
            "arxiv_id": f"2501.{i:05d}v1",
            "title": f"{seed[i % len(seed)]['title']} (part {i})",
            "abstract": seed[i % len(seed)]["abstract"],
        }
        for i in range(n)
    ]


def test_feeds_larger_than_one_batch(store: Store, fixtures_dir: Path, writes: list[int]) -> None:
    n = 2 * ingest_module.BATCH + 17
    records = seed_records(fixtures_dir, n)
    # The title-only copy of the first paper arrives in the last batch.
    records.append({"title": records[0]["title"].lower(), "upvotes": 3})
    progress: list[int] = []

    result = parse_body("jsonl", jsonl(*records), now=T1)
    report = ingest(store, result, "jsonl", now=T1, progress=progress.append)

    assert (report.new, report.updated, report.unchanged) == (n, 0, 0)
    assert progress == [ingest_module.BATCH, ingest_module.BATCH, 18]
    # The last batch writes its 17 new papers and the first paper, merged with its copy;
    # that paper is still counted once, as new.
    assert writes == [ingest_module.BATCH, ingest_module.BATCH, 18]
    assert store.paper_count() == n
    assert len(set(report.new_ids)) == n
    first = store.get_paper("2501.00000")
    assert first is not None and first.upvotes == 3

    writes.clear()
    again = run(store, "jsonl", jsonl(*records), T2)
    assert (again.new, again.updated, again.unchanged) == (0, 0, n)
    assert writes == []

    revised = [
        dict(r, arxiv_id=r["arxiv_id"].replace("v1", "v2"), abstract="v2") for r in records[:n]
    ]
    updated = run(store, "jsonl", jsonl(*revised), T3)
    assert (updated.new, updated.updated) == (0, n)
    assert len(set(updated.updated_ids)) == n
    last = store.get_paper(f"2501.{n - 1:05d}")
    assert last is not None and (last.abstract, last.version) == ("v2", 2)


# -- bad input -------------------------------------------------------------------------------


def test_malformed_records_are_counted_with_reasons_and_never_fatal(
    store: Store, fixtures_dir: Path
) -> None:
    good = hf_entries(fixtures_dir)[:2]
    bad_id = hf_entry(fixtures_dir, "not-an-arxiv-id")
    no_title = hf_entry(fixtures_dir, "2606.99001", title="")
    no_title["title"] = ""
    bad_authors = hf_entry(fixtures_dir, "2606.99002", authors="Ada Lovelace")
    bad_date = hf_entry(fixtures_dir, "2606.99003", publishedAt="last Tuesday")
    bad_date["publishedAt"] = "last Tuesday"
    hf_body = json.dumps([*good, bad_id, 42, no_title, bad_authors, bad_date]).encode()

    report = run(store, "hf", hf_body, T1)

    assert (report.new, report.skipped) == (2, 5)
    assert report.reasons == {
        "bad id": 1,
        "not an object": 1,
        "missing title": 1,
        "malformed": 1,
        "bad date": 1,
    }
    assert "5 skipped" in report.summary() and "bad id: 1" in report.summary()

    lines = b"\n".join(
        [
            json.dumps({"arxiv_id": "2401.00002", "title": "Good line"}).encode(),
            b"{not json",
            b'{"title": "caf\xe9"}',
            json.dumps({"arxiv_id": "2401.00003", "title": "x", "published": "soon"}).encode(),
            json.dumps({"arxiv_id": 2401.10, "title": "Number id"}).encode(),
            json.dumps({"title": "t" * 5000}).encode(),
            json.dumps(["a", "list"]).encode(),
        ]
    )
    jsonl_report = run(store, "jsonl", lines, T1)
    assert (jsonl_report.new, jsonl_report.skipped) == (1, 6)
    assert jsonl_report.reasons == {
        "not json": 1,
        "invalid utf-8": 1,
        "bad date": 1,
        "bad id": 1,
        "too long": 1,
        "not an object": 1,
    }

    api_error = run(
        store, "arxiv", read(fixtures_dir, "arxivpy_recorded_id_abc_s0_m100_b79c8dcf6bc3.json")
    )
    assert (api_error.new, api_error.skipped) == (0, 1)
    assert list(api_error.reasons) == ["api error: incorrect id format for abc"]
    assert store.paper_count() == 3


GARBAGE = [
    ("hf", b""),
    ("hf", b"<html><body>502 Bad Gateway</body></html>"),
    ("hf", b'{"error": "Invalid date"}'),
    ("hf", b'{"papers": []}'),
    ("arxiv", b"<html><head><title>Error</title></head></html>"),
    ("arxiv", b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><entry>'),
    ("rss", b'{"items": []}'),
    ("rss", b"<!DOCTYPE x [<!ENTITY a 'aaaa'>]><rss>&a;</rss>"),
    ("jsonl", b"\x00\x01\x02 not json at all\nnor this line\n"),
]


@pytest.mark.parametrize(
    ("kind", "body"), GARBAGE, ids=[f"{k}-{i}" for i, (k, _) in enumerate(GARBAGE)]
)
def test_a_garbage_feed_writes_nothing(
    store: Store, fixtures_dir: Path, writes: list[int], kind: str, body: bytes
) -> None:
    run(store, "hf", (fixtures_dir / HF_JUNE).read_bytes(), T1)
    before = snapshot(store)
    writes.clear()

    with pytest.raises(SourceError) as caught:
        run(store, kind, body, T2)

    message = str(caught.value)
    assert message.startswith(f"{kind}: ") and "\n" not in message
    assert writes == []
    assert snapshot(store) == before


def test_a_truncated_feed_writes_nothing(
    store: Store, fixtures_dir: Path, writes: list[int]
) -> None:
    june = (fixtures_dir / HF_JUNE).read_bytes()
    run(store, "hf", june, T1)
    before = snapshot(store)
    writes.clear()
    for kind, name in (("hf", HF_AUGUST), ("arxiv", ARXIV_API), ("rss", RSS2)):
        body = (fixtures_dir / name).read_bytes()
        with pytest.raises(SourceError, match="truncated"):
            run(store, kind, body[: len(body) // 2], T2)
    assert writes == []
    assert snapshot(store) == before


def test_ingest_into_a_redis_that_is_down_raises_one_clear_line(fixtures_dir: Path) -> None:
    result = parse_body("hf", (fixtures_dir / HF_JUNE).read_bytes(), now=T1)
    down = Store(redis.Redis.from_url("redis://127.0.0.1:1/0"), where="redis://127.0.0.1:1/0")
    with pytest.raises(StoreUnavailable) as caught:
        ingest(down, result, "hf", now=T1)
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith("cannot reach Redis at redis://127.0.0.1:1/0: ")
