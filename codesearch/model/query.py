"""The query encoder: a query's token vectors without torch, transformers or peft.

A search encodes one short query (a few to 64 tokens) per vector space. Loading torch,
transformers and peft to do that took 3 to 25 s of a terminal search's wall time (imports,
then building three merged adapter copies), for a few ms of arithmetic per space. Here the
same BERT forward pass is a page of numpy over the weights read straight from their
safetensors files; its layers run as one ONNX Runtime graph over the same arrays where
``onnxruntime`` can be imported (:mod:`codesearch.model.ortgraph`: twice numpy's speed on a
query, within 4e-7 of it), else in numpy. Every search goes through this class (terminal, search service, language server,
eval, bench, the trainer's validation), so each gives the same results; documents are still
encoded by :class:`~codesearch.model.encoder.MultiVectorEncoder` in torch.

The base weights are used where they lie: the safetensors file is mapped, not copied (about
45 MB of the file is read, and shared between processes through the page cache), and each
space's LoRA factors are applied beside the base matrices (x W + s x A B: two thin products)
rather than merged into copies. The arithmetic is float32 throughout, the documents' bfloat16
within cosine 0.9999 (tests/test_query_encoder.py). A model this module
cannot run (another architecture, DoRA or other peft variants, no ``tokenizer.json``) is
refused with :class:`Unsupported`, and the caller falls back to the torch encoder.
"""

from __future__ import annotations

import json
import math
import struct
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np

from codesearch.identifiers import split_identifiers
from codesearch.model.encoder import (
    ACTIVE,
    CONFIG_NAME,
    HEAD_NAME,
    PACKAGED_BASE,
    EncoderConfig,
    RoutedSpaces,
    _utf8_text,
    index_fingerprint,
    packaged_base_path,
    space_fingerprint_of,
    refuse_pickled_weights,
)


# The special tokens of the vocabularies a model may have (BERT's, RoBERTa's).
SPECIAL_TOKENS = ("[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]", "<s>", "</s>", "<pad>")


class Unsupported(ValueError):
    """A model the numpy query encoder does not run (the torch encoder still does)."""


# ---------------------------------------------------------------------------- weights
_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "F64": np.float64, "I64": np.int64, "I32": np.int32}


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file as a numpy array (bfloat16 widened to float32).

    Why not ``safetensors.numpy.load_file``: numpy has no bfloat16, so it refuses the bf16
    adapter files codesearch ships. The format is an 8-byte header length, a JSON header of
    names, dtypes, shapes and offsets, then the raw little-endian data: mapped, not read, so a
    cold start touches only the pages it uses.
    """
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    (n,) = struct.unpack("<Q", bytes(raw[:8]))
    header = json.loads(bytes(raw[8 : 8 + n]))
    header.pop("__metadata__", None)
    out = {}
    for name, spec in header.items():
        dtype = _DTYPES.get(spec["dtype"])
        if dtype is None:
            raise Unsupported(f"{path.name}: tensor {name} has dtype {spec['dtype']}")
        start, end = spec["data_offsets"]
        arr = raw[8 + n + start : 8 + n + end].view(np.ndarray).view(dtype).reshape(spec["shape"])  # (plain arrays: a memmap subclass slows every product)
        if spec["dtype"] == "BF16":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        out[name] = arr
    return out


def bf16(x: np.ndarray) -> np.ndarray:
    """``x`` rounded to bfloat16 (to nearest, ties to even, as torch's ``.to(torch.bfloat16)``),
    as float32."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    u = (u + (np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1)))) & np.uint32(0xFFFF0000)
    return u.view(np.float32)


_ERFC = tuple(np.float32(c) for c in (-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807,
                                    -1.13520398, 1.48851587, -0.82215223, 0.17087277))


def _erf(x: np.ndarray) -> np.ndarray:
    # Numerical Recipes' erfc (fractional error below 1.2e-7), in float32: numpy has no erf, and
    # scipy.special alone costs more start-up than this whole module. Against math.erf the GELU
    # below is within 4.5e-7 (float64 arithmetic: 2.4e-7, at twice the time).
    z = np.abs(x)
    t = np.float32(1.0) / (np.float32(1.0) + np.float32(0.5) * z)
    poly = _ERFC[9]
    for c in _ERFC[8:0:-1]:
        poly = poly * t + c
    r = t * np.exp(poly * t + _ERFC[0] - z * z)
    return np.where(x >= 0, np.float32(1.0) - r, r - np.float32(1.0))


def _gelu(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float32, copy=False)
    return np.float32(0.5) * x * (np.float32(1.0) + _erf(x * np.float32(1.0 / math.sqrt(2.0))))


def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


_LINEARS = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
            "intermediate.dense", "output.dense")


class _Bert:
    """A BERT encoder's forward pass (``last_hidden_state`` of one unpadded sequence)."""

    def __init__(self, config: dict, weights: dict[str, np.ndarray]):
        if config.get("model_type") != "bert" or config.get("position_embedding_type", "absolute") != "absolute":
            raise Unsupported(f"model type {config.get('model_type')!r}: the numpy query encoder runs BERT models")
        if config.get("hidden_act", "gelu") != "gelu":
            raise Unsupported(f"activation {config.get('hidden_act')!r}")
        self.layers = int(config["num_hidden_layers"])
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        w = {k.removeprefix("bert."): v for k, v in weights.items()}
        try:
            self.word = w["embeddings.word_embeddings.weight"]
            self.position = w["embeddings.position_embeddings.weight"]
            self.token_type = w["embeddings.token_type_embeddings.weight"][0]
            self.norm = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
            # Weight matrices as stored, (out, in), read from the mapped file in place.
            self.linear: dict[str, tuple[np.ndarray, np.ndarray]] = {}
            self.norms: dict[str, tuple[np.ndarray, np.ndarray]] = {}
            for i in range(self.layers):
                p = f"encoder.layer.{i}."
                for name in _LINEARS:
                    self.linear[p + name] = (w[p + name + ".weight"], w[p + name + ".bias"])
                for name in ("attention.output.LayerNorm", "output.LayerNorm"):
                    self.norms[p + name] = (w[p + name + ".weight"], w[p + name + ".bias"])
        except KeyError as exc:
            raise Unsupported(f"the base model has no weight {exc}") from None
        self.lora: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # module -> (A.T, scale * B.T)
        self.max_positions = len(self.position)
        self.runtime = _Runtime()  # (shared with the twins)

    def with_lora(self, factors: dict[str, tuple[np.ndarray, np.ndarray]], scale: float) -> "_Bert":
        """A twin sharing every weight, with a LoRA adapter's factors (module -> (A, B)) beside."""
        twin = object.__new__(_Bert)
        twin.__dict__.update(self.__dict__)
        twin.lora = {}
        for module, (a, b) in factors.items():
            if module.startswith("pooler."):
                continue  # (not on the path to last_hidden_state; it still counts in the fingerprint)
            if module not in self.linear:
                raise Unsupported(f"a LoRA adapter on {module}, which the numpy query encoder does not know")
            twin.lora[module] = (np.ascontiguousarray(a.T, np.float32), np.ascontiguousarray(scale * b.T, np.float32))
        return twin

    def __call__(self, ids: Sequence[int]) -> np.ndarray:
        return self.forward_many(ids, [self])[0]

    def forward_many(self, ids: Sequence[int], twins: Sequence["_Bert"]) -> list[np.ndarray]:
        """``twin(ids)`` for each of ``twins`` (this model's LoRA twins, or itself), in one pass:
        each base matrix multiplies every twin's states at once, so a query searched in several
        spaces reads the base weights (most of the work) once, not once per space."""
        ids = np.asarray(ids, dtype=np.int64)
        n, m = len(ids), len(twins)
        x = self.word[ids] + self.position[:n] + self.token_type
        x = _layer_norm(x, *self.norm, self.eps)
        layers = self.runtime.layers(self, lora=any(t.lora for t in twins))
        if layers is not None:  # the same layers in ONNX Runtime (codesearch/model/ortgraph.py)
            hidden = layers.run(np.ascontiguousarray(np.broadcast_to(x, (m, n, x.shape[1])), np.float32), twins)
            return [hidden[j] for j in range(m)]
        x = np.concatenate([x] * m) if m > 1 else x  # (m * n, hidden): twin j's states in rows j*n..
        heads, size = self.heads, x.shape[1] // self.heads
        scale = np.float32(1.0 / math.sqrt(size))
        for i in range(self.layers):
            p = f"encoder.layer.{i}."

            def lin(name: str, v: np.ndarray) -> np.ndarray:
                w, b = self.linear[p + name]
                # (W v^T)^T, not v W^T: BLAS multiplies the stored (out, in) matrix twice as fast
                # this way round (246 against 536 us for 9 tokens x 384 -> 1536 here).
                out = (w @ v.T).T + b
                for j, twin in enumerate(twins):
                    lora = twin.lora.get(p + name)
                    if lora is not None:
                        rows = slice(j * n, (j + 1) * n)
                        out[rows] += (v[rows] @ lora[0]) @ lora[1]
                return out

            q = lin("attention.self.query", x).reshape(m, n, heads, size).transpose(0, 2, 1, 3)
            k = lin("attention.self.key", x).reshape(m, n, heads, size).transpose(0, 2, 3, 1)
            v = lin("attention.self.value", x).reshape(m, n, heads, size).transpose(0, 2, 1, 3)
            scores = (q @ k) * scale  # (twins, heads, n, n)
            scores -= scores.max(axis=-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(axis=-1, keepdims=True)
            context = (probs @ v).transpose(0, 2, 1, 3).reshape(m * n, heads * size)
            x = _layer_norm(lin("attention.output.dense", context) + x, *self.norms[p + "attention.output.LayerNorm"], self.eps)
            h = _gelu(lin("intermediate.dense", x))
            x = _layer_norm(lin("output.dense", h) + x, *self.norms[p + "output.LayerNorm"], self.eps)
        x = x.astype(np.float32)
        return [x[j * n : (j + 1) * n] for j in range(m)]


RUNTIMES = ("onnxruntime", "numpy")


class _Runtime:
    """What runs a base model's layers: ONNX Runtime where it can be imported (about twice as fast
    on a query's skinny products), else numpy. ``CODESEARCH_QUERY_RUNTIME=numpy`` picks numpy."""

    def __init__(self, name: str | None = None):
        import os

        name = name or os.environ.get("CODESEARCH_QUERY_RUNTIME") or RUNTIMES[0]
        if name not in RUNTIMES:
            raise ValueError(f"CODESEARCH_QUERY_RUNTIME={name!r}: choose one of {', '.join(RUNTIMES)}")
        self.name = name
        self._layers: dict[bool, object] = {}
        self._lock = threading.Lock()

    def layers(self, bert: "_Bert", lora: bool):
        """The ONNX Runtime session of ``bert``'s layers (made at the first call: about 0.1 s), or
        None where queries run in numpy."""
        if self.name != "onnxruntime":
            return None
        made = self._layers.get(lora)
        if made is None:
            with self._lock:
                made = self._layers.get(lora)
                if made is None:
                    made = self._layers[lora] = self._make(bert, lora)
        return made or None

    def _make(self, bert: "_Bert", lora: bool):
        import logging

        try:
            from codesearch.model.ortgraph import OrtLayers

            return OrtLayers(bert, lora)
        except Exception as exc:  # (no onnxruntime, or one too old for external initializers)
            logging.getLogger(__name__).info("queries encoded in numpy: %s", str(exc).splitlines()[0][:200])
            self.name = "numpy"
            return False


# ---------------------------------------------------------------------------- LoRA
def _lora_scale(cfg: dict, name: str) -> float:
    """A plain LoRA adapter's scale (alpha / r) from its peft config; Unsupported for the variants
    the numpy forward pass does not implement."""
    unusual = [k for k in ("use_dora", "use_rslora", "use_qalora", "use_bdlora", "modules_to_save", "layer_replication",
                           "lora_bias", "fan_in_fan_out", "rank_pattern", "alpha_pattern", "trainable_token_indices")
               if cfg.get(k)]
    peft_type = str(getattr(cfg.get("peft_type", "LORA"), "value", cfg.get("peft_type", "LORA")))
    if peft_type != "LORA" or cfg.get("bias", "none") != "none" or unusual:
        raise Unsupported(f"adapter {name!r} uses {', '.join(unusual) or peft_type}")
    return float(cfg["lora_alpha"]) / float(cfg["r"])


def _lora_factors(folder: Path, name: str) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], float, list[tuple[str, np.ndarray]]]:
    """An adapter folder's LoRA factors: module -> (A, B), the scale, and the parameters as the
    torch encoder names them (for the space's fingerprint)."""
    cfg_file = folder / "adapter_config.json"
    if not cfg_file.exists():
        raise FileNotFoundError(f"adapter {name!r}: folder {folder} has no adapter_config.json")
    refuse_pickled_weights(folder, f"adapter {name!r}")
    scale = _lora_scale(json.loads(cfg_file.read_text()), name)
    tensors = read_safetensors(folder / "adapter_model.safetensors")
    factors: dict[str, list] = {}
    params = []
    for key, value in tensors.items():
        parts = key.rsplit(".", 2)  # <module>.lora_A.weight
        if len(parts) != 3 or parts[1] not in ("lora_A", "lora_B") or parts[2] != "weight":
            raise Unsupported(f"adapter {name!r}: unexpected tensor {key}")
        module = parts[0].removeprefix("base_model.model.")
        factors.setdefault(module, [None, None])[parts[1] == "lora_B"] = value
        params.append((f"{parts[0]}.{parts[1]}.{name}.weight", value))
    return {m: (a, b) for m, (a, b) in factors.items()}, scale, params


# ---------------------------------------------------------------------------- the encoder
class QueryEncoder(RoutedSpaces):
    """Encodes queries into per-token unit vectors in each vector space of a model, in numpy.

    Same interface as the torch encoder for what a search needs: ``fingerprint``,
    ``encode_queries_pooled``, ``encode_queries``, ``space_for``/``spaces``/``routes``.
    """

    def __init__(self, config: EncoderConfig, bert: _Bert, tokenizer, head: tuple[np.ndarray, np.ndarray] | None,
                 spaces: dict[str, _Bert], fingerprints: dict[str | None, str], active_adapter: str | None = None):
        self.config = config
        self._bert = bert
        self._spaces = spaces  # adapter name -> the base model's twin with that adapter's LoRA factors
        self._tokenizer = tokenizer
        tokenizer.no_padding()  # (a tokenizer.json may pad every text to a fixed length)
        self._special: set[int] = set()  # (skip_special: the tokens dropped)
        if config.skip_special:
            vocab = tokenizer.get_vocab(with_added_tokens=True)
            self._special = {vocab[t] for t in SPECIAL_TOKENS if t in vocab}
        self._tokenizer_lock = threading.Lock()  # a tokenizers.Tokenizer's truncation setting is shared state
        self.head_weight, self.head_bias = head if head is not None else (None, None)
        self._head_t = None if head is None else head[0].T.copy()
        self.active_adapter = active_adapter  # (a model in training without routing: the adapter it trains)
        self._fingerprints = fingerprints  # space -> its fingerprint
        self.fingerprint = index_fingerprint(fingerprints, self.routes()) if fingerprints else ""

    # ------------------------------------------------------------------ building
    @classmethod
    def load(cls, folder: str | Path | None) -> "QueryEncoder":
        """From a model folder (as :meth:`MultiVectorEncoder.load` reads it; None: the packaged
        base model). Raises :class:`Unsupported` where only the torch encoder can run it."""
        config, folder = _read_config(folder)
        base = _base_path(config, folder)
        refuse_pickled_weights(base)
        bert = _base_bert(base)
        head = None
        if folder is not None and (folder / HEAD_NAME).exists():
            t = read_safetensors(folder / HEAD_NAME)
            w = np.asarray(t["weight"], np.float32)
            head = (w, np.asarray(t.get("bias", np.zeros(w.shape[0], np.float32)), np.float32))
        spaces: dict[str, _Bert] = {}
        lora_params: dict[str, list[tuple[str, np.ndarray]]] = {}
        for name, sub in config.adapters.items():
            path = (folder / sub) if folder else Path(sub)
            if not path.exists():
                raise FileNotFoundError(f"adapter {name!r}: folder {path} does not exist")
            factors, scale, lora_params[name] = _lora_factors(path, name)
            spaces[name] = bert.with_lora(factors, scale)
        enc = cls(config, bert, _tokenizer(base), head, spaces, {})
        enc._fingerprints = {
            s: space_fingerprint_of(config, base.name, s, head, [bf16(v) for _, v in sorted(lora_params.get(s, []), key=lambda kv: kv[0])])
            for s in enc.spaces
        }
        enc.fingerprint = index_fingerprint(enc._fingerprints, enc.routes())
        return enc

    @classmethod
    def from_encoder(cls, encoder) -> "QueryEncoder":
        """The numpy twin of a loaded torch :class:`MultiVectorEncoder`, from the weights it
        holds now (a model in training included)."""
        base = encoder.base_path()
        bert = _base_bert(base)  # (the base weights never train: only adapters and the head do)
        model = encoder.model
        spaces = {}
        for name in encoder.config.adapters:
            scale = _lora_scale(model.peft_config[name].to_dict(), name)
            factors: dict[str, list] = {}
            for n, p in model.named_parameters():
                if f".{name}.weight" in n and ("lora_A" in n or "lora_B" in n):
                    module = n.removeprefix("base_model.model.").split(".lora_")[0]
                    factors.setdefault(module, [None, None])["lora_B" in n] = p.detach().float().cpu().numpy()
            spaces[name] = bert.with_lora(factors, scale)
        head = None if encoder.head_weight is None else (encoder.head_weight, encoder.head_bias)
        config = EncoderConfig.from_dict(asdict(encoder.config))
        return cls(config, bert, _tokenizer(base), head, spaces, encoder.space_fingerprints(), encoder.active_adapter)

    def space_fingerprint(self, space: str | None) -> str:
        return self._fingerprints[space]

    @property
    def tokenizer(self):
        """The ``tokenizers.Tokenizer`` queries are cut with (copy it before changing its
        truncation: this one is shared by threads under a lock)."""
        return self._tokenizer

    def space_fingerprints(self) -> dict[str | None, str]:
        """Each space's fingerprint, in ``spaces`` order (as the torch encoder's)."""
        return {space: self._fingerprints[space] for space in self.spaces}

    @property
    def dim(self) -> int:
        return int(self.head_weight.shape[0]) if self.head_weight is not None else int(self._bert.position.shape[1])

    # ------------------------------------------------------------------ encoding
    def encode_queries_pooled(self, queries: Sequence[str], batch_size: int = 32, *, space=ACTIVE
                              ) -> tuple[list[np.ndarray], np.ndarray]:
        """Token vectors of each query and one pooled (mean) unit vector per query, in ``space``
        (an adapter name; None: the base model)."""
        space = self.active_adapter if space is ACTIVE else space
        bert = self._twin(space)
        tokens, pooled = [], np.zeros((len(queries), self.dim), np.float32)
        for i, enc in enumerate(self._tokenize([self._text(q, space) for q in queries])):
            vecs, pooled[i] = self._vectors(enc.ids, bert(enc.ids))
            tokens.append(vecs)
        return tokens, pooled

    def encode_query_spaces(self, query: str, spaces: Sequence[str | None]) -> dict[str | None, tuple[np.ndarray, np.ndarray]]:
        """One query's token vectors and pooled vector in each of ``spaces``, as
        ``encode_queries_pooled([query], space=s)`` gives them, the spaces sharing one pass over
        the base weights (see :meth:`_Bert.forward_many`)."""
        twins = {space: self._twin(space) for space in dict.fromkeys(spaces)}
        # Spaces whose text is the same (split identifiers or not) share one pass.
        groups: dict[str, list[str | None]] = {}
        for space in twins:
            groups.setdefault(self._text(query, space), []).append(space)
        out: dict[str | None, tuple[np.ndarray, np.ndarray]] = {}
        for text, group in groups.items():
            ids = self._tokenize([text])[0].ids
            for space, hidden in zip(group, self._bert.forward_many(ids, [twins[s] for s in group])):
                out[space] = self._vectors(ids, hidden)
        return out

    def warm(self) -> None:
        """Make what encoding a query needs now (ONNX Runtime's session: about 0.1 s), not at the
        first query."""
        self._bert.runtime.layers(self._bert, lora=any(t.lora for t in self._spaces.values()))

    def _twin(self, space: str | None) -> _Bert:
        """The model of ``space`` (None: the base model)."""
        if space is None:
            return self._bert
        if space not in self._spaces:
            raise KeyError(f"no adapter {space!r}; this model has {list(self._spaces) or 'none'}")
        return self._spaces[space]

    def _text(self, query: str, space: str | None) -> str:
        """What the model reads of ``query`` in ``space``: the prefix, then the query (identifiers
        split where that space is configured to)."""
        query = _utf8_text(query)
        return self.config.query_prefix + (split_identifiers(query) if self.config.splits_identifiers(space) else query)

    @property
    def query_tokens(self) -> int:
        """The tokens a query is cut to."""
        return min(self.config.query_max_tokens, self._bert.max_positions)

    def _tokenize(self, texts: list[str]):
        with self._tokenizer_lock:
            self._tokenizer.enable_truncation(max_length=self.query_tokens)
            return self._tokenizer.encode_batch(texts, add_special_tokens=True)

    def _vectors(self, ids: Sequence[int], hidden: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(token vectors, pooled vector) of one query's hidden states: special tokens left out
        of the tokens where configured (unless nothing else is left), the mean of all for the pool."""
        special = set(ids) & self._special if self.config.skip_special else set()
        keep = [j for j, t in enumerate(ids) if t not in special] if special else slice(None)
        vecs = hidden[keep] if len(hidden[keep]) else hidden
        return self._project(vecs), self._project(hidden.mean(axis=0, keepdims=True))[0]

    def hidden_token_vectors(self, ids: Sequence[int], space: str | None, keep: Sequence[int]) -> np.ndarray:
        """Unit vectors of the tokens at positions ``keep`` of the input ``ids``, in ``space``: a
        document's token vectors as the index's torch encoder computes them (in bfloat16 there;
        within cosine 0.9999). For explaining a result whose token groups were not recorded."""
        hidden = self._twin(space)(list(ids))
        return self._project(hidden[list(keep)])

    def encode_queries(self, queries: Sequence[str], batch_size: int = 32, *, space=ACTIVE) -> list[np.ndarray]:
        return self.encode_queries_pooled(queries, batch_size, space=space)[0]

    def _project(self, vecs: np.ndarray) -> np.ndarray:
        if self._head_t is not None:
            vecs = vecs @ self._head_t + self.head_bias
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        return (vecs / np.maximum(norms, 1e-6)).astype(np.float32)


def _tokenizer(base: Path):
    from tokenizers import Tokenizer

    if not (base / "tokenizer.json").exists():
        raise Unsupported(f"base model {base} has no tokenizer.json")
    return Tokenizer.from_file(str(base / "tokenizer.json"))


def _base_bert(base: Path) -> _Bert:
    weights_file = base / "model.safetensors"
    if not weights_file.exists():
        raise Unsupported(f"base model {base} has no model.safetensors")
    return _Bert(json.loads((base / "config.json").read_text()), read_safetensors(weights_file))


def _read_config(folder) -> tuple[EncoderConfig, Path | None]:
    if folder is None:
        return EncoderConfig(dim=None), None
    folder = Path(folder).expanduser()
    if (folder / CONFIG_NAME).exists():
        return EncoderConfig.from_dict(json.loads((folder / CONFIG_NAME).read_text())), folder
    if (folder / "config.json").exists():
        return EncoderConfig(base=str(folder.resolve()), dim=None), None
    raise FileNotFoundError(f"{folder} is not a model folder: expected {CONFIG_NAME} (codesearch model) "
                            "or config.json (Hugging Face model)")


def _base_path(config: EncoderConfig, folder: Path | None) -> Path:
    if config.base == PACKAGED_BASE:
        return packaged_base_path()
    base = Path(config.base).expanduser()
    if not base.is_absolute() and folder is not None:
        base = folder / base
    if not (base / "config.json").exists():
        raise FileNotFoundError(f"base model folder {base} has no config.json")
    return base
