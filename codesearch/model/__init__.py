"""The encoder and how a model is chosen by name."""

from __future__ import annotations

import warnings
from pathlib import Path

# Deprecation notices from the libraries under the encoder (e.g. transformers' "`is_gradient_
# checkpointing` is deprecated") are not something a user of codesearch can act on: keep them
# off stderr, `search --json` included.
for _module in (r"transformers(\..*)?", r"peft(\..*)?", r"torch(\..*)?"):
    warnings.filterwarnings("ignore", category=FutureWarning, module=_module)
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=_module)

from codesearch.model.encoder import EncoderConfig, MultiVectorEncoder  # noqa: E402
from codesearch.model.folder import ModelFolder  # noqa: E402
from codesearch.scoring import maxsim  # noqa: E402

DEFAULT_MODEL_DIR = Path(__file__).parent / "assets" / "default"

__all__ = ["EncoderConfig", "ModelFolder", "MultiVectorEncoder", "maxsim", "load_encoder", "load_query_encoder", "DEFAULT_MODEL_DIR"]


def model_folder(spec: str | Path | None = "default") -> Path | None:
    """The folder a model name stands for: ``"default"``/``"shipped"``: the model shipped with
    codesearch; ``"base"`` (or None): the plain base model (None); anything else: a model folder
    on disk (codesearch or Hugging Face format)."""
    if spec in (None, "default", "shipped"):
        return DEFAULT_MODEL_DIR if ModelFolder(DEFAULT_MODEL_DIR).exists() else None
    if spec == "base":
        return None
    path = Path(spec).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"model folder {path} does not exist")
    return path


def load_encoder(spec: str | Path | None = "default", **kwargs) -> MultiVectorEncoder:
    """The (torch) encoder of a model name, as :func:`model_folder` reads it."""
    return MultiVectorEncoder.load(model_folder(spec), **kwargs)


def load_index_encoder(spec: str | Path | None = "default"):
    """What an index run embeds with, for a model name: the numpy query encoder, whose document
    encoder loads at the first document to embed (the torch-free 8-bit one on a CPU, else the
    torch encoder: :func:`~codesearch.model.docint8.document_loader`), or the torch encoder for a
    model the query encoder does not run."""
    from codesearch.model.docint8 import document_loader
    from codesearch.model.ondemand import OnDemandEncoder
    from codesearch.model.query import QueryEncoder

    queries = load_query_encoder(spec)
    if not isinstance(queries, QueryEncoder):
        return queries
    return OnDemandEncoder(queries, document_loader(queries, lambda: load_encoder(spec)))


def load_query_encoder(spec: str | Path | None = "default"):
    """What a search needs of a model, loaded the fast way: the numpy
    :class:`~codesearch.model.query.QueryEncoder` (no torch), or the torch encoder for a model
    it does not run."""
    from codesearch.model.query import QueryEncoder, Unsupported

    folder = model_folder(spec)
    try:
        return QueryEncoder.load(folder)
    except Unsupported:
        return MultiVectorEncoder.load(folder)
