"""Documents embedded with 8-bit layers and no torch: what an index run loads on a CPU.

On a CPU documents' layers run as ONNX Runtime's 8-bit products
(:class:`~codesearch.model.ortgraph.Int8DocumentLayers`). They were first made for CPUs without
native bfloat16 (AVX2 only, as many laptops); on a CPU with 8-bit dot products (AVX512-VNNI,
AVX-VNNI) they are faster than torch's bfloat16 too, within noise of it in quality (docs/speed.md,
"Documents in 8 bits on every CPU"). In the torch encoder's 8-bit path torch computed only the
embeddings in front of them. Importing torch, transformers and peft and building each space's
merged copy took most of the 5-6 s an index run waited for its model, and 400 MB of its memory
(docs/speed.md, "Documents without torch"). Here the same layers are built from the weights the
numpy query encoder maps (:mod:`codesearch.model.query`): each space's LoRA factors merged into
the base matrices in float32, as peft's merge does, and the embeddings (:class:`Embeddings`, which
the torch encoder's 8-bit path uses too). The tokens, padding, batches and token filters are the
torch encoder's own (:func:`~codesearch.model.encoder.padded_batches`,
:func:`~codesearch.model.encoder.collect_vectors`), so the vectors are the torch encoder's 8-bit
path's bit for bit (tests/test_encoder.py), and the index's model fingerprint is the same.

Where documents run in torch (a GPU, or ``CODESEARCH_DOCUMENT_RUNTIME=torch``), for a model the
query encoder cannot run, or where ONNX Runtime cannot be imported, :func:`light_document_encoder`
gives None and the caller loads torch.
"""

from __future__ import annotations

import os
import threading
from typing import Callable, Sequence

import numpy as np

from codesearch.heap import release_free_heap
from codesearch.model.encoder import (
    ACTIVE,
    DOCUMENT_BATCH_TOKENS,
    DOCUMENT_RUNTIMES,
    collect_vectors,
    padded_batches,
    padded_width,
    project_to_unit,
    punctuation_token_ids,
    texts_for_model,
)
from codesearch.model.ondemand import QuerySide, cuda_possible


def light_document_encoder(queries) -> "Int8DocumentEncoder | None":
    """The torch-free document encoder for ``queries`` (a numpy
    :class:`~codesearch.model.query.QueryEncoder`) where documents run in 8 bits (a CPU, unless
    ``CODESEARCH_DOCUMENT_RUNTIME=torch``), else None. An unknown ``CODESEARCH_DOCUMENT_RUNTIME``
    is a ValueError naming the valid ones."""
    from codesearch.model.query import QueryEncoder

    name = os.environ.get("CODESEARCH_DOCUMENT_RUNTIME") or "auto"
    if name not in DOCUMENT_RUNTIMES:
        raise ValueError(f"CODESEARCH_DOCUMENT_RUNTIME={name!r}: choose one of {', '.join(DOCUMENT_RUNTIMES)}")
    if name == "torch" or cuda_possible():
        return None
    if not isinstance(queries, QueryEncoder) or queries.active_adapter is not None:
        return None
    try:  # ONNX Runtime, and its 8-bit products exact on this CPU (as the torch encoder checks)
        from codesearch.model.ortgraph import _check_exact_products

        for rows in sorted({w.shape[1] for w, _ in queries._twin(None).linear.values()}):
            _check_exact_products(rows, document_threads()[1])
    except Exception:  # noqa: BLE001 - (documents then run in torch, as they would have)
        return None
    return Int8DocumentEncoder(queries)


def document_threads() -> tuple[int, int]:
    """(batches encoded at once, ONNX Runtime threads each) on the cores this process may use:
    two batches of one thread each on two cores, half the cores each on more; one on one core.

    Why two at once: run one at a time, a batch's small kernels (quantising, scales, GELU,
    softmax, the gathers) leave one of ONNX Runtime's two threads waiting on the other between
    the products. Two batches on a thread each keep both cores busy: about 1.1 times the
    documents a second on the project's 2-core AVX2 machine, the same vectors bit for bit
    (docs/speed.md, "Only real tokens through the products, and two batches at once"). More
    than two cores were not measured."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    workers = 2 if cores >= 2 else 1
    return workers, max(1, cores // workers)


def document_loader(queries, load_torch: Callable[[], object]) -> Callable[[], object]:
    """What an :class:`~codesearch.model.ondemand.OnDemandEncoder` over ``queries`` loads at its
    first document: the torch-free 8-bit encoder where documents run in 8 bits, else
    ``load_torch()``."""
    return lambda: light_document_encoder(queries) or load_torch()


class Embeddings:
    """BERT's embeddings of a batch in numpy: the word's, the first token type's and the
    position's, summed in torch's order, then the layer norm. Both 8-bit document paths (the
    torch encoder's and :class:`Int8DocumentEncoder`) compute them here, so they give the same
    vectors bit for bit: torch's own layer norm rounds differently (by 1e-6), and the layers'
    8-bit codes turn that into differences of 0.0006 in cosine."""

    def __init__(self, word, token_type, position, gamma, beta, eps: float):
        self.word, self.token_type, self.position = word, token_type, position
        self.gamma, self.beta, self.eps = gamma, beta, float(eps)

    def __call__(self, input_ids: np.ndarray) -> np.ndarray:
        x = self.word[input_ids] + self.token_type
        x += self.position[: input_ids.shape[1]]
        mean = x.mean(axis=-1, keepdims=True)
        x -= mean
        var = (x * x).mean(axis=-1, keepdims=True)
        return (x / np.sqrt(var + np.float32(self.eps)) * self.gamma + self.beta).astype(np.float32, copy=False)


class Int8DocumentEncoder(QuerySide):
    """``encode_documents`` as :class:`~codesearch.model.encoder.MultiVectorEncoder` answers it in
    8 bits, over a numpy query encoder's weights (see the module doc). Everything else a model is
    asked (fingerprints, spaces, queries) is the query encoder's."""

    device = "cpu"
    DOCUMENT_BATCH_TOKENS = DOCUMENT_BATCH_TOKENS

    def __init__(self, queries, workers: int = 0, threads: int = 0):
        from tokenizers import Tokenizer

        self.queries = queries
        self.config = queries.config
        bert = queries._twin(None)
        self.max_positions = bert.max_positions
        # A copy of the query encoder's tokenizer, cut at the documents' length (its own is shared).
        self._tokenizer = Tokenizer.from_str(queries.tokenizer.to_str())
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=self.config.document_max_tokens)
        vocab = self._tokenizer.get_vocab(with_added_tokens=True)
        special = np.array(sorted(queries._special), np.int64)
        skip = punctuation_token_ids(vocab) if self.config.skip_punctuation else np.zeros(0, np.int64)
        self._dropped = np.union1d(special, skip)
        self._pad = int(vocab.get("[PAD]", vocab.get("<pad>", 0)))
        if not workers:
            workers, threads = document_threads()
        self.workers, self.threads = workers, threads
        self._pool = None  # (two threads, at the first document: see document_threads)
        self._embed = Embeddings(bert.word, bert.token_type, bert.position, *bert.norm, bert.eps)
        self._layers: dict = {}
        self._lock = threading.Lock()

    def query_encoder(self):
        """What encodes queries (a :class:`~codesearch.search.Searcher` asks): the query encoder
        these documents' layers were built from."""
        return self.queries

    def _space_layers(self, space):
        """The 8-bit layers of ``space`` (None: the base model), made at its first document (about
        0.3 s: the merge, the weight codes and the ONNX Runtime session)."""
        with self._lock:
            made = self._layers.get(space)
            if made is None:
                from codesearch.model.ortgraph import Int8DocumentLayers

                twin = self.queries._twin(space)
                linear = {}
                for module, (w, b) in twin.linear.items():
                    w = np.asarray(w, np.float32)
                    lora = twin.lora.get(module)  # (A.T, scale * B.T): x W.T + (x A.T) s B.T
                    if lora is not None:
                        w = w + (lora[0] @ lora[1]).T
                    linear[module] = (w, b)
                made = self._layers[space] = Int8DocumentLayers(linear, twin.norms, twin.layers, twin.heads, twin.eps,
                                                                self.threads)
            return made

    def _project(self, vecs: np.ndarray) -> np.ndarray:
        return project_to_unit(vecs, self.queries.head_weight, self.queries.head_bias)

    def model_texts(self, texts: Sequence[str], space=ACTIVE) -> list[str]:
        """What the model reads of each document in ``space`` (as the torch encoder's)."""
        return texts_for_model(self.config, texts, is_query=False, splits=self.config.splits_identifiers(space))

    def encode_documents(
        self,
        documents: Sequence[str],
        batch_size: int = 32,
        progress: Callable[[int], None] | None = None,
        *,
        space=ACTIVE,
        batch_tokens: int | None = None,
    ) -> tuple[list[np.ndarray], np.ndarray]:
        """Token vectors of each document and one pooled (mean) unit vector per document, in
        ``space`` (an adapter name; None or ACTIVE: the base model)."""
        space = None if space is ACTIVE else space
        if not documents:
            return [], np.zeros((0, self.dim), np.float32)
        layers = self._space_layers(space)
        ids = [e.ids for e in self._tokenizer.encode_batch(self.model_texts(documents, space), add_special_tokens=True)]
        widths = [padded_width(len(x), self.max_positions) for x in ids]
        out: list[np.ndarray | None] = [None] * len(ids)
        pooled = np.zeros((len(ids), self.dim), np.float32)
        # (Batches at once share the token limit, which bounds their activations' memory.)
        limit = max(1, DOCUMENT_BATCH_TOKENS // self.workers) if batch_tokens is None else batch_tokens

        def encode(batch) -> int:
            batch_idx, input_ids, attention = batch
            hidden = layers.run(self._embed(input_ids), attention)
            collect_vectors(hidden, input_ids, attention, batch_idx, ids, self._dropped, self._project, out, pooled)
            return len(batch_idx)

        batches = padded_batches(ids, widths, batch_size, limit, self._pad)
        for n in (self._workers().map(encode, batches) if self.workers > 1 else map(encode, batches)):
            if progress is not None:
                progress(n)
        release_free_heap()  # (as the torch encoder: a batch's activations, kept by glibc otherwise)
        return out, pooled  # type: ignore[return-value]

    def _workers(self):
        """The threads that encode batches at once (each text's rows are its own: see
        :func:`document_threads`); kept for the process, so their memory arenas are reused."""
        with self._lock:
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="codesearch-documents")
            return self._pool
