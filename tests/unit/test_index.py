"""Tests for the search index: ranking, filters, incremental updates, query parsing."""

from __future__ import annotations

import dataclasses
import itertools
import json
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from recommender.index import Hit, Query, QueryError, SearchIndex, parse_query
from recommender.types import Paper

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "seed_papers.jsonl"
START = datetime(2025, 1, 1, 9, 30, tzinfo=UTC)
AUTHORS = [
    ["Yann LeCun", "Ishan Misra"],
    ["Bernhard Schölkopf", "Francesco Locatello"],
    ["Fei-Fei Li"],
    ["Ann Lee", "Bo Zhang", "Carla Gomes"],
    ["Percy Liang", "Tatsunori Hashimoto"],
]
CATEGORIES = [["cs.LG"], ["cs.CV", "cs.LG"], ["cs.CL"], ["stat.ML"], ["q-bio.NC", "cs.NE"]]


def seed_papers() -> list[Paper]:
    """The 95 real seed papers with deterministic ids, authors, categories and dates."""
    rows = [json.loads(line) for line in FIXTURE.read_text().splitlines() if line.strip()]
    papers = []
    for i, row in enumerate(rows):
        papers.append(
            Paper(
                id=f"2501.{i:05d}",
                title=row["title"],
                abstract=row.get("abstract", ""),
                authors=list(AUTHORS[i % len(AUTHORS)]),
                categories=list(CATEGORIES[i % len(CATEGORIES)]),
                published=START + timedelta(days=i),
            )
        )
    return papers


@pytest.fixture(scope="module")
def papers() -> list[Paper]:
    """Seed papers, loaded once."""
    return seed_papers()


@pytest.fixture(scope="module")
def index(papers: list[Paper]) -> SearchIndex:
    """An index of all seed papers (tests must not modify it)."""
    idx = SearchIndex()
    assert idx.add(papers) == len(papers)
    return idx


def ids(hits: list[Hit]) -> list[str]:
    """Paper ids of hits, in order."""
    return [h.paper_id for h in hits]


def by_id(papers: list[Paper]) -> dict[str, Paper]:
    """Papers keyed by id."""
    return {p.id: p for p in papers}


# -- ranking -------------------------------------------------------------------------


def test_every_title_finds_its_own_paper_first(index: SearchIndex, papers: list[Paper]) -> None:
    """Known-item search: each seed title ranks its own paper first."""
    for paper in papers:
        assert ids(index.search(paper.title, 3))[0] == paper.id, paper.title


def test_a_few_distinctive_words_rank_the_relevant_paper_first(
    index: SearchIndex, papers: list[Paper]
) -> None:
    """A short keyword query finds the paper, well ahead of the runner-up."""
    invdiff = next(p for p in papers if p.title.startswith("InvDiff"))
    hits = index.search("invariant guidance bias diffusion", 5)
    assert hits[0].paper_id == invdiff.id
    assert hits[0].score > 2 * hits[1].score


def test_singular_and_plural_match(index: SearchIndex, papers: list[Paper]) -> None:
    """`model` finds `Models`; case and hyphens do not matter."""
    invdiff = next(p for p in papers if p.title.startswith("InvDiff"))
    assert "Models" in invdiff.title
    assert index.search("invdiff diffusion model", 1)[0].paper_id == invdiff.id
    assert index.search("INVDIFF Diffusion-Models", 1)[0].paper_id == invdiff.id


def test_author_names_are_searchable_words(index: SearchIndex, papers: list[Paper]) -> None:
    """Author names are indexed as text too."""
    hits = index.search("locatello", 100)
    expected = {p.id for p in papers if "Francesco Locatello" in p.authors}
    assert set(ids(hits)) == expected


def test_results_are_bounded_sorted_and_deterministic(index: SearchIndex) -> None:
    """At most n hits, best first, no duplicates, ties by id, stable across calls."""
    hits = index.search("language models", 500)
    assert 10 < len(hits) <= 95
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert len(set(ids(hits))) == len(hits)
    assert index.search("language models", 7) == hits[:7]
    assert index.search("language models", 500) == hits
    for a, b in itertools.pairwise(hits):
        if a.score == b.score:
            assert a.paper_id < b.paper_id


def test_unknown_words_and_stopwords_give_nothing(index: SearchIndex) -> None:
    """Words the index never saw (or only stopwords, emoji, n=0) give no hits."""
    assert index.search("qwxzzyq flurbogrammatic", 10) == []
    assert index.search("the of and", 10) == []
    assert index.search("🔥🔥", 10) == []
    assert index.search("diffusion", 0) == []


def test_search_accepts_a_query_object(index: SearchIndex) -> None:
    """A `Query` searches like the string it was parsed from."""
    assert index.search(Query("diffusion models"), 5) == index.search("diffusion models", 5)


# -- filters -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spelling",
    [
        "author:lecun",
        'author:"Yann LeCun"',
        "author:LECUN",
        'author:"LeCun, Yann"',
        "author:Y.LeCun",
    ],
)
def test_author_filter_spellings(index: SearchIndex, papers: list[Paper], spelling: str) -> None:
    """Every usual spelling of a name selects the same papers."""
    expected = {p.id for p in papers if "Yann LeCun" in p.authors}
    assert set(ids(index.search(spelling, 100))) == expected


def test_author_filter_matches_whole_name_tokens_and_accents(
    index: SearchIndex, papers: list[Paper]
) -> None:
    """Name tokens match whole and accent-free; all tokens must be in one name."""
    scholkopf = {p.id for p in papers if "Bernhard Schölkopf" in p.authors}
    assert set(ids(index.search("author:scholkopf", 100))) == scholkopf
    assert set(ids(index.search("author:Schölkopf", 100))) == scholkopf
    assert index.search("author:cun", 100) == []
    assert index.search('author:"Yann Misra"', 100) == []
    fei_fei = {p.id for p in papers if "Fei-Fei Li" in p.authors}
    assert set(ids(index.search('author:"fei-fei li"', 100))) == fei_fei


def test_since_filter(index: SearchIndex, papers: list[Paper]) -> None:
    """`since:` keeps papers published on or after the date, order unchanged."""
    hits = index.search("models since:2025-03-01", 100)
    assert hits
    known = by_id(papers)
    assert all(known[h.paper_id].published >= datetime(2025, 3, 1, tzinfo=UTC) for h in hits)
    everything = index.search("models", 100)
    expected = [h for h in everything if known[h.paper_id].published.date() >= date(2025, 3, 1)]
    assert hits == expected


def test_category_filter_exact_prefix_and_or(index: SearchIndex, papers: list[Paper]) -> None:
    """`cat:` matches case-insensitively, by prefix, and ORs several values."""

    def with_cat(test: object) -> set[str]:
        """Ids of papers with a category passing `test`."""
        return {p.id for p in papers if any(test(c) for c in p.categories)}  # type: ignore[operator]

    assert set(ids(index.search("cat:cs.LG", 100))) == with_cat(lambda c: c == "cs.LG")
    assert set(ids(index.search("cat:cs.lg", 100))) == with_cat(lambda c: c == "cs.LG")
    assert set(ids(index.search("cat:cs", 100))) == with_cat(lambda c: c.startswith("cs."))
    assert set(ids(index.search("cat:q-bio", 100))) == with_cat(lambda c: c.startswith("q-bio"))
    assert set(ids(index.search("cat:stat.ML cat:cs.CL", 100))) == with_cat(
        lambda c: c in ("stat.ML", "cs.CL")
    )
    assert set(ids(index.search("cat:stat.ML,cs.CL", 100))) == with_cat(
        lambda c: c in ("stat.ML", "cs.CL")
    )
    assert index.search("cat:math.OC", 100) == []


def test_filters_combine_with_and(index: SearchIndex, papers: list[Paper]) -> None:
    """Different filters AND together, with or without text."""
    expected = {
        p.id
        for p in papers
        if "Yann LeCun" in p.authors
        and "cs.LG" in p.categories
        and p.published >= datetime(2025, 2, 1, tzinfo=UTC)
    }
    assert expected
    hits = index.search("author:lecun cat:cs.LG since:2025-02-01", 100)
    assert set(ids(hits)) == expected
    text_hits = index.search("learning author:lecun cat:cs.LG since:2025-02-01", 100)
    assert set(ids(text_hits)) <= expected
    assert all(h.score > 0 for h in text_hits)


def test_filter_only_query_returns_newest_first(index: SearchIndex, papers: list[Paper]) -> None:
    """Filters alone list the newest matching papers."""
    hits = index.search("cat:cs.CL", 5)
    newest = sorted(
        (p for p in papers if "cs.CL" in p.categories), key=lambda p: p.published, reverse=True
    )
    assert ids(hits) == [p.id for p in newest[:5]]
    assert all(h.score == 0.0 for h in hits)


def test_candidates_only_restricts_results(index: SearchIndex, papers: list[Paper]) -> None:
    """`candidates_only` keeps only the given ids, with unchanged scores."""
    allowed = {p.id for p in papers[:40]} | {"not-indexed"}
    hits = index.search("models", 100, candidates_only=allowed)
    assert hits and set(ids(hits)) <= allowed
    assert index.search("models", 100, candidates_only=[]) == []
    full = [h for h in index.search("models", 100) if h.paper_id in allowed]
    assert hits == full


# -- incremental updates -------------------------------------------------------------


def test_added_paper_is_findable_at_once(papers: list[Paper]) -> None:
    """A paper added to a built index is searchable by text and every filter."""
    idx = SearchIndex()
    idx.add(papers)
    new = Paper(
        id="2502.99999",
        title="Quokka alignment for heliospheric plasma turbulence",
        abstract="We measure quokka turbulence spectra.",
        authors=["Zed Quokkason"],
        categories=["physics.space-ph"],
        published=datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert "2502.99999" not in idx
    assert idx.add([new]) == 1
    assert "2502.99999" in idx
    assert len(idx) == len(papers) + 1
    assert ids(idx.search("quokka turbulence", 3)) == ["2502.99999"]
    assert ids(idx.search("author:quokkason", 3)) == ["2502.99999"]
    assert ids(idx.search("cat:physics", 3)) == ["2502.99999"]
    assert ids(idx.search("since:2026-01-01", 3)) == ["2502.99999"]


def test_readd_replaces_the_old_entry(papers: list[Paper]) -> None:
    """Re-adding an id replaces the old text; an unchanged re-add is a no-op."""
    idx = SearchIndex()
    idx.add(papers)
    old = papers[0]
    assert idx.add([old]) == 0  # unchanged: nothing to do
    revised = dataclasses.replace(
        old, title="Platypus echolocation revisited", abstract="Sonar in monotremes.", version=2
    )
    assert idx.add([revised]) == 1
    assert len(idx) == len(papers)
    assert ids(idx.search("platypus echolocation", 10)) == [old.id]
    assert old.id not in ids(idx.search("invdiff", 10))
    hits = idx.search("diffusion", 100)
    assert len(ids(hits)) == len(set(ids(hits)))
    # A batch naming the same paper twice keeps the last record.
    again = dataclasses.replace(revised, title="Wombat burrows")
    assert idx.add([revised, again]) == 1
    assert ids(idx.search("wombat", 10)) == [old.id]
    assert idx.search("platypus", 10) == []


def test_remove(papers: list[Paper]) -> None:
    """Removed papers disappear from text and filter results; re-adding works."""
    idx = SearchIndex()
    idx.add(papers)
    gone = papers[0].id
    assert idx.remove([gone, "never-there"]) == 1
    assert gone not in idx
    assert len(idx) == len(papers) - 1
    assert gone not in ids(idx.search(papers[0].title, 100))
    assert gone not in ids(idx.search("since:2024-01-01", 100))
    assert idx.remove([gone]) == 0
    assert idx.add([papers[0]]) == 1
    assert ids(idx.search(papers[0].title, 1)) == [gone]


def test_incremental_index_matches_a_full_rebuild(papers: list[Paper]) -> None:
    """Batches, replacements, removals and merges give a full rebuild's exact results."""
    incremental = SearchIndex(merge_threshold=16)
    for start in range(0, len(papers), 7):
        incremental.add(papers[start : start + 7])
    revised = [dataclasses.replace(p, abstract=p.abstract + " Revised.") for p in papers[10:20]]
    incremental.add(revised)
    incremental.remove([p.id for p in papers[30:35]])
    late = [dataclasses.replace(p, title=p.title + " (late revision)") for p in papers[40:43]]
    incremental.add(late)
    final = {p.id: p for p in papers}
    final.update({p.id: p for p in revised + late})
    for p in papers[30:35]:
        del final[p.id]
    rebuilt = SearchIndex()
    rebuilt.add(final.values())
    queries = [
        "diffusion models",
        "language model reasoning benchmark",
        "video generation",
        "learning cat:cs.LG",
        "author:lecun",
        "since:2025-02-15 cat:cs",
        "revised",
        "late revision",
    ]
    state = incremental._state
    assert state.n > state.main_rows  # a live delta segment
    assert state.n > len(final)  # and tombstoned rows
    for query in queries:
        assert incremental.search(query, 100) == rebuilt.search(query, 100), query
    incremental.merge()
    assert incremental._state.n == incremental._state.main_rows == len(final)
    for query in queries:
        assert incremental.search(query, 100) == rebuilt.search(query, 100), query


def test_concurrent_searches_while_adding(papers: list[Paper]) -> None:
    """Readers keep searching while one writer adds, merges and removes."""
    idx = SearchIndex(merge_threshold=10)
    idx.add(papers[:20])
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        """Search in a loop, recording any exception."""
        try:
            while not stop.is_set():
                for hit in idx.search("models cat:cs", 50):
                    assert isinstance(hit.paper_id, str)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for thread in threads:
        thread.start()
    for start in range(20, len(papers), 5):
        idx.add(papers[start : start + 5])
    idx.remove([p.id for p in papers[:10]])
    stop.set()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(idx) == len(papers) - 10


# -- persistence ---------------------------------------------------------------------


def test_save_load_round_trip(tmp_path: Path, papers: list[Paper]) -> None:
    """A saved index loads with identical results and keeps accepting papers."""
    idx = SearchIndex(merge_threshold=1000)
    idx.add(papers[:60])
    idx.add(papers[60:])
    idx.remove([papers[5].id])
    path = tmp_path / "search" / "index.npz"
    idx.save(path)
    loaded = SearchIndex.load(path)
    assert len(loaded) == len(idx)
    assert papers[5].id not in loaded
    for query in ["diffusion models", "author:lecun cat:cs.LG", "since:2025-03-01", "schölkopf"]:
        assert loaded.search(query, 50) == idx.search(query, 50)
    new = Paper(id="2503.00001", title="Axolotl regeneration atlas", published=START)
    assert loaded.add([new]) == 1
    assert ids(loaded.search("axolotl", 5)) == ["2503.00001"]
    assert loaded.add([papers[0]]) == 0  # fingerprints survive the round trip


def test_load_rejects_other_files(tmp_path: Path) -> None:
    """Loading a file that is not an index fails clearly."""
    import numpy as np

    path = tmp_path / "other.npz"
    np.savez(path, meta=np.frombuffer(b'{"format": "something-else"}', np.uint8))
    with pytest.raises(ValueError, match="not a paperbot search index"):
        SearchIndex.load(path)


# -- query parsing -------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["", "   ", "\n\t", '""', "\u200b"])
def test_empty_query_is_an_error(raw: str) -> None:
    """Blank input is `QueryError('empty query')`."""
    with pytest.raises(QueryError, match=r"^empty query$"):
        parse_query(raw)


def test_filters_only() -> None:
    """A query made only of filters parses with empty text."""
    q = parse_query('author:"Yann LeCun" since:2025-01-31 cat:cs.LG')
    assert q == Query("", ("Yann LeCun",), date(2025, 1, 31), ("cs.lg",))
    assert q.has_filters


def test_text_and_filters_mixed_and_case_insensitive_fields() -> None:
    """Filters may sit anywhere among the words, in any case."""
    q = parse_query("sparse Author:lecun attention CAT:cs.CL since:2024 cat:stat.ML")
    assert q.text == "sparse attention"
    assert q.authors == ("lecun",)
    assert q.since == date(2024, 1, 1)
    assert q.categories == ("cs.cl", "stat.ml")


@pytest.mark.parametrize(
    "raw", ["since:2025-13-01", "since:yesterday", "since:2025-02-30", "since:", "x since:25-1-1"]
)
def test_bad_date_is_a_clear_error(raw: str) -> None:
    """A malformed or impossible date gives one user-facing line."""
    with pytest.raises(QueryError) as err:
        parse_query(raw)
    assert str(err.value) == "since: expects a date like 2025-01-31"


def test_bad_filter_values_are_clear_errors() -> None:
    """Empty or malformed category and author values are clear errors."""
    with pytest.raises(QueryError, match=r"^cat: expects a category like cs\.LG$"):
        parse_query("cat:")
    with pytest.raises(QueryError, match=r"^cat: expects a category like cs\.LG$"):
        parse_query("cat:cs/LG!")
    with pytest.raises(QueryError, match=r"^author: expects a name"):
        parse_query('author:"!!"')


def test_quotes_straight_and_curly() -> None:
    """Straight, curly and unclosed quotes all delimit a value."""
    assert parse_query('author:"Yann LeCun" vision').authors == ("Yann LeCun",)
    assert parse_query("author:“Yann LeCun” vision").authors == ("Yann LeCun",)
    assert parse_query("author:“Yann LeCun” vision").text == "vision"
    assert parse_query('"graph neural" networks').text == "graph neural networks"
    assert parse_query('author:"Yann LeCun').authors == ("Yann LeCun",)  # unclosed quote
    assert parse_query("author: lecun").authors == ("lecun",)  # space after the colon


def test_unknown_fields_urls_and_chat_markup_stay_text(index: SearchIndex) -> None:
    """Unknown `foo:` tokens, URLs and Slack markup are plain words."""
    q = parse_query("foo:bar https://arxiv.org/abs/2401.12345 <!channel> <@U123> title:x")
    assert q.text == "foo:bar https://arxiv.org/abs/2401.12345 <!channel> <@U123> title:x"
    assert not q.has_filters
    assert index.search("<!channel>", 5) == index.search("channel", 5)
    assert index.search("<!channel> diffusion", 5) == index.search("diffusion", 5)


def test_long_input_is_truncated_and_stays_fast(index: SearchIndex) -> None:
    """10 kB of input is cut to a sane length and answered quickly."""
    raw = "diffusion " + "lorem ipsum dolor " * 600  # ~10 kB
    q = parse_query(raw)
    assert len(q.text) <= 1000
    t0 = time.perf_counter()
    hits = index.search(raw, 10)
    assert time.perf_counter() - t0 < 0.5
    assert hits and hits == index.search("diffusion lorem ipsum dolor", 10)


def test_unicode_and_emoji() -> None:
    """Full-width forms are normalised, zero-width spaces dropped, emoji kept as text."""
    q = parse_query("🔥 Schölkopf ＤＩＦＦＵＳＩＯＮ\u200b models cat:ｃｓ.ＬＧ")
    assert q.text == "🔥 Schölkopf DIFFUSION models"
    assert q.categories == ("cs.lg",)
    assert parse_query("🔥").text == "🔥"
    assert parse_query("since:２０２５-０１-３１").since == date(2025, 1, 31)


def test_search_raises_query_error_for_bad_strings(index: SearchIndex) -> None:
    """`search` with a bad query string raises `QueryError`."""
    with pytest.raises(QueryError):
        index.search("   ", 5)
    with pytest.raises(QueryError):
        index.search("since:soon", 5)
