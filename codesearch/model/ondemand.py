"""A model whose document encoder is loaded only when a document is to be embedded.

Everything an index run asks of a model before it embeds (each space's fingerprint, which
space a language goes to, the vector size) the numpy query encoder answers: its fingerprints
equal the torch encoder's (tests/test_query_encoder.py). Loading torch, transformers and peft
and building the model took 5-6 of the 7.2 s that `codesearch index` took over a home with
nothing to embed, and 0.4 of its 0.65 GB (measured on 3,358 chunks, docs/speed.md). So the
`index` command holds an :class:`OnDemandEncoder`, whose document encoder is the torch-free
8-bit one where documents run in 8 bits (:mod:`codesearch.model.docint8`: 0.2 s to load), else
torch's; the language server holds its own
kind (:class:`codesearch.lsp.engine.ModelHandle`: the torch encoder in a child process that
ends when unused). Both answer the query side through :class:`QuerySide`.
"""

from __future__ import annotations

import glob
import os
import sys
import threading
import time
from typing import Callable


class ModelLoadError(RuntimeError):
    """The document encoder could not be loaded to embed documents."""


class QuerySide:
    """What searches and an index run's keys need of a model, from the numpy query encoder
    ``self.queries``."""

    queries = None

    @property
    def fingerprint(self) -> str:
        return self.queries.fingerprint

    @property
    def dim(self) -> int:
        return self.queries.dim

    @property
    def spaces(self):
        return self.queries.spaces

    def routes(self):
        return self.queries.routes()

    def space_for(self, language: str):
        return self.queries.space_for(language)

    def space_fingerprints(self):
        return self.queries.space_fingerprints()

    def space_fingerprint(self, space):
        return self.queries.space_fingerprint(space)

    def encode_queries_pooled(self, *args, **kwargs):
        return self.queries.encode_queries_pooled(*args, **kwargs)

    def encode_queries(self, *args, **kwargs):
        return self.queries.encode_queries(*args, **kwargs)

    def encode_query_spaces(self, *args, **kwargs):
        return self.queries.encode_query_spaces(*args, **kwargs)


def cuda_possible() -> bool:
    """Could torch find a CUDA device on this machine? False only where it surely cannot:
    macOS, and Linux without an NVIDIA device node (nor WSL's GPU device)."""
    if sys.platform == "darwin":
        return False
    if sys.platform.startswith("linux"):
        return bool(glob.glob("/dev/nvidia[0-9]*")) or os.path.exists("/dev/dxg")
    return True


class OnDemandEncoder(QuerySide):
    """The numpy query encoder for the query side, and the document encoder ``load()`` returns
    (torch's, or the torch-free 8-bit one), loaded at the first document to embed and kept from
    then on (an index run).

    ``device`` names the device without loading the model where no GPU can be there (an index
    run's estimate asks it before knowing whether anything is to be embedded). Anything else
    asked of it is the document encoder's. A load that fails raises :class:`ModelLoadError`, and
    the same error again for a minute, so that an index run's retries file by file do not
    each wait for a load."""

    def __init__(self, queries, load: Callable[[], object]):
        self.queries = queries
        self._load = load
        self._documents = None
        self._failed: tuple[float, str] | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        """Is the document encoder loaded?"""
        return self._documents is not None

    def document_encoder(self):
        with self._lock:
            if self._documents is None:
                if self._failed is not None and time.monotonic() - self._failed[0] < 60:
                    raise ModelLoadError(self._failed[1])
                try:
                    encoder = self._load()
                except Exception as exc:  # noqa: BLE001 - said in one line by the caller
                    why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                    self._failed = (time.monotonic(), f"cannot load the model to embed documents: {why}")
                    raise ModelLoadError(self._failed[1]) from exc
                if encoder.fingerprint != self.fingerprint:
                    raise ModelLoadError("the model's files changed on disk since this run began: run it again")
                # The document encoder answers the query side as well (the same fingerprints and
                # routes; the torch-free one is built on the query encoder it answers with).
                self._documents = self.queries = encoder
            return self._documents

    def encode_documents(self, *args, **kwargs):
        return self.document_encoder().encode_documents(*args, **kwargs)

    @property
    def device(self):
        if self._documents is None and not cuda_possible():
            return "cpu"
        return self.document_encoder().device

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.document_encoder(), name)
