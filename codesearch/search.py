"""The one query path: every caller (CLI, language server, eval, bench) goes through ``Searcher``.

query -> encode (token vectors + pooled vector)
      -> candidates: pooled-vector nearest neighbours and full-text matches, within the filters
         (every filtered chunk when there are few enough to score them all)
      -> exact MaxSim of the query tokens against each candidate's token vectors
      -> fused with the normalised full-text score (method "hybrid")
      -> top results.

Why candidates and not LanceDB's own multivector search: measured here, its exact (no-index)
multivector search takes about 3 s for 20k chunks on 2 cores, and its IVF-PQ index alone loses
much quality on multi-vector data; pooled-vector candidates re-scored exactly keep MaxSim's
quality at a few milliseconds of arithmetic.
"""

from __future__ import annotations

import fnmatch
import logging
import re
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from codesearch.blas import one_blas_thread
from codesearch.model.ortgraph import pair_bounded_codes
from codesearch.indexer.store import (
    CHUNK_META_COLUMNS, FORMAT, Store, VectorRows, code_words, sorted_positions, sql_in, sql_like_prefix, sql_str,
)
from codesearch.roles import LIB, named_roles, role_of, role_sql, takes_prior
from codesearch.scoring import maxsim_many
from codesearch.settings import METHODS, SearchSettings, Settings

log = logging.getLogger(__name__)

_THREADS_LOCK = threading.Lock()  # searches in several threads set and restore torch's thread count in turn
# A search's independent steps run side by side: the query's encoding in each space, then the
# nearest pooled vectors in each space and the full-text match (LanceDB and torch release the
# GIL). Tasks never wait on other tasks, so a small shared pool cannot deadlock.
_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="codesearch-search")
_META_COLUMNS = CHUNK_META_COLUMNS
# Candidates come without their text (reading it for ~200 candidates, of which ~10 are shown,
# cost about as much as the searches: measured at 40k chunks on a busy machine, the 150 nearest
# pooled vectors in 39 against 23 ms, min of 15), and with their row id: the snippets of the
# results are then read by row id (~1.3 ms for 10 rows; by id, which has no index, that
# lookup cost ~25 ms at 1M chunks).
_CANDIDATE_COLUMNS = _META_COLUMNS + ["_rowid"]


@dataclass
class Filters:
    """Restrict a search. Each given filter must hold."""

    lang: Sequence[str] = ()
    kind: Sequence[str] = ()
    repo: str | None = None  # repository folder name or path
    path: str | None = None  # glob on the path (relative to the repo or absolute); no glob chars = prefix
    under: str | None = None  # absolute folder: only files below it
    role: Sequence[str] = ()  # path roles (codesearch.roles: lib, test, bench, example, ...)

    def sql(self) -> str | None:
        parts = []
        if self.role:
            parts.append(role_sql(self.role))  # (ValueError naming the valid roles on an unknown one)
        if self.lang:
            parts.append(sql_in("language", [l.lower() for l in self.lang]))
        if self.kind:
            parts.append(sql_in("kind", [k.lower() for k in self.kind]))
        if self.repo:
            repo = self.repo.rstrip("/")
            if "/" in repo:
                parts.append(f"repo = {sql_str(str(Path(repo).expanduser().absolute()))}")
            else:
                parts.append(f"(repo = {sql_str(repo)} OR {_like('repo', '%/' + _like_escape(repo), raw=True)})")
        if self.path:
            parts.append(_path_filter(self.path))
        if self.under:
            under = str(Path(self.under).expanduser().absolute()).rstrip("/") + "/"
            parts.append(sql_like_prefix("path", under))
        return " AND ".join(f"({p})" for p in parts) if parts else None


def _like_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _like(column: str, pattern: str, raw: bool = False) -> str:
    return f"{column} LIKE {sql_str(pattern)} ESCAPE '\\'"


def _path_filter(pattern: str) -> str:
    if not any(ch in pattern for ch in "*?["):
        prefix = pattern.lstrip("./") if not pattern.startswith("/") else pattern
        return f"({sql_like_prefix('rel_path', prefix)} OR {sql_like_prefix('path', prefix)})"
    # glob -> LIKE: '*' and '?' map directly; character classes are checked afterwards in Python.
    like = ""
    for ch in pattern:
        like += "%" if ch == "*" else "_" if ch == "?" else _like_escape(ch)
    like = re.sub(r"\[[^\]]*\]", "_", like)
    return f"({_like('rel_path', like)} OR {_like('path', like)})"


@dataclass
class SearchResult:
    path: str  # absolute
    rel_path: str
    repo: str
    start_line: int
    end_line: int
    score: float
    language: str
    kind: str
    name: str
    context: str
    snippet: str
    key: str = field(default="", repr=False)
    role: str = LIB  # the file's path role (codesearch.roles)
    text: str = field(default="", repr=False)  # the whole declaration (the snippet is its first lines)
    # With explain (codesearch.explain): each query word's share of the score and the code token
    # it met; the full-text part of a hybrid score and the query words also matched as words.
    matches: list[dict] | None = field(default=None, repr=False)
    lexical: dict | None = field(default=None, repr=False)
    prior: float = field(default=0.0, repr=False)  # the role prior's part of the score (<= 0)

    def as_json(self) -> dict:
        d = asdict(self)
        for name in ("key", "text", "matches", "lexical", "prior"):
            d.pop(name)
        if self.matches is not None:
            d["matches"] = [{k: m[k] for k in MATCH_FIELDS} for m in self.matches]
            d["lexical"] = self.lexical
            d["prior"] = self.prior
        return d


# What `search --explain --json` gives per query word (README, "Search output").
MATCH_FIELDS = ("query_token", "line", "column", "code_token", "score", "place")


def snippet_of(text: str, max_lines: int = 8) -> str:
    """The first lines of a chunk, dedented, with '...' when there is more."""
    import textwrap

    lines = textwrap.dedent(text).splitlines()
    out = lines[:max_lines]
    if len(lines) > max_lines:
        out.append("...")
    return "\n".join(out)


_UNSET = object()


class Searcher:
    """Search one index home with one encoder. Cheap to keep around (it caches token vectors)."""

    def __init__(self, store: Store, encoder, settings: dict | Settings | SearchSettings | None = None,
                 cache_bytes: int | None = None):
        self.store = store
        self.encoder = encoder
        # What encodes the query: the numpy query encoder (no torch: the same vectors whichever
        # way a search arrives), or the torch encoder for a model that one does not run.
        made = encoder.query_encoder() if hasattr(encoder, "query_encoder") else None
        self.queries = made or encoder
        # search.* (typed; every default and what each means: config/default.yaml)
        opts = SearchSettings.from_settings(settings)
        self.limit = opts.limit
        self.method = opts.method
        self.n_dense = opts.candidates_dense
        self.n_lexical = opts.candidates_lexical
        self.exact_below = opts.exact_below
        self.lexical_weight = opts.lexical_weight
        # Results of one file never overlap: of overlapping ones the better-scoring is kept, or
        # the smaller when they score within overlap_tie of each other.
        self.overlap_tie = opts.overlap_tie
        # Score factor of chunks whose path role is not "lib" (tests, benches, examples, prose
        # docs; roles.takes_prior): below 1 ranks library code first when otherwise equally
        # relevant (1.0: no prior).
        self.role_prior = opts.role_prior
        # The ANN path (used when the index has an IVF index on the pooled vectors, see
        # Store.ensure_ann_index): partitions probed, and exact re-ranking of k * refine rows.
        # At least ann_nprobes partitions, and at least ann_nprobes_share of them: the index has
        # one partition per ~1,000 chunks, so a fixed count covers less of a bigger table
        # (measured at 1M synthetic chunks: 32 of 1,000 partitions lost 0.10 Recall@10 that
        # 96 recovered). At 150k real chunks (150 partitions) 32 probes found 0.871 of the
        # exhaustive top 10 and 96 probes 0.940, as scoring every pooled vector does (0.942),
        # for 3 ms more a search (docs/speed.md).
        self.ann_nprobes = opts.ann_nprobes
        self.ann_nprobes_share = opts.ann_nprobes_share
        self.ann_refine = opts.ann_refine
        self.use_ann = True  # False: exact (flat) pooled-vector candidates, e.g. to measure recall
        # Tables of up to this many chunks find their pooled-vector candidates in memory: the
        # pooled vectors (1 KB a chunk as float32) and candidate columns are read once per table
        # version and scored exactly in numpy. LanceDB's search took 19-29 ms of CPU per space
        # at 100k chunks; one product over every space takes a few (docs/speed.md). Bigger
        # tables use LanceDB (its IVF index from ann_min_rows on). 0: always LanceDB.
        self.in_memory_max = opts.in_memory_max
        self._resident: ResidentPooled | None = None
        self._too_big: int | None = None  # the table version found bigger than in_memory_max
        self._read_version: int | None = None  # the chunks table's version the last search read
        self._fts_checked: int | None = None  # the last such version found with its full-text index
        # Torch threads while encoding a query with the torch encoder. A query is a few tokens: on a
        # busy 2-core machine one thread measured p50 3.6 ms / p95 4 ms, two threads 8 ms / 25-80 ms.
        self.query_threads = opts.query_threads
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_bytes = 0
        # Token vectors of recent candidates, kept for the next searches (a query typed keystroke
        # by keystroke meets the same candidates): what a long-lived language server or search
        # service holds beyond the model (search.cache_mb).
        self._cache_limit = int(opts.cache_mb * (1 << 20)) if cache_bytes is None else cache_bytes
        meta = store.meta()
        if meta.get("model_fingerprint") and meta.get("format") != FORMAT:
            raise RuntimeError(
                f"the index at {store.home} was built by another version of codesearch (storage format "
                f"{meta.get('format')}, this one reads {FORMAT}); run `codesearch index PATH` again to rebuild it"
            )
        if meta.get("model_fingerprint") and meta["model_fingerprint"] != self.queries.fingerprint:
            raise RuntimeError(
                f"the index at {store.home} was built with another model; "
                "run `codesearch index PATH` again to re-embed it with the current one"
            )
        # Vector spaces (adapters) the index holds: a query is encoded in each space it searches
        # and meets every document in that document's own space.
        self.spaces: list[str] = sorted(meta.get("spaces") or {"": ""})
        self._space_by_language: dict[str, str] = dict(meta.get("space_by_language") or {})
        self._default_space: str = meta.get("default_space", "")
        self._present: set[str] = set()
        self._present_version: int | None = None
        self._per_search = threading.local()  # what one search reads once (see _resident_pooled)

    # ------------------------------------------------------------------ public
    def search(
        self,
        query: str,
        limit: int | None = None,
        filters: Filters | None = None,
        method: str | None = None,
        explain: bool = False,
    ) -> list[SearchResult]:
        """Search the index; a table LanceDB cannot read raises ``IndexDamaged`` (one clear line).
        ``explain``: each result says why it matched (``matches``, ``lexical``: codesearch.explain)."""
        from codesearch.indexer.store import IndexDamaged, is_read_error

        try:
            with one_blas_thread():
                self._per_search.resident = _UNSET  # (the table's version is read once per search)
                try:
                    return self._search(query, limit, filters, method, explain)
                finally:
                    del self._per_search.resident  # (outside a search: read each time)
        except (RuntimeError, OSError, ValueError) as exc:
            if isinstance(exc, IndexDamaged) or not is_read_error(exc):
                raise
            raise IndexDamaged() from exc

    def prepare(self) -> None:
        """Read what searches of the current index need in memory (its pooled vectors) now, not
        in the next search: a long-lived searcher's owner calls it after the index changed (the
        store's caches are renewed here when they outgrew their budget). The query encoder's
        session is made here too (once: about 0.1 s)."""
        from codesearch.indexer.store import is_read_error
        from codesearch.model.query import QueryEncoder

        if isinstance(self.queries, QueryEncoder):  # (not getattr: an OnDemandEncoder would load torch to answer)
            self.queries.warm()
        try:
            self._chunks_version()
            self._resident_pooled()
        except FileNotFoundError:
            pass  # (no chunks yet)
        except (RuntimeError, OSError, ValueError) as exc:
            if not is_read_error(exc):
                raise
            log.warning("cannot read the index now: %s", str(exc).splitlines()[0][:200])

    def _search(
        self,
        query: str,
        limit: int | None = None,
        filters: Filters | None = None,
        method: str | None = None,
        explain: bool = False,
    ) -> list[SearchResult]:
        query = query.strip()
        if not query:
            raise ValueError("empty query")
        method = method or self.method
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
        limit = limit or self.limit
        filters = filters or Filters()
        where = filters.sql()
        try:
            self.store.version("chunks")  # (opened, not created: a search never writes)
        except FileNotFoundError:
            return []  # a first index run stopped before storing a chunk
        glob = filters.path if filters.path and "[" in filters.path else None

        if method == "bm25":
            rows, scores = self._lexical(query, where, max(limit * 3, self.n_lexical))
            results = self._finish(rows, scores, limit, glob, named_roles(query))
            if explain:  # the whole score is the full-text one
                for r in results:
                    r.matches, r.lexical = [], {"score": r.score, "words": self._lexical_words(query, r)}
            return results

        spaces = self._spaces_for(filters)
        if method == "dense":
            encoded = self._encode_query_spaces(query, spaces)
            rows, scores = self._dense_spaces(encoded, where, max(limit * 3, 50))
            results = self._finish(rows, scores, limit, glob, named_roles(query))
            if explain:  # one vector per side: no token meets another
                for r in results:
                    r.matches, r.lexical = [], None
            return results

        total = self.store.count_chunks(where)
        # (the full-text candidates need no encoding: they are read while the query is encoded)
        lexical = _POOL.submit(self._lexical_with_vectors, query, where, self.n_lexical) if total > self.exact_below else None
        encoded = self._encode_query_spaces(query, spaces)
        fetched: dict[str, np.ndarray] = {}
        if lexical is None:
            candidates = self._all_rows(where)
            lex_rows, lex_scores = self._lexical(query, where, self.n_lexical) if method == "hybrid" else ([], [])
        else:
            candidates, _ = self._dense_spaces(encoded, where, max(self.n_dense, 3 * limit))
            lex_rows, lex_scores, fetched = lexical.result()
            seen = {r["id"] for r in candidates}
            candidates += [r for r in lex_rows if r["id"] not in seen]
            if method != "hybrid":
                lex_rows, lex_scores = [], []
        if not candidates:
            return []
        vectors = self._token_vectors([r["key"] for r in candidates], fetched)
        candidates = [r for r in candidates if r["key"] in vectors]  # (vectors lost: `codesearch doctor --fix`)
        if not candidates:
            return []
        # MaxSim of each candidate against the query encoded in the candidate's own space. Scores
        # of different spaces are compared as they are: each is a mean of cosines of unit vectors.
        maxsim = np.zeros(len(candidates), np.float32)
        by_space: dict[str, list[int]] = {}
        for i, r in enumerate(candidates):
            by_space.setdefault(r.get("space") or "", []).append(i)
        for space, idx in by_space.items():
            if space not in encoded:
                encoded[space] = self._encode_query(query, space)
            q_tokens = encoded[space][0]
            q_scoring = self.store.scoring_query(q_tokens)  # the stored tokens' (rotated) space
            maxsim[idx] = maxsim_many(q_scoring, [vectors[candidates[i]["key"]] for i in idx]) / len(q_tokens)
        scores = maxsim
        lexical = None
        if method == "hybrid" and lex_rows:
            lex = {r["id"]: s for r, s in zip(lex_rows, lex_scores)}
            top = max(lex_scores) or 1.0
            lexical = self.lexical_weight * np.array([lex.get(r["id"], 0.0) / top for r in candidates])
            scores = maxsim + lexical
        groups = None
        if explain:  # the likely results' token groups, read while the results' texts are read
            likely = np.argsort(-np.asarray(scores))[: 3 * limit]
            groups = _POOL.submit(self.store.get_groups, [candidates[i]["key"] for i in likely])
        results = self._finish(candidates, list(scores), limit, glob, named_roles(query))
        if explain:
            self._explain(query, results, candidates, maxsim, lexical if method == "hybrid" else None, encoded, vectors,
                          groups.result())
        return results

    def _explain(self, query: str, results: list[SearchResult], candidates: list[dict], maxsim: np.ndarray,
                 lexical: np.ndarray | None, encoded: dict, vectors: dict[str, np.ndarray],
                 groups: dict[str, np.ndarray | None]) -> None:
        """Fill each result's ``matches`` and ``lexical`` (see codesearch.explain); ``groups``:
        token groups read already (those of results not among them are read here)."""
        from codesearch.explain import Token, explain_maxsim

        at = {(c["path"], int(c["start_line"]), int(c["end_line"])): i for i, c in enumerate(candidates)}
        missing = [r.key for r in results if r.key not in groups]
        if missing:
            groups = {**groups, **self.store.get_groups(missing)}
        layout = self._token_layout()
        config = layout.config
        spaces = [candidates[at[(r.path, r.start_line, r.end_line)]].get("space") or "" for r in results]
        headers = [r.rel_path if not r.context else f"{r.rel_path} {r.context}" for r in results]
        d_layouts: dict[int, object] = {}
        q_layouts: dict[bool, object] = {}
        for splits in {config.splits_identifiers(sp or None) for sp in spaces}:
            idx = [k for k, sp in enumerate(spaces) if config.splits_identifiers(sp or None) == splits]
            texts = [f"{headers[k]}\n{results[k].text}" for k in idx]
            d_layouts.update(zip(idx, layout.encode_many(texts, is_query=False, splits=splits, max_tokens=config.document_max_tokens)))
            q_layouts[splits] = layout.tokens(query, is_query=True, splits=splits, max_tokens=self._query_max_tokens())
        for k, r in enumerate(results):
            i = at[(r.path, r.start_line, r.end_line)]
            space = spaces[k]
            q_vectors = self.store.scoring_query(encoded[space][0])
            q_tokens = q_layouts[config.splits_identifiers(space or None)]
            if len(q_tokens) != len(q_vectors):  # (cannot happen with the encoders here; no words then)
                q_tokens = [Token(f"#{n}", -1, -1, -1) for n in range(len(q_vectors))]
            d_tokens = d_layouts[k]
            labels = groups.get(r.key)
            if labels is None:
                labels = self._groups_again(d_tokens, space, vectors[r.key])
            r.matches, _ = explain_maxsim(q_vectors, q_tokens, query, vectors[r.key], labels,
                                          d_tokens, len(headers[k]), r.text, r.start_line)
            lex = float(lexical[i]) if lexical is not None else 0.0
            # (words only where the full-text part scored: a chunk outside its candidates got 0)
            r.lexical = None if lexical is None else {"score": lex, "words": self._lexical_words(query, r) if lex else []}
            # what the role prior took off, so that the parts sum to the score (rounded as it is)
            r.prior = round(r.score - (float(maxsim[i]) + lex), 4)
            for m in r.matches:
                m["score"] = round(float(m["score"]), 4)
            if r.lexical is not None:
                r.lexical["score"] = round(lex, 4)

    def _groups_again(self, d_tokens, space: str, stored: np.ndarray) -> np.ndarray | None:
        """The token groups of a row indexed before they were recorded: none merged where the
        counts agree, else each token's nearest stored vector, its vector computed here (None
        where that is not possible: the places are then left out)."""
        if len(d_tokens) == len(stored):
            return np.arange(len(stored))
        if not hasattr(self.queries, "hidden_token_vectors"):
            return None
        vecs = self.queries.hidden_token_vectors(d_tokens.ids, space or None, d_tokens.kept)
        return np.argmax(self.store.scoring_query(vecs) @ stored.T, axis=1)

    def _token_layout(self):
        if getattr(self, "_layout", None) is None:
            from codesearch.explain import TokenLayout

            self._layout = TokenLayout(self.queries.tokenizer, self.queries.config)
        return self._layout

    def _query_max_tokens(self) -> int:
        """The tokens a query is cut to (the numpy encoder also stops at the model's positions)."""
        return getattr(self.queries, "query_tokens", None) or self.queries.config.query_max_tokens

    @staticmethod
    def _lexical_words(query: str, r: SearchResult) -> list[str]:
        from codesearch.explain import lexical_words
        from codesearch.indexer.store import code_words

        return lexical_words(code_words(query), code_words(f"{r.rel_path} {r.name} {r.context} {r.text}"))

    def _spaces_for(self, filters: Filters) -> list[str]:
        """The spaces a search must look in: those of the filtered languages, else every space
        that holds chunks (an index of Rust code only is searched in the Rust space only)."""
        spaces = self.spaces
        if len(spaces) > 1:
            present = self._present_spaces()
            spaces = [s for s in spaces if s in present] or spaces
        if filters.lang and self._space_by_language:
            wanted = {self._space_by_language.get(l.lower(), self._default_space) for l in filters.lang}
            return [s for s in spaces if s in wanted] or spaces
        return spaces

    def _present_spaces(self) -> set[str]:
        """Spaces that hold at least one chunk; re-read when the chunks table changes."""
        import pyarrow.compute as pc

        resident = self._resident_pooled()
        if resident is not None:
            return set(resident.blocks)
        version = self.store.version("chunks")
        if version != self._present_version:
            column = self.store.read("chunks", ["space"]).column("space")
            self._present = set(pc.unique(column).to_pylist())
            self._present_version = version
        return self._present

    def _dense_spaces(
        self, encoded: dict[str, tuple[np.ndarray, np.ndarray]], where: str | None, n: int
    ) -> tuple[list[dict], list[float]]:
        """Nearest pooled vectors, each space searched with the query's vector in that space."""
        resident = self._resident_pooled()
        if resident is not None:
            allowed = self._row_ids(where) if where else None
            return resident.nearest({space: pooled for space, (_, pooled) in encoded.items()}, n, allowed)
        if len(encoded) == 1 and (len(self.spaces) == 1 or self._present == set(encoded)):
            # one space holds every chunk (say, a Rust-only index): no filter on the space
            return self._dense(next(iter(encoded.values()))[1], where, n)
        rows: list[dict] = []
        scores: list[float] = []
        searches = [
            _POOL.submit(self._dense, pooled, f"space = {sql_str(space)}" + (f" AND ({where})" if where else ""), n)
            for space, (_, pooled) in encoded.items()
        ]
        for done in searches:
            r, sc = done.result()
            rows += r
            scores += sc
        order = np.argsort(-np.asarray(scores, np.float32))[:n]
        return [rows[i] for i in order], [scores[i] for i in order]

    def _encode_query(self, query: str, space: str = "") -> tuple[np.ndarray, np.ndarray]:
        """The query's token vectors and pooled vector in ``space`` ("" = the base model)."""
        return self._encode_query_spaces(query, [space])[space]

    def _encode_query_spaces(self, query: str, spaces: Sequence[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The query encoded in each of ``spaces``, side by side (one torch thread each)."""

        def encode(space: str) -> tuple[np.ndarray, np.ndarray]:
            tokens, pooled = self.queries.encode_queries_pooled([query], space=space or None)
            return tokens[0], pooled[0]

        def encode_all() -> dict[str, tuple[np.ndarray, np.ndarray]]:
            if len(spaces) == 1:
                return {spaces[0]: encode(spaces[0])}
            if hasattr(self.queries, "encode_query_spaces"):
                # the numpy encoder: every space in one pass over the shared base weights (measured
                # 21 against 32 ms of CPU for two spaces; threads side by side cost the sum)
                both = self.queries.encode_query_spaces(query, [s or None for s in spaces])
                return {space: both[space or None] for space in spaces}
            futures = {space: _POOL.submit(encode, space) for space in spaces}
            return {space: f.result() for space, f in futures.items()}

        if self.query_threads <= 0 or not hasattr(self.queries, "model"):  # (numpy: no torch threads to set)
            return encode_all()
        import torch

        with _THREADS_LOCK:
            before = torch.get_num_threads()
            if before != self.query_threads:
                torch.set_num_threads(self.query_threads)
            try:
                return encode_all()
            finally:
                if before != self.query_threads:
                    torch.set_num_threads(before)

    # ------------------------------------------------------------------ candidate sources
    def _resident_pooled(self) -> ResidentPooled | None:
        """The chunks table's pooled vectors in memory (read again when the table changed), or
        None where the table is bigger than ``in_memory_max`` or the path is switched off.
        Within one search the answer is kept: reading the table's version costs 1-4 ms."""
        memo = getattr(self._per_search, "resident", _UNSET)
        if memo is not _UNSET:
            return memo
        resident = self._read_resident_pooled()
        if hasattr(self._per_search, "resident"):
            self._per_search.resident = resident
        return resident

    def _chunks_version(self) -> int:
        """The chunks table's newest version. At a new version (an edit indexed since) the
        store's caches still hold what every version read before needed: past a budget, the
        store starts them again empty (Store.renew_reads: they grew by 0.1-0.7 MB an edit up to
        their 160 MB caps in a language server, docs/speed.md)."""
        version = self.store.version("chunks")
        if version != self._read_version:
            if self._read_version is not None and self.store.renew_reads():
                version = self.store.version("chunks")
            self._read_version = version
        return version

    def _read_resident_pooled(self) -> ResidentPooled | None:
        if self.in_memory_max <= 0 or not self.use_ann:
            return None
        version = self._chunks_version()
        if self._resident is not None and self._resident.version == version:
            return self._resident
        self._resident = None  # (the old copy is freed before the new one is read)
        if self._too_big == version:
            return None
        if self.store.count_chunks() > self.in_memory_max:
            self._too_big = version
            return None
        self._resident = ResidentPooled(self.store)
        return self._resident

    def _row_ids(self, where: str) -> np.ndarray:
        """Row ids of the chunks that pass a filter."""
        return self.store.read("chunks", ["_rowid"], where=where, row_ids=True).column("_rowid").to_numpy()

    def _dense(self, q_pooled: np.ndarray, where: str | None, n: int) -> tuple[list[dict], list[float]]:
        if n <= 0:
            return [], []
        nprobes = None if not self.use_ann else max(
            self.ann_nprobes, int(self.ann_nprobes_share * int(self.store.meta().get("ann_partitions") or 0)))
        data = self.store.nearest_chunks(q_pooled, n, _META_COLUMNS, where=where, exact=not self.use_ann,
                                         nprobes=nprobes, refine=self.ann_refine)
        rows = data.select(_CANDIDATE_COLUMNS).to_pylist()
        return rows, [1.0 - d for d in data.column("_distance").to_pylist()]

    def _lexical(self, query: str, where: str | None, n: int) -> tuple[list[dict], list[float]]:
        words = code_words(query)
        if not words or n <= 0:  # (LanceDB reads limit 0 as no limit)
            return [], []
        try:
            version = self._read_version
            if version is None or version != self._fts_checked:  # (listing the indexes costs 0.8 ms at 100k chunks)
                self.store.ensure_fts_index()  # built by index; here only when a run stopped before it
                self._fts_checked = version
        except (RuntimeError, OSError) as exc:
            from codesearch.indexer.store import is_read_error

            if is_read_error(exc):
                raise
            # A full disk or a read-only home: answer from the vectors alone.
            log.warning("no full-text index yet, and it cannot be built now (%s): words are matched again "
                        "once `codesearch index` runs with space", str(exc).splitlines()[0][:120])
            return [], []

        def whole_rows() -> tuple[list[dict], list[float]]:
            data = self.store.full_text(words, n, _META_COLUMNS, where=where)
            return data.select(_CANDIDATE_COLUMNS).to_pylist(), data.column("_score").to_pylist()

        resident = self._resident  # (the version the last search read; this task may run beside the next read)
        if resident is None:
            return whole_rows()
        # Only the ids from the full-text search (4.6 ms less for 50 rows at 100k chunks): the
        # other columns come from the rows held in memory, or by row id for rows written since.
        hits = self.store.full_text(words, n, ["id"], where=where)
        row_ids, ids, scores = (hits.column(c).to_pylist() for c in ("_rowid", "id", "_score"))
        rows = resident.rows_at(row_ids, ids)
        newer = [rid for rid, r in zip(row_ids, rows) if r is None]
        if newer:
            try:
                got = {r["_rowid"]: r for r in self.store.rows_by_id("chunks", newer, _META_COLUMNS).to_pylist()}
            except (RuntimeError, OSError, ValueError) as exc:
                from codesearch.indexer.store import is_read_error

                if is_read_error(exc):
                    raise
                return whole_rows()  # (a commit since the full-text search moved the rows: search again)
            rows = [r if r is not None else got.get(rid) for rid, r in zip(row_ids, rows)]
        kept = [(r, sc) for r, id_, sc in zip(rows, ids, scores) if r is not None and r["id"] == id_]
        return [r for r, _ in kept], [sc for _, sc in kept]

    def _lexical_with_vectors(self, query: str, where: str | None, n: int) -> tuple[list[dict], list[float], dict[str, np.ndarray]]:
        """The full-text candidates, and the token vectors of those not in the cache: read while
        the query is still being encoded (the full-text search ends first), so that the search
        then reads only the dense candidates' vectors."""
        rows, scores = self._lexical(query, where, n)
        missing = [r["key"] for r in rows if r["key"] not in self._cache]
        return rows, scores, self._read_vectors(missing) if missing else {}

    def _read_vectors(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """Token vectors of ``keys`` from the store: by position in the vectors table's version
        that the in-memory path placed its keys in (1.8 against 10.9 ms by key for 150 keys at
        100k chunks), else by key. No version is read here (the full-text task reads its
        candidates' vectors before the search reads the table's version): keys written since are
        read by key, and a version whose files are gone is read by key and placed again (see
        store.VectorRows)."""
        resident = self._resident
        rows = resident.vector_rows if resident is not None else None
        if rows is None:
            return self.store.get_scoring_vectors(keys, float32=True)
        try:
            out = self.store.get_scoring_vectors(keys, float32=True, rows=rows)
        except (RuntimeError, OSError, ValueError):  # (a position past the table's end, after a compaction)
            rows.stale = True
            out = self.store.get_scoring_vectors(keys, float32=True)
        if rows.stale:  # the table moved its rows since they were placed: placed again for the next search
            try:
                resident.vector_rows = self.store.vector_rows()
            except (RuntimeError, OSError, ValueError):
                resident.vector_rows = None
        return out

    def _all_rows(self, where: str | None) -> list[dict]:
        return self.store.read("chunks", _META_COLUMNS + ["text"], where=where).to_pylist()

    def _token_vectors(self, keys: Sequence[str], fetched: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Token vectors of ``keys``: from the cache, from ``fetched`` (read ahead), else the store."""
        out = {}
        missing = []
        read = {}
        for k in keys:
            v = self._cache.get(k)
            if v is None and fetched and k in fetched:
                read[k] = fetched[k]
            elif v is None:
                missing.append(k)
            else:
                self._cache.move_to_end(k)
                out[k] = v
        if missing:
            read.update(self._read_vectors(missing))
        if read:
            for k, v in read.items():
                out[k] = v
                self._cache[k] = v
                self._cache_bytes += v.nbytes
            while self._cache_bytes > self._cache_limit and self._cache:
                _, old = self._cache.popitem(last=False)
                self._cache_bytes -= old.nbytes
        return out

    # ------------------------------------------------------------------ results
    def _finish(self, rows: list[dict], scores: Sequence[float], limit: int, glob: str | None,
                named: frozenset[str] = frozenset()) -> list[SearchResult]:
        """The top ``limit`` of the scored candidates: the role prior applied (not to the roles
        the query names, ``named``), the path glob's character classes checked, and one result
        per place (see :func:`pick_places`)."""
        roles = [role_of(r["rel_path"]) for r in rows]
        scores = np.asarray(scores, dtype=np.float64)
        if self.role_prior != 1.0 and len(rows):
            nonlib = np.array([takes_prior(role, r.get("language") or "", named) for role, r in zip(roles, rows)])
            # s - (1 - f)|s|: a factor f on positive scores, and still a demotion on negative ones
            scores = np.where(nonlib, scores - (1.0 - self.role_prior) * np.abs(scores), scores)
        keep = [
            i for i, r in enumerate(rows)
            if not glob or fnmatch.fnmatch(r["rel_path"], glob) or fnmatch.fnmatch(r["path"], glob)
        ]
        chosen = pick_places(
            [(rows[i]["path"], int(rows[i]["start_line"]), int(rows[i]["end_line"])) for i in keep],
            [float(scores[i]) for i in keep], limit, self.overlap_tie,
        )
        picked = [(rows[keep[j]], float(scores[keep[j]]), roles[keep[j]]) for j in chosen]
        texts = {r["id"]: r["text"] for r, _, _ in picked if r.get("text") is not None}
        by_row = {r["_rowid"]: r["id"] for r, _, _ in picked if r["id"] not in texts and r.get("_rowid") is not None}
        if by_row:
            texts.update(self._texts_by_row(by_row))
        missing = [r["id"] for r, _, _ in picked if r["id"] not in texts]
        if missing:
            texts.update(self._texts(missing))
        return [
            SearchResult(
                path=r["path"],
                rel_path=r["rel_path"],
                repo=r["repo"],
                start_line=int(r["start_line"]),
                end_line=int(r["end_line"]),
                score=round(s, 4),
                language=r["language"],
                kind=r["kind"],
                name=r["name"],
                context=r["context"],
                snippet=snippet_of(texts.get(r["id"], "")),
                key=r["key"],
                role=role,
                text=texts.get(r["id"], ""),
            )
            for r, s, role in picked
        ]

    def _texts_by_row(self, by_row: dict[int, str]) -> dict[str, str]:
        """id -> text of the rows (row id -> chunk id) that still hold that chunk: a commit since
        the candidates were read may have moved a row (the caller reads those by id)."""
        out = {}
        resident = self._resident
        if resident is not None:
            try:
                out = resident.texts(by_row)
            except (RuntimeError, OSError, ValueError):  # (its version's files are gone: read as below)
                out = {}
            by_row = {row: id_ for row, id_ in by_row.items() if id_ not in out}
            if not by_row:
                return out
        try:
            data = self.store.rows_by_id("chunks", list(by_row), ["id", "text"])
        except (RuntimeError, OSError, ValueError) as exc:
            from codesearch.indexer.store import is_read_error

            if is_read_error(exc):
                raise
            return out  # (a row id of an older version: read by id)
        for row, id_, text in zip(data.column("_rowid").to_pylist(), data.column("id").to_pylist(), data.column("text").to_pylist()):
            if by_row.get(row) == id_:
                out[id_] = text
        return out

    def _texts(self, ids: Sequence[str]) -> dict[str, str]:
        if not ids:
            return {}
        data = self.store.read("chunks", ["id", "text"], where=sql_in("id", ids))
        return dict(zip(data.column("id").to_pylist(), data.column("text").to_pylist()))


def pick_places(places: Sequence[tuple[str, int, int]], scores: Sequence[float], limit: int, tie: float = 0.0) -> list[int]:
    """Indices of the best ``limit`` of ``places`` (path, first line, last line), best first,
    no two of one file overlapping.

    Of overlapping places the better-scoring one is kept; when the other scores within ``tie``
    of it and is smaller (more specific: a method rather than its class, a short window rather
    than the whole function), that one is kept instead. Places are taken best first, so
    ``limit`` results come back whenever the candidates hold that many non-overlapping ones.
    """
    order = sorted(range(len(places)), key=lambda i: -scores[i])  # (stable: ties keep their order)
    chosen: list[int] = []
    by_path: dict[str, list[int]] = {}
    best: dict[int, float] = {}  # chosen place -> best score of the places it stands for
    for i in order:
        path, start, end = places[i]
        same = by_path.setdefault(path, [])
        over = [j for j in same if places[j][1] <= end and start <= places[j][2]]
        if not over:
            if len(chosen) >= limit:
                continue  # (a full list may still swap one of its places for a smaller one)
            chosen.append(i)
            same.append(i)
            best[i] = scores[i]
            continue
        if len(over) == 1:
            j = over[0]
            if end - start < places[j][2] - places[j][1] and best[j] - scores[i] <= tie:
                chosen[chosen.index(j)] = i
                same[same.index(j)] = i
                best[i] = best.pop(j)
        if len(chosen) >= limit and scores[i] < min(best.values()) - tie:
            break  # nothing below can enter or swap any more
    return sorted(chosen, key=lambda i: -scores[i])


class ResidentPooled:
    """One version of the chunks table's pooled vectors (rows grouped by space, see
    :class:`PooledScores`) and candidate columns, for exact nearest-pooled-vector candidates in
    numpy.

    Scores are cosines with the query in float16, as LanceDB's flat search computes them: the
    same candidates and scores to float32 rounding."""

    def __init__(self, store: Store):
        import pyarrow.compute as pc

        # (one version, held: the results' texts are read back from it by position, see texts)
        self.snapshot = store.snapshot("chunks")
        self.version = self.snapshot.version
        data = self.snapshot.to_table(columns=_META_COLUMNS + ["pooled"], with_row_id=True)
        # (in table order: only the vectors are regrouped; one chunk per column: a take from the
        # ~100 batches a scan returns cost 2.7 ms for 150 rows at 100k chunks, from one 0.05 ms)
        self.rows = data.select(_CANDIDATE_COLUMNS).combine_chunks()
        # rows grouped by space, so that each space's query meets a contiguous block
        self.order = pc.sort_indices(data.column("space")).to_numpy()
        spaces = data.column("space").to_numpy(zero_copy_only=False).astype(str)[self.order]
        pooled = data.column("pooled").combine_chunks()
        flat = pooled.flatten().to_numpy(zero_copy_only=False)  # (float16, as stored)
        self.scores = PooledScores(flat.reshape(len(data), -1)[self.order] if len(data) else np.zeros((0, 1), np.float16))
        del data, pooled, flat
        self.row_ids = self.rows.column("_rowid").to_numpy()[self.order]
        names, starts = np.unique(spaces, return_index=True)
        ends = list(starts[1:]) + [len(spaces)]
        self.blocks = {str(name): (int(a), int(b)) for name, a, b in zip(names, starts, ends)}
        # where the candidates' token vectors lie (read by position: store.VectorRows); None where
        # they could not be placed (then read by key)
        try:
            self.vector_rows: VectorRows | None = store.vector_rows()
        except (RuntimeError, OSError, ValueError):  # (searches then read by key, and say what is wrong)
            self.vector_rows = None
        self._by_rowid: tuple[np.ndarray, np.ndarray] | None = None  # row ids sorted, their positions (see texts)

    def _positions(self, row_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where rows with these row ids lie in ``rows`` (ascending, each once), and each one's
        row id; ids this version lacks are left out."""
        if self._by_rowid is None:
            ids = self.rows.column("_rowid").to_numpy()
            order = np.argsort(ids, kind="stable")
            self._by_rowid = ids[order], order
        sorted_ids, order = self._by_rowid
        positions, at = sorted_positions(sorted_ids, order, row_ids)
        return positions, sorted_ids[at]

    def rows_at(self, row_ids: Sequence[int], ids: Sequence[str]) -> list[dict | None]:
        """The candidate columns of each row (row id, chunk id) that this version holds with that
        chunk, else None (a row written or moved since)."""
        import pyarrow as pa

        positions, found = self._positions(np.asarray(row_ids, dtype=np.uint64))
        held = dict(zip(found.tolist(), self.rows.take(pa.array(positions)).to_pylist())) if len(positions) else {}
        out = []
        for rid, id_ in zip(row_ids, ids):
            r = held.get(rid)
            out.append(r if r is not None and r["id"] == id_ else None)
        return out

    def texts(self, by_row: dict[int, str]) -> dict[str, str]:
        """id -> text of the rows (row id -> chunk id) that this version holds, read back by
        position: 0.9 against 2.7 ms for LanceDB's take by row id of 10 rows at 100k chunks
        (docs/speed.md). Raises as the snapshot does once its files are gone."""
        positions, found = self._positions(np.array(list(by_row), dtype=np.uint64))
        if not len(positions):
            return {}
        data = self.snapshot.take(positions.tolist(), columns=["id", "text"])
        return {id_: text for row, id_, text in zip(found.tolist(), data.column("id").to_pylist(), data.column("text").to_pylist())
                if by_row.get(row) == id_}

    def nearest(
        self, queries: dict[str, np.ndarray], n: int, allowed: np.ndarray | None = None
    ) -> tuple[list[dict], list[float]]:
        """The ``n`` chunks nearest their space's query vector (cosine), best first (ties in
        table order); only rows whose row id is in ``allowed`` where given."""
        if n <= 0:
            return [], []
        blocks = []
        for space, q in queries.items():
            if space not in self.blocks:
                continue
            a, b = self.blocks[space]
            # (in the stored vectors' float16, as LanceDB casts the query: the same cosines)
            q = np.asarray(q, np.float16).astype(np.float32)
            blocks.append((a, b, q / (np.linalg.norm(q) or 1.0)))
        if not blocks:
            return [], []
        mask = np.isin(self.row_ids, allowed) if allowed is not None else None
        top, scores = self.scores.top(blocks, n, self.order, mask)
        import pyarrow as pa

        rows = self.rows.take(pa.array(self.order[top])).to_pylist()
        return rows, [float(x) for x in scores]


# Pooled vectors scored in two halves side by side from this many rows in a space (numpy's path).
_SPLIT_ROWS = 50_000
# Rows widened from int8 to float32 at a time (2 MB: within the cache; 2,048 and 4,096 rows
# were equally fast, 512 slower).
_BLOCK_ROWS = 2048
# Added to each row's error bound: covers float32 rounding in both the int8 product and the
# exact one (256 terms of at most 1 each: below 256 * 6e-8 * 2 = 3.1e-5).
_SLACK = 1e-4


class PooledScores:
    """The exact top ``n`` cosines of a query against pooled vectors, read mostly as int8.

    Scoring 100k pooled vectors of 256 floats reads 102 MB; on this project's 2-core machine the
    product is bound by that read (8-10 ms, 5 ms in two halves). Here each vector (unit length,
    float32, as it was scored before) is kept as int8 codes with a scale per row: a quarter of
    the bytes. Every row is scored from its codes, and ``|q . v - s c . q| <= |v - s c|`` for a
    unit query bounds the error of each row's score by a number kept per row (about 0.008).
    Only the rows whose upper bound reaches the ``n``-th best lower bound can be among the ``n``
    best: about 200 of 100k rows for n=150. Those are scored exactly from the float16 the table
    stores. So the candidates are those of the float32 product over every row, their scores
    the same to float32 rounding: at 100k chunks the candidate stage takes 5.3 ms instead of
    9.7 (docs/speed.md), and the memory is 3 bytes a number instead of 4 (float16 and int8).

    Where ONNX Runtime's 8-bit kernel is exact here (``products``), the query is put in 8 bits
    too and the products are integer ones (:class:`codesearch.model.ortgraph.Int8Products`):
    each row's bound then adds the query's own rounding, ``|q - q~| (1 + |v - s c|)``. Each
    vector's codes are bounded in neighbouring pairs for that kernel; the candidates and scores
    stay those of the float32 product.
    """

    def __init__(self, stored: np.ndarray, products: bool = True):
        n, dim = stored.shape
        self.stored = stored  # (n, dim) as the table stores them (float16)
        self.norms = np.empty(n, np.float32)
        columns = bool(products and n and _products_run(dim))  # (codes laid out for ONNX Runtime: a column a row)
        codes = np.empty((dim, n) if columns else (n, dim), np.int8)
        self.scale = np.empty(n, np.float32)
        self.error = np.empty(n, np.float32)
        for i in range(0, n, 8192):  # (a block at a time: no float32 copy of every row)
            v = stored[i : i + 8192].astype(np.float32)
            norms = np.linalg.norm(v, axis=1)
            norms = np.where(norms > 0, norms, 1.0).astype(np.float32)
            v /= norms[:, None]
            # codes bounded in neighbouring pairs, as ONNX Runtime's AVX2 kernel needs to stay exact
            # (the documents' weights' rule: a vector is a column of the product)
            block, scale = pair_bounded_codes(v.T)
            rows = slice(i, i + len(v))
            self.norms[rows], self.scale[rows] = norms, scale
            if columns:  # (1,024 vectors at a time: 26 against 97 ms for 100k at once)
                for j in range(0, len(v), 1024):
                    codes[:, i + j : i + j + 1024] = block[:, j : j + 1024]
            else:
                codes[rows] = block.T
            self.error[rows] = np.linalg.norm(v - block.T.astype(np.float32) * scale[:, None], axis=1) + _SLACK
        self.products = _int8_products(codes) if columns else None
        if columns and self.products is None:  # (the session failed after all: numpy's product, by rows)
            codes = np.ascontiguousarray(codes.T)
        self.codes = None if self.products is not None else codes  # (rows, for numpy's product)

    def exact(self, rows: np.ndarray, q: np.ndarray) -> np.ndarray:
        """Cosines of ``rows`` with the unit vector ``q`` (float32, from the stored float16),
        each row summed the same way wherever it lies: equal vectors, equal scores (a BLAS
        product sums the rows past a multiple of its block differently)."""
        return (self.stored[rows].astype(np.float32) / self.norms[rows][:, None] * q).sum(axis=1)

    def approximate(self, a: int, b: int, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each row's score from its codes, and how far it may be from :meth:`exact`'s."""
        return self._approximate([(a, b, q)])

    def _approximate(self, blocks: Sequence[tuple[int, int, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        """(scores, error bounds) of the rows of every block, in order, each block against its query."""
        if self.products is not None:
            codes, steps, errors = zip(*(_query_codes(q) for _, _, q in blocks))
            products = self.products.run(np.stack(codes))  # (one pass over the codes for every query)
            approx = [products[j, a:b] * (steps[j] * self.scale[a:b]) for j, (a, b, _) in enumerate(blocks)]
            bounds = [self.error[a:b] + errors[j] * (1.0 + self.error[a:b]) for j, (a, b, _) in enumerate(blocks)]
            return np.concatenate(approx), np.concatenate(bounds)
        approx = []
        for a, b, q in blocks:
            out = np.empty(b - a, np.float32)
            if b - a >= _SPLIT_ROWS:  # (the other core is idle once the full-text search is done)
                half = a + (b - a) // 2
                first = _POOL.submit(self._codes_times, a, half, q, out[: half - a])
                self._codes_times(half, b, q, out[half - a :])
                first.result()
            else:
                self._codes_times(a, b, q, out)
            approx.append(out * self.scale[a:b])
        return np.concatenate(approx), np.concatenate([self.error[a:b] for a, b, _ in blocks])

    def _codes_times(self, a: int, b: int, q: np.ndarray, out: np.ndarray) -> None:
        buf = np.empty((min(_BLOCK_ROWS, b - a), self.codes.shape[1]), np.float32)
        for i in range(a, b, _BLOCK_ROWS):
            wide = buf[: min(_BLOCK_ROWS, b - i)]
            np.copyto(wide, self.codes[i : i + len(wide)])
            np.matmul(wide, q, out=out[i - a : i - a + len(wide)])

    def top(self, blocks: Sequence[tuple[int, int, np.ndarray]], n: int, tie: np.ndarray,
            mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` best rows, each block of rows ``a:b`` scored against its own unit query:
        (rows, exact scores), best first, equal scores in order of ``tie[row]``. Only rows
        where ``mask`` is true, where given."""
        index = np.concatenate([np.arange(a, b) for a, b, _ in blocks])
        approx, error = self._approximate(blocks)
        if mask is not None:
            approx = np.where(mask[index], approx, -np.inf)
        if len(index) > n:
            lower = approx - error
            floor = np.partition(lower, len(lower) - n)[len(lower) - n]  # the n-th best lower bound
            maybe = np.nonzero((approx + error >= floor) & np.isfinite(approx))[0]
        else:
            maybe = np.nonzero(np.isfinite(approx))[0]
        rows = index[maybe]
        scores = np.empty(len(rows), np.float32)
        for a, b, q in blocks:
            inside = (rows >= a) & (rows < b)
            if inside.any():
                scores[inside] = self.exact(rows[inside], q)
        best = np.lexsort((tie[rows], -scores))[:n]
        return rows[best], scores[best]


def _query_codes(q: np.ndarray) -> tuple[np.ndarray, np.float32, np.float32]:
    """A unit query in 8 bits for :class:`Int8Products`: (u8 codes around 128, the step, and
    ``|q - step * codes|``, the most its rounding moves a score of a vector of length 1)."""
    q = np.asarray(q, np.float32)
    step = np.float32(np.abs(q).max() / 127) or np.float32(1.0)
    codes = np.clip(np.rint(q / step), -127, 127)
    error = np.float32(np.linalg.norm((q - codes.astype(np.float32) * step).astype(np.float64)) + 1e-6)
    return (codes + 128).astype(np.uint8), step, error


def _products_run(dim: int) -> bool:
    """Whether ONNX Runtime's exact 8-bit products score the pooled vectors: not where it cannot
    be imported, where ``CODESEARCH_QUERY_RUNTIME=numpy``, or where its kernel would saturate on
    pair-bounded codes of ``dim`` (checked once per process)."""
    import os

    if os.environ.get("CODESEARCH_QUERY_RUNTIME", "onnxruntime") == "numpy":
        return False
    try:
        from codesearch.model.ortgraph import _check_exact_products

        _check_exact_products(dim, 1)
        return True
    except Exception as exc:  # noqa: BLE001 - (no onnxruntime, or a kernel that saturates: numpy's path)
        log.info("pooled vectors scored in numpy: %s", str(exc).splitlines()[0][:200])
        return False


def _int8_products(codes: np.ndarray):
    """ONNX Runtime's products over ``codes`` (dim, n), one thread (the full-text search runs on
    the other core), or None where the session cannot be made."""
    try:
        from codesearch.model.ortgraph import Int8Products

        return Int8Products(codes, threads=1)
    except Exception as exc:  # noqa: BLE001
        log.info("pooled vectors scored in numpy: %s", str(exc).splitlines()[0][:200])
        return None
