"""The query encoder's BERT layers as one ONNX Runtime graph over the mapped weights.

Why: a query is a handful of tokens, so each of the 36 weight products of a forward pass is a
skinny one (9 to 30 rows), and numpy's OpenBLAS runs those at a fraction of the CPU's speed.
ONNX Runtime packs each constant weight matrix once, when the session is made, for its own
product kernels, and runs the small operations (layer norms, GELU, softmax) as fused kernels:
two spaces of a 9-token query take about 9 ms against numpy's 17 ms on the project's 2-core
machine (docs/speed.md, "The query encoder in ONNX Runtime"). The numbers agree with the numpy
forward pass within 3e-6, which stays the fallback where ``onnxruntime`` cannot be imported.

Why the graph is written here as protobuf bytes rather than with the ``onnx`` package:
``import onnx`` takes 1.1 to 1.4 s on that machine (its helper, checker and numpy modules),
longer than a terminal search without the service takes for everything else but LanceDB's
import. The graph is about 300 nodes of a dozen operator types, so the few protobuf messages it
needs (``ModelProto``, ``GraphProto``, ``NodeProto``, ``AttributeProto``, ``ValueInfoProto``,
``TensorProto`` with external data) are encoded by hand below, field numbers from ``onnx.proto``.
``tests/test_query_encoder.py`` checks the outputs against the numpy forward pass.

The weights never travel through protobuf: every initializer is declared as external data and
handed to ONNX Runtime as an ``OrtValue`` over the mapped safetensors arrays
(``SessionOptions.add_external_initializers``), so making a session costs about 0.1 s and the
process owns only the packed copy of the weight matrices (about 40 MB for MiniLM-L6).
Each space's LoRA factors are inputs of a run (a batched product per twin: rows of the base
model get zero factors), so one session serves every space and every set of spaces.
"""

from __future__ import annotations

import functools
import math
import struct
import threading
from typing import Sequence

import numpy as np

# ---------------------------------------------------------------------------- protobuf
_FLOAT, _UINT8, _INT8, _INT64 = 1, 2, 3, 7  # TensorProto.DataType
_DTYPES = {np.dtype(np.float32): _FLOAT, np.dtype(np.uint8): _UINT8, np.dtype(np.int8): _INT8, np.dtype(np.int64): _INT64}
_ATTR_FLOAT, _ATTR_INT, _ATTR_INTS = 1, 2, 7  # AttributeProto.AttributeType


def _varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _int(field: int, n: int) -> bytes:
    return _key(field, 0) + _varint(n)


def _bytes(field: int, data: bytes | str) -> bytes:
    if isinstance(data, str):
        data = data.encode()
    return _key(field, 2) + _varint(len(data)) + data


def _attribute(name: str, value) -> bytes:
    out = _bytes(1, name)
    if isinstance(value, float):
        return out + _key(2, 5) + struct.pack("<f", value) + _int(20, _ATTR_FLOAT)
    if isinstance(value, int):
        return out + _int(3, value) + _int(20, _ATTR_INT)
    return out + b"".join(_int(8, v) for v in value) + _int(20, _ATTR_INTS)


def _node(op: str, inputs: Sequence[str], output: str, domain: str = "", **attrs) -> bytes:
    out = b"".join(_bytes(1, i) for i in inputs) + _bytes(2, output) + _bytes(4, op)
    out += b"".join(_bytes(5, _attribute(k, v)) for k, v in attrs.items())
    return out + (_bytes(7, domain) if domain else b"")


def _value_info(name: str, elem_type: int, dims: Sequence[int | str]) -> bytes:
    shape = b"".join(_bytes(1, _int(1, d) if isinstance(d, int) else _bytes(2, d)) for d in dims)
    tensor_type = _int(1, elem_type) + _bytes(2, shape)
    return _bytes(1, name) + _bytes(2, _bytes(1, tensor_type))


def _external_tensor(name: str, arr: np.ndarray) -> bytes:
    """A TensorProto whose data lies outside the model (given to the session as an OrtValue)."""
    out = b"".join(_int(1, d) for d in arr.shape) + _int(2, _DTYPES[arr.dtype]) + _bytes(8, name)
    for k, v in (("location", "codesearch-in-memory"), ("offset", "0"), ("length", str(arr.nbytes))):
        out += _bytes(13, _bytes(1, k) + _bytes(2, v))
    return out + _int(14, 1)  # data_location: EXTERNAL


def _int64_constant(name: str, values: Sequence[int]) -> bytes:
    return _constant(name, np.asarray(values, np.int64))


def _constant(name: str, arr: np.ndarray) -> bytes:
    """A Constant node holding a small array (its bytes inside the graph)."""
    arr = np.ascontiguousarray(arr)
    tensor = b"".join(_int(1, d) for d in arr.shape) + _int(2, _DTYPES[arr.dtype]) + _bytes(9, arr.tobytes())
    attr = _bytes(1, "value") + _bytes(5, tensor) + _int(20, 4)  # AttributeType TENSOR
    return _bytes(2, name) + _bytes(4, "Constant") + _bytes(5, attr)


def _model(nodes: list[bytes], inits: list[bytes], inputs: list[bytes], outputs: list[bytes],
           name: str = "codesearch-query-encoder") -> bytes:
    graph = b"".join(_bytes(1, n) for n in nodes) + _bytes(2, name)
    graph += b"".join(_bytes(5, t) for t in inits) + b"".join(_bytes(11, i) for i in inputs)
    graph += b"".join(_bytes(12, o) for o in outputs)
    opsets = _bytes(8, _int(2, 17)) + _bytes(8, _bytes(1, "com.microsoft") + _int(2, 1))
    return _int(1, 8) + _bytes(2, "codesearch") + opsets + _bytes(7, graph)  # ir_version 8 (opset 17)


def _options(threads: int, shapes_vary: bool = False):
    """Session options; ``shapes_vary``: inputs whose sizes change at every run (a document batch's
    token count), for which ONNX Runtime's memory patterns (an allocation plan kept per input
    shape) are off: with them, embedding 1,468 Rust chunks peaked at 745 MB instead of 523."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.enable_mem_pattern = not shapes_vary
    options.intra_op_num_threads = max(0, int(threads))
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    if _shared_arena():
        options.add_session_config_entry("session.use_env_allocators", "1")
    return options


_ARENA_LOCK = threading.Lock()
_ARENA: list[bool] = []  # (whether this process registered its shared arena: decided once)


def _shared_arena() -> bool:
    """One CPU memory arena for every session of this process (ONNX Runtime's environment
    allocator). Each session otherwise keeps an arena of its own as large as its biggest batch
    needed and never gives it back: a document batch's activations are about 150 MB, so a run
    that embedded code of three spaces held three (peak about 705 against 470 MB for 600 chunks
    of each, the same speed; docs/speed.md). False where it cannot be registered: an arena a session."""
    with _ARENA_LOCK:
        if not _ARENA:
            import onnxruntime as ort

            try:
                info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
                ort.create_and_register_allocator(info, ort.OrtArenaCfg(0, -1, -1, -1))
                _ARENA.append(True)
            except Exception:  # noqa: BLE001 - (an older ONNX Runtime: an arena a session, as before)
                _ARENA.append(False)
        return _ARENA[0]


class _Graph:
    """A graph being written: ``op`` adds a node and names its output, ``weight`` an initializer
    (handed to the session as an OrtValue over the array, never copied into the graph)."""

    def __init__(self):
        self.nodes: list[bytes] = []
        self.weights: dict[str, np.ndarray] = {}
        self._count = iter(range(1 << 30))

    def op(self, kind: str, inputs: Sequence[str], domain: str = "", **attrs) -> str:
        out = f"t{next(self._count)}"
        self.nodes.append(_node(kind, inputs, out, domain, **attrs))
        return out

    def weight(self, name: str, arr: np.ndarray, dtype=None) -> str:
        self.weights[name] = np.ascontiguousarray(arr, dtype)
        return name

    def session(self, inputs: list[bytes], outputs: list[bytes], name: str, threads: int, shapes_vary: bool = False):
        """(the InferenceSession, the OrtValues it reads: keep them alive as long as it)."""
        import onnxruntime as ort

        model = _model(self.nodes, [_external_tensor(n, a) for n, a in self.weights.items()], inputs, outputs, name)
        options = _options(threads, shapes_vary)
        values = {n: ort.OrtValue.ortvalue_from_numpy(a) for n, a in self.weights.items()}
        options.add_external_initializers(list(values), list(values.values()))
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"]), values


# ---------------------------------------------------------------------------- the graph
LORA_SUFFIXES = (".lora_a", ".lora_b")


class OrtLayers:
    """``_Bert.forward_many`` for a batch of twins, after the embeddings: ``run(x, factors)``
    with ``x`` of shape (twins, tokens, hidden) and, per LoRA module, each twin's factors."""

    def __init__(self, bert, lora: bool):
        self.lora = lora
        self.modules: list[tuple[str, int, int]] = []  # (module, in, out) with LoRA inputs
        hidden = bert.position.shape[1]
        heads, size = bert.heads, hidden // bert.heads
        graph = _Graph()
        nodes, op = graph.nodes, graph.op

        def weight(name: str, arr: np.ndarray) -> str:
            return graph.weight(name, arr, np.float32)  # (the mapped arrays as they are)

        nodes.append(_int64_constant("split_heads", [0, 0, heads, size]))
        nodes.append(_int64_constant("join_heads", [0, 0, hidden]))
        x = "x"
        for i in range(bert.layers):
            p = f"encoder.layer.{i}."

            def linear(name: str, v: str) -> str:
                w, b = bert.linear[p + name]
                # x W^T on the stored (out, in) matrix, packed by the session once
                out = op("Add", [op("FusedMatMul", [v, weight(p + name, w)], "com.microsoft", transB=1, alpha=1.0),
                                 weight(p + name + ".bias", b)])
                if lora:
                    self.modules.append((p + name, w.shape[1], w.shape[0]))
                    low = op("MatMul", [v, p + name + LORA_SUFFIXES[0]])
                    out = op("Add", [out, op("MatMul", [low, p + name + LORA_SUFFIXES[1]])])
                return out

            q = op("Transpose", [op("Reshape", [linear("attention.self.query", x), "split_heads"])], perm=[0, 2, 1, 3])
            k = op("Transpose", [op("Reshape", [linear("attention.self.key", x), "split_heads"])], perm=[0, 2, 3, 1])
            v = op("Transpose", [op("Reshape", [linear("attention.self.value", x), "split_heads"])], perm=[0, 2, 1, 3])
            scores = op("Mul", [op("MatMul", [q, k]), weight(f"{p}scale", np.full(1, 1.0 / math.sqrt(size), np.float32))])
            context = op("MatMul", [op("Softmax", [scores], axis=-1), v])
            context = op("Reshape", [op("Transpose", [context], perm=[0, 2, 1, 3]), "join_heads"])
            g, b = bert.norms[p + "attention.output.LayerNorm"]
            x = op("LayerNormalization", [op("Add", [linear("attention.output.dense", context), x]),
                                          weight(p + "ln1", g), weight(p + "ln1.bias", b)], epsilon=float(bert.eps), axis=-1)
            h = op("Gelu", [linear("intermediate.dense", x)], "com.microsoft")
            g, b = bert.norms[p + "output.LayerNorm"]
            x = op("LayerNormalization", [op("Add", [linear("output.dense", h), x]),
                                          weight(p + "ln2", g), weight(p + "ln2.bias", b)], epsilon=float(bert.eps), axis=-1)
        nodes.append(_node("Identity", [x], "hidden"))
        inputs = [_value_info("x", _FLOAT, ["twins", "tokens", hidden])]
        for module, n_in, n_out in self.modules:
            inputs.append(_value_info(module + LORA_SUFFIXES[0], _FLOAT, ["twins", n_in, "rank"]))
            inputs.append(_value_info(module + LORA_SUFFIXES[1], _FLOAT, ["twins", "rank", n_out]))
        # One thread: a search runs its full-text part on the other core.
        self._session, self._values = graph.session(
            inputs, [_value_info("hidden", _FLOAT, ["twins", "tokens", hidden])], "codesearch-query-encoder", threads=1)
        # The session multiplies with its packed copies from now on: the mapped file's pages it
        # read to pack them leave this process (they stay in the page cache; a query's embedding
        # rows are read back as it needs them). An idle searcher holds 41 MB less.
        _release_mapped_pages(graph.weights.values())
        self._feeds: dict[tuple, dict[str, np.ndarray]] = {}
        self._lock = threading.Lock()

    def factors(self, twins: Sequence) -> dict[str, np.ndarray]:
        """The LoRA inputs for these twins, in this order (made once per combination)."""
        key = tuple(twins)
        feeds = self._feeds.get(key)
        if feeds is None:
            rank = max([a.shape[1] for t in twins for a, _ in t.lora.values()] or [1])
            feeds = {}
            for module, n_in, n_out in self.modules:
                a = np.zeros((len(twins), n_in, rank), np.float32)
                b = np.zeros((len(twins), rank, n_out), np.float32)
                for j, twin in enumerate(twins):
                    f = twin.lora.get(module)
                    if f is not None:
                        a[j, :, : f[0].shape[1]] = f[0]
                        b[j, : f[1].shape[0]] = f[1]
                feeds[module + LORA_SUFFIXES[0]], feeds[module + LORA_SUFFIXES[1]] = a, b
            with self._lock:
                if len(self._feeds) >= 16:  # (a handful of space combinations in practice)
                    self._feeds.clear()
                self._feeds[key] = feeds
        return feeds

    def run(self, x: np.ndarray, twins: Sequence) -> np.ndarray:
        feeds = self.factors(twins) if self.lora else {}
        return self._session.run(["hidden"], {"x": x, **feeds})[0]


def pair_bounded_codes(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``w`` (in, out) as int8 codes and one float32 scale per output column, such that any two
    codes at rows 2k and 2k+1 of a column add up to at most 128 in magnitude.

    Why: x86's AVX2 kernel for u8 x s8 products (``vpmaddubsw``) adds two neighbouring products in
    a saturating 16-bit lane. With u8 activation codes up to 255, codes of up to 127 overflow it
    (255 x 127 x 2), so the usual fix is 7-bit weights (-63..63). Bounding each pair's sum
    instead keeps the product exact (255 x 128 < 32,768) while most codes use nearly 8 bits:
    the largest code of a column is about 95 on average for MiniLM. Against 7-bit weights, a
    token's distance to float32 (1 - cosine) falls from 0.0042 to 0.0027 on Verus code."""
    wt = np.asarray(w, np.float32)
    even = np.abs(np.concatenate([wt, np.zeros((len(wt) % 2, wt.shape[1]), np.float32)]))
    scale = np.maximum(even.reshape(-1, 2, wt.shape[1]).sum(axis=1).max(axis=0), 1e-12) / 127.0
    return np.clip(np.rint(wt / scale), -127, 127).astype(np.int8), scale.astype(np.float32)


# Activation codes: u8, one scale per token. Most inputs are symmetric around a zero point of 128;
# GELU's outputs (at least -0.17) get a zero point of 16, so 239 codes cover the positive side.
_ZERO, _GELU_ZERO, _GELU_MIN = 128, 16, 0.17


class Int8DocumentLayers:
    """A document batch's BERT layers after the embeddings, with 8-bit weight products:
    ``run(x, attention)`` for ``x`` of shape (rows, width, hidden) and the batch's 0/1 mask.

    Why: on a CPU without native bfloat16 (AVX2 only, as many laptops), the torch encoder runs
    documents in float32 at about 4,500 tokens/s on 2 cores, and its 36 weight products are most
    of that. ONNX Runtime's u8 x s8 products run at about 2.1 times float32's rate there (0.30
    against 0.14 TOP/s, docs/speed.md), so indexing runs faster. On a CPU with 8-bit dot products
    (AVX512-VNNI) they beat torch's bfloat16 as well, so documents run here on every CPU
    (docs/speed.md, "Documents in 8 bits on every CPU").

    - **Activations** are quantised per token: each row of a product's input has its own scale
      (its largest magnitude over 127 around a zero point of 128; GELU's outputs, which are at
      least -0.17, their largest value over 239 above a zero point of 16). So a text's vectors
      depend on its own tokens only, never on its batch-mates, as the index requires (a resumed
      index equals a clean one). ONNX Runtime's dynamic quantisation (one scale per tensor) would not.
    - **Weights** are int8 codes per output column whose neighbouring pairs are bounded
      (:func:`pair_bounded_codes`), so the integer products are exact on every x86 kernel. Each
      process checks its kernel once per matrix height on the worst cases of such codes (a
      kernel that pairs codes in another way raises: documents then run in torch).
    - **Only real tokens** go through the weight products, layer norms and GELU: the graph reads
      the batch's tokens packed (tokens, hidden) and spreads them over the padded rows only for
      attention, whose padding is masked. A batch's padding (rows and widths) was 1.16 times its
      real tokens on the Rust eval corpus; the vectors are the same bit for bit (docs/speed.md,
      "Only real tokens through the products, and two batches at once").
    - Attention (query-key products, softmax, the value product), layer norms and GELU stay in
      float32. A token's final vector has a cosine of 0.998 to float32's on average (1st
      percentile 0.995) on Rust, Verus and Lean code.
    """

    def __init__(self, linear: dict, norms: dict, layers: int, heads: int, eps: float, threads: int = 0):
        linear_weights = linear  # (the name ``linear`` is the graph helper below)
        hidden = next(iter(linear_weights.values()))[0].shape[1]
        size = hidden // heads
        graph = _Graph()
        nodes, op, weight = graph.nodes, graph.op, graph.weight

        for name, arr in (("flat", np.array([-1, hidden], np.int64)), ("heads", np.array([heads, size], np.int64)),
                          ("axis1", np.array([1], np.int64)), ("one", np.array(1.0, np.float32)),
                          ("scale", np.array(1.0 / math.sqrt(size), np.float32)),
                          ("zero", np.array(_ZERO, np.uint8)), ("levels", np.array(127.0, np.float32)),
                          ("eps", np.array(1e-12, np.float32)), ("gelu_zero", np.array(_GELU_ZERO, np.uint8)),
                          ("gelu_levels", np.array(255.0 - _GELU_ZERO, np.float32)),
                          ("gelu_step", np.array(_GELU_MIN / _GELU_ZERO, np.float32))):
            nodes.append(_constant(name, arr))
        nodes.append(_int64_constant("rows_width", [0, 3]))
        split_heads = op("Concat", [op("Gather", [op("Shape", ["mask"]), "rows_width"]), "heads"], axis=0)
        x = "x"

        def padded(v: str) -> str:
            """``v`` (tokens, hidden) at the batch's padded positions (rows x width); at the padding,
            the first token's (masked: what is there only has to be finite)."""
            return op("Gather", [v, "spread"], axis=0)

        def quantised(v: str, gelu: bool) -> tuple[str, str, str]:
            """``v`` (tokens, in) as u8 codes, one scale per token: (codes, scales as a column, zero point)."""
            if gelu:
                s = op("Max", [op("Div", [op("ReduceMax", [v], axes=[-1], keepdims=0), "gelu_levels"]), "gelu_step"])
                zero = "gelu_zero"
            else:
                s = op("Div", [op("Max", [op("ReduceMax", [op("Abs", [v])], axes=[-1], keepdims=0), "eps"]), "levels"])
                zero = "zero"
            codes = op("QuantizeLinear", [v, s, op("Expand", [zero, op("Shape", [s])])], axis=0)
            return codes, op("Unsqueeze", [s, "axis1"]), zero

        def linear(name: str, v: str, codes: tuple | None = None, gelu: bool = False) -> tuple[str, tuple]:
            w, b = linear_weights[name]
            q, col = pair_bounded_codes(np.asarray(w, np.float32).T)  # (in, out)
            codes = codes or quantised(v, gelu)
            y = op("MatMulIntegerToFloat", [codes[0], weight(name + ".q", q), "one", weight(name + ".s", col), codes[2]],
                   "com.microsoft")
            return op("Add", [op("Mul", [y, codes[1]]), weight(name + ".bias", np.asarray(b, np.float32))]), codes

        for i in range(layers):
            p = f"encoder.layer.{i}."
            q, codes = linear(p + "attention.self.query", x)
            k, _ = linear(p + "attention.self.key", x, codes)
            v, _ = linear(p + "attention.self.value", x, codes)
            q = op("Transpose", [op("Reshape", [padded(q), split_heads])], perm=[0, 2, 1, 3])
            k = op("Transpose", [op("Reshape", [padded(k), split_heads])], perm=[0, 2, 3, 1])
            v = op("Transpose", [op("Reshape", [padded(v), split_heads])], perm=[0, 2, 1, 3])
            scores = op("Add", [op("Mul", [op("MatMul", [q, k]), "scale"]), "mask"])
            context = op("MatMul", [op("Softmax", [scores], axis=-1), v])
            context = op("Gather", [op("Reshape", [op("Transpose", [context], perm=[0, 2, 1, 3]), "flat"]), "keep"], axis=0)
            g, b = norms[p + "attention.output.LayerNorm"]
            a, _ = linear(p + "attention.output.dense", context)
            x = op("LayerNormalization", [op("Add", [a, x]), weight(p + "ln1", np.asarray(g, np.float32)),
                                          weight(p + "ln1.bias", np.asarray(b, np.float32))], epsilon=float(eps), axis=-1)
            h, _ = linear(p + "intermediate.dense", x)
            o, _ = linear(p + "output.dense", op("Gelu", [h], "com.microsoft"), gelu=True)
            g, b = norms[p + "output.LayerNorm"]
            x = op("LayerNormalization", [op("Add", [o, x]), weight(p + "ln2", np.asarray(g, np.float32)),
                                          weight(p + "ln2.bias", np.asarray(b, np.float32))], epsilon=float(eps), axis=-1)
        nodes.append(_node("Identity", [x], "hidden"))
        inputs = [_value_info("x", _FLOAT, ["tokens", hidden]), _value_info("mask", _FLOAT, ["rows", 1, 1, "width"]),
                  _value_info("keep", _INT64, ["tokens"]), _value_info("spread", _INT64, ["positions"])]
        self.hidden = hidden
        self._session, self._values = graph.session(
            inputs, [_value_info("hidden", _FLOAT, ["tokens", hidden])], "codesearch-document-encoder", threads,
            shapes_vary=True)
        for rows in sorted({a.shape[0] for a in graph.weights.values() if a.dtype == np.int8}):
            _check_exact_products(rows, threads)

    def run(self, x: np.ndarray, attention: np.ndarray) -> np.ndarray:
        mask = ((attention == 0).astype(np.float32) * np.float32(-1e4))[:, None, None, :]
        keep = np.flatnonzero(attention.reshape(-1))
        spread = np.zeros(attention.size, np.int64)
        spread[keep] = np.arange(len(keep))
        tokens = np.ascontiguousarray(np.asarray(x, np.float32).reshape(-1, self.hidden)[keep])
        out = self._session.run(["hidden"], {"x": tokens, "mask": mask, "keep": keep, "spread": spread})[0]
        hidden = np.zeros((attention.size, self.hidden), np.float32)
        hidden[keep] = out
        return hidden.reshape(*attention.shape, self.hidden)


class Int8Products:
    """The integer products of u8 codes (zero point 128) with one fixed int8 matrix of
    pair-bounded columns (:func:`pair_bounded_codes`'s bound, each column's codes in any scale):
    ``run(a)`` for ``a`` of shape (m, rows), uint8, gives ``(a - 128) @ codes`` as int32, exactly.

    Why: a search scores every pooled vector of an index held in memory against the query's
    (search.PooledScores). numpy has no 8-bit product, so it widened the int8 codes to float32
    a block at a time: 5.9 ms for 100k vectors of 256 on one core of the project's AVX2 machine.
    ONNX Runtime's u8 x s8 kernel reads the codes as they are: 1.3 ms for one query, 1.9 for
    two (docs/speed.md). The session packs the matrix once (about its size again in memory);
    the codes stay this object's, as the session reads them (an external initializer)."""

    def __init__(self, codes: np.ndarray, threads: int = 1):
        rows, cols = codes.shape
        _check_exact_products(rows, threads)  # (raises ArithmeticError on a kernel that would saturate)
        graph = _Graph()
        graph.weight("codes", codes, np.int8)
        graph.nodes.append(_constant("zero", np.array(_ZERO, np.uint8)))
        graph.nodes.append(_node("MatMulInteger", ["a", "codes", "zero"], "y"))
        self._session, self._values = graph.session(
            [_value_info("a", _UINT8, ["m", rows])], [_value_info("y", 6, ["m", cols])], "codesearch-int8-products", threads)
        self.codes = graph.weights["codes"]

    def run(self, a: np.ndarray) -> np.ndarray:
        return self._session.run(["y"], {"a": np.ascontiguousarray(a, np.uint8)})[0]


def _check_exact_products(rows: int, threads: int) -> None:
    """Raise ArithmeticError unless this machine's u8 x s8 kernel multiplies pair-bounded codes
    (:func:`pair_bounded_codes`) of ``rows`` rows exactly. Checked once per process and shape.

    Any pair-bounded matrix is exact on a kernel that adds rows 2k and 2k+1 in a saturating lane
    (or saturates nowhere), so the check multiplies the worst cases for such a kernel: each pair
    summing to 128 in magnitude, balanced and not, and in patterns whose other pairings (rows
    2k+1 and 2k+2) sum to 254 and would overflow; then random pair-bounded codes. Activations: all
    255, all 0, and random."""
    if not _products_are_exact(rows, threads):
        raise ArithmeticError("this CPU's 8-bit products saturate on pair-bounded weights")


@functools.cache
def _products_are_exact(rows: int, threads: int) -> bool:
    import onnxruntime as ort

    def tiled(pattern: list[int]) -> np.ndarray:
        return np.resize(np.array(pattern, np.int64), rows)

    patterns = [[127, 1], [1, 127], [64, 64], [1, 127, 127, 1], [127, 1, 1, 127], [96, 32, 32, 96]]
    columns = [tiled(p) * sign for p in patterns for sign in (1, -1)] + [tiled([127, -127])]
    rng = np.random.default_rng(rows)
    q = np.concatenate([np.stack(columns, axis=1).astype(np.int8),
                        pair_bounded_codes(rng.standard_normal((rows, 51)).astype(np.float32))[0]], axis=1)
    nodes = [_constant("w", q), _constant("zero", np.array(_ZERO, np.uint8)), _node("MatMulInteger", ["a", "w", "zero"], "y")]
    model = _model(nodes, [], [_value_info("a", _UINT8, ["m", rows])], [_value_info("y", 6, ["m", q.shape[1]])],
                   name="codesearch-product-check")  # (6: INT32)
    session = ort.InferenceSession(model, _options(threads), providers=["CPUExecutionProvider"])
    a = np.concatenate([np.full((1, rows), 255, np.uint8), np.zeros((1, rows), np.uint8),
                        rng.integers(0, 256, (6, rows), dtype=np.uint8)])
    got = session.run(["y"], {"a": a})[0]
    return bool(np.array_equal(got, (a.astype(np.int64) - _ZERO) @ q.astype(np.int64)))


def _release_mapped_pages(arrays) -> None:
    """``madvise(MADV_DONTNEED)`` on the file mappings ``arrays`` are views of: their pages leave
    this process's resident set; reading them again maps them back from the page cache (or the
    file), so nothing that still reads them sees other data."""
    import mmap

    done: set[int] = set()
    for arr in arrays:
        base = arr
        while base is not None and not isinstance(base, np.memmap):
            base = getattr(base, "base", None)
        mapping = getattr(base, "_mmap", None)
        if mapping is None or id(mapping) in done or not hasattr(mapping, "madvise"):
            continue
        done.add(id(mapping))
        try:
            mapping.madvise(mmap.MADV_DONTNEED)
        except (OSError, ValueError):
            pass  # (a closed mapping, or a platform without it: the pages simply stay)
