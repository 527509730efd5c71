"""Phrases a person asks for: topics to boost and phrases to exclude.

A phrase matches a paper when its words appear in the paper's title or abstract as one
contiguous run, after the same normalisation on both sides (case, accents, punctuation,
simple plurals): `large language models` matches "Large-Language Model" but not a paper
that merely says "models", and `reinforcement learning` does not hide every paper that
says "learning".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def _fold(word: str) -> str:
    """A word without case, accents or a simple plural ending."""
    word = unicodedata.normalize("NFKD", word.casefold())
    word = "".join(ch for ch in word if not unicodedata.combining(ch))
    if len(word) > 3 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def words(text: str) -> list[str]:
    """The normalised words of a text, in order."""
    return [_fold(w) for w in _WORD.findall(text or "")]


def normalise(text: str) -> str:
    """A text as its normalised words, space-separated and padded (for phrase search)."""
    return " " + " ".join(words(text)) + " "


def phrase_key(phrase: str) -> str:
    """The normalised form of a phrase ("" when it has no words)."""
    return " ".join(words(phrase))


def matches(normalised_text: str, phrase: str) -> bool:
    """Whether a phrase occurs as a whole run of words in a `normalise`d text."""
    key = phrase_key(phrase)
    return bool(key) and f" {key} " in normalised_text


def first_match(normalised_text: str, phrases: Iterable[str]) -> str | None:
    """The first phrase that occurs in the text, or None."""
    for phrase in phrases:
        if matches(normalised_text, phrase):
            return phrase
    return None
