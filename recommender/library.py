"""Reference-manager libraries (BibTeX, RIS) and lists of arXiv ids, read forgivingly.

A Zotero, Mendeley or JabRef export is parsed into `Entry` records that carry what a paper
can be matched by: its arXiv id, its DOI, its title. Nothing here touches the store or the
network; `LibraryError` says in one line why a file cannot be read at all, while a single
broken entry in an otherwise good file is skipped and counted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from recommender.ids import InvalidId, normalize_arxiv_id
from recommender.sources._common import clean, clean_author

MAX_BYTES = 5 * 1024 * 1024
MAX_ENTRIES = 5_000
MAX_IDS = 500  # a pasted list of ids in one command

# arXiv ids inside free text: new-style (2401.12345v2) and old-style (hep-th/9901001).
_ARXIV_IN_TEXT = re.compile(
    r"(?:arxiv[:./\s]*(?:abs/|pdf/)?|arxiv\.org/(?:abs|pdf)/|10\.48550/arxiv\.)"
    r"(?P<id>\d{4}\.\d{4,5}(?:v\d+)?|[a-z\-]+(?:\.[A-Z]{2})?/\d{7}(?:v\d+)?)",
    re.IGNORECASE,
)
_DOI = re.compile(r"\b(10\.\d{4,9}/[^\s\"<>{}]+)", re.IGNORECASE)
_BIB_START = re.compile(r"@\s*([A-Za-z]+)\s*([{(])")
_RIS_LINE = re.compile(r"^([A-Z][A-Z0-9])  -(?: (.*))?$")
_LATEX_COMMAND = re.compile(r"\\[A-Za-z]+\s*")
_SKIPPED_TYPES = frozenset({"comment", "string", "preamble"})


class LibraryError(ValueError):
    """The file cannot be imported at all; the message is one line for the person."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One reference: whatever identifies the paper."""

    title: str = ""
    arxiv_id: str | None = None
    doi: str | None = None
    authors: tuple[str, ...] = ()
    year: str = ""

    @property
    def label(self) -> str:
        """A short name for the person: title, else the id."""
        return self.title or self.arxiv_id or self.doi or "(untitled entry)"


@dataclass(slots=True)
class Library:
    """A parsed file: its entries, and how many entries were unreadable."""

    format: str
    entries: list[Entry] = field(default_factory=list)
    malformed: int = 0


def read_library(
    data: bytes, *, max_bytes: int = MAX_BYTES, max_entries: int = MAX_ENTRIES
) -> Library:
    """Parse a BibTeX or RIS file (the format is recognised from the content)."""
    too_big = size_error(len(data), max_bytes)
    if too_big:
        raise LibraryError(too_big)
    text = _decode(data)
    if _looks_like_ris(text):
        library = _parse_ris(text)
    elif _BIB_START.search(text):
        library = _parse_bibtex(text)
    else:
        raise LibraryError(
            "That file is neither BibTeX (@article{…}) nor RIS (TY  - …). Export your library "
            "as BibTeX or RIS, or paste arXiv ids instead."
        )
    if len(library.entries) > max_entries:
        raise LibraryError(
            f"That file has {len(library.entries):,} entries; the limit is {max_entries:,} per "
            "import. Export a smaller collection, or split the file."
        )
    if not library.entries:
        broken = f" ({library.malformed} could not be read)" if library.malformed else ""
        raise LibraryError(f"No usable {library.format} entries in that file{broken}.")
    return library


def size_error(size: int, max_bytes: int = MAX_BYTES) -> str | None:
    """The one-line refusal for a file of `size` bytes, or None when it is small enough."""
    if size <= max_bytes:
        return None
    return (
        f"That file is {_size(size)}; the limit is {_size(max_bytes)}. "
        "Export a smaller collection, or split the file."
    )


def read_ids(text: str, *, max_ids: int = MAX_IDS) -> tuple[list[str], list[str]]:
    """arXiv ids and URLs separated by spaces, commas or lines: (ids, tokens that are not ids)."""
    ids: dict[str, None] = {}
    bad: list[str] = []
    for token in re.split(r"[\s,;]+", text or ""):
        token = token.strip("<>()[]'\"")
        if not token:
            continue
        try:
            ids[normalize_arxiv_id(token)] = None
        except InvalidId:
            bad.append(token[:60])
    if len(ids) > max_ids:
        raise LibraryError(
            f"That is {len(ids)} ids; the limit is {max_ids} per command. "
            "Upload a BibTeX or RIS file for more."
        )
    return list(ids), bad


def arxiv_id_in(*texts: str | None) -> str | None:
    """The first arXiv id found in free text (an eprint field, a URL, a journal line)."""
    for text in texts:
        if not text:
            continue
        match = _ARXIV_IN_TEXT.search(text)
        if match:
            try:
                return normalize_arxiv_id(match.group("id"))
            except InvalidId:
                continue
    return None


def normal_doi(text: str | None) -> str | None:
    """A DOI in lower case without its resolver prefix, or None."""
    if not text:
        return None
    match = _DOI.search(text)
    return match.group(1).rstrip(".,;").casefold() if match else None


# -- decoding -----------------------------------------------------------------------------


def _size(n: int) -> str:
    """Bytes as a short human size."""
    return f"{n / 1024 / 1024:.1f} MB" if n >= 1024 * 1024 else f"{max(1, n // 1024)} KB"


def _decode(data: bytes) -> str:
    """Text of a file, or a LibraryError for anything binary."""
    if b"\x00" in data[:65536]:
        raise LibraryError("That file is binary, not a BibTeX or RIS text file.")
    for encoding in (
        ("utf-8-sig", "utf-16") if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ("utf-8-sig",)
    ):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        # Older Mendeley and EndNote exports are Latin-1; anything else binary shows up
        # as control characters below.
        text = data.decode("latin-1")
    sample = text[:65536]
    controls = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\r\n\t\f")
    if sample and controls / len(sample) > 0.01:
        raise LibraryError("That file is binary, not a BibTeX or RIS text file.")
    return text


def _looks_like_ris(text: str) -> bool:
    """Whether the file is RIS: a `TY  - ` line near the top."""
    head = text.lstrip()[:4000]
    return bool(re.search(r"^TY  - ", head, re.MULTILINE))


# -- BibTeX -------------------------------------------------------------------------------


def _parse_bibtex(text: str) -> Library:
    """Every `@type{key, field = value, …}` entry; an unbalanced entry is skipped."""
    library = Library("BibTeX")
    strings: dict[str, str] = {}
    pos = 0
    while True:
        match = _BIB_START.search(text, pos)
        if match is None:
            break
        kind = match.group(1).lower()
        close = "}" if match.group(2) == "{" else ")"
        end = _matching(text, match.end() - 1, match.group(2), close)
        if end < 0:
            # Unbalanced: skip to the next line that starts a new entry.
            library.malformed += 1
            nxt = re.compile(r"^\s*@", re.MULTILINE).search(text, match.end())
            pos = nxt.start() if nxt else len(text)
            continue
        body = text[match.end() : end]
        pos = end + 1
        if kind in _SKIPPED_TYPES:
            if kind == "string":
                fields = _bib_fields(body, strings, has_key=False)
                if fields is not None:
                    strings.update(fields)
            continue
        fields = _bib_fields(body, strings, has_key=True)
        if fields is None:
            library.malformed += 1
            continue
        entry = _bib_entry(fields)
        if entry is None:
            library.malformed += 1
        else:
            library.entries.append(entry)
    return library


def _matching(text: str, start: int, open_: str, close: str, *, entry: bool = True) -> int:
    """Index of the delimiter closing the one at `start` (braces nest), or -1.

    For a whole entry (`entry`), a line starting with `@` before the close means the entry
    never closed: the next one began.
    """
    depth = 1 if open_ == "{" else 0
    outer = depth
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if close == "}" and depth == 0:
                return i
            if depth < 0:
                return -1
        elif ch == close and depth == 0:
            return i
        elif (
            ch == "@"
            and entry
            and depth == outer
            and not text[text.rfind("\n", 0, i) + 1 : i].strip()
        ):
            return -1
        i += 1
    return -1


def _bib_fields(body: str, strings: dict[str, str], *, has_key: bool) -> dict[str, str] | None:
    """`key, name = {value}, …` -> {name: value}; None when the body cannot be read."""
    pos = 0
    if has_key:
        comma = body.find(",")
        if comma < 0:
            return {} if body.strip() else None
        pos = comma + 1
    fields: dict[str, str] = {}
    name_re = re.compile(r"\s*([A-Za-z][\w\-:.+]*)\s*=\s*")
    while pos < len(body):
        rest = body[pos:]
        if not rest.strip(" \t\r\n,"):
            break
        match = name_re.match(body, pos)
        if match is None:
            return fields or None
        name = match.group(1).lower()
        pos = match.end()
        parts: list[str] = []
        while True:
            while pos < len(body) and body[pos] in " \t\r\n":
                pos += 1
            if pos >= len(body):
                break
            ch = body[pos]
            if ch == "{":
                end = _matching(body, pos, "{", "}", entry=False)
                if end < 0:
                    return None
                parts.append(body[pos + 1 : end])
                pos = end + 1
            elif ch == '"':
                end = pos + 1
                depth = 0
                while end < len(body) and not (body[end] == '"' and depth == 0):
                    depth += {"{": 1, "}": -1}.get(body[end], 0)
                    end += 1
                if end >= len(body):
                    return None
                parts.append(body[pos + 1 : end])
                pos = end + 1
            else:
                word = re.match(r"[^\s,#]+", body[pos:])
                if word is None:
                    return None
                token = word.group(0)
                parts.append(strings.get(token.lower(), token))
                pos += len(token)
            while pos < len(body) and body[pos] in " \t\r\n":
                pos += 1
            if pos < len(body) and body[pos] == "#":
                pos += 1
                continue
            break
        fields[name] = "".join(parts)
        while pos < len(body) and body[pos] in " \t\r\n":
            pos += 1
        if pos < len(body) and body[pos] == ",":
            pos += 1
    return fields


def _latex(text: str) -> str:
    """BibTeX field text as plain text: accents resolved, braces and commands dropped."""
    text = clean_author(text) if "\\" in text else text
    text = _LATEX_COMMAND.sub("", text)
    return clean(text.replace("{", "").replace("}", "").replace("~", " "))


def _bib_entry(fields: dict[str, str]) -> Entry | None:
    """An Entry from BibTeX fields; None when nothing identifies the paper."""
    title = _latex(fields.get("title", ""))
    prefix = fields.get("archiveprefix", "") + fields.get("eprinttype", "")
    eprint = fields.get("eprint", "").strip()
    arxiv = None
    if eprint and ("arxiv" in prefix.lower() or not prefix):
        try:
            arxiv = normalize_arxiv_id(eprint)
        except InvalidId:
            arxiv = None
    arxiv = arxiv or arxiv_id_in(
        fields.get("arxivid") and "arXiv:" + fields["arxivid"],
        fields.get("url"),
        fields.get("journal"),
        fields.get("note"),
        fields.get("doi"),
        fields.get("howpublished"),
    )
    doi = normal_doi(fields.get("doi"))
    if not (title or arxiv or doi):
        return None
    authors = tuple(
        a for a in (_latex(x) for x in re.split(r"\s+and\s+", fields.get("author", ""))) if a
    )
    year = re.sub(r"\D", "", fields.get("year", ""))[:4]
    return Entry(title=title[:1000], arxiv_id=arxiv, doi=doi, authors=authors[:50], year=year)


# -- RIS ----------------------------------------------------------------------------------


def _parse_ris(text: str) -> Library:
    """`TY  - …` … `ER  - ` records; a record that never ends is counted as malformed."""
    library = Library("RIS")
    record: dict[str, list[str]] | None = None
    last: str | None = None
    for line in text.splitlines():
        line = line.rstrip("\r")
        match = _RIS_LINE.match(line)
        if match is None:
            if record is not None and last and line.strip():
                # A continuation line (some exporters wrap long abstracts).
                record[last][-1] += " " + line.strip()
            continue
        tag, value = match.group(1), (match.group(2) or "").strip()
        if tag == "TY":
            if record is not None:
                library.malformed += 1
            record, last = {}, None
            continue
        if record is None:
            continue
        if tag == "ER":
            entry = _ris_entry(record)
            if entry is None:
                library.malformed += 1
            else:
                library.entries.append(entry)
            record, last = None, None
            continue
        record.setdefault(tag, []).append(value)
        last = tag
    if record is not None:
        library.malformed += 1
    return library


def _ris_entry(record: dict[str, list[str]]) -> Entry | None:
    """An Entry from one RIS record; None when nothing identifies the paper."""

    def first(*tags: str) -> str:
        for tag in tags:
            if record.get(tag):
                return record[tag][0]
        return ""

    title = clean(first("TI", "T1", "CT", "BT"))
    urls = [u for tag in ("UR", "L1", "L2", "LK") for u in record.get(tag, [])]
    doi = normal_doi(first("DO", "M3")) or next(
        (d for d in (normal_doi(u) for u in urls if "doi" in u.lower()) if d), None
    )
    arxiv = arxiv_id_in(*urls, first("DO"), first("JO", "JF", "T2"), *record.get("N1", []))
    if not (title or arxiv or doi):
        return None
    authors = tuple(clean(a) for tag in ("AU", "A1") for a in record.get(tag, []) if clean(a))
    year = re.sub(r"\D", "", first("PY", "Y1", "DA"))[:4]
    return Entry(title=title[:1000], arxiv_id=arxiv, doi=doi, authors=authors[:50], year=year)


__all__ = [
    "MAX_BYTES",
    "MAX_ENTRIES",
    "Entry",
    "Library",
    "LibraryError",
    "arxiv_id_in",
    "normal_doi",
    "read_ids",
    "read_library",
    "size_error",
]
