"""BibTeX export: unique keys, escaped LaTeX specials, arXiv eprint fields."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from recommender.bibtex import to_bibtex
from recommender.types import Paper


def arxiv(pid: str, title: str, authors: list[str], year: int = 2024, **kw) -> Paper:
    return Paper(
        id=pid,
        title=title,
        authors=authors,
        published=datetime(year, 3, 1, tzinfo=UTC),
        **kw,
    )


def entries(text: str) -> list[str]:
    return [e for e in text.split("\n\n") if e.strip()]


def fields(entry: str) -> dict[str, str]:
    """`name = {value}` lines of one entry (values may hold nested braces)."""
    out = {}
    for line in entry.splitlines()[1:-1]:
        name, _, value = line.strip().rstrip(",").partition(" = ")
        out[name] = value[1:-1]
    return out


def keys(text: str) -> list[str]:
    return re.findall(r"^@\w+\{([^,]+),$", text, flags=re.MULTILINE)


def balanced(text: str) -> bool:
    """Unescaped braces balance (what BibTeX needs to read an entry)."""
    depth = 0
    for match in re.finditer(r"\\.|[{}]", text):
        token = match.group()
        if token == "{":
            depth += 1
        elif token == "}":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


def test_keys_are_unique_even_for_the_same_author_year_and_word() -> None:
    papers = [
        arxiv("2401.00001", "Scaling Laws for Everything", ["Jane Smith"]),
        arxiv("2401.00002", "Scaling Laws Revisited", ["John Smith"]),
        arxiv("2401.00003", "Scaling Laws Again", ["Ann Smith", "Bo Li"]),
        arxiv("2401.00004", "Attention", ["Bo Li"], year=2023),
    ]
    found = keys(to_bibtex(papers))
    assert len(found) == 4
    assert len(set(found)) == 4
    assert found[0] == "smith2024scaling"
    assert found[1].startswith("smith2024scaling")
    assert found[3] == "li2023attention"
    assert all(re.fullmatch(r"[a-z0-9]+", k) for k in found)


def test_keys_are_ascii_for_accented_or_missing_authors() -> None:
    papers = [
        arxiv("2401.00010", "Kernel Methods", ["Bernhard Schölkopf"]),
        Paper(id="title:0123456789abcdef", title="On Things"),
        Paper(id="title:fedcba9876543210", title="Über 中文 ?"),
    ]
    found = keys(to_bibtex(papers))
    assert found[0] == "scholkopf2024kernel"
    assert found[1] == "anonthings"
    assert found[2] == "anonpaper"
    assert len(set(found)) == 3


def test_latex_specials_are_escaped() -> None:
    title = r"R&D at 50% of $5 #1: a_b {x} ~100 x^2 \alpha"
    entry = entries(to_bibtex([arxiv("2401.00020", title, ["Ann O'Neil & Co"])]))[0]
    got = fields(entry)
    assert got["title"] == (
        r"{R\&D at 50\% of \$5 \#1: a\_b \{x\} \textasciitilde{}100 "
        r"x\textasciicircum{}2 \textbackslash{}alpha}"
    )
    assert got["author"] == r"Ann O'Neil \& Co"
    assert balanced(entry)
    # No special is left bare anywhere in the title or author values.
    for value in (got["title"], got["author"]):
        bare = re.sub(r"\\(?:[&%$#_{}]|text\w+\{\})", "", value[1:-1] if value[0] == "{" else value)
        assert not set(bare) & set("&%$#_{}~^\\")


def test_whitespace_in_titles_is_collapsed() -> None:
    entry = to_bibtex([arxiv("2401.00021", "A  title\nacross\tlines", ["X Y"])])
    assert fields(entry)["title"] == "{A title across lines}"


def test_arxiv_papers_carry_eprint_fields() -> None:
    paper = arxiv(
        "2401.12345",
        "Diffusion Transformers",
        ["Ada Lovelace", "Alan Turing"],
        primary_category="cs.LG",
        doi="10.1000/xyz",
    )
    got = fields(entries(to_bibtex([paper]))[0])
    assert got["eprint"] == "2401.12345"
    assert got["archivePrefix"] == "arXiv"
    assert got["primaryClass"] == "cs.LG"
    assert got["year"] == "2024"
    assert got["doi"] == "10.1000/xyz"
    assert got["author"] == "Ada Lovelace and Alan Turing"
    assert got["url"] == "https://arxiv.org/abs/2401.12345"


def test_old_style_arxiv_ids_and_given_abs_url() -> None:
    paper = arxiv(
        "hep-th/9901001", "Strings", ["E W"], abs_url="https://arxiv.org/abs/hep-th/9901001v2"
    )
    got = fields(to_bibtex([paper]))
    assert got["eprint"] == "hep-th/9901001"
    assert got["url"] == "https://arxiv.org/abs/hep-th/9901001v2"


def test_non_arxiv_papers_have_no_eprint_and_link_their_code() -> None:
    paper = Paper(id="title:00112233aabbccdd", title="A Tool", code_url="https://github.com/x/y")
    got = fields(to_bibtex([paper]))
    assert "eprint" not in got
    assert "archivePrefix" not in got
    assert "year" not in got
    assert got["url"] == "https://github.com/x/y"


def test_every_entry_is_well_formed() -> None:
    papers = [
        arxiv(f"2401.{i:05d}", f"Paper {{number}} {i} & more_stuff", [f"A{i} B"])
        for i in range(1, 6)
    ]
    text = to_bibtex(papers)
    assert len(entries(text)) == 5
    assert all(e.startswith("@misc{") and e.endswith("}") for e in entries(text))
    assert all(balanced(e) for e in entries(text))
    assert to_bibtex([]) == ""
