"""arXiv id normalisation and title-derived ids."""

from __future__ import annotations

import pytest

from recommender import ids


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2401.12345v3", ("2401.12345", 3)),
        ("2401.12345", ("2401.12345", None)),
        ("0704.0001", ("0704.0001", None)),
        ("arXiv:2401.12345", ("2401.12345", None)),
        ("ARXIV:2401.12345v2", ("2401.12345", 2)),
        ("oai:arXiv.org:2508.13426v1", ("2508.13426", 1)),
        ("hep-th/9901001v2", ("hep-th/9901001", 2)),
        ("hep-th/9901001", ("hep-th/9901001", None)),
        ("math.GT/0309136", ("math.GT/0309136", None)),
        ("  2401.12345v1  ", ("2401.12345", 1)),
    ],
)
def test_parse_plain_ids(raw: str, expected: tuple[str, int | None]) -> None:
    assert ids.parse_arxiv_id(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://arxiv.org/abs/2401.12345", ("2401.12345", None)),
        ("http://arxiv.org/abs/2401.12345v2", ("2401.12345", 2)),
        ("https://arxiv.org/pdf/2401.12345v2", ("2401.12345", 2)),
        ("https://arxiv.org/pdf/2401.12345v2.pdf", ("2401.12345", 2)),
        ("http://arxiv.org/pdf/2401.12345.pdf", ("2401.12345", None)),
        ("https://www.arxiv.org/abs/2401.12345/", ("2401.12345", None)),
        ("http://export.arxiv.org/abs/hep-th/9901001v2", ("hep-th/9901001", 2)),
        ("https://arxiv.org/pdf/hep-th/9901001", ("hep-th/9901001", None)),
        ("arxiv.org/abs/2401.12345", ("2401.12345", None)),
        ("http://arxiv.org/abs/2606.13677v1", ("2606.13677", 1)),
    ],
)
def test_parse_urls(raw: str, expected: tuple[str, int | None]) -> None:
    assert ids.parse_arxiv_id(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "abc",
        "2401.123",
        "2401.123456",
        "2401.12345v",
        "2401.12345 extra",
        "hep-th/990100",
        "https://example.com/abs/2401.12345",
        "https://arxiv.org/api/errors#incorrect_id_format_for_abc",
        "title:0123456789abcdef",
    ],
)
def test_invalid_ids_raise(raw: str) -> None:
    with pytest.raises(ids.InvalidId, match="not an arXiv id"):
        ids.parse_arxiv_id(raw)
    assert not ids.is_arxiv_id(raw)


def test_invalid_id_is_a_value_error() -> None:
    assert issubclass(ids.InvalidId, ValueError)


def test_normalize_drops_the_version() -> None:
    assert ids.normalize_arxiv_id("https://arxiv.org/pdf/2401.12345v7.pdf") == "2401.12345"
    assert ids.is_arxiv_id("arXiv:hep-th/9901001v2")


def test_abs_and_pdf_urls() -> None:
    assert ids.abs_url("2401.12345") == "https://arxiv.org/abs/2401.12345"
    assert ids.pdf_url("hep-th/9901001") == "https://arxiv.org/pdf/hep-th/9901001"
    # The generated URLs read back as the same id.
    assert ids.normalize_arxiv_id(ids.abs_url("hep-th/9901001")) == "hep-th/9901001"
    assert ids.normalize_arxiv_id(ids.pdf_url("2401.12345")) == "2401.12345"


@pytest.mark.parametrize(
    "variant",
    [
        "Attention Is All You Need",
        "attention is all you need",
        "ATTENTION IS ALL YOU NEED.",
        "  Attention   is all—you need!! ",
        "Attention: is all, you need?",
        "Attention\nis all\tyou need",
    ],
)
def test_title_id_is_stable_across_case_and_punctuation(variant: str) -> None:
    assert ids.title_id(variant) == ids.title_id("Attention Is All You Need")


def test_title_id_ignores_accents() -> None:
    assert ids.title_id("Café Résumé: Naïve Bayes") == ids.title_id("Cafe Resume Naive Bayes")


def test_title_id_format_and_distinctness() -> None:
    first = ids.title_id("Attention Is All You Need")
    assert first.startswith("title:")
    assert len(first) == len("title:") + 16
    assert first != ids.title_id("Attention Is Not All You Need")
    assert ids.normalize_title("  Hello,   WORLD! ") == "hello world"
    assert ids.title_key("x") == ids.title_key("X!")
