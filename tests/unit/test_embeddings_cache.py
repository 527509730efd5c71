"""embed_cached with a fake encoder, and the on-disk vector cache."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from recommender.embeddings import DiskVectorCache, embed_cached, text_hash


class FakeEncoder:
    """A deterministic encoder that records every text it is asked to embed."""

    def __init__(self, name: str = "fake", dim: int = 8) -> None:
        self.name = name
        self.dim = dim
        self.calls: list[list[str]] = []

    @property
    def seen(self) -> list[str]:
        """Every text embedded so far, in order."""
        return [t for call in self.calls for t in call]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """A unit vector seeded by each text's hash (non-zero even for empty text)."""
        self.calls.append(list(texts))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            rng = np.random.default_rng(int(text_hash(text)[:8], 16))
            vec = rng.normal(size=self.dim)
            out[i] = vec / np.linalg.norm(vec)
        return out


TEXTS = ["graph neural networks", "protein folding", "graph neural networks", "robot arms"]


def test_embeds_each_distinct_text_once_without_cache() -> None:
    encoder = FakeEncoder()
    out = embed_cached(encoder, TEXTS, None)
    assert out.shape == (4, 8) and out.dtype == np.float32
    assert sorted(encoder.seen) == sorted(set(TEXTS))
    assert np.array_equal(out[0], out[2])
    assert not np.array_equal(out[0], out[1])
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(out, FakeEncoder().encode(TEXTS))


def test_second_run_embeds_nothing(tmp_path: Path) -> None:
    cache = DiskVectorCache(tmp_path / "vectors", dim=8)
    encoder = FakeEncoder()
    first = embed_cached(encoder, TEXTS, cache)
    assert len(encoder.seen) == 3
    again = embed_cached(encoder, TEXTS, cache)
    assert len(encoder.seen) == 3  # nothing new was embedded
    assert np.array_equal(first, again)
    # Only the new text is embedded when the list grows.
    embed_cached(encoder, [*TEXTS, "new text"], cache)
    assert encoder.seen[3:] == ["new text"]


def test_empty_text_gives_zero_row_and_is_never_encoded(tmp_path: Path) -> None:
    cache = DiskVectorCache(tmp_path / "vectors", dim=8)
    encoder = FakeEncoder()
    out = embed_cached(encoder, ["", "protein folding", "   ", ""], cache)
    assert not out[0].any() and not out[2].any() and not out[3].any()
    assert out[1].any()
    assert encoder.seen == ["protein folding"]
    # Still zero (and still not encoded) on the next run.
    out = embed_cached(encoder, [""], cache)
    assert not out.any()
    assert encoder.seen == ["protein folding"]


def test_cache_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "vectors"
    encoder = FakeEncoder()
    first = embed_cached(encoder, TEXTS, DiskVectorCache(path, dim=8))
    assert path.with_suffix(".npy").exists() and path.with_suffix(".keys").exists()
    reopened = DiskVectorCache(path, dim=8)
    other = FakeEncoder()
    again = embed_cached(other, list(reversed(TEXTS)), reopened)
    assert other.calls == []
    assert np.array_equal(again, first[::-1])


def test_reopened_cache_with_wrong_dim_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "vectors"
    embed_cached(FakeEncoder(dim=8), TEXTS, DiskVectorCache(path, dim=8))
    encoder = FakeEncoder(dim=4)
    out = embed_cached(encoder, TEXTS, DiskVectorCache(path, dim=4))
    assert out.shape == (4, 4)
    assert len(encoder.seen) == 3


def test_encoder_name_is_part_of_the_key(tmp_path: Path) -> None:
    cache = DiskVectorCache(tmp_path / "vectors", dim=8)
    embed_cached(FakeEncoder(name="a"), TEXTS, cache)
    other = FakeEncoder(name="b")
    embed_cached(other, TEXTS, cache)
    assert len(other.seen) == 3  # another model's vectors are not reused


def test_chunks_and_progress(tmp_path: Path) -> None:
    cache = DiskVectorCache(tmp_path / "vectors", dim=8)
    texts = [f"text {i}" for i in range(10)]
    encoder = FakeEncoder()
    done: list[int] = []
    embed_cached(encoder, texts[:4], cache)
    out = embed_cached(encoder, [*texts, "text 0"], cache, chunk=3, progress=done.append)
    # 5 were cached (4 + the repeat), the other 6 are embedded in chunks of at most 3.
    assert done == [5, 3, 3]
    assert [len(c) for c in encoder.calls[1:]] == [3, 3]
    assert sum(done) == 11
    assert np.array_equal(out[0], out[10])


def test_disk_cache_get_and_put(tmp_path: Path) -> None:
    cache = DiskVectorCache(tmp_path / "v", dim=3)
    assert cache.get_many(["a", "b"]) == [None, None]
    cache.put_many({"a": np.array([1.0, 2.0, 3.0], np.float32)})
    got = cache.get_many(["a", "b"])
    assert got[1] is None
    np.testing.assert_array_equal(got[0], [1.0, 2.0, 3.0])
    reopened = DiskVectorCache(tmp_path / "v", dim=3)
    np.testing.assert_array_equal(reopened.get_many(["a"])[0], [1.0, 2.0, 3.0])


@pytest.mark.parametrize("text", ["x", "ünïcödé", "a" * 5000])
def test_text_hash_is_stable_and_short(text: str) -> None:
    assert text_hash(text) == text_hash(text)
    assert len(text_hash(text)) == 24
    assert text_hash(text) != text_hash(text + " ")
