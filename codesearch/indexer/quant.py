"""Compact storage of token vectors: a few bits per dimension after a random rotation.

Token vectors are unit length. Rotating them with a fixed random orthogonal matrix spreads
their energy evenly over the dimensions, so each rotated component is close to Gaussian with
a known spread, and scalar quantisation with the Lloyd-Max levels for a Gaussian needs no
training and no per-corpus codebook. Dot products are unchanged by the rotation, so search
rotates the query once and scores it against the decoded (still rotated) document tokens:
nothing is rotated back.

Codecs (``index.token_codec``; bytes per token at 256 dimensions):

- ``float32``: the encoder's output unchanged (1024 B): the reference the others are measured against.
- ``float16``: the vectors as they are, in half precision (512 B).
- ``int8``: one byte per dimension and a float16 scale per token (258 B).
- ``q2``: 2 bits per dimension, 4 levels (64 B).
- ``q2`` (default): 2 bits per dimension, 4 levels (64 B).
- ``q2q1``: the head's leading dimensions (a PCA head puts the variance there; half by
  default) at 2 bits, the rest at 1 bit (its sign), one byte for how the token's length
  splits between the two parts (49 B).
- ``q1``: 1 bit per dimension (32 B).

Before coding, :func:`merge_tokens` folds together a chunk's tokens whose vectors are nearly
the same (repeated identifiers and keywords: cosine above ``index.token_merge``, 0.9 by
default), keeping about 60% of them: a MaxSim maximum over near-copies barely changes.

Measured on the held-out Rust and Python eval sets (docs/experiments.md; README "Index size and scale"): ``q2`` with merging
at 0.9 scores within noise of the float16 vectors (MRR -0.008 and -0.002, paired bootstrap
95% intervals containing 0) at 1/12 of the bytes per chunk; ``q1`` loses about 0.01-0.02 MRR.

The rotation is drawn once per index (seeded) and saved in the index home, so decoding never
depends on a random generator or a LAPACK build being the same later.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CODECS = ("float32", "float16", "int8", "q2", "q2q1", "q1")
from codesearch.home import TOKEN_CODEC as CODEC_FILE  # the home's layout: codesearch/home.py

# Lloyd-Max quantiser of a unit Gaussian with 4 levels: thresholds 0 and +-T2, levels +-L2a, +-L2b.
_T2 = 0.9816
_L2 = np.array([-1.510, -0.4528, 0.4528, 1.510], np.float32)  # code 0..3
_SIGN_MEAN = float(np.sqrt(2.0 / np.pi))  # E|x| of a unit Gaussian: the least-squares 1-bit level


def _lut2() -> np.ndarray:
    """byte -> the 4 levels its four 2-bit codes stand for (low bits first)."""
    b = np.arange(256)
    return np.stack([_L2[(b >> (2 * k)) & 3] for k in range(4)], axis=1).astype(np.float32)


def _lut1() -> np.ndarray:
    """byte -> the 8 signs its bits stand for (low bit first)."""
    b = np.arange(256)
    return np.stack([np.where((b >> k) & 1, 1.0, -1.0) for k in range(8)], axis=1).astype(np.float32)


_LUT2 = _lut2()
_LUT1 = _lut1()


def _pack2(codes: np.ndarray) -> np.ndarray:
    c = codes.reshape(codes.shape[0], -1, 4).astype(np.uint8, copy=False)
    out = c[..., 0].copy()
    out |= c[..., 1] << 2
    out |= c[..., 2] << 4
    out |= c[..., 3] << 6
    return out


def _code2(x: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """Codes 0..3 for x < -t, -t <= x < 0, 0 <= x < t, x >= t (t: the Lloyd-Max threshold)."""
    t = (_T2 * sd).astype(np.float32)
    codes = (x >= -t).view(np.uint8).copy()
    codes += (x >= 0).view(np.uint8)
    codes += (x >= t).view(np.uint8)
    return codes


def merge_tokens(v: np.ndarray, threshold: float | None) -> np.ndarray:
    """Fold near-identical token vectors together (leader clustering, in token order).

    Each token joins the first group whose leader has cosine above ``threshold`` with it
    (else it leads a new group); each group becomes its re-normalised mean. Deterministic.
    """
    return merge_token_groups(v, threshold)[0]


def merge_token_groups(v: np.ndarray, threshold: float | None) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`merge_tokens`, and which group each token went to (``labels[i]``: the row of the
    merged vectors that token ``i`` is part of), or None when nothing was merged (each token is
    its own row). The index stores the labels so that ``search --explain`` can say which code
    token a query word met."""
    v = np.asarray(v, np.float32)
    if not threshold or len(v) < 2:
        return v, None
    # Greedy, in token order: a token joins the earlier group leader it is most similar to, if
    # above the threshold, else leads a group of its own. Only the few earlier tokens above the
    # threshold can be that leader, so each token looks at those alone (ties: the earliest).
    sims = v @ v.T
    n = len(v)
    rows, cols = np.nonzero(np.tril(sims > threshold, -1))
    starts = np.searchsorted(rows, np.arange(n + 1)).tolist()
    cols = cols.tolist()
    labels_list = [0] * n
    group_of: dict[int, int] = {}  # leader token -> its group
    for i in range(n):
        near = [j for j in cols[starts[i] : starts[i + 1]] if j in group_of]
        if near:
            best = near[0] if len(near) == 1 else near[int(np.argmax(sims[i, near]))]
            labels_list[i] = group_of[best]
        else:
            labels_list[i] = group_of[i] = len(group_of)
    if len(group_of) == n:
        return v, None
    labels = np.asarray(labels_list, np.int64)
    # Each group summed in token order (as np.add.at would, bit for bit, and faster): the k-th
    # members of all groups in one step.
    order = np.argsort(labels, kind="stable")
    rank = np.arange(n) - np.searchsorted(labels[order], labels[order])
    sums = np.zeros((len(group_of), v.shape[1]), np.float32)
    for k in range(int(rank.max()) + 1):
        members = order[rank == k]
        sums[labels[members]] += v[members]
    return sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-8), labels


def _random_rotation(d: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return (q * np.sign(np.diag(r))).astype(np.float32)


class TokenCodec:
    """Encodes (n, dim) unit token vectors to (n, bytes_per_token) uint8 codes and back."""

    def __init__(self, name: str, dim: int, rotation: np.ndarray | None = None, split: int | None = None):
        if name not in CODECS:
            raise ValueError(f"unknown token codec {name!r}: choose one of {', '.join(CODECS)}")
        self.name = name
        self.dim = int(dim)
        self.rotation = rotation
        self.half = int(split) if split else self.dim // 2  # q2q1: the leading dimensions coded with 2 bits
        if name in ("q2", "q1") and self.dim % 8:
            raise ValueError(f"codec {name} needs a dimension divisible by 8, not {dim}")
        if name == "q2q1" and (self.half % 8 or (self.dim - self.half) % 8 or not 0 < self.half < self.dim):
            raise ValueError(f"codec q2q1 needs both parts of {dim} dimensions divisible by 8 (split {self.half})")
        if name.startswith("q") and rotation is None:
            raise ValueError(f"codec {name} needs its rotation")
        self._lut16 = None
        self._lut32 = None

    # ------------------------------------------------------------------ creation and persistence
    @classmethod
    def new(cls, name: str, dim: int, seed: int = 0, split: int | None = None) -> "TokenCodec":
        rotation = None
        h = int(split) if split else dim // 2
        if name in ("q2", "q1"):
            rotation = _random_rotation(dim, np.random.default_rng(seed))
        elif name == "q2q1":
            rng = np.random.default_rng(seed)
            rotation = np.zeros((dim, dim), np.float32)  # block diagonal: each half rotated within itself
            rotation[:h, :h] = _random_rotation(h, rng)
            rotation[h:, h:] = _random_rotation(dim - h, rng)
        return cls(name, dim, rotation, split=h if name == "q2q1" else None)

    def save(self, home: Path) -> None:
        path = Path(home) / CODEC_FILE
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, name=np.array(self.name), dim=np.array(self.dim), split=np.array(self.half),
                 rotation=self.rotation if self.rotation is not None else np.zeros((0, 0), np.float32))
        tmp.replace(path)

    @classmethod
    def load(cls, home: Path) -> "TokenCodec | None":
        path = Path(home) / CODEC_FILE
        if not path.exists():
            return None
        with np.load(path) as data:
            rotation = data["rotation"]
            split = int(data["split"]) if "split" in data else None
            return cls(str(data["name"]), int(data["dim"]), rotation if rotation.size else None, split=split)

    # ------------------------------------------------------------------ sizes
    @property
    def bytes_per_token(self) -> int:
        d = self.dim
        return {"float32": 4 * d, "float16": 2 * d, "int8": d + 2, "q2": d // 4, "q2q1": 1 + self.half // 4 + (d - self.half) // 8,
                "q1": d // 8}[self.name]

    # ------------------------------------------------------------------ encode / decode
    def encode(self, v: np.ndarray, *, rotated: bool = False) -> np.ndarray:
        """(n, dim) float token vectors -> (n, bytes_per_token) uint8.

        ``rotated``: ``v`` is already in the scoring space (``query(v)``), e.g. synthetic data.
        """
        v = np.asarray(v, np.float32)
        n, d = v.shape
        if d != self.dim:
            raise ValueError(f"expected {self.dim}-dim vectors, got {d}")
        if self.name == "float32":
            return np.ascontiguousarray(v).view(np.uint8).reshape(n, -1)
        if self.name == "float16":
            return v.astype(np.float16).view(np.uint8).reshape(n, -1)
        if self.name == "int8":
            scale = np.maximum(np.abs(v).max(axis=1, keepdims=True), 1e-8).astype(np.float16)
            q = np.clip(np.round(v / scale.astype(np.float32) * 127), -127, 127).astype(np.int8)
            return np.concatenate([scale.view(np.uint8).reshape(n, 2), q.view(np.uint8)], axis=1)
        r = v if rotated else v @ self.rotation
        norms = np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-8)
        if self.name == "q2":
            return _pack2(_code2(r, norms / np.sqrt(d)))
        if self.name == "q1":
            return np.packbits(r > 0, axis=1, bitorder="little")
        h = self.half
        a, b = r[:, :h], r[:, h:]
        share = np.round(np.linalg.norm(a, axis=1, keepdims=True) / norms * 255).clip(0, 255).astype(np.uint8)
        sa = share.astype(np.float32) / 255 * norms / np.sqrt(h)
        return np.concatenate([share, _pack2(_code2(a, sa)), np.packbits(b > 0, axis=1, bitorder="little")], axis=1)

    def decode(self, codes: np.ndarray, dtype=np.float16) -> np.ndarray:
        """(n, bytes_per_token) uint8 -> (n, dim) vectors in the scoring space (see :meth:`query`)."""
        codes = np.asarray(codes, np.uint8)
        n, d = codes.shape[0], self.dim
        if self.name == "float32":  # kept at full precision whatever ``dtype`` asks: it is the reference
            return np.ascontiguousarray(codes).reshape(n, -1).view(np.float32)
        if self.name == "float16":
            return codes.reshape(n, -1).view(np.float16).astype(dtype, copy=False)
        if self.name == "int8":
            scale = codes[:, :2].copy().view(np.float16).astype(np.float32)
            q = codes[:, 2:].view(np.int8).astype(np.float32)
            return (q * (scale / 127)).astype(dtype)
        if self.name in ("q2", "q1") and dtype == np.float16:
            # One table lookup per byte: the byte's 4 (or 8) float16 values read as one
            # (or two) 64-bit words; far faster than gathering float rows.
            table = self._word_table()
            return np.take(table, codes, axis=0).view(np.float16).reshape(n, d)
        if self.name == "q2":
            return (_LUT2[codes].reshape(n, d) * (1 / np.sqrt(d))).astype(dtype)
        if self.name == "q1":
            return (_LUT1[codes].reshape(n, d) * (_SIGN_MEAN / np.sqrt(d))).astype(dtype)
        h = self.half
        share = codes[:, :1].astype(np.float32) / 255
        out = np.empty((n, d), np.float32)
        out[:, :h] = _LUT2[codes[:, 1 : 1 + h // 4]].reshape(n, h) * (share / np.sqrt(h))
        rest = np.sqrt(np.maximum(1.0 - share * share, 0.0))
        out[:, h:] = _LUT1[codes[:, 1 + h // 4 :]].reshape(n, d - h) * (rest * _SIGN_MEAN / np.sqrt(d - h))
        return out.astype(dtype, copy=False)

    def decode_float32(self, codes: np.ndarray) -> np.ndarray:
        """:meth:`decode` widened to float32: the same values (the float16 ones), decoded straight
        into float32 for the bit codecs (no float16 pass; a search scores them in float32, and
        numpy's float16 -> float32 cast cost more than the scoring's matrix product)."""
        if self.name not in ("q2", "q1"):
            return self.decode(codes).astype(np.float32, copy=False)
        codes = np.asarray(codes, np.uint8)
        if self._lut32 is None:
            lut = _LUT2 / np.sqrt(self.dim) if self.name == "q2" else _LUT1 * (_SIGN_MEAN / np.sqrt(self.dim))
            # the float16 levels, widened: each byte's 4 (or 8) float32 values as 2 (or 4) 64-bit words
            self._lut32 = np.ascontiguousarray(lut.astype(np.float16).astype(np.float32)).view(np.uint64)
        return np.take(self._lut32, codes, axis=0).view(np.float32).reshape(codes.shape[0], self.dim)

    def _word_table(self) -> np.ndarray:
        if self._lut16 is None:
            lut = _LUT2 / np.sqrt(self.dim) if self.name == "q2" else _LUT1 * (_SIGN_MEAN / np.sqrt(self.dim))
            self._lut16 = np.ascontiguousarray(lut.astype(np.float16)).view(np.uint64)  # (256, 1) or (256, 2)
        return self._lut16

    def query(self, q: np.ndarray) -> np.ndarray:
        """Query token vectors in the scoring space: dot products with decoded tokens approximate the true ones."""
        q = np.asarray(q, np.float32)
        return q if self.rotation is None else q @ self.rotation

    def to_original(self, decoded: np.ndarray) -> np.ndarray:
        """Decoded vectors back in the encoder's space (for callers that compare them with raw vectors)."""
        decoded = np.asarray(decoded, np.float32)
        return decoded if self.rotation is None else decoded @ self.rotation.T
