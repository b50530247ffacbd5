"""The training pair record, its JSONL files, near-duplicate removal and the held-out split.

One :class:`Pair` per JSONL line::

    {"query": str, "positive": str, "negatives": [str, ...],
     "domain": "rust" | "formal" | "general" | "personal", "language": str,
     "source": "doc" | "name" | "signature" | "test" | "commit" | "augmented",
     "origin": {"corpus": str, "path": str, "start_line": int, "end_line": int, "name": str, "kind": str}}

``positive`` and ``negatives`` are encoder texts (``Chunk.encoder_text()``: a header line
with the path and enclosing scope, then the code), always without the declaration's doc
comment, so the query's words never sit next to the answer.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import zlib
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from codesearch import languages as _languages

DOMAINS = ("rust", "formal", "general", "personal")
SOURCES = ("doc", "name", "signature", "test", "commit", "augmented")


def domain_for(language: str, personal: bool = False, override: str | None = None) -> str:
    """The language's domain in the registry (rust -> rust; Lean, Coq, TLA+, SMT-LIB, Why3,
    Dafny, Agda, Isabelle -> formal; anything else -> general); a personal corpus ->
    personal. ``override`` wins over all."""
    if override:
        return override
    if personal:
        return "personal"
    return _languages.domain_of(language)


@dataclass
class Origin:
    corpus: str  # the source's name
    path: str  # file path inside the corpus
    start_line: int
    end_line: int
    name: str
    kind: str


@dataclass
class Pair:
    query: str
    positive: str
    negatives: list[str]
    domain: str
    language: str
    source: str
    origin: Origin

    def to_dict(self) -> dict:
        return {
            "query": self.query,
            "positive": self.positive,
            "negatives": list(self.negatives),
            "domain": self.domain,
            "language": self.language,
            "source": self.source,
            "origin": asdict(self.origin),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Pair":
        o = d.get("origin") or {}
        origin = Origin(
            str(o.get("corpus", "")), str(o.get("path", "")), int(o.get("start_line", 0)),
            int(o.get("end_line", 0)), str(o.get("name", "")), str(o.get("kind", "")),
        )  # fmt: skip
        return cls(
            str(d["query"]), str(d["positive"]), [str(x) for x in d.get("negatives", [])],
            str(d["domain"]), str(d.get("language", "")), str(d.get("source", "")), origin,
        )  # fmt: skip

    @property
    def file_key(self) -> str:
        """The origin file: the unit of the held-out split."""
        return f"{self.origin.corpus}\0{self.origin.path}"

    @property
    def decl_key(self) -> tuple[str, str, int, int]:
        return (self.origin.corpus, self.origin.path, self.origin.start_line, self.origin.end_line)


# ---------------------------------------------------------------------------------------
# JSONL
# ---------------------------------------------------------------------------------------


def write_jsonl(path: Path | str, pairs: Iterable[Pair]) -> int:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="\n") as fh:
        for p in pairs:
            fh.write(json.dumps(p.to_dict(), ensure_ascii=False) + "\n")
            n += 1
    tmp.replace(path)
    return n


def iter_jsonl(path: Path | str) -> Iterator[Pair]:
    with Path(path).open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield Pair.from_dict(json.loads(line))


def read_jsonl(path: Path | str) -> list[Pair]:
    return list(iter_jsonl(path))


# ---------------------------------------------------------------------------------------
# Near-duplicate removal
# ---------------------------------------------------------------------------------------


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def body_of(positive: str) -> str:
    """The code of an encoder text (without its header line)."""
    return positive.split("\n", 1)[1] if "\n" in positive else positive


_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+|[^\sA-Za-z0-9_]")
_N_PERM = 32
_BANDS = 8
_ROWS = _N_PERM // _BANDS
_SHINGLE = 4
_MIN_TOKENS_FOR_MINHASH = 12
_PRIME = np.uint64((1 << 61) - 1)


_TOKEN_IDS: dict[str, int] = {}


def _token_id(tok: str) -> int:
    """A stable (process-independent) 32-bit id of a token."""
    t = _TOKEN_IDS.get(tok)
    if t is None:
        t = zlib.crc32(tok.encode("utf-8", "surrogatepass"))
        if len(_TOKEN_IDS) < 2_000_000:
            _TOKEN_IDS[tok] = t
    return t


def _minhash(tokens: list[str], a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """MinHash signature (``_N_PERM`` values) of the token ``_SHINGLE``-grams of a text."""
    ids = np.fromiter((_token_id(t) for t in tokens), dtype=np.uint64, count=len(tokens))
    n = len(ids) - _SHINGLE + 1
    sh = np.zeros(n, dtype=np.uint64)
    mult = np.uint64(1_000_003)
    for k in range(_SHINGLE):  # polynomial hash of each shingle, wrapping mod 2**64
        sh = sh * mult + ids[k : k + n]
    sh = np.unique(sh) & np.uint64(0x1FFFFFFFFFFFFFFF)
    h = (sh[None, :] * a[:, None] + b[:, None]) % _PRIME
    return h.min(axis=1)


def dedup_pairs(pairs: list[Pair], jaccard: float = 0.9, seed: int = 0) -> tuple[list[Pair], dict[str, int]]:
    """Remove pairs whose query sits verbatim in the positive, exact duplicates of
    (query, positive), and pairs whose positive's code is a near-duplicate of an earlier
    declaration's in the same language (whitespace-normalised equality, or token-shingle
    MinHash Jaccard above ``jaccard``). Order is kept; the first declaration of a group wins."""
    stats: Counter[str] = Counter()
    out: list[Pair] = []
    seen_exact: set[tuple[str, str]] = set()
    for p in pairs:
        q = _norm(p.query)
        if not q or q in _norm(p.positive):
            stats["query in positive"] += 1
            continue
        key = (q, _norm(p.positive))
        if key in seen_exact:
            stats["exact duplicate"] += 1
            continue
        seen_exact.add(key)
        out.append(p)

    # near-duplicate declarations: one decision per declaration (its pairs share a positive)
    rng = np.random.default_rng(seed + 7919)
    a = rng.integers(1, int(_PRIME), size=_N_PERM, dtype=np.uint64)
    b = rng.integers(0, int(_PRIME), size=_N_PERM, dtype=np.uint64)
    dropped: set[tuple] = set()
    kept_decl: set[tuple] = set()
    by_lang_hash: dict[tuple[str, str], tuple] = {}
    buckets: dict[tuple[str, int, bytes], list[tuple[tuple, np.ndarray]]] = defaultdict(list)
    for p in out:
        dk = p.decl_key
        if dk in kept_decl or dk in dropped:
            continue
        body = body_of(p.positive)
        h = hashlib.sha1("".join(body.split()).encode("utf-8", "surrogatepass")).hexdigest()
        first = by_lang_hash.get((p.language, h))
        if first is not None and first != dk:
            dropped.add(dk)
            continue
        by_lang_hash[(p.language, h)] = dk
        tokens = _TOKEN.findall(body)
        if len(tokens) >= _MIN_TOKENS_FOR_MINHASH:
            sig = _minhash(tokens, a, b)
            keys = [(p.language, band, sig[band * _ROWS : (band + 1) * _ROWS].tobytes()) for band in range(_BANDS)]
            dup = False
            for k in keys:
                for other_dk, other_sig in buckets.get(k, ())[:20]:
                    if other_dk != dk and float(np.mean(other_sig == sig)) >= jaccard:
                        dup = True
                        break
                if dup:
                    break
            if dup:
                dropped.add(dk)
                continue
            for k in keys:
                buckets[k].append((dk, sig))
        kept_decl.add(dk)
    final = [p for p in out if p.decl_key not in dropped]
    stats["near-duplicate positive"] = len(out) - len(final)
    return final, dict(stats)


# ---------------------------------------------------------------------------------------
# Held-out split
# ---------------------------------------------------------------------------------------


def file_hash(file_key: str) -> float:
    """A stable number in [0, 1) for a file: the held-out split's coin."""
    return int(hashlib.sha1(file_key.encode("utf-8", "surrogatepass")).hexdigest()[:15], 16) / float(1 << 60)


def split_pairs(
    pairs: list[Pair], fraction: float = 0.05, min_heldout: int = 50, min_domain_pairs: int = 500,
    group: Callable[[Pair], str] | None = None,
) -> tuple[list[Pair], list[Pair]]:
    """(train, heldout): per domain, whole files go to held-out by the hash of their path.

    A file is held out when its hash is below ``fraction``; a domain with at least
    ``min_domain_pairs`` pairs but fewer than ``min_heldout`` held out takes more files in
    hash order until it has them. A file's pairs never straddle the two sides, and no file is
    held out that would take a domain's held-out pairs past half of it (in a small repository
    one file can hold most of a group's pairs: held out, it left nothing to train on). ``group``
    (default: the domain) splits finer: each group of a file's pairs goes its own way.
    """
    key = group or (lambda p: p.domain)
    by_domain: dict[str, dict[str, int]] = defaultdict(Counter)
    for p in pairs:
        by_domain[key(p)][p.file_key] += 1
    held: set[tuple[str, str]] = set()
    for domain, files in by_domain.items():
        total = sum(files.values())
        ordered = sorted(files, key=lambda f: (file_hash(f), f))
        count = 0
        for f in ordered:
            if file_hash(f) >= fraction:
                break
            if count + files[f] <= total // 2:
                held.add((domain, f))
                count += files[f]
        want = min_heldout if total >= min_domain_pairs else 0
        want = min(want, total // 2)
        for f in ordered:
            if count >= want:
                break
            if (domain, f) not in held and count + files[f] <= total // 2:
                held.add((domain, f))
                count += files[f]
    train = [p for p in pairs if (key(p), p.file_key) not in held]
    heldout = [p for p in pairs if (key(p), p.file_key) in held]
    return train, heldout


def count_pairs(pairs: Iterable[Pair]) -> dict:
    """Counts per domain, source, language and (domain, source)."""
    dom: Counter[str] = Counter()
    src: Counter[str] = Counter()
    lang: Counter[str] = Counter()
    ds: dict[str, Counter[str]] = defaultdict(Counter)
    corpus: Counter[str] = Counter()
    n = 0
    for p in pairs:
        n += 1
        dom[p.domain] += 1
        src[p.source] += 1
        lang[p.language] += 1
        ds[p.domain][p.source] += 1
        corpus[p.origin.corpus] += 1
    return {
        "total": n,
        "domain": dict(sorted(dom.items())),
        "source": dict(sorted(src.items())),
        "language": dict(sorted(lang.items())),
        "domain_source": {d: dict(sorted(c.items())) for d, c in sorted(ds.items())},
        "corpus": dict(sorted(corpus.items())),
    }


def heldout_target(n: int, fraction: float = 0.05, min_heldout: int = 50, min_domain_pairs: int = 500) -> int:
    """How many held-out pairs a domain of ``n`` pairs aims for (for reports)."""
    want = math.ceil(n * fraction)
    return max(want, min_heldout) if n >= min_domain_pairs else want
