"""BibTeX entries for papers (for `/papers export`)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from recommender.types import Paper

_SPECIAL = {
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "\\": r"\textbackslash{}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def _escape(text: str) -> str:
    """Escape LaTeX specials so titles like `R&D at 50%` compile."""
    return "".join(_SPECIAL.get(ch, ch) for ch in " ".join(text.split()))


def _key(paper: Paper, taken: set[str]) -> str:
    """A citation key: first author's surname + year + first title word, made unique."""
    surname = (paper.authors[0].split()[-1] if paper.authors else "anon").lower()
    surname = unicodedata.normalize("NFKD", surname).encode("ascii", "ignore").decode() or "anon"
    year = str(paper.published.year) if paper.published else ""
    word = next((w.lower() for w in re.findall(r"[A-Za-z]{4,}", paper.title)), "paper")
    base = re.sub(r"[^a-z0-9]", "", surname + year + word) or "paper"
    key, n = base, 1
    while key in taken:
        n += 1
        key = f"{base}{n}"
    taken.add(key)
    return key


def to_bibtex(papers: Sequence[Paper]) -> str:
    """One `@misc` (arXiv) or `@article` entry per paper."""
    taken: set[str] = set()
    entries = []
    for paper in papers:
        fields = [("title", "{" + _escape(paper.title) + "}")]
        if paper.authors:
            fields.append(("author", " and ".join(_escape(a) for a in paper.authors)))
        if paper.published:
            fields.append(("year", str(paper.published.year)))
        if paper.is_arxiv:
            fields += [("eprint", paper.id), ("archivePrefix", "arXiv")]
            if paper.primary_category:
                fields.append(("primaryClass", paper.primary_category))
        if paper.doi:
            fields.append(("doi", paper.doi))
        url = paper.abs_url or (f"https://arxiv.org/abs/{paper.id}" if paper.is_arxiv else None)
        url = url or paper.project_url or paper.code_url
        if url:
            fields.append(("url", url))
        body = ",\n".join(f"  {name} = {{{value}}}" for name, value in fields)
        entries.append(f"@misc{{{_key(paper, taken)},\n{body}\n}}")
    return "\n\n".join(entries)
