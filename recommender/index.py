"""Full-text search over papers: BM25 over title, abstract and authors, with filters.

Queries look like `diffusion bias author:"Yann LeCun" since:2025-01-31 cat:cs.LG`.

Layout: an append-only vocabulary maps each normalised word to a column; postings are
stored column-major (one sorted run of document rows per term), so a query touches only
the postings of its own terms. Papers arriving later go into a small delta segment, merged
into the main segment in linear time once it grows past `merge_threshold`. BM25 is computed
from stored term frequencies and document lengths with the current document frequencies,
so results never depend on how the rows happen to be split into segments.

Thread safety: one writer, many readers. Writers (`add`, `remove`, `merge`, `save`) are
serialised by a lock; they build a new immutable snapshot and swap it in with one
assignment, so `search` never blocks and always sees a consistent snapshot.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import tempfile
import threading
import unicodedata
from array import array
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from recommender.types import Paper

__all__ = ["Hit", "Query", "QueryError", "SearchIndex", "parse_query"]

K1 = 1.2
B = 0.75
# A title word counts as much as this many abstract words (BM25F-style field boost).
TITLE_WEIGHT = 3
# Longer input is cut here: no real search needs more, and it bounds the work per query.
MAX_QUERY_CHARS = 1000
MAX_QUERY_TERMS = 32
MAX_FILTER_CHARS = 100
# Tokens longer than this are hashes, URLs or base64, not words anyone searches for.
MAX_TOKEN_CHARS = 40
# Papers tokenised per scipy build, to bound the memory of huge batches.
_CHUNK = 20_000
_NO_DATE = np.iinfo(np.int64).min // 2
_FORMAT = "paperbot-search-index/1"

_STOPWORD_TEXT = """
    a about above after again against all am an and any are aren as at be because been
    before being below between both but by can cannot could couldn d did didn do does doesn
    doing don down during each few for from further had hadn has hasn have haven having he
    her here hers herself him himself his how i if in into is isn it its itself just ll m
    ma me mightn more most mustn my myself needn no nor not now o of off on once only or
    other our ours ourselves out over own re s same shan she should shouldn so some such t
    than that the their theirs them themselves then there these they this those through to
    too under until up ve very was wasn we were weren what when where which while who whom
    why will with won would wouldn y you your yours yourself yourselves also via et al eg ie
    """
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())

_WORD = re.compile(r"[^\W_]+")
_NAME_JUNK = re.compile(r"[\W_]+")


class QueryError(ValueError):
    """A query that cannot be run; the message is one short line meant for the user."""


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed search: free text plus filters (AND across kinds, OR among categories)."""

    text: str
    authors: tuple[str, ...] = ()
    since: date | None = None
    categories: tuple[str, ...] = ()

    @property
    def has_filters(self) -> bool:
        """Whether any filter is set."""
        return bool(self.authors or self.since or self.categories)


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result; `score` is the BM25 score (0.0 for a filter-only query)."""

    paper_id: str
    score: float


# ---------------------------------------------------------------------------------------
# Query parsing
# ---------------------------------------------------------------------------------------

_FIELDS = {
    "author": "author",
    "authors": "author",
    "au": "author",
    "by": "author",
    "since": "since",
    "after": "since",
    "cat": "cat",
    "cats": "cat",
    "category": "cat",
    "categories": "cat",
}
# Phones and chat clients turn " into curly quotes; all of them delimit a phrase.
_QUOTES = str.maketrans(dict.fromkeys("“”„‟«»″〝〞＂", '"'))
_INVISIBLE = re.compile(
    r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]"
)
_PART = re.compile(r'(?P<field>[A-Za-z]+):|"(?P<phrase>[^"]*)"?|(?P<word>[^\s"]+)')
_DATE = re.compile(r"(?P<y>\d{4})(?:[-/.](?P<m>\d{1,2})(?:[-/.](?P<d>\d{1,2}))?)?")
_CATEGORY = re.compile(r"[a-z][a-z\-]*(?:\.[a-z\-]+)?")
_SINCE_HELP = "since: expects a date like 2025-01-31"
_CAT_HELP = "cat: expects a category like cs.LG"
_AUTHOR_HELP = 'author: expects a name, like author:lecun or author:"Yann LeCun"'


def _clean_query(raw: str) -> str:
    """Bounded, NFKC-normalised text with straight quotes and no invisible characters."""
    text = unicodedata.normalize("NFKC", raw[: 4 * MAX_QUERY_CHARS])
    text = _INVISIBLE.sub(" ", text.translate(_QUOTES))
    return text[:MAX_QUERY_CHARS]


def _parse_since(value: str) -> date:
    """`2025`, `2025-01` or `2025-01-31` (also with / or .) as the first day it covers."""
    match = _DATE.fullmatch(value.strip())
    if not match:
        raise QueryError(_SINCE_HELP)
    try:
        return date(int(match["y"]), int(match["m"] or 1), int(match["d"] or 1))
    except ValueError:
        raise QueryError(_SINCE_HELP) from None


def _parse_categories(value: str) -> list[str]:
    """Comma-separated categories, lower-cased, with a trailing `.*` or `*` dropped."""
    out = []
    for part in value.split(","):
        cat = part.strip().lower().removesuffix("*").removesuffix(".")
        if not cat:
            continue
        if not _CATEGORY.fullmatch(cat):
            raise QueryError(_CAT_HELP)
        out.append(cat)
    if not out:
        raise QueryError(_CAT_HELP)
    return out


def parse_query(raw: str) -> Query:
    """Parse `words author:x since:YYYY-MM-DD cat:cs.LG` into a `Query`.

    Quoted values (`author:"Yann LeCun"`) may contain spaces; a filter followed by a space
    takes the next word as its value. Unknown `foo:bar` tokens, URLs and chat markup stay
    plain words. Raises `QueryError` for an empty query or a malformed filter value.
    """
    text = _clean_query(raw if isinstance(raw, str) else "")
    parts: list[tuple[str, str]] = []
    for match in _PART.finditer(text):
        if match["field"] is not None:
            parts.append(("field", match["field"]))
        elif match["phrase"] is not None:
            parts.append(("phrase", match["phrase"]))
        else:
            parts.append(("word", match["word"]))

    words: list[str] = []
    authors: list[str] = []
    categories: list[str] = []
    since: date | None = None
    i = 0
    while i < len(parts):
        kind, value = parts[i]
        i += 1
        if kind != "field":
            words.extend(value.split())
            continue
        name = _FIELDS.get(value.lower())
        # A field's value is the part glued to it, or else the next non-field part.
        arg: str | None = None
        if i < len(parts) and parts[i][0] != "field":
            arg = parts[i][1]
            i += 1
        if name is None:
            words.append(value + ":" + (arg or ""))
            continue
        if name == "since":
            if arg is None:
                raise QueryError(_SINCE_HELP)
            since = max(since, _parse_since(arg)) if since else _parse_since(arg)
        elif name == "cat":
            categories.extend(_parse_categories(arg or ""))
        else:
            author = " ".join((arg or "").split())[:MAX_FILTER_CHARS]
            if not _author_tokens(author):
                raise QueryError(_AUTHOR_HELP)
            authors.append(author)

    query = Query(
        text=" ".join(words),
        authors=tuple(dict.fromkeys(authors)),
        since=since,
        categories=tuple(dict.fromkeys(categories)),
    )
    if not query.text and not query.has_filters:
        raise QueryError("empty query")
    return query


# ---------------------------------------------------------------------------------------
# Text analysis
# ---------------------------------------------------------------------------------------


def _fold(text: str) -> str:
    """Case-folded text without accents (`Schölkopf` -> `scholkopf`)."""
    text = text.casefold()
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _stem(word: str) -> str:
    """Plural to singular, cheaply: `models`->`model`, `studies`->`study`, `losses`->`loss`."""
    if len(word) <= 3 or word[-1] != "s" or not word.isalpha():
        return word
    if word.endswith("ies") and not word.endswith(("eies", "aies")):
        return word[:-3] + "y"
    if word.endswith(("sses", "shes", "ches", "xes")):
        return word[:-2]
    if word.endswith(("ss", "us", "is")):
        return word
    return word[:-1]


def _normalise(token: str) -> str | None:
    """The indexed form of a lower-cased token, or None for a stopword or junk."""
    if len(token) > MAX_TOKEN_CHARS:
        return None
    word = _fold(token)
    if word in _STOPWORDS or (len(word) == 1 and not word.isdigit()):
        return None
    return _stem(word)


def _author_tokens(name: str) -> list[str]:
    """Tokens of a person's name, folded (`Jean-Pierre Müller` -> `jean pierre muller`)."""
    return _NAME_JUNK.sub(" ", _fold(name)).split()


class _SurfaceCache(dict[str, int]):
    """Maps a raw token to its term id (-1 when not indexed), assigning new ids on a miss.

    Only the writer indexes through `__getitem__`; readers use `get` and never insert.
    """

    def __init__(self, vocab: _Vocabulary) -> None:
        """An empty cache that assigns new ids in `vocab`."""
        super().__init__()
        self._vocab = vocab

    def __missing__(self, token: str) -> int:
        """Normalise an unseen token once; every later occurrence is one dict lookup."""
        word = _normalise(token)
        term = -1 if word is None else self._vocab.add(word)
        self[token] = term
        return term


class _Vocabulary:
    """Append-only term dictionary: ids never change, so nothing is ever refit."""

    def __init__(self, terms: Sequence[str] = ()) -> None:
        """A vocabulary holding `terms` at ids 0..len-1."""
        self.terms: list[str] = list(terms)
        self.ids: dict[str, int] = {t: i for i, t in enumerate(self.terms)}
        self.cache = _SurfaceCache(self)

    def add(self, word: str) -> int:
        """The id of `word`, assigning the next one if it is new."""
        term = self.ids.get(word)
        if term is None:
            term = len(self.terms)
            self.terms.append(word)
            self.ids[word] = term
        return term

    def index_tokens(self, text: str, out: array) -> int:
        """Append the term ids of `text` (stopwords as -1) to `out`; return how many."""
        before = len(out)
        out.extend(map(self.cache.__getitem__, _WORD.findall(text.lower())))
        return len(out) - before

    def query_terms(self, text: str) -> tuple[list[int], int]:
        """Unique known term ids of `text` in order, and how many distinct words it had."""
        known: dict[int, None] = {}
        words: set[str] = set()
        for token in _WORD.findall(text.lower()):
            term = self.cache.get(token)
            if term is None:
                word = _normalise(token)
                if word is None:
                    continue
                words.add(word)
                term = self.ids.get(word, -1)
            elif term < 0:
                continue
            else:
                words.add(self.terms[term])
            if term >= 0:
                known[term] = None
            if len(words) >= MAX_QUERY_TERMS:
                break
        return list(known), len(words)


# ---------------------------------------------------------------------------------------
# Column-major postings and segments
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Postings:
    """Column-major postings: rows of column `c` are `indices[indptr[c]:indptr[c+1]]`.

    Rows are global document rows, ascending within a column; `data` holds weighted term
    frequencies (None for filter postings, where presence is all that matters).
    """

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray | None

    @property
    def ncols(self) -> int:
        """Number of columns (terms, authors or categories) this segment knows."""
        return len(self.indptr) - 1

    @classmethod
    def empty(cls, with_data: bool) -> _Postings:
        """Postings with no columns."""
        data = np.zeros(0, np.float32) if with_data else None
        return cls(np.zeros(1, np.int64), np.zeros(0, np.int32), data)

    @classmethod
    def build(
        cls,
        rows: np.ndarray,
        cols: np.ndarray,
        weights: np.ndarray | None,
        nrows: int,
        ncols: int,
        first_row: int,
    ) -> _Postings:
        """Postings from (local row, column) pairs; duplicate pairs add their weights."""
        data = np.ones(len(rows), np.float32) if weights is None else weights
        matrix = sp.csc_matrix((data, (rows, cols)), shape=(nrows, ncols))
        matrix.sum_duplicates()
        indices = matrix.indices.astype(np.int32) + np.int32(first_row)
        out_data = matrix.data.astype(np.float32) if weights is not None else None
        return cls(matrix.indptr.astype(np.int64), indices, out_data)

    def column(self, col: int) -> slice:
        """The slice of `indices` holding column `col` (empty if the column is unknown)."""
        if col >= self.ncols:
            return slice(0, 0)
        return slice(int(self.indptr[col]), int(self.indptr[col + 1]))

    def rows_for(self, cols: np.ndarray) -> np.ndarray:
        """All rows that appear in any of `cols` (with repeats), in one vectorised gather."""
        cols = cols[cols < self.ncols]
        starts = self.indptr[cols]
        lengths = self.indptr[cols + 1] - starts
        total = int(lengths.sum())
        if total == 0:
            return np.zeros(0, np.int32)
        shift = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
        return self.indices[np.arange(total, dtype=np.int64) + shift]


def _concat(parts: Sequence[_Postings], row_map: np.ndarray | None) -> _Postings:
    """Merge postings whose rows are in ascending blocks (part i before part i+1), in O(nnz).

    With `row_map`, rows mapped to -1 are dropped and the others renumbered.
    """
    with_data = parts[0].data is not None
    ncols = max(p.ncols for p in parts)
    col_ids = np.arange(ncols, dtype=np.int32)
    kept: list[tuple[np.ndarray, np.ndarray | None, np.ndarray]] = []
    total_counts = np.zeros(ncols, np.int64)
    for part in parts:
        counts = np.zeros(ncols, np.int64)
        counts[: part.ncols] = np.diff(part.indptr)
        indices, data = part.indices, part.data
        if row_map is not None and len(indices):
            new_rows = row_map[indices]
            keep = new_rows >= 0
            if not keep.all():
                cols = np.repeat(col_ids, counts)
                counts = np.bincount(cols[keep], minlength=ncols).astype(np.int64)
                new_rows = new_rows[keep]
                data = data[keep] if data is not None else None
            indices = new_rows.astype(np.int32)
        kept.append((indices, data, counts))
        total_counts += counts
    indptr = np.zeros(ncols + 1, np.int64)
    np.cumsum(total_counts, out=indptr[1:])
    nnz = int(indptr[-1])
    out_indices = np.empty(nnz, np.int32)
    out_data = np.empty(nnz, np.float32) if with_data else None
    # Where the next part's postings of each column start in the merged array.
    offset = indptr[:-1].copy()
    for indices, data, counts in kept:
        if not len(indices):
            continue
        starts = np.cumsum(counts) - counts
        dest = np.arange(len(indices), dtype=np.int64) + np.repeat(offset - starts, counts)
        out_indices[dest] = indices
        if out_data is not None and data is not None:
            out_data[dest] = data
        offset += counts
    return _Postings(indptr, out_indices, out_data)


@dataclass(frozen=True, slots=True)
class _Segment:
    """Postings for a contiguous block of rows: text terms, author names, categories."""

    terms: _Postings
    authors: _Postings
    cats: _Postings

    @classmethod
    def empty(cls) -> _Segment:
        """A segment with no rows."""
        return cls(_Postings.empty(True), _Postings.empty(False), _Postings.empty(False))

    @classmethod
    def concat(cls, parts: Sequence[_Segment], row_map: np.ndarray | None = None) -> _Segment:
        """Merge consecutive segments into one, dropping rows mapped to -1."""
        return cls(
            _concat([p.terms for p in parts], row_map),
            _concat([p.authors for p in parts], row_map),
            _concat([p.cats for p in parts], row_map),
        )


@dataclass(frozen=True, slots=True)
class _Rows:
    """Per-row columns of a batch of papers, in row order."""

    ids: list[str]
    ts: np.ndarray
    dl: np.ndarray
    fp: np.ndarray


@dataclass(frozen=True)
class _State:
    """An immutable snapshot of the whole index; a write builds a new one."""

    ids: list[str]  # row -> paper id (dead rows keep their old id)
    row_of: dict[str, int]  # live paper id -> row
    ts: np.ndarray  # int64 seconds: published, else first_seen, else _NO_DATE
    dl: np.ndarray  # float32 weighted document length
    fp: np.ndarray  # int64 content fingerprint, to skip re-adding an unchanged paper
    alive: np.ndarray  # bool
    main: _Segment  # rows [0, main_rows)
    delta: _Segment  # rows [main_rows, n)
    main_rows: int
    author_names: list[str]  # author id -> folded name
    author_blob: str  # " name \n" per author, for whole-word search with one regex
    author_starts: np.ndarray  # offset of each author in author_blob
    cat_names: tuple[str, ...]  # category id -> lower-cased category
    n_live: int = 0
    norm: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    dead_in_main: bool = False
    dead_in_delta: bool = False

    @property
    def n(self) -> int:
        """Number of rows, dead ones included."""
        return len(self.ids)

    def finish(self) -> _State:
        """Fill the derived fields (live count, BM25 length norms, dead flags)."""
        n_live = int(self.alive.sum())
        total = float(self.dl[self.alive].sum(dtype=np.float64))
        avgdl = total / n_live if n_live and total else 1.0
        norm = (K1 * (1.0 - B + B * (self.dl.astype(np.float64) / avgdl))).astype(np.float32)
        object.__setattr__(self, "n_live", n_live)
        object.__setattr__(self, "norm", norm)
        object.__setattr__(self, "dead_in_main", not self.alive[: self.main_rows].all())
        object.__setattr__(self, "dead_in_delta", not self.alive[self.main_rows :].all())
        return self

    @classmethod
    def empty(cls) -> _State:
        """The state of an index with no papers."""
        return cls(
            ids=[],
            row_of={},
            ts=np.zeros(0, np.int64),
            dl=np.zeros(0, np.float32),
            fp=np.zeros(0, np.int64),
            alive=np.zeros(0, bool),
            main=_Segment.empty(),
            delta=_Segment.empty(),
            main_rows=0,
            author_names=[],
            author_blob="",
            author_starts=np.zeros(0, np.int64),
            cat_names=(),
        ).finish()


def _timestamp(paper: Paper) -> int:
    """Seconds since the epoch of the paper's publication (or first sighting)."""
    when = paper.published or paper.first_seen
    if when is None:
        return int(_NO_DATE)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp())


def _fingerprint(paper: Paper, ts: int) -> int:
    """A 64-bit hash of everything the index reads from a paper."""
    blob = "\x1f".join(
        (
            paper.title or "",
            paper.abstract or "",
            "\x1e".join(paper.authors),
            "\x1e".join(paper.categories),
            paper.primary_category or "",
            str(ts),
        )
    )
    digest = hashlib.blake2b(blob.encode("utf-8", "replace"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def _day_start(day: date) -> int:
    """Seconds since the epoch of midnight UTC on `day`."""
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def _top(
    rows: np.ndarray, key: np.ndarray, n: int, ids: list[str], newest: bool
) -> list[tuple[int, float]]:
    """The n rows with the largest `key`; ties by paper id, descending when `newest`."""
    if len(rows) > n:
        kth = np.partition(key, len(key) - n)[len(key) - n]
        keep = key >= kth
        rows, key = rows[keep], key[keep]
    items = [(ids[r], r, k) for r, k in zip(rows.tolist(), key.tolist(), strict=True)]
    if newest:
        items.sort(key=lambda item: (item[2], item[0]), reverse=True)
    else:
        items.sort(key=lambda item: (-item[2], item[0]))
    return [(r, k) for _, r, k in items[:n]]


# ---------------------------------------------------------------------------------------
# The index
# ---------------------------------------------------------------------------------------


class SearchIndex:
    """Incremental BM25 index of papers with author, date and category filters."""

    def __init__(self, *, merge_threshold: int = 5000) -> None:
        """An empty index; the delta segment is merged once it holds `merge_threshold` rows."""
        self.merge_threshold = max(1, int(merge_threshold))
        self._vocab = _Vocabulary()
        self._author_ids: dict[str, int] = {}
        self._cat_ids: dict[str, int] = {}
        self._lock = threading.Lock()
        self._state = _State.empty()

    def replace(self, papers: Iterable[Paper]) -> int:
        """Rebuild the index from scratch with these papers (readers see old or new)."""
        fresh = SearchIndex(merge_threshold=self.merge_threshold)
        fresh.add(papers)
        with self._lock:
            self._vocab, self._author_ids, self._cat_ids = (
                fresh._vocab,
                fresh._author_ids,
                fresh._cat_ids,
            )
            self._state = fresh._state
        return len(self)

    # -- reading --------------------------------------------------------------------

    def __len__(self) -> int:
        """Number of papers in the index."""
        return self._state.n_live

    def __contains__(self, paper_id: object) -> bool:
        """Whether a paper with this id is in the index."""
        return isinstance(paper_id, str) and paper_id in self._state.row_of

    def __repr__(self) -> str:
        """Size and segment layout, for logs."""
        st = self._state
        return (
            f"SearchIndex(papers={st.n_live}, rows={st.n}, delta={st.n - st.main_rows}, "
            f"terms={len(self._vocab.terms)})"
        )

    def search(
        self,
        query: str | Query,
        n: int = 10,
        *,
        candidates_only: Collection[str] | None = None,
    ) -> list[Hit]:
        """The best `n` papers for `query`, best first (ties by paper id).

        A string is parsed with `parse_query` (so it may raise `QueryError`). Text is
        matched with BM25 over title, abstract and author names; a query made only of
        filters returns the newest matching papers. `candidates_only` restricts the
        results to those paper ids.
        """
        q = parse_query(query) if isinstance(query, str) else query
        st = self._state
        if n <= 0 or st.n_live == 0:
            return []
        terms, n_words = self._vocab.query_terms(q.text)
        mask = self._filter_mask(st, q, candidates_only)
        if n_words:
            if not terms:
                return []
            scores = self._scores(st, terms)
            if scores is None:
                return []
            rows = np.flatnonzero(scores)
            keep = st.alive[rows] if mask is None else st.alive[rows] & mask[rows]
            rows = rows[keep]
            top = _top(rows, scores[rows], n, st.ids, newest=False)
            return [Hit(st.ids[r], float(s)) for r, s in top]
        if mask is None:
            return []
        rows = np.flatnonzero(mask & st.alive)
        top = _top(rows, st.ts[rows], n, st.ids, newest=True)
        return [Hit(st.ids[r], 0.0) for r, _ in top]

    def _scores(self, st: _State, terms: list[int]) -> np.ndarray | None:
        """BM25 score of every row for these terms (0 where none occurs), or None."""
        scores = np.zeros(st.n, np.float32)
        matched = False
        segments = ((st.main, st.dead_in_main), (st.delta, st.dead_in_delta))
        for term in terms:
            slices = [(seg.terms, seg.terms.column(term), dead) for seg, dead in segments]
            df = 0
            for postings, cut, dead in slices:
                if dead:
                    df += int(np.count_nonzero(st.alive[postings.indices[cut]]))
                else:
                    df += cut.stop - cut.start
            if df == 0:
                continue
            matched = True
            idf = np.float32(np.log1p((st.n_live - df + 0.5) / (df + 0.5)) * (K1 + 1.0))
            for postings, cut, _ in slices:
                if cut.stop == cut.start:
                    continue
                rows = postings.indices[cut]
                tf = postings.data[cut]  # type: ignore[index]
                weight = tf / (tf + st.norm[rows])
                weight *= idf
                scores[rows] += weight
        return scores if matched else None

    def _filter_mask(
        self, st: _State, q: Query, candidates_only: Collection[str] | None
    ) -> np.ndarray | None:
        """Rows passing every filter, or None when nothing filters."""
        mask: np.ndarray | None = None

        def narrow(rows_or_mask: np.ndarray) -> None:
            """AND a boolean mask, or a set of rows, into `mask`."""
            nonlocal mask
            if rows_or_mask.dtype == bool:
                current = rows_or_mask
            else:
                current = np.zeros(st.n, bool)
                current[rows_or_mask] = True
            mask = current if mask is None else mask & current

        if q.since is not None:
            narrow(st.ts >= _day_start(q.since))
        if q.categories:
            cat_ids = np.array(
                [i for i, name in enumerate(st.cat_names) if _category_matches(name, q.categories)],
                dtype=np.int64,
            )
            narrow(self._rows(st, "cats", cat_ids))
        for author in q.authors:
            narrow(self._rows(st, "authors", _find_authors(st, author)))
        if candidates_only is not None:
            row_of = st.row_of
            narrow(np.array([row_of[p] for p in candidates_only if p in row_of], dtype=np.int64))
        return mask

    @staticmethod
    def _rows(st: _State, kind: str, cols: np.ndarray) -> np.ndarray:
        """Rows of either segment listed under any of `cols` in the `kind` postings."""
        if not len(cols):
            return np.zeros(0, np.int64)
        main = getattr(st.main, kind).rows_for(cols)
        delta = getattr(st.delta, kind).rows_for(cols)
        return np.concatenate([main, delta]).astype(np.int64)

    # -- writing --------------------------------------------------------------------

    def add(self, papers: Iterable[Paper]) -> int:
        """Index papers; a paper whose id is already indexed replaces the old entry.

        Returns how many papers were added or replaced (an unchanged re-add counts 0).
        """
        with self._lock:
            st = self._state
            batch: dict[str, Paper] = {}
            for paper in papers:
                batch.pop(paper.id, None)
                batch[paper.id] = paper
            fresh: list[tuple[Paper, int, int]] = []
            replaced: list[int] = []
            for paper in batch.values():
                ts = _timestamp(paper)
                fp = _fingerprint(paper, ts)
                row = st.row_of.get(paper.id)
                if row is not None:
                    if st.fp[row] == fp:
                        continue
                    replaced.append(row)
                fresh.append((paper, ts, fp))
            if not fresh:
                return 0
            alive = st.alive.copy()
            alive[replaced] = False
            parts: list[_Segment] = []
            rows: list[_Rows] = []
            for start in range(0, len(fresh), _CHUNK):
                segment, chunk_rows = self._build(fresh[start : start + _CHUNK], st.n + start)
                parts.append(segment)
                rows.append(chunk_rows)
            new_ids = [i for r in rows for i in r.ids]
            row_of = st.row_of.copy()
            row_of.update(zip(new_ids, range(st.n, st.n + len(new_ids)), strict=True))
            names = list(st.author_names)
            blob, starts = st.author_blob, st.author_starts
            if len(self._author_ids) > len(names):
                added = list(self._author_ids)[len(names) :]
                extra = "".join(f" {name} \n" for name in added)
                lengths = np.array([len(name) + 3 for name in added], dtype=np.int64)
                new_starts = len(blob) + np.cumsum(lengths) - lengths
                names += added
                blob += extra
                starts = np.concatenate([starts, new_starts])
            state = _State(
                ids=st.ids + new_ids,
                row_of=row_of,
                ts=np.concatenate([st.ts, *(r.ts for r in rows)]),
                dl=np.concatenate([st.dl, *(r.dl for r in rows)]),
                fp=np.concatenate([st.fp, *(r.fp for r in rows)]),
                alive=np.concatenate([alive, np.ones(len(new_ids), bool)]),
                main=st.main,
                delta=_Segment.concat([st.delta, *parts]),
                main_rows=st.main_rows,
                author_names=names,
                author_blob=blob,
                author_starts=starts,
                cat_names=tuple(self._cat_ids),
            )
            if state.n - state.main_rows >= self.merge_threshold:
                state = _compact(state)
            self._state = state.finish()
            return len(fresh)

    def remove(self, paper_ids: Iterable[str]) -> int:
        """Drop papers by id; returns how many were in the index."""
        with self._lock:
            st = self._state
            rows = [st.row_of[p] for p in dict.fromkeys(paper_ids) if p in st.row_of]
            if not rows:
                return 0
            alive = st.alive.copy()
            alive[rows] = False
            row_of = st.row_of.copy()
            for row in rows:
                del row_of[st.ids[row]]
            state = _State(**{**_fields(st), "alive": alive, "row_of": row_of})
            dead = state.n - (st.n_live - len(rows))
            if dead >= max(self.merge_threshold, state.n // 8):
                state = _compact(state)
            self._state = state.finish()
            return len(rows)

    def merge(self) -> None:
        """Merge the delta segment into the main one and drop removed rows now."""
        with self._lock:
            self._state = _compact(self._state).finish()

    def _build(self, items: list[tuple[Paper, int, int]], first_row: int) -> tuple[_Segment, _Rows]:
        """Tokenise a chunk of papers into a segment starting at global row `first_row`."""
        vocab = self._vocab
        title_terms: array = array("i")
        body_terms: array = array("i")
        title_counts = np.empty(len(items), np.int64)
        body_counts = np.empty(len(items), np.int64)
        author_rows: list[int] = []
        author_cols: list[int] = []
        cat_rows: list[int] = []
        cat_cols: list[int] = []
        for row, (paper, _, _) in enumerate(items):
            title_counts[row] = vocab.index_tokens(paper.title or "", title_terms)
            n_body = vocab.index_tokens(paper.abstract or "", body_terms)
            for name in paper.authors:
                n_body += vocab.index_tokens(name, body_terms)
                folded = " ".join(_author_tokens(name))
                if folded:
                    author_rows.append(row)
                    author_cols.append(self._author_ids.setdefault(folded, len(self._author_ids)))
            body_counts[row] = n_body
            cats = [*paper.categories, paper.primary_category or ""]
            for cat in dict.fromkeys(c.strip().lower() for c in cats if c and c.strip()):
                cat_rows.append(row)
                cat_cols.append(self._cat_ids.setdefault(cat, len(self._cat_ids)))

        nrows = len(items)
        local = np.arange(nrows, dtype=np.int32)
        terms = np.concatenate(
            [np.frombuffer(title_terms, np.int32), np.frombuffer(body_terms, np.int32)]
        )
        rows = np.concatenate([np.repeat(local, title_counts), np.repeat(local, body_counts)])
        weights = np.concatenate(
            [
                np.full(len(title_terms), TITLE_WEIGHT, np.float32),
                np.ones(len(body_terms), np.float32),
            ]
        )
        keep = terms >= 0
        terms, rows, weights = terms[keep], rows[keep], weights[keep]
        dl = np.bincount(rows, weights=weights, minlength=nrows).astype(np.float32)
        segment = _Segment(
            terms=_Postings.build(rows, terms, weights, nrows, len(vocab.terms), first_row),
            authors=_Postings.build(
                np.array(author_rows, np.int32),
                np.array(author_cols, np.int32),
                None,
                nrows,
                len(self._author_ids),
                first_row,
            ),
            cats=_Postings.build(
                np.array(cat_rows, np.int32),
                np.array(cat_cols, np.int32),
                None,
                nrows,
                len(self._cat_ids),
                first_row,
            ),
        )
        chunk_rows = _Rows(
            ids=[paper.id for paper, _, _ in items],
            ts=np.array([ts for _, ts, _ in items], np.int64),
            dl=dl,
            fp=np.array([fp for _, _, fp in items], np.int64),
        )
        return segment, chunk_rows

    # -- persistence ----------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the index to one `.npz` file, atomically (merging the delta first)."""
        path = Path(path)
        with self._lock:
            self._state = st = _compact(self._state).finish()
            meta = {
                "format": _FORMAT,
                "merge_threshold": self.merge_threshold,
                "ids": st.ids,
                "terms": self._vocab.terms,
                "authors": st.author_names,
                "categories": list(st.cat_names),
            }
            arrays: dict[str, Any] = {
                "meta": np.frombuffer(json.dumps(meta).encode("utf-8"), np.uint8),
                "ts": st.ts,
                "dl": st.dl,
                "fp": st.fp,
            }
            for kind in ("terms", "authors", "cats"):
                postings: _Postings = getattr(st.main, kind)
                arrays[f"{kind}_indptr"] = postings.indptr
                arrays[f"{kind}_indices"] = postings.indices
                if postings.data is not None:
                    arrays[f"{kind}_data"] = postings.data
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as handle:
                    np.savez(handle, **arrays)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SearchIndex:
        """Read an index written by `save`."""
        with np.load(Path(path), allow_pickle=False) as data:
            meta = json.loads(data["meta"].tobytes().decode("utf-8"))
            if meta.get("format") != _FORMAT:
                raise ValueError(f"{path}: not a paperbot search index")
            arrays = {key: data[key] for key in data.files if key != "meta"}
        index = cls(merge_threshold=meta["merge_threshold"])
        index._vocab = _Vocabulary(meta["terms"])
        index._author_ids = {name: i for i, name in enumerate(meta["authors"])}
        index._cat_ids = {name: i for i, name in enumerate(meta["categories"])}
        ids: list[str] = meta["ids"]
        names: list[str] = meta["authors"]
        lengths = np.array([len(name) + 3 for name in names], dtype=np.int64)
        segment = _Segment(
            *(
                _Postings(
                    arrays[f"{kind}_indptr"].astype(np.int64),
                    arrays[f"{kind}_indices"].astype(np.int32),
                    arrays.get(f"{kind}_data"),
                )
                for kind in ("terms", "authors", "cats")
            )
        )
        if len(arrays["ts"]) != len(ids) or len(arrays["dl"]) != len(ids):
            raise ValueError(f"{path}: damaged search index (row count mismatch)")
        index._state = _State(
            ids=ids,
            row_of={p: i for i, p in enumerate(ids)},
            ts=arrays["ts"].astype(np.int64),
            dl=arrays["dl"].astype(np.float32),
            fp=arrays["fp"].astype(np.int64),
            alive=np.ones(len(ids), bool),
            main=segment,
            delta=_Segment.empty(),
            main_rows=len(ids),
            author_names=names,
            author_blob="".join(f" {name} \n" for name in names),
            author_starts=np.cumsum(lengths) - lengths,
            cat_names=tuple(meta["categories"]),
        ).finish()
        return index


def _fields(st: _State) -> dict[str, Any]:
    """The constructor arguments of a state (derived fields are recomputed by `finish`)."""
    return {
        f.name: getattr(st, f.name)
        for f in dataclasses.fields(st)
        if f.init and f.name not in _DERIVED
    }


_DERIVED = frozenset({"n_live", "norm", "dead_in_main", "dead_in_delta"})


def _compact(st: _State) -> _State:
    """One segment holding every live row, renumbered in the same order."""
    if st.n == st.main_rows and st.alive.all():
        return st
    alive = st.alive
    row_map = np.cumsum(alive, dtype=np.int64) - 1
    row_map[~alive] = -1
    ids = [p for p, keep in zip(st.ids, alive.tolist(), strict=True) if keep]
    main = _Segment.concat([st.main, st.delta], row_map)
    return _State(
        **{
            **_fields(st),
            "ids": ids,
            "row_of": {p: i for i, p in enumerate(ids)},
            "ts": st.ts[alive],
            "dl": st.dl[alive],
            "fp": st.fp[alive],
            "alive": np.ones(len(ids), bool),
            "main": main,
            "delta": _Segment.empty(),
            "main_rows": len(ids),
        }
    )


def _category_matches(name: str, wanted: tuple[str, ...]) -> bool:
    """`cs.lg` matches `cs.LG`; a prefix `cs` matches `cs.*`, `hep` matches `hep-th`."""
    for cat in wanted:
        cat = cat.lower().removesuffix("*").removesuffix(".")
        if name == cat or name.startswith((cat + ".", cat + "-")):
            return True
    return False


def _find_authors(st: _State, author: str) -> np.ndarray:
    """Ids of author names holding every token of `author`, in any order.

    Tokens match whole name tokens; an initial matches any token with that first letter
    (`Y LeCun` finds `Yann LeCun`, and `Yann LeCun` finds `Y. LeCun`).
    """
    tokens = _author_tokens(author)
    full = [t for t in tokens if len(t) > 1]
    if not full or not st.author_names:
        return np.zeros(0, np.int64)
    anchor = max(full, key=len)
    positions = [m.start() for m in re.finditer(re.escape(f" {anchor} "), st.author_blob)]
    if not positions:
        return np.zeros(0, np.int64)
    ids = np.unique(np.searchsorted(st.author_starts, positions, side="right") - 1)
    if len(tokens) == 1:
        return ids
    wanted = [t for t in tokens if t != anchor]
    out = [i for i in ids.tolist() if _name_has(st.author_names[i].split(), wanted)]
    return np.array(out, dtype=np.int64)


def _name_has(name_tokens: list[str], wanted: list[str]) -> bool:
    """Whether every wanted token matches a distinct token of the name."""
    free = list(name_tokens)
    for token in wanted:
        for i, have in enumerate(free):
            if have == token or ((len(token) == 1 or len(have) == 1) and have[0] == token[0]):
                del free[i]
                break
        else:
            return False
    return True
