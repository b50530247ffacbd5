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

import math
import struct
import threading
from typing import Sequence

import numpy as np

# ---------------------------------------------------------------------------- protobuf
_FLOAT, _INT64 = 1, 7  # TensorProto.DataType
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
    out = b"".join(_int(1, d) for d in arr.shape) + _int(2, _FLOAT) + _bytes(8, name)
    for k, v in (("location", "codesearch-in-memory"), ("offset", "0"), ("length", str(arr.nbytes))):
        out += _bytes(13, _bytes(1, k) + _bytes(2, v))
    return out + _int(14, 1)  # data_location: EXTERNAL


def _int64_constant(name: str, values: Sequence[int]) -> bytes:
    tensor = _int(1, len(values)) + _int(2, _INT64) + _bytes(9, struct.pack(f"<{len(values)}q", *values))
    attr = _bytes(1, "value") + _bytes(5, tensor) + _int(20, 4)  # AttributeType TENSOR
    return _bytes(2, name) + _bytes(4, "Constant") + _bytes(5, attr)


def _model(nodes: list[bytes], inits: list[bytes], inputs: list[bytes], outputs: list[bytes]) -> bytes:
    graph = b"".join(_bytes(1, n) for n in nodes) + _bytes(2, "codesearch-query-encoder")
    graph += b"".join(_bytes(5, t) for t in inits) + b"".join(_bytes(11, i) for i in inputs)
    graph += b"".join(_bytes(12, o) for o in outputs)
    opsets = _bytes(8, _int(2, 17)) + _bytes(8, _bytes(1, "com.microsoft") + _int(2, 1))
    return _int(1, 8) + _bytes(2, "codesearch") + opsets + _bytes(7, graph)  # ir_version 8 (opset 17)


# ---------------------------------------------------------------------------- the graph
LORA_SUFFIXES = (".lora_a", ".lora_b")


class OrtLayers:
    """``_Bert.forward_many`` for a batch of twins, after the embeddings: ``run(x, factors)``
    with ``x`` of shape (twins, tokens, hidden) and, per LoRA module, each twin's factors."""

    def __init__(self, bert, lora: bool):
        import onnxruntime as ort

        self.lora = lora
        self.modules: list[tuple[str, int, int]] = []  # (module, in, out) with LoRA inputs
        hidden = bert.position.shape[1]
        heads, size = bert.heads, hidden // bert.heads
        weights: dict[str, np.ndarray] = {}
        nodes: list[bytes] = []
        count = iter(range(1 << 30))

        def op(kind: str, inputs: Sequence[str], domain: str = "", **attrs) -> str:
            out = f"t{next(count)}"
            nodes.append(_node(kind, inputs, out, domain, **attrs))
            return out

        def weight(name: str, arr: np.ndarray) -> str:
            weights[name] = np.ascontiguousarray(arr, np.float32)  # (the mapped arrays as they are)
            return name

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
        model = _model(nodes, [_external_tensor(n, a) for n, a in weights.items()], inputs,
                       [_value_info("hidden", _FLOAT, ["twins", "tokens", hidden])])
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # (a search runs its full-text part on the other core)
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        self._values = {n: ort.OrtValue.ortvalue_from_numpy(a) for n, a in weights.items()}  # (kept alive: the session reads them)
        options.add_external_initializers(list(self._values), list(self._values.values()))
        self._session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        # The session multiplies with its packed copies from now on: the mapped file's pages it
        # read to pack them leave this process (they stay in the page cache; a query's embedding
        # rows are read back as it needs them). An idle searcher holds 41 MB less.
        _release_mapped_pages(weights.values())
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
