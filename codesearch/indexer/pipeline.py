"""`codesearch index`: walk -> chunk -> embed what is new -> store, resumable at any point."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from codesearch.blas import one_blas_thread
from codesearch.indexer import walk as walker
from codesearch.indexer.chunking import CHUNKER_VERSION, chunk_text
from codesearch.indexer.chunking.base import Chunk
from codesearch.indexer.store import FORMAT, Store, chunk_row, search_text_of
from codesearch.indexer.walk import stored_path
from codesearch.model.ondemand import ModelLoadError, OnDemandEncoder
from codesearch.settings import IndexSettings, Settings, ann_build_rows
from codesearch.timing import device_kind, rate_for, time_left, timed

log = logging.getLogger(__name__)

MAX_STORED_TEXT = 8000

# Where a run's time goes (IndexSummary.stage_seconds): walk = finding files and which changed,
# chunk = reading and cutting them (tree-sitter), embed = the model, write = LanceDB (removals, the
# final compaction, and the time the run waited on the writes that run beside the model: see
# _Writes). What is left of the run's seconds is setup and lookups.
STAGES = ("walk", "chunk", "embed", "write")

# Source bytes per chunk, for the estimate before a run: measured with this chunker on the eval
# corpora (evals/data/rust/corpus: 1,462,412 bytes -> 4,664 chunks, 314 B/chunk; evals/data/
# python/corpus: 1,227,481 bytes -> 3,009 chunks, 408 B/chunk; together 2,689,893 / 7,673 = 351).
BYTES_PER_CHUNK = 350
# ... only where the run's own files say nothing: the estimate cuts a sample of them (picked by a
# hash of the path) and uses their ratio. It varies with the code: 314 to 408 B/chunk on the eval
# corpora, 647 on the Rust library with 96 Debian crates, which 350 put at twice its 117,180 chunks.
ESTIMATE_SAMPLE_FILES = 64
# Chunks embedded per second of a whole run when this home has not measured its own yet, on the
# project's 2-core machines with the shipped model reading 128 tokens a document, documents in 8
# bits (docs/speed.md): with 8-bit dot products (AVX512-VNNI), 172-187 on the Rust eval corpus
# and 183 on Rust's core, alloc and std (2026-12-07, seventeenth session); without (AVX2 only),
# 62-68 there (sixteenth session); rounded down. No default for a GPU: its estimate names no time
# until a run there has measured one.
DEFAULT_RATE = {"cpu": 60.0, "cpu-vnni": 160.0}
# A run that embeds fewer chunks is mostly fixed costs (setup, compaction): its rate is not kept.
MIN_CHUNKS_FOR_RATE = 256


def default_rate(device: str) -> float | None:
    """DEFAULT_RATE for this kind of device (and, for a CPU, whether it has 8-bit dot products)."""
    if device == "cpu":
        from codesearch.model.encoder import cpu_has_vnni

        return DEFAULT_RATE["cpu-vnni" if cpu_has_vnni() else "cpu"]
    return DEFAULT_RATE.get(device)


def _timed(summary: "IndexSummary", stage: str):
    return timed(summary.stage_seconds, stage)


def _bytes_per_chunk(files: list[walker.SourceFile]) -> float:
    """Source bytes per chunk of up to ESTIMATE_SAMPLE_FILES of ``files`` (the same ones each time
    for the same paths), cut as the run will cut them; BYTES_PER_CHUNK if they give no chunk."""
    sample = sorted(files, key=lambda s: hashlib.sha1(stored_path(s.path).encode("utf-8", "surrogatepass")).digest())
    n_bytes = n_chunks = 0
    for source in sample[:ESTIMATE_SAMPLE_FILES]:
        try:
            n_chunks += len(chunk_text(stored_path(source.rel_path), walker.read_text(source)))
        except Exception:  # noqa: BLE001 - unreadable or unchunkable here: the run will say why
            continue
        n_bytes += source.size
    return n_bytes / n_chunks if n_chunks else BYTES_PER_CHUNK


@dataclass
class IndexEstimate:
    """What a run is about to do, known once the walk has found the new and changed files."""

    files: int
    bytes: int
    chunks: int  # estimated from bytes (the bytes per chunk of a sample of the files)
    rate: float | None  # chunks/s: this home's last measured run on this kind of device, else DEFAULT_RATE
    measured: bool  # rate measured by this home (not the default)

    @property
    def seconds(self) -> float | None:
        return self.chunks / self.rate if self.rate else None

    def line(self) -> str:
        """``To index: 812 files (3.1 MB), about 8,900 chunks, about 2 min at ~70 chunks/s (this home's last run).``"""
        chunks = self.chunks if self.chunks < 1000 else round(self.chunks, -2)
        size = f"{self.bytes / 1e6:.1f} MB" if self.bytes >= 1e6 else f"{max(1, round(self.bytes / 1e3))} KB"
        line = f"To index: {self.files:,} {'file' if self.files == 1 else 'files'} ({size}), about {chunks:,} {'chunk' if chunks == 1 else 'chunks'}"
        return line + time_left(self.chunks, self.rate, "chunks", self.measured)


@dataclass
class IndexSummary:
    repos: int = 0
    files_seen: int = 0
    files_indexed: int = 0  # (re)chunked in this run
    files_unchanged: int = 0
    files_removed: int = 0
    chunks: int = 0  # chunks written in this run
    embedded: int = 0  # chunks that needed the model
    reused: int = 0  # chunks whose vectors were already in the index
    skipped: Counter = field(default_factory=Counter)
    skipped_examples: dict = field(default_factory=dict)
    seconds: float = 0.0
    total_chunks: int = 0
    compacted_bytes: int = 0  # old versions dropped at the end of the run
    stage_seconds: dict = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))  # see STAGES
    # loading the torch encoder, where this run did (codesearch/model/ondemand.py): not part of
    # ``seconds`` (as when it was loaded before the run), so the chunks/s are the run's own
    model_seconds: float = 0.0

    def as_dict(self) -> dict:
        return {
            "repos": self.repos,
            "files_seen": self.files_seen,
            "files_indexed": self.files_indexed,
            "files_unchanged": self.files_unchanged,
            "files_removed": self.files_removed,
            "chunks": self.chunks,
            "embedded": self.embedded,
            "reused": self.reused,
            "skipped": dict(self.skipped),
            "seconds": round(self.seconds, 2),
            "total_chunks": self.total_chunks,
            "chunks_per_second": round(self.embedded / self.seconds, 1) if self.seconds else None,  # embedded / seconds
            "seconds_by_stage": {k: round(v, 2) for k, v in self.stage_seconds.items()},
            "model_load_seconds": round(self.model_seconds, 2),
        }


@dataclass
class _FileWork:
    source: walker.SourceFile
    chunks: list[Chunk] | None  # None: not held; the file is cut again when its group is committed
    keys: list[str] = field(default_factory=list)  # its chunks' keys, in order


def chunk_id(path: str, chunk: Chunk, key: str) -> str:
    return hashlib.sha1(f"{path}\0{chunk.start_line}\0{chunk.end_line}\0{key}".encode()).hexdigest()[:24]


def embed_key(chunk: Chunk, fingerprint: str) -> str:
    """Vectors are shared by every chunk with this key: same encoder input, same vector space."""
    return hashlib.sha256(f"{fingerprint}\0{chunk.content_hash}".encode()).hexdigest()[:32]


@dataclass
class KeySpace:
    """Which vector space (adapter) encodes a chunk, and the key its vectors are stored under.

    Built from the encoder when indexing, or from the index's metadata (``from_meta``) when
    checking it without a model. A space's fingerprint changes only when its own weights do,
    so a new adapter (say, a personal fine-tune) re-embeds only the chunks routed to it.
    """

    fingerprints: dict[str, str]  # space ("" = base model) -> fingerprint
    by_language: dict[str, str]  # language -> space
    default: str = ""
    fingerprint: str = ""  # of the whole index (encoder.fingerprint), computed once with the rest

    @classmethod
    def of(cls, encoder) -> "KeySpace":
        from codesearch.model.encoder import index_fingerprint

        fps, routes = encoder.space_fingerprints(), encoder.routes()
        return cls(
            {space or "": fp for space, fp in fps.items()},
            {lang: space or "" for lang, space in routes.items()},
            encoder.space_for("text") or "",
            index_fingerprint(fps, routes),
        )

    @classmethod
    def from_meta(cls, meta: dict) -> "KeySpace | None":
        fp = meta.get("model_fingerprint")
        if meta.get("spaces"):
            return cls(dict(meta["spaces"]), dict(meta.get("space_by_language", {})), meta.get("default_space", ""), fp or "")
        return cls({"": fp}, {}, "", fp) if fp else None  # an index written before spaces were recorded

    def space(self, chunk: Chunk) -> str:
        return self.by_language.get(chunk.language, self.default)

    def key(self, chunk: Chunk) -> str:
        return embed_key(chunk, self.fingerprints[self.space(chunk)])

    def meta(self) -> dict:
        return {"spaces": self.fingerprints, "space_by_language": self.by_language, "default_space": self.default}


class _Writes:
    """An index run's writes, in the order given, on one thread beside the encoder.

    Why: writing a group (its token vectors merged and coded, the rows, LanceDB's commits) is
    mostly one thread of Python and numpy, so while it ran the encoder's second core waited; and
    while the encoder ran, this thread would have nothing to do. Here the writes of one group run
    while the next group is encoded (docs/speed.md, "... and writes beside the encoder"). The order of the
    commits is unchanged (a group's vectors, then its chunks and file records, group after group),
    so a run stopped at any point leaves what a sequential run would have left.

    At most ``depth`` writes wait (their vectors are held until written). After a write fails, no
    later one runs: :meth:`put` and :meth:`join` raise that error in the run's thread. ``waited``:
    the seconds the run waited on writes (its "write" stage)."""

    def __init__(self, depth: int = 2):
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._abandon = False
        self.waited = 0.0
        self._thread = threading.Thread(target=self._loop, name="codesearch-writes", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            task = self._queue.get()
            try:
                if task is None:
                    return
                if self._error is None and not self._abandon:
                    try:
                        task()
                    except BaseException as exc:  # noqa: BLE001 - handed to the run's thread
                        self._error = exc
            finally:
                self._queue.task_done()

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            self._abandon = True  # (nothing after a failed write)
            raise error

    def put(self, task: Callable[[], None]) -> None:
        self._raise()
        began = time.perf_counter()
        self._queue.put(task)  # (waits while ``depth`` writes wait already)
        self.waited += time.perf_counter() - began

    def join(self) -> None:
        """Wait until every write given so far is done; raise the first that failed."""
        began = time.perf_counter()
        self._queue.join()
        self.waited += time.perf_counter() - began
        self._raise()

    def close(self, *, abandon: bool) -> None:
        """Stop the thread: after the writes given so far, or (``abandon``: the run is failing)
        after the one under way, dropping the rest."""
        self._abandon = self._abandon or abandon
        self._queue.put(None)
        self._thread.join()


class Indexer:
    """Brings the index of some roots up to date with the files on disk."""

    def __init__(
        self,
        store: Store,
        encoder,
        settings: dict | Settings | IndexSettings | None = None,
        *,
        exclude: Callable[[walker.SourceFile], bool] | None = None,
    ):
        """``exclude``: extra rules on top of the walker's (e.g. the editor's ignore patterns):
        files it returns True for are treated as absent, so indexed ones are removed."""
        self.store = store
        self.encoder = encoder
        self.exclude = exclude
        opts = IndexSettings.from_settings(settings)  # index.* (defaults: config/default.yaml)
        self.max_file_bytes = opts.max_file_bytes
        self.secrets_allow = opts.secrets_allow  # files not scanned for secrets by content
        self.batch_chunks = opts.batch_chunks
        self.encode_batch_size = opts.encode_batch_size
        self.compact_every = opts.compact_every
        # A run holds the chunks of at most this many chunks' files between cutting them and
        # embedding them; later files keep only their keys and are cut again when committed
        # (twice the chunking time, about 0.6% of a big run). Holding every chunk of the Rust
        # library (40k) took 99 MB, and grew with the corpus (docs/speed.md).
        self.hold_chunks = 8192
        self._commits = 0
        self.token_codec = opts.token_codec
        self.token_merge = opts.token_merge or None
        store.ann_min_rows = ann_build_rows(settings)  # (past search.in_memory_max: only those searches use it)

    def prepare(self) -> None:
        """Check the index was built with this model and storage format; start afresh when not."""
        from codesearch.indexer.quant import TokenCodec

        meta = self.store.meta()
        self.keys = KeySpace.of(self.encoder)  # hashes every adapter's weights: once per run
        fp = self.keys.fingerprint
        self.rekey = False
        if meta.get("dim") not in (None, self.encoder.dim):
            log.warning("the model's vector size changed since this index was built: re-embedding everything")
            self.store.reset()
        elif meta.get("model_fingerprint") and (
            meta.get("format") != FORMAT
            or meta.get("token_codec") != self.token_codec
            or meta.get("token_merge") != self.token_merge
            or self.store.codec is None
        ):
            log.warning(
                "the index storage format changed (format %s, codec %s, merge %s -> format %s, codec %s, merge %s): "
                "re-indexing everything",
                meta.get("format"), meta.get("token_codec"), meta.get("token_merge"),
                FORMAT, self.token_codec, self.token_merge,
            )
            self.store.reset()
        self.store.dim = self.encoder.dim
        codec = self.store.codec
        if codec is None or codec.name != self.token_codec or codec.dim != self.encoder.dim:
            self.store.set_codec(TokenCodec.new(self.token_codec, self.encoder.dim))
        meta = self.store.meta()
        wanted = dict(dim=self.encoder.dim, format=FORMAT, token_codec=self.token_codec, token_merge=self.token_merge)
        if meta.get("model_fingerprint") in (None, fp):
            wanted.update(model_fingerprint=fp, **self.keys.meta())
        else:
            # Another model (or adapter, or routing) built this index. Every file is cut again
            # and keyed in the new spaces; vectors of spaces that did not change are reused, so
            # only chunks whose space changed are embedded. The new fingerprint is recorded when
            # a full run has re-keyed every file (an interrupted run re-keys again next time).
            log.warning("the model changed since this index was built: re-keying every file, "
                        "embedding what the new model encodes differently")
            self.rekey = True
        if meta.get("model_fingerprint") is None:
            wanted["chunker"] = CHUNKER_VERSION
        elif meta.get("chunker") != CHUNKER_VERSION:
            # Files are cut differently now: cut every file again on this full run; chunks that
            # come out the same keep their vectors, only new or changed ones are embedded.
            log.warning("the chunker changed since this index was built: cutting every file again")
            self.rekey = True
        if any(meta.get(k) != v for k, v in wanted.items()):
            self.store.write_meta(**wanted)

    def run(
        self,
        roots: Sequence[str | Path],
        *,
        progress: Callable[[str, int, int], None] | None = None,
        on_estimate: Callable[[IndexEstimate], None] | None = None,
    ) -> IndexSummary:
        """Index ``roots``. ``progress(stage, done, total)`` is called as work advances (the
        embedding stage's from the thread that writes, once those chunks are searchable);
        ``on_estimate(estimate)`` once the walk knows the new and changed files, when there are
        some (the indexer itself prints nothing: the language server talks on stdout)."""
        roots = [Path(r).expanduser().absolute() for r in roots]
        for root in roots:
            if not root.exists():
                raise FileNotFoundError(f"{root} does not exist")
        with self._disk_full_is_one_error(), one_blas_thread():
            return self._run(roots, progress, on_estimate)

    @contextlib.contextmanager
    def _disk_full_is_one_error(self):
        """A write that finds the disk full ends the run with one ``DiskFull`` error (naming the
        home and the space a rerun needs) instead of LanceDB's traceback. Each commit is atomic
        and the compaction still due is recorded, so nothing is lost and the next run with space
        finishes the job."""
        from codesearch.indexer.store import DiskFull, is_disk_full

        self._pending_chunks = 0
        try:
            yield
        except DiskFull:
            raise
        except (OSError, RuntimeError) as exc:
            if not is_disk_full(exc):
                raise
            raise self.store.disk_full(self._pending_chunks) from exc

    def _run(self, roots: list[Path], progress, on_estimate=None) -> IndexSummary:
        started = time.perf_counter()
        summary = IndexSummary()
        self.prepare()
        damage = self.store.check_tables(full=False)  # cheap: open, count, read one small column
        if damage:
            from codesearch.indexer.store import IndexDamaged

            raise IndexDamaged(damage)  # never report success over a table that cannot be read
        commits_before = self._commits
        with self.store.lock():
            due = bool(self.store.meta().get("compaction_due"))  # a run that stopped before compacting
            self._ensure_scalar_indexes()
            self._remember_roots(roots)
            # 1. What is on disk, and what changed since the last run.
            sources: list[walker.SourceFile] = []
            repos: set[str] = set()
            with _timed(summary, "walk"):
                for item in walker.walk(roots, max_file_bytes=self.max_file_bytes, secrets_allow=self.secrets_allow):
                    if isinstance(item, walker.Skipped):
                        self._skip(summary, item.path, item.reason)
                        continue
                    sources.append(item)
                    repos.add(str(item.repo))
                summary.repos = len(repos)
                known = self.store.file_records(roots)
            forced = {stored_path(s.path) for s in sources} if self.rekey else set()
            self._apply(sources, known, forced, summary, progress, on_estimate)
            if self.rekey:
                self._finish_rekey(roots)

            # 5. Fold everything into compact files and fresh indexes; drop the versions the
            # run wrote when that pays (what `codesearch gc` would otherwise free later).
            if self._commits != commits_before or due or not self.store.has_index():
                with _timed(summary, "write"):
                    summary.compacted_bytes = self._compact(drop=self._commits != commits_before or due, all_versions=due)
            summary.total_chunks = self.store.count_chunks()
            self._remember_rate(summary.embedded, time.perf_counter() - started - summary.model_seconds)
        summary.seconds = time.perf_counter() - started - summary.model_seconds
        return summary

    def _device(self) -> str:
        return device_kind(self.encoder)

    def _remember_rate(self, embedded: int, seconds: float) -> None:
        """Keep this run's chunks/s (embedded / run seconds) in the index meta for the next
        run's estimate, per device kind; only from runs big enough for it to mean something."""
        if embedded < MIN_CHUNKS_FOR_RATE or seconds <= 0:
            return
        rates = dict(self.store.meta().get("index_rate") or {})
        rates[self._device()] = round(embedded / seconds, 1)
        self.store.write_meta(index_rate=rates)

    def _estimate(self, changed: list[walker.SourceFile]) -> IndexEstimate:
        device = self._device()
        rate, measured = rate_for((self.store.meta().get("index_rate") or {}).get(device), device, {device: default_rate(device)})
        n_bytes = sum(s.size for s in changed)
        chunks = max(len(changed), round(n_bytes / _bytes_per_chunk(changed)))
        return IndexEstimate(len(changed), n_bytes, chunks, rate, measured)

    def update(
        self,
        roots: Sequence[str | Path],
        paths: Iterable[str | Path],
        *,
        force: Iterable[str | Path] = (),
        purge: Iterable[str | Path] = (),
        optimize: bool = False,
        progress: Callable[[str, int, int], None] | None = None,
        on_estimate: Callable[[IndexEstimate], None] | None = None,
    ) -> IndexSummary:
        """Bring the index up to date for ``paths`` (files or folders, existing or not) only.

        ``roots`` are the indexed roots the paths belong to (they decide repositories and
        which ignore files apply); paths outside every root are ignored. Each path is checked
        with the walker's rules (ignore files, secrets, binaries, sizes); a folder stands for
        everything below it. Recorded files at or below a path that the walker no longer
        yields (deleted, moved away, now ignored) are removed. Files whose size and mtime
        match the record are left alone unless they are at or below a path in ``force``.
        ``purge``: drop every stored row of these files first (repairs duplicated or damaged
        rows; their vectors are kept and reused). ``optimize``: also compact the tables
        afterwards (the watcher does it when idle). ``progress``, ``on_estimate``: as for :meth:`run`.
        """
        with self._disk_full_is_one_error():
            return self._update(roots, paths, force, purge, optimize, progress, on_estimate)

    def _update(self, roots, paths, force, purge, optimize, progress, on_estimate=None) -> IndexSummary:
        from codesearch.indexer.scope import under, walk_paths

        started = time.perf_counter()
        summary = IndexSummary()
        roots = [Path(r).expanduser().absolute() for r in roots]
        force_list = [os.path.abspath(os.fspath(p)) for p in force]
        paths = [os.path.abspath(os.fspath(p)) for p in paths] + force_list
        self.prepare()
        commits_before = self._commits
        with self.store.lock():
            self._ensure_scalar_indexes()
            self._remember_roots(roots)
            purge_list = sorted({stored_path(os.path.abspath(os.fspath(p))) for p in purge})
            if purge_list:
                self.store.forget_files(purge_list)
                self._committed()
            with _timed(summary, "walk"):
                scope = walk_paths(roots, paths, max_file_bytes=self.max_file_bytes, secrets_allow=self.secrets_allow)
                for item in scope.skipped:
                    self._skip(summary, item.path, item.reason)
                summary.repos = len({str(s.repo) for s in scope.sources})
                known = self.store.file_records_at([stored_path(p) for p in scope.covered]) if scope.covered else {}
            forced = {stored_path(s.path) for s in scope.sources if force_list and under(str(s.path), force_list)}
            self._apply(scope.sources, known, forced, summary, progress, on_estimate)
            if optimize and (self._commits != commits_before or self.store.meta().get("compaction_due")):
                with _timed(summary, "write"):
                    self._compact()
            summary.total_chunks = self.store.count_chunks()
        summary.seconds = time.perf_counter() - started - summary.model_seconds
        return summary

    def maintain(self) -> None:
        """Compact small commits and refresh the indexes (takes the writer lock)."""
        with self._disk_full_is_one_error(), self.store.lock():
            self._compact()

    def _ensure_scalar_indexes(self) -> None:
        """Once per Indexer (a watcher's runs every batch): repair a table a killed run left
        without its scalar indexes."""
        if not getattr(self, "_indexes_checked", False):
            self.store.ensure_scalar_indexes()
            self._indexes_checked = True

    def _compact(self, *, drop: bool = False, all_versions: bool = False) -> int:
        """Compact the tables and fold new rows into the indexes (``drop``: and delete the
        versions this run superseded, ``all_versions``: whatever it frees, with the files a
        failed write left); then clear the mark a commit set. Returns the bytes freed."""
        self.store.optimize()
        freed = self.store.drop_superseded_versions(min_bytes=0 if all_versions else None, unverified=all_versions) if drop else 0
        if self.store.meta().get("compaction_due"):
            self.store.write_meta(compaction_due=False)
        self._marked_due = False
        return freed

    def _finish_rekey(self, roots: Sequence[Path]) -> None:
        """Record the new model once every indexed root holds chunks keyed by it."""
        indexed = [Path(r) for r in self.store.meta().get("roots", [])]
        rest = [r for r in indexed if r not in roots and r.exists()]
        if rest:  # roots indexed earlier but not in this run: re-key them too
            sources = [s for s in walker.walk(rest, max_file_bytes=self.max_file_bytes, secrets_allow=self.secrets_allow) if not isinstance(s, walker.Skipped)]
            self._apply(sources, self.store.file_records(rest), {stored_path(s.path) for s in sources}, IndexSummary(), None)
        self.store.write_meta(model_fingerprint=self.keys.fingerprint, chunker=CHUNKER_VERSION, **self.keys.meta())
        self.store.gc()
        self.rekey = False

    def _remember_roots(self, roots: Sequence[Path]) -> None:
        known = list(self.store.meta().get("roots", []))
        new = [str(r) for r in roots if str(r) not in known]
        if new:
            self.store.write_meta(roots=known + new)

    def _apply(
        self,
        sources: list[walker.SourceFile],
        known: dict[str, tuple[int, int, str]],
        forced: set[str],
        summary: IndexSummary,
        progress: Callable[[str, int, int], None] | None,
        on_estimate: Callable[[IndexEstimate], None] | None = None,
    ) -> None:
        """Make the index hold exactly ``sources`` where it held ``known`` (path -> size, mtime, repo)."""
        if self.exclude is not None:
            kept = []
            for s in sources:
                if self.exclude(s):
                    self._skip(summary, s.path, "excluded by settings")
                else:
                    kept.append(s)
            sources = kept
        summary.files_seen += len(sources)
        on_disk = {stored_path(s.path) for s in sources}
        changed = [
            s
            for s in sources
            if stored_path(s.path) in forced or known.get(stored_path(s.path)) != (s.size, s.mtime_ns, stored_path(s.repo))
        ]
        summary.files_unchanged += len(sources) - len(changed)
        removed = [p for p in known if p not in on_disk]
        if on_estimate is not None and changed:
            on_estimate(self._estimate(changed))

        if removed:  # (LanceDB is imported to write; reads need only Lance. For changed files
            # alone that happens beside the first group's embedding: see below)
            with _timed(summary, "write"):
                self.store.open_writes()

        # 2. Forget files that are gone (or now ignored or skipped).
        if removed:
            with _timed(summary, "write"):
                self.store.forget_files(removed)
                self._committed()
            summary.files_removed += len(removed)

        # 3. Chunk what changed.
        keys = self.keys
        work: list[_FileWork] = []
        held = 0
        for n, source in enumerate(changed, 1):
            try:
                with _timed(summary, "chunk"):
                    text = walker.read_text(source)
            except walker.SkipFile as exc:
                self._skip(summary, source.path, exc.reason)
                if exc.reason == "vanished":
                    if stored_path(source.path) in known:
                        self.store.forget_files([stored_path(source.path)])
                        summary.files_removed += 1
                        self._committed()
                    continue
                work.append(_FileWork(source, []))  # recorded, so a skipped file is not retried each run
                continue
            try:
                with _timed(summary, "chunk"):
                    chunks = chunk_text(stored_path(source.rel_path), text)
            except Exception:  # a chunker bug on one file must not abort the run
                log.warning("cannot cut %s into chunks", stored_path(source.path), exc_info=True)
                self._skip(summary, source.path, "chunking failed")
                chunks = []  # recorded empty: retried when the file (or the chunker) changes
            hold = held + len(chunks) <= self.hold_chunks or not chunks
            held += len(chunks) if hold else 0
            work.append(_FileWork(source, chunks if hold else None, [keys.key(c) for c in chunks]))
            if progress:
                progress("chunking", n, len(changed))

        # 4. Embed what the index has not seen, commit file by file group.
        keys_needed = {k for w in work for k in w.keys}
        have = self.store.existing_keys(keys_needed) if keys_needed else set()
        to_embed_total = len(keys_needed - have)
        self._pending_chunks = sum(len(w.keys) for w in work)  # for the space a rerun needs
        if not to_embed_total:
            progress = None  # nothing to embed: no "embedding" stage (an empty bar) to report
        else:
            self._load_model(summary)
        if progress:
            progress("embedding", 0, to_embed_total)
        committed = 0

        def searchable(n: int) -> None:  # (on the writes' thread: a group's rows are committed)
            nonlocal committed
            committed += n
            if progress:
                progress("embedding", committed, to_embed_total)

        writes = _Writes()
        failed = True
        try:
            if changed:
                writes.put(self.store.open_writes)  # (LanceDB's import, beside the first embedding)
            group: list[_FileWork] = []
            group_new = 0
            for w in work:
                group.append(w)
                group_new += sum(1 for k in w.keys if k not in have)
                if group_new >= self.batch_chunks or sum(len(g.keys) for g in group) >= 4 * self.batch_chunks:
                    self._commit_group(group, have, summary, writes, searchable)
                    for g in group:
                        g.chunks = None  # (embedded; its writes hold the chunks they need)
                    group, group_new = [], 0
            if group:
                self._commit_group(group, have, summary, writes, searchable)
            writes.join()
            failed = False
        finally:
            writes.close(abandon=failed)
            summary.stage_seconds["write"] += writes.waited
        summary.files_indexed += len(work)

    def _load_model(self, summary: IndexSummary) -> None:
        """Load the document encoder of a model that loads it on demand (an :class:`OnDemandEncoder`)
        now that there is something to embed, timed apart from the stages and the run."""
        if not isinstance(self.encoder, OnDemandEncoder) or self.encoder.loaded:
            return
        began = time.perf_counter()
        self.encoder.document_encoder()
        summary.model_seconds += time.perf_counter() - began

    def _cut_again(self, source: walker.SourceFile, summary: IndexSummary) -> list[Chunk]:
        """The chunks of a file whose chunks were not held (see ``hold_chunks``): as cut before,
        unless the file changed since (then as it is now; a file gone or unreadable now is
        recorded with no chunks, and the next run sees it again)."""
        try:
            with _timed(summary, "chunk"):
                return chunk_text(stored_path(source.rel_path), walker.read_text(source))
        except walker.SkipFile as exc:
            self._skip(summary, source.path, exc.reason)
        except Exception:  # noqa: BLE001 - as in the first cut: one file must not abort the run
            log.warning("cannot cut %s into chunks", stored_path(source.path), exc_info=True)
            self._skip(summary, source.path, "chunking failed")
        return []

    def _skip(self, summary: IndexSummary, path: str | Path, reason: str) -> None:
        summary.skipped[reason] += 1
        summary.skipped_examples.setdefault(reason, stored_path(path))

    def _commit_group(self, group: list[_FileWork], have: set[str], summary: IndexSummary, writes: _Writes,
                      searchable: Callable[[int], None]) -> None:
        """Embed the new chunks of some files, then store vectors, chunks, file records in that
        order: the writes go to ``writes``, which runs them beside the next group's embedding and
        then calls ``searchable`` with the number of chunks embedded (the run's progress: what it
        shows is searchable)."""
        for w in group:
            if w.chunks is None:
                w.chunks = self._cut_again(w.source, summary)
        keyed = [(w, [(c, self.keys.key(c)) for c in w.chunks]) for w in group]
        new: dict[str, Chunk] = {}
        for _, pairs in keyed:
            for c, k in pairs:
                if k not in have and k not in new:
                    new[k] = c
        pooled_by_key: dict[str, np.ndarray] = {}
        by_space: dict[str, list[str]] = {}
        for k, c in new.items():
            by_space.setdefault(self.keys.space(c), []).append(k)
        # At most batch_chunks texts per encoder call, each part's vectors stored before the next:
        # one file can hold thousands of chunks (3,661 in core::arch's neon/generated.rs), and
        # their float32 token vectors all at once raised the peak RSS of indexing two such files
        # from 1.20 to 1.99 GB (docs/speed.md). A text's vectors do not depend on the texts
        # encoded with it: the parts change nothing else (the same vectors, checked).
        parts = [(space, keys[i : i + self.batch_chunks]) for space, keys in by_space.items()
                 for i in range(0, len(keys), self.batch_chunks)]
        for space, keys in parts:
            try:
                with _timed(summary, "embed"):
                    tokens, pooled = self.encoder.encode_documents(
                        [new[k].encoder_text() for k in keys], batch_size=self.encode_batch_size, space=space or None
                    )
            except ModelLoadError:
                raise  # (no model to embed with: no file would fare better; the run stops, nothing lost)
            except Exception:  # one bad input must not abort the run: find the file, skip it
                if len(group) > 1:
                    for w in group:
                        self._commit_group([w], have, summary, writes, searchable)
                    return
                log.warning("cannot embed %s", stored_path(group[0].source.path), exc_info=True)
                self._skip(summary, group[0].source.path, "embedding failed")
                return  # not recorded: tried again next run
            items = list(zip(keys, tokens, pooled))
            writes.put(lambda items=items: self.store.add_vectors(items))
            pooled_by_key.update(zip(keys, pooled))
            have.update(keys)
            summary.embedded += len(keys)
        chunks = sum(len(pairs) for _, pairs in keyed)
        summary.reused += chunks - len(new)
        summary.chunks += chunks
        files = [
            {
                "path": stored_path(w.source.path),
                "repo": stored_path(w.source.repo),
                "size": w.source.size,
                "mtime_ns": w.source.mtime_ns,
                "n_chunks": len(w.chunks),
            }
            for w in group
        ]
        embedded = len(new)
        writes.put(lambda: (self._write_rows(keyed, pooled_by_key, files), searchable(embedded)))

    def _write_rows(self, keyed: list, pooled_by_key: dict[str, np.ndarray], files: list[dict]) -> None:
        """A group's chunk rows and file records, after its vectors (on the writes' thread)."""
        missing_pooled = {k for _, pairs in keyed for _, k in pairs if k not in pooled_by_key}
        if missing_pooled:  # (reused vectors: stored before, in this run or an earlier one)
            pooled_by_key.update(self.store.get_pooled(missing_pooled))
        rows = []
        for w, pairs in keyed:
            path, rel_path = stored_path(w.source.path), stored_path(w.source.rel_path)
            for c, k in pairs:
                rows.append(
                    chunk_row(
                        id=chunk_id(path, c, k),
                        key=k,
                        repo=stored_path(w.source.repo),
                        path=path,
                        rel_path=rel_path,
                        start_line=c.start_line,
                        end_line=c.end_line,
                        language=c.language,
                        kind=c.kind,
                        name=c.name,
                        context=c.context,
                        text=c.text[:MAX_STORED_TEXT],
                        search_text=search_text_of(rel_path, c.name, c.context, c.text),  # (all the text, as stored before)
                        pooled=pooled_by_key[k].astype(np.float16),
                        space=self.keys.space(c),
                    )
                )
        self._pending_chunks = max(0, self._pending_chunks - len(rows))
        self.store.replace_file_chunks([f["path"] for f in files], rows)
        self.store.record_files(files)
        self._committed()

    def _committed(self) -> None:
        if not getattr(self, "_marked_due", False):
            # Recorded once per run, right after its first commit: a run cut short before its
            # compaction (full disk, crash, kill) leaves it due, and the next run does it.
            self.store.write_meta(compaction_due=True)
            self._marked_due = True
        self._commits += 1
        if self._commits % self.compact_every == 0:
            self.store.optimize(ann=False)  # (the ANN index: at the run's last upkeep, once the encoder is done)
