"""Content features of papers: sentence embeddings (centred, optionally whitened) and TF-IDF."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from recommender.types import Paper

# Dimensions of the latent-semantic (TF-IDF -> truncated SVD) vectors: dense, so the TF-IDF
# signal scores many users against many papers as one matrix product.
LSA_DIM = 256
# Papers the LSA directions are fitted on, at most (a uniform sample of a larger catalogue).
LSA_FIT_ROWS = 20_000


def paper_text(paper: Paper) -> str:
    """The text content models read: title, then abstract (either may be empty)."""
    return paper.text


@dataclass(slots=True)
class ItemContent:
    """Content vectors for a set of papers, row-aligned with them."""

    dense: np.ndarray  # centred, L2-normalised embedding (or LSA) rows
    tfidf: sp.csr_matrix  # L2-normalised TF-IDF rows
    has_text: np.ndarray  # bool: the paper had any text at all
    lexical: np.ndarray  # centred, L2-normalised LSA of the TF-IDF rows


class ContentModel:
    """Fits the corpus statistics once; turns any paper into content vectors afterwards."""

    def __init__(self) -> None:
        self.vectorizer: TfidfVectorizer | None = None
        self.mean: np.ndarray | None = None
        self.eigvals: np.ndarray | None = None
        self.eigvecs: np.ndarray | None = None
        self.lsa: TruncatedSVD | None = None
        self.lsa_mean: np.ndarray | None = None
        self.dense_kind = "embedding"

    def fit(self, papers: Sequence[Paper], embeddings: np.ndarray | None) -> ItemContent:
        """Learn TF-IDF vocabulary and embedding statistics from the catalogue."""
        texts = [paper_text(p) for p in papers]
        self.vectorizer = TfidfVectorizer(
            sublinear_tf=True,
            stop_words="english",
            min_df=1 if len(texts) < 50 else 2,
            max_features=200_000,
            dtype=np.float32,
        )
        try:
            tfidf = self.vectorizer.fit_transform(texts)
        except ValueError:
            # Every text empty (or only stop words): a one-column zero vocabulary.
            self.vectorizer = TfidfVectorizer(dtype=np.float32, token_pattern=r"(?u)\S+")
            self.vectorizer.fit(["<empty>"])
            tfidf = sp.csr_matrix((len(texts), 1), dtype=np.float32)
        tfidf = normalize(tfidf).astype(np.float32).tocsr()
        has_text = np.array([bool(t) for t in texts])
        if tfidf.shape[1] < 2 or len(texts) < 2:
            # TruncatedSVD needs two terms; a one-word vocabulary is its own LSA.
            self.lsa = None
            latent = tfidf.toarray()
        else:
            dim = max(1, min(LSA_DIM, tfidf.shape[1] - 1, len(texts) - 1))
            self.lsa = TruncatedSVD(dim, random_state=0)
            if len(texts) > LSA_FIT_ROWS:
                # The topic directions of a large catalogue are found on a uniform sample
                # of it (the SVD's cost grows with rows); every paper is then projected.
                rows = np.random.default_rng(0).choice(len(texts), LSA_FIT_ROWS, replace=False)
                self.lsa.fit(tfidf[np.sort(rows)])
                latent = self.lsa.transform(tfidf).astype(np.float32)
            else:
                latent = self.lsa.fit_transform(tfidf).astype(np.float32)
        self.lsa_mean = (latent[has_text] if has_text.any() else latent).mean(axis=0)
        lexical = _centre(latent, self.lsa_mean, has_text)
        if embeddings is None:
            self.dense_kind = "lsa"
            raw = latent
        else:
            self.dense_kind = "embedding"
            raw = np.asarray(embeddings, dtype=np.float32)
        basis = raw[has_text] if has_text.any() else raw
        self.mean = basis.mean(axis=0).astype(np.float32)
        centred = basis - self.mean
        cov = (centred.T @ centred) / max(1, len(centred) - 1)
        vals, vecs = np.linalg.eigh(cov.astype(np.float64))
        self.eigvals, self.eigvecs = np.maximum(vals, 0.0), vecs
        return ItemContent(self._dense(raw, has_text), tfidf, has_text, lexical)

    def transform(self, papers: Sequence[Paper], embeddings: np.ndarray | None) -> ItemContent:
        """Content vectors for papers seen after `fit` (new papers at serving time)."""
        assert self.vectorizer is not None, "fit first"
        texts = [paper_text(p) for p in papers]
        tfidf = normalize(self.vectorizer.transform(texts)).astype(np.float32).tocsr()
        latent = tfidf.toarray() if self.lsa is None else self.lsa.transform(tfidf)
        latent = latent.astype(np.float32)
        has_text = np.array([bool(t) for t in texts])
        if self.dense_kind == "lsa":
            raw = latent
        else:
            if embeddings is None:
                raise ValueError("this model needs embeddings for new papers")
            raw = np.asarray(embeddings, dtype=np.float32)
        lexical = _centre(latent, self.lsa_mean, has_text)
        return ItemContent(self._dense(raw, has_text), tfidf, has_text, lexical)

    def _dense(self, raw: np.ndarray, has_text: np.ndarray) -> np.ndarray:
        """Centre on the corpus mean and L2-normalise; papers with no text get a zero row."""
        return _centre(raw, self.mean, has_text)

    def whitener(self, shrink: float | None) -> np.ndarray:
        """The matrix that whitens centred vectors (`shrink` × mean eigenvalue added first).

        Whitening stops the few dominant directions of the embedding space (shared by most
        papers) from swamping what tells two papers apart. None = centring only.
        """
        dim = len(self.eigvals)
        if shrink is None:
            return np.eye(dim, dtype=np.float32)
        vals = self.eigvals + shrink * max(self.eigvals.mean(), 1e-12)
        scale = np.sqrt(self.eigvals.mean() + shrink * self.eigvals.mean()) / np.sqrt(vals)
        return (self.eigvecs @ np.diag(scale) @ self.eigvecs.T).astype(np.float32)

    def state(self) -> dict:
        """Arrays and parameters needed to rebuild this model (for `save`)."""
        vocab = self.vectorizer.vocabulary_
        terms = np.array(sorted(vocab, key=vocab.get), dtype=object)
        out = {
            "terms": terms,
            "idf": self.vectorizer.idf_.astype(np.float32),
            "mean": self.mean,
            "eigvals": self.eigvals,
            "eigvecs": self.eigvecs,
            "dense_kind": self.dense_kind,
            "stop_words": self.vectorizer.stop_words,
        }
        out["lsa_mean"] = self.lsa_mean
        if self.lsa is not None:
            out["lsa_components"] = self.lsa.components_.astype(np.float32)
        return out

    @classmethod
    def from_state(cls, state: dict) -> ContentModel:
        """Inverse of `state`."""
        model = cls()
        terms = list(state["terms"])
        model.vectorizer = TfidfVectorizer(
            sublinear_tf=True,
            stop_words=state.get("stop_words"),
            vocabulary={t: i for i, t in enumerate(terms)},
            dtype=np.float32,
        )
        model.vectorizer.fit(["x"])  # sets internal flags; idf is restored right after
        model.vectorizer.idf_ = np.asarray(state["idf"], dtype=np.float64)
        model.mean = np.asarray(state["mean"], dtype=np.float32)
        model.eigvals = np.asarray(state["eigvals"])
        model.eigvecs = np.asarray(state["eigvecs"])
        model.dense_kind = str(state["dense_kind"])
        model.lsa_mean = np.asarray(state["lsa_mean"], dtype=np.float32)
        if "lsa_components" in state:
            model.lsa = TruncatedSVD(state["lsa_components"].shape[0])
            model.lsa.components_ = np.asarray(state["lsa_components"])
        return model


def _centre(raw: np.ndarray, mean: np.ndarray, has_text: np.ndarray) -> np.ndarray:
    """Centre on a corpus mean and L2-normalise; papers with no text get a zero row."""
    centred = np.asarray(raw, dtype=np.float32) - mean
    centred[~has_text] = 0.0
    # sklearn's `normalize`, bit for bit, without its input checks and copies (8x faster).
    norms = np.sqrt(np.einsum("ij,ij->i", centred, centred))
    norms[norms == 0.0] = 1.0
    centred /= norms[:, None]
    return centred
