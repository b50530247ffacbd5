"""What a language server searches with: one model, one index home, one Searcher.

The engine is built once (the model takes seconds to load) and rebuilt only when a setting
that names another model or index changes. Searches go through ``Searcher.search``, the one
query path; the engine only scopes them to the workspace folders and drops results that the
editor's ignore patterns hide.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

from codesearch.lsp.config import LspConfig
from codesearch.search import Filters, SearchResult

log = logging.getLogger(__name__)

# Encoders by model spec, so that a change of index home keeps the loaded model.
_ENCODERS: dict[str, object] = {}
_ENCODERS_LOCK = threading.Lock()


def load_encoder_once(spec: str, fresh: bool = False):
    from codesearch.model import load_encoder

    with _ENCODERS_LOCK:
        if fresh or spec not in _ENCODERS:
            encoder = load_encoder(spec)
            encoder.tokenizer = _LockedTokenizer(encoder.tokenizer)
            _ENCODERS[spec] = encoder
        return _ENCODERS[spec]


class _LockedTokenizer:
    """A fast tokenizer used from the search and the index threads at once.

    Calls with other truncation settings change the Rust tokenizer's state, and two threads
    doing that at once fail ("Already borrowed"); tokenising takes microseconds, so a lock
    costs nothing. Everything else is passed through.
    """

    def __init__(self, tokenizer):
        self._tokenizer = tokenizer
        self._lock = threading.Lock()

    def __call__(self, *args, **kwargs):
        with self._lock:
            return self._tokenizer(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._tokenizer, name)


@dataclass(frozen=True)
class SearchRequest:
    """A validated search: see codesearch.lsp.search.parse_search_params."""

    query: str
    limit: int
    lang: tuple[str, ...] = ()
    kind: tuple[str, ...] = ()
    path: str | None = None  # glob or prefix, relative, or an absolute path inside the workspace
    method: str | None = None
    role: tuple[str, ...] = ()  # path roles (codesearch.roles)


@dataclass
class FolderFilters(Filters):
    """Filters that also keep only files below any of several folders (the workspace folders),
    so that a multi-root workspace costs one search, not one per folder."""

    folders: tuple[str, ...] = ()

    def sql(self) -> str | None:
        from codesearch.indexer.store import sql_like_prefix

        base = super().sql()
        if not self.folders:
            return base
        anyof = " OR ".join(sql_like_prefix("path", f.rstrip("/") + "/") for f in self.folders)
        return f"({base}) AND ({anyof})" if base else f"({anyof})"


class Engine:
    def __init__(self, config: LspConfig, *, fresh_model: bool = False):
        from codesearch.indexer.pipeline import Indexer
        from codesearch.indexer.store import Store

        self.config = config
        self.settings = config.settings()
        self.home = Path(self.settings["home"])
        from codesearch.config import resolve_model

        self.model_spec = resolve_model(self.settings)
        self.encoder = load_encoder_once(self.model_spec, fresh=fresh_model)
        self.store = Store(self.home, dim=self.encoder.dim)
        self.index_roots: list[str] = []  # the folders of the last index run (ignore patterns are relative to them)
        self.indexer = Indexer(self.store, self.encoder, self.settings, exclude=self.excluded_source)
        self._searcher = None
        self._has_chunks: bool | None = None
        self._meta_mtime = self._meta_stat()

    # ------------------------------------------------------------------ state
    def searcher(self):
        from codesearch.search import Searcher

        if self._searcher is None:
            self._searcher = Searcher(self.store, self.encoder, self.settings)
        return self._searcher

    def has_chunks(self) -> bool:
        # Only "yes" is cached: an empty index may be filling (the first index run commits
        # file group by file group), and a search must see what is there so far.
        if not self._has_chunks:
            self._has_chunks = self.count_chunks() > 0
        return self._has_chunks

    def count_chunks(self) -> int:
        try:
            return self.store.count_chunks() if self.store.has_index() else 0
        except Exception:  # a table being replaced under us: report nothing rather than fail
            return 0

    def _meta_stat(self) -> float | None:
        try:
            return os.stat(self.home / "index.json").st_mtime_ns
        except OSError:
            return None

    def model_changed(self) -> bool:
        """Was the index re-embedded with another model (e.g. by a personal fine-tune) since?"""
        mtime = self._meta_stat()
        if mtime == self._meta_mtime:
            return False
        self._meta_mtime = mtime
        fp = self.store.meta().get("model_fingerprint")
        return bool(fp) and fp != self.encoder.fingerprint

    # ------------------------------------------------------------------ indexing
    def index(self, roots: Sequence[Path], progress: Callable[[str, int, int], None] | None = None):
        """Bring ``roots`` up to date (incremental: only changed chunks are embedded)."""
        self.index_roots = [str(r) for r in roots]
        summary = self.indexer.run(list(roots), progress=progress)
        release_memory()  # embedding leaves hundreds of MB of freed buffers with the allocator
        self._has_chunks = summary.total_chunks > 0
        self._meta_mtime = self._meta_stat()
        if self._searcher is not None and self.store.meta().get("model_fingerprint") != self.encoder.fingerprint:
            self._searcher = None
        return summary

    # ------------------------------------------------------------------ search
    def search(self, req: SearchRequest, folders: Sequence[Path]) -> list[SearchResult]:
        """``req`` within the workspace ``folders`` (all of the index when scope is "index")."""
        if not self.has_chunks():
            return []
        searcher = self.searcher()
        fetch = req.limit + (max(10, req.limit) if self.config.ignore else 0)
        filters: Filters = Filters(lang=req.lang, kind=req.kind, path=req.path, role=req.role)
        if self.config.scope == "workspace" and folders:
            if req.path and os.path.isabs(req.path):
                filters = replace(filters, under=str(containing_folder(Path(req.path), folders) or req.path))
            elif len(folders) == 1:
                filters = replace(filters, under=str(folders[0]))
            else:
                filters = FolderFilters(
                    lang=req.lang, kind=req.kind, path=req.path, role=req.role, folders=tuple(map(str, folders))
                )
        out, seen = [], set()
        for r in searcher.search(req.query, limit=fetch, filters=filters, method=req.method):
            key = (r.path, r.start_line, r.end_line)
            if key in seen or self._ignored(r, folders):
                continue
            seen.add(key)
            out.append(r)
            if len(out) >= req.limit:
                break
        return out

    def excluded_source(self, source) -> bool:
        """The indexer's hook: files the editor's ignore patterns name stay out of the index."""
        if not self.config.ignore:
            return False
        rels = [source.rel_path]
        for folder in self.index_roots:
            f = str(folder).rstrip("/") + "/"
            if str(source.path).startswith(f):
                rels.append(str(source.path)[len(f):])
        return self.config.is_ignored(*rels)

    def _ignored(self, r: SearchResult, folders: Sequence[Path]) -> bool:
        if not self.config.ignore:
            return False
        rels = [r.rel_path]
        folder = containing_folder(Path(r.path), folders)
        if folder is not None:
            rels.append(os.path.relpath(r.path, folder))
        return self.config.is_ignored(*rels)

    # ------------------------------------------------------------------ chunks by place
    def chunks_of(self, path: str) -> list[dict]:
        """The indexed chunks of one file (repo, rel_path, lines, name, kind, language)."""
        from codesearch.indexer.store import sql_str

        if not self.has_chunks():
            return []
        cols = ["path", "repo", "rel_path", "start_line", "end_line", "name", "kind", "language"]
        tbl = self.store.table("chunks")
        return tbl.search().where(f"path = {sql_str(path)}").select(cols).limit(None).to_arrow().to_pylist()

    def chunk_at(self, path: str, start_line: int, end_line: int) -> dict | None:
        """The indexed chunk with exactly these lines, else the one overlapping them most."""
        best, best_overlap = None, 0
        for row in self.chunks_of(path):
            if row["start_line"] == start_line and row["end_line"] == end_line:
                return row
            overlap = min(end_line, row["end_line"]) - max(start_line, row["start_line"]) + 1
            if overlap > best_overlap:
                best, best_overlap = row, overlap
        return best


def release_memory() -> None:
    """Give freed memory back to the system (glibc keeps it otherwise), so an idle server is small."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def containing_folder(path: Path, folders: Sequence[Path]) -> Path | None:
    """The innermost of ``folders`` that holds ``path`` (lexically), or None."""
    path = Path(os.path.abspath(path))
    best = None
    for f in folders:
        if path == f or f in path.parents:
            if best is None or len(f.parts) > len(best.parts):
                best = f
    return best
