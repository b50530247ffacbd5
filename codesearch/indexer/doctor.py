"""`codesearch doctor`: compare the index with the files on disk, and repair the differences.

What is checked, for the files under the given roots (by default every root ever indexed
into this home):

- ``stale``: indexed, but the file's size, mtime or repository changed since (with
  ``deep``: or its chunks, re-cut from the current text, differ from the stored ones);
- ``missing``: a file the walker would index that the index has no record of;
- ``orphaned``: a file recorded in the index that is gone from disk, or now ignored,
  a secret, too large, ...;
- ``damaged``: a file whose chunk rows do not match its record (rows without a record, a
  count that differs from the recorded one);
- ``duplicate_ids``: chunk ids stored more than once;
- ``dangling``: chunks whose token vectors are missing from the ``vectors`` table;
- ``broken``: tables that cannot be read in full (a data file truncated, deleted or corrupted).
  Nothing else is compared then: ``repair`` first recreates each such table with the rows
  that can still be read, then diagnoses again and re-indexes what is lost (chunk rows from
  the files on disk; vectors only for the keys that were lost).

``repair`` runs the incremental indexer on exactly the paths concerned (rows of damaged,
duplicated and dangling files are dropped first; their vectors are reused where they exist).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from codesearch.indexer import walk as walker
from codesearch.indexer.scope import under
from codesearch.indexer.store import Store, sql_like_prefix, sql_str

__all__ = ["Diagnosis", "diagnose", "repair", "index_roots"]

_KINDS = ("stale", "missing", "orphaned", "damaged", "duplicate_ids", "dangling")


@dataclass
class Diagnosis:
    roots: list[str]
    files_on_disk: int = 0
    files_indexed: int = 0
    chunks: int = 0
    stale: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    orphaned: list[str] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)
    duplicate_ids: list[str] = field(default_factory=list)
    dangling: list[str] = field(default_factory=list)  # paths with chunks whose vectors are gone
    duplicate_paths: list[str] = field(default_factory=list)
    broken: dict[str, str] = field(default_factory=dict)  # table -> why it cannot be read
    rebuilt: dict[str, tuple[int, int | None]] = field(default_factory=dict)  # by repair: table -> (rows kept, rows before)

    @property
    def ok(self) -> bool:
        return not self.broken and not any(getattr(self, k) for k in _KINDS)

    @property
    def differences(self) -> int:
        return len(self.broken) + sum(len(getattr(self, k)) for k in _KINDS)

    def as_dict(self, limit: int | None = None) -> dict:
        out = {
            "ok": self.ok,
            "roots": self.roots,
            "files_on_disk": self.files_on_disk,
            "files_indexed": self.files_indexed,
            "chunks": self.chunks,
            "differences": self.differences,
            "broken": dict(self.broken),
        }
        if self.rebuilt:
            out["rebuilt"] = {t: {"kept": k, "before": n} for t, (k, n) in self.rebuilt.items()}
        for k in _KINDS:
            items = getattr(self, k)
            out[k] = items if limit is None else items[:limit]
        return out


def index_roots(store: Store) -> list[str]:
    """Every root indexed into this home (recorded by ``index`` and ``watch``)."""
    return [r for r in store.meta().get("roots", [])]


def diagnose(
    store: Store,
    roots: Sequence[str | Path] | None = None,
    *,
    max_file_bytes: int | None = None,
    deep: bool = False,
    secrets_allow=None,
) -> Diagnosis:
    """Compare the index with the disk under ``roots`` (default: :func:`index_roots`), the files
    walked as the indexer walks them (``max_file_bytes`` and ``secrets_allow``: the settings'
    ``index.max_file_bytes``, None: its default, and ``index.secrets_allow``)."""
    root_list = [os.path.abspath(os.path.expanduser(os.fspath(r))) for r in (roots or index_roots(store))]
    diag = Diagnosis(roots=root_list)
    present = [r for r in root_list if os.path.exists(r)]

    on_disk: dict[str, walker.SourceFile] = {}
    if present:
        for item in walker.walk(present, max_file_bytes=max_file_bytes, secrets_allow=secrets_allow):
            if isinstance(item, walker.SourceFile):
                on_disk[walker.stored_path(item.path)] = item  # as the index names it
    diag.files_on_disk = len(on_disk)
    diag.broken = store.check_tables(full=True)  # every table read in full
    if diag.broken:
        return diag
    if not store.has_index():
        diag.missing = sorted(on_disk)
        return diag

    where = _under_sql(root_list)
    data = store.read("files", ["path", "size", "mtime_ns", "repo", "n_chunks"], where=where or None)
    records = {
        p: (s, m, r, n)
        for p, s, m, r, n in zip(*(data.column(c).to_pylist() for c in ("path", "size", "mtime_ns", "repo", "n_chunks")))
    }
    diag.files_indexed = len(records)

    chunks = store.read("chunks", ["id", "path", "key"], where=where or None)
    ids = chunks.column("id").to_pylist()
    paths = chunks.column("path").to_pylist()
    keys = chunks.column("key").to_pylist()
    diag.chunks = len(ids)

    id_counts = Counter(ids)
    dup_ids = {i for i, n in id_counts.items() if n > 1}
    diag.duplicate_ids = sorted(dup_ids)
    diag.duplicate_paths = sorted({p for i, p in zip(ids, paths) if i in dup_ids})

    rows_per_path = Counter(paths)
    existing = store.existing_keys(set(keys)) if keys else set()
    diag.dangling = sorted({p for p, k in zip(paths, keys) if k not in existing})

    for path, src in on_disk.items():
        rec = records.get(path)
        if rec is None:
            diag.missing.append(path)
        elif rec[:3] != (src.size, src.mtime_ns, walker.stored_path(src.repo)):
            diag.stale.append(path)
    for path in records:
        if path not in on_disk:
            diag.orphaned.append(path)
    for path in set(records) | set(rows_per_path):
        if path in on_disk and path not in records:
            continue  # already "missing" (a crash between writing its chunks and its record)
        if path not in records:
            diag.damaged.append(path)  # chunk rows without a file record
        elif records[path][3] != rows_per_path.get(path, 0) and path in on_disk:
            diag.damaged.append(path)

    if deep:
        diag.stale.extend(_deep_stale(store, on_disk, records, ids, paths, set(diag.stale) | set(diag.damaged)))

    for k in _KINDS:
        setattr(diag, k, sorted(set(getattr(diag, k))))
    return diag


def _under_sql(roots: Sequence[str]) -> str | None:
    """SQL: path at or below one of ``roots`` (a root may be a single file)."""
    parts = [f"path = {sql_str(r)}" for r in roots] + [sql_like_prefix("path", r.rstrip("/") + "/") for r in roots]
    return " OR ".join(parts) if parts else None


def _deep_stale(store, on_disk, records, ids, paths, already: set[str]) -> list[str]:
    """Files whose chunks, cut again from their current text, are not the stored ones."""
    from codesearch.indexer.chunking import chunk_text
    from codesearch.indexer.pipeline import KeySpace, chunk_id

    keys = KeySpace.from_meta(store.meta())
    if keys is None:
        return []
    stored: dict[str, set[str]] = {}
    for i, p in zip(ids, paths):
        stored.setdefault(p, set()).add(i)
    out = []
    for path, src in on_disk.items():
        if path not in records or path in already:
            continue
        try:
            text = walker.read_text(src)
        except walker.SkipFile:
            if stored.get(path):
                out.append(path)
            continue
        try:
            chunks = chunk_text(walker.stored_path(src.rel_path), text)
        except Exception:  # the indexer skips such a file and records it without chunks
            chunks = []
        want = {chunk_id(path, c, keys.key(c)) for c in chunks}
        if want != stored.get(path, set()):
            out.append(path)
    return out


def repair(store: Store, encoder, settings, diag: Diagnosis, *, progress=None, on_estimate=None):
    """Re-index exactly the paths ``diag`` found wrong. Returns the indexer's summary.
    ``progress``, ``on_estimate``: the indexer's callbacks (see ``Indexer.run``)."""
    from codesearch.indexer.pipeline import Indexer
    from codesearch.indexer.store import IndexDamaged

    if diag.broken:
        for name in diag.broken:
            if name not in ("vectors", "chunks", "files"):
                raise IndexDamaged(diag.broken, "the index cannot be opened; remove it and index again")
            diag.rebuilt[name] = store.salvage_table(name)
        again = diagnose(store, diag.roots, **walker.walk_options(settings))
        if again.broken:
            raise IndexDamaged(again.broken, "the index is still damaged after rebuilding its tables")
        again.rebuilt = diag.rebuilt
        return repair(store, encoder, settings, again, progress=progress, on_estimate=on_estimate)

    real = walker.real_path  # the diagnosis names files as the index does
    purge = {real(p) for p in set(diag.damaged) | set(diag.duplicate_paths) | set(diag.dangling)}
    force = {real(p) for p in diag.stale}  # with --deep a stale file may have its old size and mtime
    paths = {real(p) for p in set(diag.missing) | set(diag.orphaned)} | purge
    indexer = Indexer(store, encoder, settings)
    roots = [r for r in diag.roots]
    # Paths outside the roots (orphaned chunks of a root that was removed) are purged only.
    outside = {p for p in paths | force if not under(p, roots)}
    return indexer.update(roots, paths - outside, force=force - outside, purge=purge, optimize=True,
                          progress=progress, on_estimate=on_estimate)
