"""A fitted model as bytes (one `.npz`, no pickle), and back."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from recommender.cf import AlsParams
from recommender.content import ContentModel
from recommender.model.state import StateParts

FORMAT_VERSION = 2


class ModelFormatError(ValueError):
    """Bytes that are not a saved model (or one of another format); one line."""


def _csr(prefix: str, matrix: sp.csr_matrix) -> dict[str, np.ndarray]:
    """A CSR matrix as named arrays."""
    m = matrix.tocsr()
    return {
        f"{prefix}_data": m.data.astype(np.float32),
        f"{prefix}_indices": m.indices,
        f"{prefix}_indptr": m.indptr,
        f"{prefix}_shape": np.array(m.shape),
    }


def _uncsr(data: Any, prefix: str) -> sp.csr_matrix:
    """Inverse of `_csr`."""
    shape = tuple(int(x) for x in data[f"{prefix}_shape"])
    return sp.csr_matrix(
        (data[f"{prefix}_data"], data[f"{prefix}_indices"], data[f"{prefix}_indptr"]),
        shape=shape,
    )


def to_bytes(parts: StateParts) -> bytes:
    """The saved form of a fit."""
    arrays: dict[str, Any] = {
        "dense": parts.dense,
        "lexical": parts.lexical,
        "community": parts.community,
        "item_count": parts.item_count,
        "item_factors": parts.item_factors,
        "factor_map": parts.factor_map,
        "imc": parts.imc,
        "sample": parts.sample,
        "user_factors": parts.user_factors,
        **_csr("knn", parts.knn),
        **_csr("rows", parts.user_rows),
    }
    for name, weights in parts.weights.items():
        arrays[f"weights_{name}"] = np.asarray(weights, dtype=np.float64)
    state = parts.content_model.state()
    arrays["cm_terms"] = np.array(state["terms"], dtype=str)
    for key in ("idf", "mean", "eigvals", "eigvecs", "lsa_mean"):
        arrays[f"cm_{key}"] = state[key]
    if "lsa_components" in state:
        arrays["cm_lsa"] = state["lsa_components"]
    meta = {
        "format": FORMAT_VERSION,
        "version": parts.version,
        "signals": list(parts.signals),
        "paper_ids": parts.paper_ids,
        "text_keys": parts.text_keys,
        "titles": parts.titles,
        "user_ids": parts.user_ids,
        "whitening": parts.whitening,
        "weights": list(parts.weights),
        "als": [
            parts.als.factors,
            parts.als.regularization,
            parts.als.alpha,
            parts.als.iterations,
        ],
        "dense_kind": state["dense_kind"],
        "stop_words": state["stop_words"],
        "trained_feedback_version": parts.trained_feedback_version,
        "report": parts.report,
    }
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


def from_bytes(blob: bytes, where: str = "model") -> StateParts:
    """Read what `to_bytes` wrote; `ModelFormatError` for anything else."""
    try:
        data = np.load(io.BytesIO(blob), allow_pickle=False)
        meta = json.loads(bytes(data["meta"]).decode())
    except (OSError, EOFError, ValueError, LookupError, TypeError, zipfile.BadZipFile) as exc:
        # np.load's own message for a stray file talks about pickles; say what it is.
        raise ModelFormatError(f"{where}: not a saved paperbot model ({exc})") from None
    version = meta.get("format") if isinstance(meta, dict) else None
    if version != FORMAT_VERSION:
        raise ModelFormatError(f"{where}: model format {version} is not supported")
    try:
        content = ContentModel.from_state(
            {
                "terms": data["cm_terms"],
                "idf": data["cm_idf"],
                "mean": data["cm_mean"],
                "eigvals": data["cm_eigvals"],
                "eigvecs": data["cm_eigvecs"],
                "dense_kind": meta["dense_kind"],
                "stop_words": meta["stop_words"],
                "lsa_mean": data["cm_lsa_mean"],
                **({"lsa_components": data["cm_lsa"]} if "cm_lsa" in data else {}),
            }
        )
        return StateParts(
            signals=tuple(meta["signals"]),
            paper_ids=list(meta["paper_ids"]),
            text_keys=list(meta["text_keys"]),
            titles=list(meta["titles"]),
            content_model=content,
            dense=data["dense"],
            lexical=data["lexical"],
            community=data["community"],
            item_count=data["item_count"],
            item_factors=data["item_factors"],
            factor_map=data["factor_map"],
            whitening=meta["whitening"],
            imc=data["imc"],
            knn=_uncsr(data, "knn"),
            sample=data["sample"],
            weights={name: data[f"weights_{name}"] for name in meta["weights"]},
            user_ids=list(meta["user_ids"]),
            user_rows=_uncsr(data, "rows"),
            user_factors=data["user_factors"],
            als=AlsParams(*meta["als"]),
            trained_feedback_version=int(meta["trained_feedback_version"]),
            version=str(meta["version"]),
            report=meta["report"],
        )
    except (KeyError, ValueError, TypeError, zipfile.BadZipFile) as exc:
        raise ModelFormatError(f"{where}: incomplete model ({exc})") from None


def save(parts: StateParts, path: str | Path) -> None:
    """Write a fit to a file (atomically: a reader never sees half a file)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(to_bytes(parts))
    tmp.replace(path)


def load(path: str | Path) -> StateParts:
    """Read a fit written by `save`."""
    return from_bytes(Path(path).read_bytes(), str(path))
