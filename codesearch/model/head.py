"""The linear head that maps base token states to the index's smaller vectors.

Until a trained head exists, the head is a PCA of real token states: it keeps the directions
in which code tokens actually vary, so 128 dimensions score about as well as the base model's
384 (measured with `codesearch eval`, see the model card) at a third of the storage.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def fit_pca_head(encoder, texts: Sequence[str], dim: int = 128, max_tokens: int = 200_000) -> tuple[np.ndarray, np.ndarray]:
    """(weight (dim, hidden), bias (dim,)) projecting centred token states on their top components."""
    saved = encoder.head_weight, encoder.head_bias
    encoder.set_head(None)
    try:
        states = _raw_token_states(encoder, texts, max_tokens)
    finally:
        encoder.head_weight, encoder.head_bias = saved
    mean = states.mean(axis=0)
    centred = states - mean
    # Economy SVD of the (tokens x hidden) matrix: rows of vt are the principal directions.
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    weight = vt[:dim].astype(np.float32)
    bias = (-weight @ mean).astype(np.float32)
    return weight, bias


def _raw_token_states(encoder, texts: Sequence[str], max_tokens: int) -> np.ndarray:
    """Un-normalised token states of the base model (what the head is applied to)."""
    project = encoder._project
    encoder._project = lambda v: np.asarray(v, np.float32)  # capture states before the head and normalisation
    try:
        tokens, _ = encoder.encode_documents(list(texts))
    finally:
        encoder._project = project
    states = np.concatenate(tokens)
    if len(states) > max_tokens:
        idx = np.random.default_rng(0).choice(len(states), max_tokens, replace=False)
        states = states[idx]
    return states
