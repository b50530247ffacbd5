"""What a language server searches with: one model, one index home, one Searcher.

The engine is built once and rebuilt only when a setting that names another model or index
changes. Searches go through ``Searcher.search``, the one query path; the engine only scopes
them to the workspace folders and drops results that the editor's ignore patterns hide.

Searches and the index keys need only the numpy query encoder (no torch); the torch encoder,
which embeds documents, is started (in a child process, codesearch.lsp.embedder) when an
index run or a watcher update has something to embed and ended after ``lsp.model_idle_s``
seconds without one (see :class:`ModelHandle`), so an idle server never holds torch. Whole
index runs go to that child as well, so what they leave with LanceDB and the allocator ends
with it; the watcher's small updates write from the server.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

from codesearch.home import IndexHome
from codesearch.lsp.config import LspConfig
from codesearch.model.ondemand import QuerySide
from codesearch.search import Filters, SearchResult
from codesearch.settings import LspSettings, SettingsError

log = logging.getLogger(__name__)

# Torch encoders loaded in this process by model spec (a model only torch runs, or
# lsp.model_idle_s null), so that a change of index home keeps the loaded model.
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


def open_model(spec: str, settings: dict, fresh: bool = False):
    """What an engine encodes with: a :class:`ModelHandle` (numpy query encoder, torch encoder
    on demand), or the torch encoder itself, kept loaded, for a model the numpy query encoder
    does not run or when ``lsp.model_idle_s`` is null or negative (keep the model loaded)."""
    idle = model_idle_s(settings)
    if idle is None:
        return load_encoder_once(spec, fresh=fresh)
    from codesearch.model import load_query_encoder
    from codesearch.model.query import QueryEncoder

    queries = load_query_encoder(spec)
    if isinstance(queries, QueryEncoder):
        return ModelHandle(spec, queries, idle)  # (each start reads the model files: always fresh)
    with _ENCODERS_LOCK:  # a model only torch runs: it was just loaded, keep it (as before)
        if fresh or spec not in _ENCODERS:
            queries.tokenizer = _LockedTokenizer(queries.tokenizer)
            _ENCODERS[spec] = queries
        return _ENCODERS[spec]


def start_embedder(spec: str):
    """The document encoder of ``spec`` in a child process (codesearch/lsp/embedder.py)."""
    from codesearch.lsp.embedder import EmbedderProcess

    return EmbedderProcess(spec)


def model_idle_s(settings) -> float | None:
    """``lsp.model_idle_s``: seconds the torch encoder may stay unused; None (null or
    negative): never drop the model. A bad value is logged and its default used."""
    try:
        value = LspSettings.from_settings(settings).model_idle_s
    except SettingsError as exc:
        value = LspSettings.defaults().model_idle_s
        log.warning("%s: using %s", exc, value)
    return None if value is None or value < 0 else value


class _NoProcess(RuntimeError):
    """The embedding process cannot start here (what needs the model loads it in the server)."""


class ModelHandle(QuerySide):
    """A model as the language server holds it: the numpy query encoder always, the torch
    encoder only while documents are embedded.

    Answers what searches and the Indexer's keys need (``fingerprint``, ``dim``, ``spaces``,
    ``routes``, ``space_for``, ``space_fingerprints``, ``encode_queries``...) from the numpy
    :class:`~codesearch.model.query.QueryEncoder` (whose fingerprints equal the torch
    encoder's). ``encode_documents`` starts the torch encoder (:func:`start_embedder`: a child
    process, about as long as loading it here) if it is not running; ``idle_s`` seconds after
    the last use ends, it is ended. Why a process: torch, transformers and peft cannot be
    unloaded, and once imported they keep the server at about 1 GB (see embedder.py).
    ``busy()`` marks a whole index run or watcher update as one use, so the model is never
    ended between two embedding batches of a run. Thread-safe: the index thread, the watcher
    thread and the idle timer meet here.
    """

    def __init__(self, spec: str, queries, idle_s: float):
        self.spec = spec
        self.queries = queries  # the numpy QueryEncoder: searches use it directly
        self.idle_s = float(idle_s)
        self.loads = 0
        self.releases = 0
        self._torch = None
        self._device = None  # of the last torch encoder (the indexer's rate estimate asks)
        self._busy = 0
        self._timer: threading.Timer | None = None
        self._generation = 0
        self._failed: tuple[float, str] | None = None  # (when, why) the last start failed
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ the document side
    @property
    def loaded(self) -> bool:
        """Is the torch encoder held now?"""
        return self._torch is not None

    def encode_documents(self, *args, **kwargs):
        with self._using() as encoder:
            return encoder.encode_documents(*args, **kwargs)

    def start_soon(self) -> None:
        """Start the embedding process now, in the background, as one use, and have it import
        what an index run needs (an index run is coming: the child's start then overlaps the
        server's own; it ends ``idle_s`` after, as ever, if no run comes)."""

        def start() -> None:
            try:
                with self._using(local=False) as encoder:
                    prepare = getattr(encoder, "prepare_index", None)
                    if prepare is not None:
                        prepare()
            except Exception as exc:  # noqa: BLE001 - the run that needs it says why
                log.info("starting the embedding process early failed: %s", exc)

        threading.Thread(target=start, name="codesearch-embedder-start", daemon=True).start()

    def run_index(self, settings: dict, roots, *, exclude=None, progress=None):
        """A whole index run in the embedding process (see embedder.py), as one use; None
        where there is no such process (the caller runs it here, and the torch encoder is
        loaded here only if the run has something to embed)."""
        try:
            with self._using(local=False) as encoder:
                run = getattr(encoder, "run_index", None)
                return None if run is None else run(settings, roots, exclude=exclude, progress=progress)
        except _NoProcess:
            return None

    @property
    def device(self):
        """The torch encoder's device (remembered from its last load; loads it before the first)."""
        if self._device is None:
            with self._using() as encoder:
                return encoder.device
        return self._device

    def __getattr__(self, name: str):
        # Anything else a caller may read of an encoder (config, ...): the query encoder's.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.queries, name)

    @contextmanager
    def busy(self):
        """A use that loads nothing by itself: the model is not dropped until it ends."""
        with self._lock:
            self._busy += 1
            self._cancel_timer()
        try:
            yield self
        finally:
            self._end_use()

    @contextmanager
    def _using(self, local: bool = True):
        """A use of the torch encoder: started if it is not running (as one use, see busy);
        with ``local`` False, only as the embedding process (else :class:`_NoProcess`)."""
        with self.busy():
            with self._lock:
                if self._torch is not None and not getattr(self._torch, "alive", True):
                    log.warning("the embedding process of %s ended: starting it again", self.spec)
                    self._close(self._torch)
                    self._torch = None
                if self._torch is None:
                    started = self._start(local)
                    if getattr(started, "fingerprint", self.fingerprint) != self.fingerprint:
                        self._close(started)  # the files changed since (a fine-tune): the engine reloads
                        raise RuntimeError(f"the model {self.spec} changed on disk since the server loaded it")
                    self._torch = started
                    self._device = getattr(started, "device", None)
                    self.loads += 1
                    log.info("started the torch encoder of %s (start %d)", self.spec, self.loads)
                encoder = self._torch
            try:
                yield encoder
            finally:
                del encoder

    def _start(self, local: bool = True):  # (holding the lock)
        """The embedding process; where none starts (no subprocesses here, ...), the torch
        encoder in this process as before, dropped the same way (with ``local`` False:
        :class:`_NoProcess` instead). A failure to load is remembered for a minute, so that
        the indexer's file-by-file retries do not each wait for a load."""
        if self._failed is not None and time.monotonic() - self._failed[0] < 60:
            raise RuntimeError(self._failed[1])
        try:
            return start_embedder(self.spec)
        except Exception as exc:  # noqa: BLE001
            if not local:
                raise _NoProcess(str(exc)) from None
            log.warning("cannot start the embedding process (%s): loading the model in the server", exc)
        try:
            return load_encoder_once(self.spec, fresh=True)
        except Exception as exc:
            self._failed = (time.monotonic(), f"cannot load the model {self.spec}: {exc}")
            raise

    def _end_use(self) -> None:
        release_now = None
        with self._lock:
            self._busy -= 1
            if self._busy == 0 and self._torch is not None:
                self._cancel_timer()
                if self.idle_s <= 0:
                    release_now = self._generation
                else:
                    self._timer = threading.Timer(self.idle_s, self._release_if_idle, args=(self._generation,))
                    self._timer.daemon = True  # exiting never waits on it
                    self._timer.start()
        if release_now is not None:
            self._release_if_idle(release_now)

    def _cancel_timer(self) -> None:  # (holding the lock)
        self._generation += 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _release_if_idle(self, generation: int) -> None:
        with self._lock:
            if generation != self._generation or self._busy or self._torch is None:
                return  # used again since, or dropped already
            encoder, self._torch, self._timer = self._torch, None, None
            self.releases += 1
            with _ENCODERS_LOCK:  # (loaded in this process)
                if _ENCODERS.get(self.spec) is encoder:
                    del _ENCODERS[self.spec]
        self._close(encoder)
        del encoder
        release_memory()
        log.info("ended the torch encoder of %s after %.0f s unused", self.spec, self.idle_s)

    @staticmethod
    def _close(encoder) -> None:
        close = getattr(encoder, "close", None)
        if close is not None:
            try:
                close()
            except Exception:  # noqa: BLE001 - ending it is all that matters
                log.warning("ending the embedding process failed", exc_info=True)

    def release(self) -> None:
        """End the torch encoder now unless it is in use (tests; shutting an engine down)."""
        with self._lock:
            self._cancel_timer()
            generation = self._generation
        self._release_if_idle(generation)


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
class EditorIgnores:
    """The indexer's ``exclude`` hook for the editor's ignore patterns: a file is left out when
    a pattern matches its path in its repository or below one of ``roots`` (the folders of the
    run). A value, so that it travels to the embedding process with an index run."""

    config: LspConfig
    roots: tuple[str, ...] = ()

    def __call__(self, source) -> bool:
        if not self.config.ignore:
            return False
        rels = [source.rel_path]
        for folder in self.roots:
            f = str(folder).rstrip("/") + "/"
            if str(source.path).startswith(f):
                rels.append(str(source.path)[len(f):])
        return self.config.is_ignored(*rels)

    def __reduce__(self):  # (without the config's compiled patterns: the child compiles its own)
        return (EditorIgnores, (replace(self.config, _ignore_spec=None), self.roots))


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
    explain: bool = False  # each result says why it matched (codesearch.explain)


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
        # A ModelHandle (torch encoder only while embedding) or, for a model only torch runs,
        # the torch encoder itself.
        self.encoder = open_model(self.model_spec, self.settings, fresh=fresh_model)
        if isinstance(self.encoder, ModelHandle) and config.index_on_startup:
            self.encoder.start_soon()  # (the first index run goes to it: docs/speed.md)
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
            # The numpy query encoder, never the handle: a Searcher must not hold the torch model.
            queries = self.encoder.queries if isinstance(self.encoder, ModelHandle) else self.encoder
            self._searcher = Searcher(self.store, queries, self.settings)
        return self._searcher

    def model_loaded(self) -> bool:
        """Is the torch encoder held now (always, for a model only torch runs)?"""
        return self.encoder.loaded if isinstance(self.encoder, ModelHandle) else True

    def model_busy(self):
        """A context for a whole index run or update: the torch encoder is not dropped during it."""
        return self.encoder.busy() if isinstance(self.encoder, ModelHandle) else nullcontext()

    def hold_model_during(self, indexer) -> None:
        """Make each ``run``/``update`` of ``indexer`` (e.g. the watcher's) one use of the model,
        and have the searcher read the changed index after it rather than in the next search."""
        for name in ("run", "update"):
            method = getattr(indexer, name)

            def held(*args, _method=method, **kwargs):
                with self.model_busy():
                    out = _method(*args, **kwargs)
                self.prepare_search()
                return out

            setattr(indexer, name, held)

    def prepare_search(self) -> None:
        """Read what the next search needs of a changed index now (its pooled vectors), in the
        indexing thread, so that the search after an edit does not wait for it."""
        if self._searcher is not None:
            self._searcher.prepare()

    def has_chunks(self) -> bool:
        # Only "yes" is cached: an empty index may be filling (the first index run commits
        # file group by file group), and a search must see what is there so far.
        if not self._has_chunks:
            self._has_chunks = self.count_chunks() > 0
        return self._has_chunks

    def note_total_chunks(self, total: int) -> None:
        """The index now holds ``total`` chunks (told by whoever changed it, e.g. the watcher)."""
        self._has_chunks = total > 0

    def count_chunks(self) -> int:
        try:
            return self.store.count_chunks() if self.store.has_index() else 0
        except Exception:  # a table being replaced under us: report nothing rather than fail
            return 0

    def _meta_stat(self) -> float | None:
        try:
            return os.stat(IndexHome(self.home).index_meta).st_mtime_ns
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
        """Bring ``roots`` up to date (incremental: only changed chunks are embedded), in the
        embedding process where there is one (see embedder.py), else here."""
        self.index_roots = [str(r) for r in roots]
        with self.model_busy():
            summary = None
            if isinstance(self.encoder, ModelHandle):
                summary = self.encoder.run_index(
                    self.settings, list(roots), exclude=EditorIgnores(self.config, tuple(self.index_roots)),
                    progress=progress,
                )
                if summary is not None:
                    self.store.forget()  # (another process wrote: it may have replaced tables)
            if summary is None:
                summary = self.indexer.run(list(roots), progress=progress)
        release_memory()  # embedding leaves hundreds of MB of freed buffers with the allocator
        self._has_chunks = summary.total_chunks > 0
        self._meta_mtime = self._meta_stat()
        if self._searcher is not None and self.store.meta().get("model_fingerprint") != self.encoder.fingerprint:
            self._searcher = None
        self.prepare_search()
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
        for r in searcher.search(req.query, limit=fetch, filters=filters, method=req.method, explain=req.explain):
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
        return EditorIgnores(self.config, tuple(self.index_roots))(source)

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
        return self.store.read("chunks", cols, where=f"path = {sql_str(path)}").to_pylist()

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
