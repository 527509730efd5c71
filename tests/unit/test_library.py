"""Reading reference libraries: BibTeX and RIS exports, id lists, and files that are not."""

from __future__ import annotations

import pytest

from recommender.library import (
    MAX_BYTES,
    Entry,
    LibraryError,
    arxiv_id_in,
    normal_doi,
    read_ids,
    read_library,
)

# The shapes Zotero, Mendeley and JabRef write: eprint fields, arXiv DOIs, URLs, journal
# lines, @string macros, comments, nested braces and TeX accents.
BIBTEX = r"""
% Exported by Zotero
@comment{jabref-meta: databaseType:bibtex;}
@string{neurips = "Advances in Neural Information Processing Systems"}

@misc{vaswani2017attention,
  title = {Attention Is All You Need},
  author = {Vaswani, Ashish and Shazeer, Noam and Parmar, Niki},
  year = {2017},
  eprint = {1706.03762v7},
  archivePrefix = {arXiv},
  primaryClass = {cs.CL},
}

@article{ho2020denoising,
  title = "{Denoising} {Diffusion} Probabilistic Models",
  journal = neurips,
  doi = {10.48550/arXiv.2006.11239},
  year = 2020
}

@inproceedings{lora,
  title = {{LoRA}: Low-Rank Adaptation of Large Language Models},
  url = {https://arxiv.org/abs/2106.09685},
  author = {Hu, Edward J. and Shen, Yelong},
}

@article{schrodinger,
  title = {Quantisierung als {E}igenwertproblem},
  author = {Schr\"{o}dinger, Erwin},
  journal = {Annalen der Physik},
  doi = {https://doi.org/10.1002/andp.19263840404},
  year = {1926},
}

@article{journal_line,
  title = {Old Style Ids Still Count},
  journal = {arXiv preprint arXiv:hep-th/9901001},
}

@book{no_identity,
  publisher = {Nobody},
}
"""

RIS = """TY  - JOUR
TI  - Attention Is All You Need
AU  - Vaswani, Ashish
AU  - Shazeer, Noam
PY  - 2017
UR  - http://arxiv.org/abs/1706.03762
ER  -

TY  - JOUR
T1  - Quantisierung als Eigenwertproblem
DO  - 10.1002/andp.19263840404
JO  - Annalen der Physik
ER  -

TY  - CONF
TI  - A Conference Paper Without Any Link
AU  - Doe, Jane
ER  -
"""


def test_bibtex_entries_carry_arxiv_ids_dois_and_titles() -> None:
    library = read_library(BIBTEX.encode())
    assert library.format == "BibTeX"
    by_title = {e.title: e for e in library.entries}
    assert by_title["Attention Is All You Need"].arxiv_id == "1706.03762"
    assert by_title["Attention Is All You Need"].authors == (
        "Vaswani, Ashish",
        "Shazeer, Noam",
        "Parmar, Niki",
    )
    assert by_title["Denoising Diffusion Probabilistic Models"].arxiv_id == "2006.11239"
    assert by_title["LoRA: Low-Rank Adaptation of Large Language Models"].arxiv_id == "2106.09685"
    schrodinger = by_title["Quantisierung als Eigenwertproblem"]
    assert schrodinger.arxiv_id is None
    assert schrodinger.doi == "10.1002/andp.19263840404"
    assert schrodinger.authors == ("Schrödinger, Erwin",)
    assert by_title["Old Style Ids Still Count"].arxiv_id == "hep-th/9901001"
    # An entry with nothing to match by is counted, not guessed at.
    assert len(library.entries) == 5
    assert library.malformed == 1


def test_an_unbalanced_bibtex_entry_is_skipped_and_the_rest_kept() -> None:
    text = (
        "@article{broken, title = {Never closed,\n  year = 2020\n\n"
        "@article{fine, title = {Still Read}, eprint = {2401.12345}}\n"
    )
    library = read_library(text.encode())
    assert [e.title for e in library.entries] == ["Still Read"]
    assert library.entries[0].arxiv_id == "2401.12345"
    assert library.malformed == 1


def test_parenthesised_entries_and_concatenated_macros() -> None:
    text = '@string(conf = "ICML")\n@inproceedings(key, title = "Paper at " # conf, year=2024)\n'
    [entry] = read_library(text.encode()).entries
    assert entry.title == "Paper at ICML"
    assert entry.year == "2024"


def test_ris_records() -> None:
    library = read_library(RIS.encode("utf-8-sig"))
    assert library.format == "RIS"
    assert [e.title for e in library.entries] == [
        "Attention Is All You Need",
        "Quantisierung als Eigenwertproblem",
        "A Conference Paper Without Any Link",
    ]
    first, second, third = library.entries
    assert first.arxiv_id == "1706.03762" and first.year == "2017"
    assert second.doi == "10.1002/andp.19263840404"
    assert third.authors == ("Doe, Jane",) and third.arxiv_id is None and third.doi is None


def test_a_ris_record_that_never_ends_is_counted() -> None:
    text = RIS + "TY  - JOUR\nTI  - Cut Off Mid-Record\n"
    library = read_library(text.encode())
    assert len(library.entries) == 3
    assert library.malformed == 1


def test_latin1_exports_are_read() -> None:
    text = "@article{a, title = {Caf\xe9 Physics}, eprint = {2401.00001}}"
    [entry] = read_library(text.encode("latin-1")).entries
    assert entry.title == "Café Physics"


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4, "binary"),
        (bytes(range(1, 32)) * 200, "binary"),
        (b"Dear colleague, here are my favourite papers.", "neither BibTeX"),
        (b"@article{x, publisher = {Nobody}}", "No usable BibTeX entries"),
        (b"TY  - JOUR\nAU  - Somebody\nER  -\n", "No usable RIS entries"),
        (b"", "neither BibTeX"),
    ],
)
def test_files_that_cannot_be_imported_say_why(data: bytes, says: str) -> None:
    with pytest.raises(LibraryError, match=says):
        read_library(data)


def test_size_and_entry_limits() -> None:
    entry = "@misc{k%d, title = {Paper %d}}\n"
    with pytest.raises(LibraryError, match=r"the limit is 5.0 MB"):
        read_library(b" " * (MAX_BYTES + 1))
    many = "".join(entry % (i, i) for i in range(11)).encode()
    with pytest.raises(LibraryError, match="11 entries; the limit is 10"):
        read_library(many, max_entries=10)
    assert len(read_library(many, max_entries=11).entries) == 11


def test_id_lists() -> None:
    ids, bad = read_ids(
        "2401.12345v2, https://arxiv.org/abs/1706.03762 arXiv:hep-th/9901001\n"
        "<https://arxiv.org/pdf/2106.09685.pdf> 2401.12345"
    )
    assert ids == ["2401.12345", "1706.03762", "hep-th/9901001", "2106.09685"]
    assert bad == []
    ids, bad = read_ids("2401.12345 not-an-id 12")
    assert ids == ["2401.12345"] and bad == ["not-an-id", "12"]
    with pytest.raises(LibraryError, match="limit is 3"):
        read_ids("2401.00001 2401.00002 2401.00003 2401.00004", max_ids=3)


def test_ids_and_dois_inside_free_text() -> None:
    assert arxiv_id_in(None, "see arXiv:2401.12345v3 for details") == "2401.12345"
    assert arxiv_id_in("https://doi.org/10.48550/arXiv.2006.11239") == "2006.11239"
    assert arxiv_id_in("Nature 521, 436-444") is None
    assert normal_doi("https://doi.org/10.1038/NATURE14539.") == "10.1038/nature14539"
    assert normal_doi("no doi here") is None
    assert Entry(doi="10.1/x").label == "10.1/x"
