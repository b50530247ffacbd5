"""The index on disk: embedded LanceDB tables under the index home.

Three tables, each with one job:

- ``vectors``: one row per distinct chunk content (``key`` = content hash), holding the chunk's
  token vectors compactly encoded (``tokens``: one binary value, ``n_tokens`` codes of the
  index's token codec, see ``quant.py``; 49 bytes per token by default instead of 512 as
  float16) and its pooled vector (float16). Identical chunks in several repos,
  branches or worktrees share one row, and rows whose chunks went away stay as a cache until
  ``gc``: a chunk whose text did not change is never embedded again.
- ``chunks``: one row per chunk occurrence (repo, path, lines, language, kind, name, text), its
  ``key`` into ``vectors``, one pooled vector for candidate search, and ``search_text`` (code-aware
  words: camelCase and snake_case split) with a full-text index for the lexical signal.
- ``files``: what was indexed of each file (size, mtime), written only after the file's chunks,
  so an interrupted run is simply resumed: anything not recorded here is redone.

Every write is one atomic LanceDB commit; a file's chunks are replaced in a single merge, so a
reader never sees a half-updated file and a kill at any moment leaves no duplicates. Reads go
through Lance, the library LanceDB is built on, over the same files (``Store._dataset``): a
process that only reads never imports LanceDB.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from datetime import timedelta
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa

from codesearch.home import FTS_STATE, INDEX_META, LANCE_DIR, WRITE_LOCK  # the home's layout: codesearch/home.py

FORMAT = 3  # 1: float16 token lists, float32 pooled; 2: token codec (binary), float16 pooled;
# 3: chunks carry their vector space (the adapter that encoded them)
_BATCH_IN = 500  # keys per `IN (...)` filter
KEEP_VERSIONS_SECONDS = 60
# Lance reads ahead up to 2 GiB per scan by default; on a local disk a compaction's read fills
# that with the whole table while the writer lags (an index run's peak grew with the corpus).
# 32 MiB keeps a compaction of 92k token-vector rows at about 130 MB transient (docs/speed.md).
# Read by Lance once, at its first scan: set here, before any table is opened.
os.environ.setdefault("LANCE_DEFAULT_IO_BUFFER_SIZE", str(32 << 20))
# Rows per batch of a scan (Lance's default: 8,192). A compaction of the token-vector table
# (about 6 KB a row) decoded and re-encoded 8,192-row batches: 120-210 MB above its baseline;
# 1,024-row batches: 15-80 MB, and no slower (/work/exp/h25/mem/ct_batch.out).
os.environ.setdefault("LANCE_DEFAULT_BATCH_SIZE", "1024")
# Lance's older shuffler for IVF builds: building the pooled vectors' index of 117k chunks rose
# +156 to +177 MB instead of +214 to +254 MB (four runs each), and the index answers the same:
# Recall@10 0.998-0.999 against 0.996 (/work/exp/h27/annprobe.py, annrecall.py; docs/speed.md).
os.environ.setdefault("LANCE_LEGACY_SHUFFLER", "1")
# LanceDB's session caches (index pages, manifests, file metadata) keep an entry for every table
# version an index run commits, and its default capacities (GiBs) never evict them: in-use heap
# grew with the run (39 MB of cache at 23k chunks, 1.7 KB a chunk and rising; docs/speed.md).
# Bounded here; a search reads the current version only (its full-text and vector indexes fit).
INDEX_CACHE_BYTES = 128 << 20
METADATA_CACHE_BYTES = 32 << 20
# A long-lived reader (the language server, the search service) fills those caches with what each
# new version needed (0.1-0.7 MB an edit, measured at 20k and 3k chunks) and reads only the
# newest: it starts a new connection once they hold more than this (Store.renew_reads). One
# version's own reads take 5 MB at 20k chunks and 13 MB at 100k (docs/speed.md).
READ_CACHE_RENEW_BYTES = 48 << 20
SUPERSEDED_GRACE_S = 2.0  # drop_superseded_versions: time left to searches reading an old version
SUPERSEDED_MIN_BYTES = 4 << 20  # ... and the least it must free to be worth it
ANN_ROWS_PER_PARTITION = 1_000
# Compaction and index upkeep go through Lance's own API (pylance, the Lance that LanceDB bundles;
# LanceDB's `Table.compact_files` calls it too). LanceDB 0.40's `optimize` takes no options: it
# rewrites every fragment under a million rows and merges each index into one segment on every
# call, so each call held memory in proportion to the table (+200-470 MB at 117k chunks, the
# part of an index run's peak that grew with the corpus; docs/speed.md). Instead:
FRAGMENT_ROWS = 16_384  # compaction joins fragments up to this many rows; bigger ones are left as they are
SEGMENT_MERGE_ROWS = 65_536  # new rows go into a new segment of each index; the newest segments are
SEGMENT_MERGE_AT = 4  # merged once this many of them together hold at most SEGMENT_MERGE_ROWS rows


def sql_str(value: str) -> str:
    """A SQL string literal (LanceDB filters are SQL)."""
    return "'" + value.replace("'", "''") + "'"


def sql_in(column: str, values: Iterable[str]) -> str:
    return f"{column} IN ({', '.join(sql_str(v) for v in values)})"


def sql_like_prefix(column: str, prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{column} LIKE {sql_str(escaped + '%')} ESCAPE '\\'"


_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+")


def code_words(text: str) -> list[str]:
    """Words for lexical search: identifiers split at snake_case and camelCase, lower-cased.

    ``parseHTTPRequest_v2`` gives ``parse http request v2`` plus the whole identifier, so a
    query for either the parts or the exact name matches.
    """
    words: list[str] = []
    for ident in _WORD.findall(text):
        parts = [p for piece in ident.split("_") for p in _CAMEL.findall(piece)]
        lowered = [p.lower() for p in parts if p]
        words.extend(lowered)
        if len(lowered) > 1:
            words.append(ident.lower())
    return words


# The chunks table's row, defined once: the table's schema, the indexer's rows (chunk_row) and
# the searcher's candidate columns (CHUNK_META_COLUMNS) are all read from it. None: the pooled
# vector, a fixed-size list of float16 as long as the model's dimension.
CHUNK_FIELDS: tuple[tuple[str, pa.DataType | None], ...] = (
    ("id", pa.string()),
    ("key", pa.string()),  # the content key of the chunk's vectors (table "vectors")
    ("repo", pa.string()),
    ("path", pa.string()),  # absolute
    ("rel_path", pa.string()),
    ("start_line", pa.int32()),
    ("end_line", pa.int32()),
    ("language", pa.string()),
    ("kind", pa.string()),
    ("name", pa.string()),
    ("context", pa.string()),
    ("text", pa.string()),
    ("search_text", pa.string()),  # code_words of path, name, context and text: the full-text column
    ("pooled", None),
    ("space", pa.string()),  # adapter whose space holds the vectors ("" = base)
)
_CHUNK_NAMES = dict.fromkeys(name for name, _ in CHUNK_FIELDS)  # (in schema order)
# What a search reads of each candidate (not the text, the full-text words or the vector).
CHUNK_META_COLUMNS = [name for name, _ in CHUNK_FIELDS if name not in ("text", "search_text", "pooled")]


def search_text_of(rel_path: str, name: str, context: str, text: str) -> str:
    """The full-text column of a chunk: its path, name, context and text as code words."""
    return " ".join(code_words(f"{rel_path} {name} {context} {text}"))


def pack_groups(labels: np.ndarray | None) -> bytes:
    """A chunk's token groups as stored: b"" when nothing was merged, else one byte saying the
    width (1 or 2) and the labels at that width (one byte each for chunks of up to 256 stored
    vectors: every chunk of a model whose documents are cut at 256 tokens or fewer, as the
    shipped model's are at 128)."""
    if labels is None:
        return b""
    width = 1 if int(labels.max(initial=0)) < 256 else 2
    return bytes([width]) + labels.astype("u1" if width == 1 else "<u2").tobytes()


def unpack_groups(raw: bytes, n_tokens: int) -> np.ndarray | None:
    """The labels :func:`pack_groups` stored (the identity for ``n_tokens`` vectors when empty;
    None for a value it did not write)."""
    if not raw:
        return np.arange(n_tokens, dtype=np.int64)
    if raw[0] not in (1, 2) or (len(raw) - 1) % raw[0]:
        return None
    return np.frombuffer(raw, "u1" if raw[0] == 1 else "<u2", offset=1).astype(np.int64)


def _with_columns(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with the columns of ``schema`` it lacks added as nulls (a table written by an
    earlier version, e.g. ``vectors`` without ``groups``)."""
    for f in schema:
        if f.name not in table.column_names:
            table = table.append_column(f, pa.nulls(table.num_rows, f.type))
    return table


def chunk_row(**fields) -> dict:
    """A row of the chunks table: exactly the fields of CHUNK_FIELDS (a TypeError names any
    missing or unknown one)."""
    if fields.keys() != _CHUNK_NAMES.keys():
        missing, unknown = [n for n in _CHUNK_NAMES if n not in fields], [n for n in fields if n not in _CHUNK_NAMES]
        raise TypeError(f"a chunk row has exactly the fields {list(_CHUNK_NAMES)}: missing {missing}, unknown {unknown}")
    return {name: fields[name] for name in _CHUNK_NAMES}


class IndexLocked(RuntimeError):
    pass


DAMAGED_HINT = "index damaged: run codesearch doctor --fix"


class IndexDamaged(RuntimeError):
    """A table of the index cannot be read (a data file truncated, deleted or corrupted)."""

    def __init__(self, damage: dict[str, str] | None = None, message: str = DAMAGED_HINT):
        self.damage = dict(damage or {})
        detail = "; ".join(f"{t}: {e}" for t, e in self.damage.items())
        super().__init__(f"{message} ({detail})" if detail else message)


def is_read_error(exc: BaseException) -> bool:
    """Whether ``exc`` is Lance failing to read its files (damage), not a bad query or a full disk.

    Through LanceDB such an error reads "lance error: ..." (a RuntimeError); through Lance's own
    Python package, "External error: ..." (Arrow's ValueError, from a scan) or the bare error,
    e.g. "Not found: <a file of a .lance folder>" (an OSError, from a take by position). A bad
    filter is "Invalid user input: ..." either way."""
    text = str(exc)
    if not isinstance(exc, (RuntimeError, OSError, ValueError)) or "No space left" in text:
        return False
    return ("lance error" in text.lower() or "LanceError" in text or text.startswith("External error:")
            or (text.startswith("Not found:") and ".lance" in text))


def damage_message(exc: BaseException) -> str | None:
    """The one-line "index damaged: run codesearch doctor --fix (...)" for an error that means
    a table of the index cannot be read, else None."""
    if isinstance(exc, IndexDamaged):
        return str(exc).splitlines()[0]
    if is_read_error(exc):
        return f"{DAMAGED_HINT} ({_first_line(exc)})"
    return None


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` is a write failing for want of space (ENOSPC, or a quota), from Python or LanceDB."""
    import errno

    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc)
    return isinstance(exc, (RuntimeError, OSError)) and any(
        s in text for s in ("No space left on device", "os error 28", "Disk quota exceeded", "os error 122")
    )


class DiskFull(RuntimeError):
    """The disk of the index home filled up during a write. Every commit is atomic, so what was
    committed before stays; the next run (with space) redoes the rest, compaction included."""

    def __init__(self, home: Path, free: int, needed: int):
        self.home, self.free, self.needed = Path(home).absolute(), free, needed
        super().__init__(
            f"no space left on the disk of the index home {self.home}: {_mb(free)} free, this run needs about "
            f"{_mb(needed)} free; free some space (or move the home with --home) and run it again: "
            "what is indexed is kept"
        )


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n < 10e9 else f"{n / 1e9:.1f} GB"


def _first_line(exc: BaseException, width: int = 200) -> str:
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text if len(text) <= width else text[: width - 3] + "..."


class Store:
    """The LanceDB tables of one index home."""

    def __init__(self, home: Path, dim: int | None = None, *, create: bool = True):
        self.home = Path(home).expanduser()
        if create:
            # The index holds the text of the code: private to its owner. The home is 0700
            # (also an existing one), and what this process writes from now on (LanceDB's
            # files, metadata, logs) is 0600 / 0700: group and other bits masked out.
            os.umask(os.umask(0o077) | 0o077)
            self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
            if self.home.stat().st_mode & 0o077:
                self.home.chmod(0o700)
        elif not (self.home / INDEX_META).exists():
            raise FileNotFoundError(f"no index at {self.home}: run `codesearch index PATH` first")
        self._connect()
        meta = self.meta()
        self.dim = dim or meta.get("dim")
        self._vectors_have_groups = False  # (checked once: add_vectors adds the column to an older table)
        # IVF index on chunks.pooled from this many chunks on (settings.ann_build_rows), which the
        # indexer and bench set; a store opened only to read never builds one
        from codesearch.settings import ann_build_rows

        self.ann_min_rows = ann_build_rows(None)

    def _connect(self) -> None:
        import lance

        # Reads go through Lance itself (pylance: what LanceDB is built on), writes through
        # LanceDB, connected at the first write. A process that only reads (a terminal search, the
        # search service, `status`, an `index` run with nothing to do) never imports LanceDB's
        # Python package: 0.7-1.0 s of imports (pydantic models of its REST namespace, its
        # embedding registry) on this project's 2-core machine (docs/speed.md, "Reads through
        # Lance"). Both read the same files, and each read sees the latest commit.
        self._session = lance.Session(index_cache_size_bytes=INDEX_CACHE_BYTES, metadata_cache_size_bytes=METADATA_CACHE_BYTES)
        self._db = None
        self._db_session = None
        self._tables: dict = {}
        self._readers: dict = {}

    @property
    def db(self):
        """The LanceDB connection, for writes (opened at the first use)."""
        if self._db is None:
            from codesearch.lance_import import lancedb as import_lancedb

            lancedb = import_lancedb()  # (without the REST client's 1.4 s of API modules: lance_import.py)
            # (a session of its own, as LanceDB's default is: bounded caches, see INDEX_CACHE_BYTES)
            self._db_session = lancedb.Session(index_cache_size_bytes=INDEX_CACHE_BYTES,
                                               metadata_cache_size_bytes=METADATA_CACHE_BYTES)
            # Every operation sees the latest commit, also one made by another Store (a watcher in
            # this process, an indexer in another): checking costs well under a millisecond.
            self._db = lancedb.connect(str(self.home / LANCE_DIR), read_consistency_interval=timedelta(0),
                                       session=self._db_session)
        return self._db

    def open_writes(self) -> None:
        """Connect LanceDB now (importing it takes about 1 s on a 2-core machine): an index run
        about to write does it in its write stage, so that its summary says where the time went."""
        self.db  # noqa: B018 - (the property connects)

    def _existing(self, name: str):
        """Table ``name``'s dataset for reading, or None where it does not exist yet (a fresh
        home: reading creates nothing, and needs no LanceDB)."""
        try:
            return self._dataset(name, create=False)
        except FileNotFoundError:
            return None

    def _cache_bytes(self) -> int:
        return self._session.size_bytes() + (self._db_session.size_bytes if self._db_session is not None else 0)

    def renew_reads(self, above: int | None = None) -> bool:
        """A new connection, with empty caches, where this one's caches hold more than ``above``
        bytes (default READ_CACHE_RENEW_BYTES); True if so. A long-lived reader calls it when
        the index has a new version: its caches keep what every version it read needed (index
        segments, manifests, file metadata), and it reads only the newest. Tables and datasets
        already handed out keep working on the old caches until they are let go."""
        if self._cache_bytes() <= (READ_CACHE_RENEW_BYTES if above is None else above):
            return False
        self._connect()
        return True

    def _dataset(self, name: str, *, create: bool = True):
        """Table ``name`` for reading: its Lance dataset at the latest version (checked at each
        call, 0.02-0.07 ms). A dataset handed out stays at its version (a new version is a new
        object), so a read running meanwhile in another thread is not disturbed. A missing table
        is created (with its indexes) as ``table`` does, unless not ``create``: then it is
        FileNotFoundError."""
        ds = self._readers.get(name)
        if ds is not None:
            latest = ds.latest_version
            if latest != ds.version:
                ds = self._readers[name] = ds.checkout_version(latest)
            return ds
        import lance

        uri = str(self.home / LANCE_DIR / f"{name}.lance")
        try:
            ds = lance.dataset(uri, session=self._session)
        except ValueError as exc:  # no committed version: no table yet, or a create stopped midway
            if "not found" not in str(exc).lower():
                raise
            if not create:
                raise FileNotFoundError(f"no index at {self.home}: run `codesearch index PATH` first") from None
            self.table(name)  # (created through LanceDB)
            ds = lance.dataset(uri, session=self._session)
        self._readers[name] = ds
        return ds

    # ------------------------------------------------------------------ metadata
    def meta(self) -> dict:
        f = self.home / INDEX_META
        return json.loads(f.read_text()) if f.exists() else {}

    def write_meta(self, **values) -> None:
        meta = self.meta()
        meta.update(values)
        tmp = self.home / (INDEX_META + ".tmp")
        tmp.write_text(json.dumps(meta, indent=2) + "\n")
        os.replace(tmp, self.home / INDEX_META)

    def lock(self) -> "_Lock":
        """Exclusive writer lock (one indexer or watcher per home at a time)."""
        return _Lock(self.home / WRITE_LOCK)

    # ------------------------------------------------------------------ schemas and tables
    def _schema(self, name: str) -> pa.Schema:
        dim = self.dim
        if name == "vectors":
            return pa.schema(
                [
                    pa.field("key", pa.string()),
                    pa.field("n_tokens", pa.int32()),
                    pa.field("tokens", pa.binary()),  # n_tokens codes of bytes_per_token bytes
                    pa.field("pooled", pa.list_(pa.float16(), dim)),
                    # Which stored vector each of the encoder's tokens was merged into (labels of
                    # quant.merge_token_groups: pack_groups); empty: none merged; null: not recorded
                    # (rows written by an earlier version). Read only by `search --explain`.
                    pa.field("groups", pa.binary()),
                ]
            )
        if name == "chunks":
            return pa.schema([pa.field(n, t if t is not None else pa.list_(pa.float16(), dim)) for n, t in CHUNK_FIELDS])
        if name == "files":
            return pa.schema(
                [
                    pa.field("path", pa.string()),
                    pa.field("repo", pa.string()),
                    pa.field("size", pa.int64()),
                    pa.field("mtime_ns", pa.int64()),
                    pa.field("n_chunks", pa.int32()),
                ]
            )
        raise KeyError(name)

    def table(self, name: str, *, create: bool = True):
        """The table ``name``, created (with its scalar indexes) when missing, unless not ``create``:
        then a missing table (e.g. a first run stopped before creating it) is FileNotFoundError."""
        if name not in self._tables:
            try:
                self._tables[name] = self.db.open_table(name)
            except (FileNotFoundError, ValueError):
                if self.dim is None or not create:
                    raise FileNotFoundError(f"no index at {self.home}: run `codesearch index PATH` first")
                tbl = self.db.create_table(name, schema=self._schema(name), exist_ok=True)
                try:
                    for column in self._SCALAR_INDEXES[name]:
                        tbl.create_index(column, config=_index_config("BTree")(), replace=True)
                except BaseException:  # a table is created with its indexes or not at all
                    try:
                        self.db.drop_table(name, ignore_missing=True)
                    except Exception:  # noqa: BLE001 - ensure_scalar_indexes repairs it on the next run
                        pass
                    raise
                self._tables[name] = tbl
        return self._tables[name]

    _SCALAR_INDEXES = {"vectors": ("key",), "chunks": ("key", "path"), "files": ("path",)}

    def ensure_scalar_indexes(self) -> None:
        """Build the scalar indexes a table lacks (a run killed between creating a table and
        indexing it); the indexer calls it under the lock. Costs one listing per table."""
        for name in self.table_names() & set(self._SCALAR_INDEXES):
            have = {c for ix in self._dataset(name).describe_indices() for c in ix.field_names}
            for column in self._SCALAR_INDEXES[name]:
                if column not in have:
                    self.table(name).create_index(column, config=_index_config("BTree")(), replace=True)

    def table_names(self) -> set[str]:
        """The tables of this home: each is a folder ``NAME.lance`` (as LanceDB lists them)."""
        folder = self.home / LANCE_DIR
        if not folder.is_dir():
            return set()
        return {p.name[: -len(".lance")] for p in folder.iterdir() if p.name.endswith(".lance") and p.is_dir()}

    def has_index(self) -> bool:
        return "chunks" in self.table_names()

    def forget(self) -> None:
        """Open the tables and read the codec again at their next use: another process (an
        index run in a child, another ``codesearch index``) may have replaced them."""
        self._tables.clear()
        self._readers.clear()
        self._codec = None

    def reset(self) -> None:
        """Drop every table (used when the model, and so the vector space, changed)."""
        for name in ("vectors", "chunks", "files"):
            if name in self.table_names():
                self.db.drop_table(name)
        self._tables.clear()
        self._readers.clear()
        self._codec = None
        from codesearch.indexer.quant import CODEC_FILE

        (self.home / CODEC_FILE).unlink(missing_ok=True)
        fts = self.home / FTS_STATE
        fts.unlink(missing_ok=True)

    # ------------------------------------------------------------------ damage
    _CHECK_COLUMN = {"vectors": "key", "chunks": "key", "files": "path"}

    def check_tables(self, *, full: bool = True) -> dict[str, str]:
        """Tables that cannot be read: name -> the first line of the error (empty when healthy).

        ``full`` reads every column of every row (``doctor``); otherwise the table is opened,
        counted and one small column read fully (the cheap check ``index`` runs at its start).
        """
        damage: dict[str, str] = {}
        try:
            present = self.table_names()
        except Exception as exc:  # noqa: BLE001 - the database folder itself is unreadable
            return {"lance": _first_line(exc)}
        for name in ("vectors", "chunks", "files"):
            if name not in present:
                continue
            try:
                ds = self._dataset(name)
                n = ds.count_rows()
                cols = None if full else [self._CHECK_COLUMN[name]]
                seen = sum(b.num_rows for b in ds.to_batches(columns=cols, batch_size=4096))
                if seen != n:
                    damage[name] = f"read {seen} of {n} rows"
            except Exception as exc:  # noqa: BLE001 - any failure to read is damage
                self._tables.pop(name, None)
                self._readers.pop(name, None)
                damage[name] = _first_line(exc)
        return damage

    def salvage_table(self, name: str) -> tuple[int, int | None]:
        """Recreate a damaged table with every row that can still be read; (kept, total or None).

        Rows are streamed until the first failed read (the fragments before the damaged one);
        the table is then dropped and created again with its indexes, holding those rows. What
        is lost is rebuilt by ``doctor --fix``: chunk rows and file records from the files on
        disk, vectors by embedding only the keys no longer stored.
        """
        total: int | None = None
        batches: list = []
        try:
            tbl = self.db.open_table(name)
            try:
                total = tbl.count_rows()
            except Exception:  # noqa: BLE001
                total = None
            for batch in tbl.search().limit(None).to_batches(4096):
                batches.append(batch)
        except Exception:  # noqa: BLE001 - keep what was read before the failure
            pass
        schema = self._schema(name)
        rows = [_with_columns(pa.Table.from_batches([b]), schema).select(schema.names).cast(schema) for b in batches if b.num_rows]
        kept = pa.concat_tables(rows) if rows else None
        if kept is not None and name in self._CHECK_COLUMN:  # a row read twice is kept once
            kept = _unique_rows(kept, "id" if name == "chunks" else self._CHECK_COLUMN[name])
        self._tables.pop(name, None)
        self._readers.pop(name, None)
        self.db.drop_table(name, ignore_missing=True)
        tbl = self.table(name)  # created afresh, with its scalar indexes
        if kept is not None and kept.num_rows:
            tbl.add(kept)
        if name == "chunks":
            self.write_meta(ann_rows=0)  # the ANN index went with the table
        return (kept.num_rows if kept is not None else 0), total

    # ------------------------------------------------------------------ files
    def file_states(self, under: Sequence[Path] | None = None) -> dict[str, tuple[int, int]]:
        """path -> (size, mtime_ns) for recorded files, optionally only those under some roots."""
        data = self._recorded(["path", "size", "mtime_ns"], _under_filter(under))
        if data is None:
            return {}
        paths = data.column("path").to_pylist()
        sizes = data.column("size").to_pylist()
        mtimes = data.column("mtime_ns").to_pylist()
        return {p: (s, m) for p, s, m in zip(paths, sizes, mtimes)}

    def file_records(self, under: Sequence[Path] | None = None) -> dict[str, tuple[int, int, str]]:
        """path -> (size, mtime_ns, repo) for recorded files, optionally only those under some roots."""
        return _records(self._recorded(_RECORD_COLUMNS, _under_filter(under)))

    def file_records_at(self, paths: Sequence[str]) -> dict[str, tuple[int, int, str]]:
        """Like ``file_records`` for files at or below each of ``paths`` (files or folders)."""
        out: dict[str, tuple[int, int, str]] = {}
        paths = list(dict.fromkeys(str(p) for p in paths))
        if len(paths) > 200:  # cheaper to read every record once than to OR hundreds of patterns
            prefixes = set(paths)
            return {p: rec for p, rec in self.file_records().items() if _has_prefix(p, prefixes)}
        for i in range(0, len(paths), 100):
            part = paths[i : i + 100]
            where = sql_in("path", part) + " OR " + " OR ".join(sql_like_prefix("path", _dir_prefix(Path(p))) for p in part)
            out.update(_records(self._recorded(_RECORD_COLUMNS, where)))
        return out

    def _recorded(self, columns: list[str], where: str | None) -> pa.Table | None:
        """``columns`` of the file records passing ``where`` (None: all); None before the first
        file is recorded (reading creates no table)."""
        ds = self._existing("files")
        return None if ds is None else ds.to_table(columns=columns, filter=where)

    def record_files(self, rows: list[dict]) -> None:
        if not rows:
            return
        data = pa.Table.from_pylist(rows, schema=self._schema("files"))
        self.table("files").merge_insert("path").when_matched_update_all().when_not_matched_insert_all().execute(data)

    def forget_files(self, paths: Sequence[str]) -> None:
        """Remove files (and their chunks) from the index."""
        for i in range(0, len(paths), _BATCH_IN):
            part = paths[i : i + _BATCH_IN]
            self.table("chunks").delete(sql_in("path", part))
            self.table("files").delete(sql_in("path", part))

    # ------------------------------------------------------------------ vectors
    def existing_keys(self, keys: Iterable[str]) -> set[str]:
        keys = list(dict.fromkeys(keys))
        found: set[str] = set()
        ds = self._existing("vectors")
        if ds is None:
            return found
        for i in range(0, len(keys), _BATCH_IN):
            part = keys[i : i + _BATCH_IN]
            data = ds.to_table(columns=["key"], filter=sql_in("key", part))
            found.update(data.column("key").to_pylist())
        return found

    @property
    def codec(self):
        """The token codec of this index (see ``quant.py``), or None before the first index run."""
        from codesearch.indexer.quant import TokenCodec

        if getattr(self, "_codec", None) is None:
            self._codec = TokenCodec.load(self.home)
        return self._codec

    def set_codec(self, codec) -> None:
        codec.save(self.home)
        self._codec = codec

    @property
    def token_merge(self) -> float | None:
        """Cosine above which a chunk's token vectors are merged before storing (``quant.merge_tokens``)."""
        value = self.meta().get("token_merge")
        return float(value) if value else None

    def add_vectors(self, items: Sequence[tuple[str, np.ndarray, np.ndarray]], *, rotated: bool = False) -> None:
        """Store (key, token vectors, pooled vector) triples.

        ``rotated``: the token vectors are already in the scoring space (``scoring_query``).
        """
        if not items:
            return
        from codesearch.indexer.quant import merge_token_groups

        dim, codec = self.dim, self.codec
        if codec is None:
            raise RuntimeError("the index has no token codec yet (Indexer.prepare sets it)")
        merge = self.token_merge
        merged = [merge_token_groups(v, merge) for _, v, _ in items]
        kept = [m for m, _ in merged]
        groups = [pack_groups(labels) for _, labels in merged]
        # Chunk by chunk: numpy rounds a row of a matrix product differently in a taller matrix,
        # so coding a whole group at once would make a chunk's codes depend on its batch-mates.
        codes = np.concatenate([codec.encode(v, rotated=rotated) for v in kept])
        n_tokens = np.array([len(v) for v in kept], np.int64)
        offsets = np.concatenate([[0], np.cumsum(n_tokens * codec.bytes_per_token)]).astype(np.int32)
        tokens = pa.Array.from_buffers(pa.binary(), len(items), [None, pa.py_buffer(offsets), pa.py_buffer(codes.tobytes())])
        pooled = np.stack([p for _, _, p in items]).astype(np.float16).reshape(-1)
        data = pa.table(
            {
                "key": [k for k, _, _ in items],
                "n_tokens": pa.array(n_tokens, pa.int32()),
                "tokens": tokens,
                "pooled": pa.FixedSizeListArray.from_arrays(pa.array(pooled, pa.float16()), dim),
                "groups": pa.array(groups, pa.binary()),
            },
            schema=self._schema("vectors"),
        )
        tbl = self.table("vectors")
        if not self._vectors_have_groups:
            if "groups" not in tbl.schema.names:  # a table of an earlier version: its rows stay unrecorded
                tbl.add_columns({"groups": "CAST(NULL AS BINARY)"})
            self._vectors_have_groups = True
        tbl.add(data)

    def get_groups(self, keys: Sequence[str]) -> dict[str, np.ndarray | None]:
        """key -> the stored vector each encoder token of that chunk was merged into (None: not
        recorded; the identity when nothing was merged)."""
        ds = self._dataset("vectors", create=False)
        if "groups" not in ds.schema.names:
            return dict.fromkeys(keys)
        out: dict[str, np.ndarray | None] = {}
        keys = list(dict.fromkeys(keys))
        for i in range(0, len(keys), _BATCH_IN):
            data = ds.to_table(columns=["key", "n_tokens", "groups"], filter=sql_in("key", keys[i : i + _BATCH_IN]))
            for key, n, raw in zip(data.column("key").to_pylist(), data.column("n_tokens").to_pylist(), data.column("groups").to_pylist()):
                out[key] = None if raw is None else unpack_groups(raw, n)
        return out

    def _fetch_tokens(self, keys: Sequence[str]) -> Iterator[pa.Table]:
        keys = list(dict.fromkeys(keys))
        ds = self._dataset("vectors")
        for i in range(0, len(keys), _BATCH_IN):
            part = keys[i : i + _BATCH_IN]
            yield ds.to_table(columns=["key", "n_tokens", "tokens"], filter=sql_in("key", part))

    def get_vectors(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """key -> (n_tokens, dim) float32 token vectors, decoded back into the encoder's space."""
        out: dict[str, np.ndarray] = {}
        for data in self._fetch_tokens(keys):
            out.update(_owned(_unpack_tokens(data, self.codec, original=True)))
        return out

    def get_scoring_vectors(self, keys: Sequence[str], *, float32: bool = False,
                            rows: VectorRows | None = None) -> dict[str, np.ndarray]:
        """key -> (n_tokens, dim) float16 token vectors in the scoring space (see ``scoring_query``);
        ``float32``: the same values in float32 (what a search multiplies). ``rows``: read the keys
        it places by position (see :class:`VectorRows`), the rest by key."""
        out: dict[str, np.ndarray] = {}
        placed = rows.take(keys) if rows is not None and keys else None
        if placed is not None:
            out.update(_owned(_unpack_tokens(placed, self.codec, float32=float32)))
            keys = [k for k in keys if k not in out]
        for data in self._fetch_tokens(keys):
            out.update(_owned(_unpack_tokens(data, self.codec, float32=float32)))
        return out

    def vector_rows(self) -> VectorRows:
        """Where each key's token vectors lie in the vectors table as it is now (see VectorRows)."""
        return VectorRows(self.snapshot("vectors"))

    def snapshot(self, table: str):
        """Table ``table`` as it is now, held at that version: a Lance dataset, read with
        ``to_table`` and ``take``. A position in it always holds the same row, so rows can be read
        back by position, without a filter and without checking what they hold; once a clean-up
        has removed that version's files (the home keeps a minute of versions), reading raises."""
        return self._dataset(table, create=False)  # (a missing table is an error here, not created)

    def scoring_query(self, q_tokens: np.ndarray) -> np.ndarray:
        """Query token vectors in the space of ``get_scoring_vectors`` (a rotation for the bit codecs)."""
        return self.codec.query(q_tokens)

    def get_pooled(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        keys = list(dict.fromkeys(keys))
        ds = self._dataset("vectors")
        for i in range(0, len(keys), _BATCH_IN):
            part = keys[i : i + _BATCH_IN]
            data = ds.to_table(columns=["key", "pooled"], filter=sql_in("key", part))
            vecs = data.column("pooled").combine_chunks().values.to_numpy(zero_copy_only=False).reshape(-1, self.dim)
            out.update(zip(data.column("key").to_pylist(), vecs.astype(np.float32)))
        return out

    def iter_all_vectors(self, batch_rows: int = 2048, *, scoring: bool = False) -> Iterator[dict[str, np.ndarray]]:
        """Every stored token matrix, a batch at a time: decoded into the encoder's space, or
        with ``scoring`` left in the scoring space (as ``get_scoring_vectors`` returns them)."""
        for batch in self._dataset("vectors").to_batches(columns=["key", "n_tokens", "tokens"], batch_size=batch_rows):
            yield _unpack_tokens(batch, self.codec, original=not scoring)

    # ------------------------------------------------------------------ chunks
    def replace_file_chunks(self, paths: Sequence[str], rows: list[dict]) -> None:
        """Atomically make ``rows`` the only chunks of ``paths`` (one commit)."""
        if not paths:
            return
        data = pa.Table.from_pylist(rows, schema=self._schema("chunks"))
        (
            self.table("chunks")
            .merge_insert("id")
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .when_not_matched_by_source_delete(sql_in("path", paths))
            .execute(data)
        )

    # ------------------------------------------------------------------ reads
    # The way in for every reader (search, doctor, bench, the trainer, the filter checks):
    # callers name tables, columns and SQL filters, never Lance's or LanceDB's query API.
    def read(self, table: str, columns: Sequence[str], *, where: str | None = None, limit: int | None = None,
             row_ids: bool = False) -> pa.Table:
        """``columns`` of the rows of ``table`` passing ``where`` (all: None), at most ``limit``
        of them; with ``row_ids`` also each row's ``_rowid``."""
        return self._dataset(table).to_table(columns=list(columns), filter=where or None, limit=limit, with_row_id=row_ids or None)

    def count_rows(self, table: str, where: str | None = None) -> int:
        return self._dataset(table).count_rows(where) if where else self._dataset(table).count_rows()

    def version(self, table: str) -> int:
        """The latest version of ``table`` (FileNotFoundError when it is missing: never created here)."""
        return self._dataset(table, create=False).version

    def values(self, table: str, column: str, *, where: str | None = None, limit: int | None = None) -> list:
        """Every value of one column (of the rows passing ``where``)."""
        return self.read(table, [column], where=where, limit=limit).column(column).to_pylist()

    def rows_by_id(self, table: str, row_ids: Sequence[int], columns: Sequence[str]) -> pa.Table:
        """``columns`` (and ``_rowid``) of the rows with these LanceDB row ids: rows of another
        table version may hold other chunks by now (callers check the ids they get back)."""
        return self._dataset(table)._take_rows(list(row_ids), columns=["_rowid", *columns])

    def nearest_chunks(self, vector, n: int, columns: Sequence[str], *, where: str | None = None, exact: bool = False,
                       nprobes: int | None = None, refine: int = 1) -> pa.Table:
        """The ``n`` chunks whose pooled vector is nearest ``vector`` (cosine; ``_distance`` and
        ``_rowid`` with ``columns``): exactly, or through the IVF index where there is one
        (``nprobes`` partitions, re-ranked over ``refine`` times as many rows)."""
        nearest = {"column": "pooled", "q": np.asarray(vector, np.float32), "k": n, "metric": "cosine"}
        if exact:
            nearest["use_index"] = False
        else:
            if nprobes:
                nearest["nprobes"] = nprobes
            if refine > 1:
                nearest["refine_factor"] = refine
        return self._dataset("chunks").to_table(columns=[*columns, "_distance"], nearest=nearest, filter=where or None,
                                                prefilter=True, with_row_id=True)

    def full_text(self, words: Sequence[str], n: int, columns: Sequence[str], *, where: str | None = None) -> pa.Table:
        """The ``n`` chunks best matching ``words`` in the full-text column (BM25; ``_score`` and
        ``_rowid`` with ``columns``)."""
        query = {"query": " ".join(words), "columns": ["search_text"]}
        return self._dataset("chunks").to_table(columns=[*columns, "_score"], full_text_query=query, filter=where or None,
                                                prefilter=True, limit=n, with_row_id=True)

    def count_chunks(self, where: str | None = None) -> int:
        return self.count_rows("chunks", where)

    # ------------------------------------------------------------------ maintenance
    def optimize(self, keep_versions_seconds: float = KEEP_VERSIONS_SECONDS, *, ann: bool = True) -> None:
        """Compact small commits, index new rows, drop old table versions (``_upkeep``).

        With ``ann``, also builds the ANN index of the pooled vectors once the chunks table
        reaches ``ann_min_rows``, and rebuilds it when the table doubled since it was trained
        (new rows in between go to the existing partitions, in new segments of the index). An
        index run's upkeep between commits passes ``ann=False`` and leaves the build to the run's
        last upkeep: the build reads every pooled vector and part of that memory stays held, so
        it costs least once the encoder is done (docs/speed.md, "The IVF build at the run's end").
        """
        from codesearch.heap import release_free_heap

        self.ensure_fts_index()
        present = self.table_names()
        for name in ("vectors", "chunks", "files"):
            if name in present:
                # Keep the last minute of versions: a search running meanwhile may still read one.
                self._upkeep(name, older_than=timedelta(seconds=keep_versions_seconds))
        # A compaction rewrites the token-vector table and frees what it read and wrote; glibc
        # kept those pages (an index run's RSS grew by them between compactions).
        release_free_heap()
        if ann and "chunks" in present:
            self.ensure_ann_index()
            release_free_heap()

    def _lance(self, name: str):
        """The Lance dataset of table ``name`` at its latest version (caches as bounded as ours)."""
        return self.table(name).to_lance(index_cache_size_bytes=INDEX_CACHE_BYTES, metadata_cache_size_bytes=METADATA_CACHE_BYTES)

    def _upkeep(self, name: str, *, older_than: timedelta, delete_unverified: bool = False) -> None:
        """Compact table ``name``'s small fragments, index its new rows, drop versions older than
        ``older_than``: with memory bounded by FRAGMENT_ROWS and SEGMENT_MERGE_ROWS, not by the table."""
        self._lance(name).optimize.compact_files(target_rows_per_fragment=FRAGMENT_ROWS)
        ds = self._lance(name)
        ds.optimize.optimize_indices(num_indices_to_merge=0)  # the new rows, as a new segment of each index
        for index, k in _segments_to_merge(ds):
            self._lance(name).optimize.optimize_indices(index_names=[index], num_indices_to_merge=k)
        self._cleanup(name, older_than, delete_unverified)

    def _cleanup(self, name: str, older_than: timedelta, delete_unverified: bool = False) -> None:
        self._lance(name).cleanup_old_versions(older_than=older_than, delete_unverified=delete_unverified)

    def has_ann_index(self) -> bool:
        return any("pooled" in ix.field_names for ix in self._dataset("chunks").describe_indices())

    def ensure_ann_index(self, min_rows: int | None = None, *, force: bool = False) -> bool:
        """Build (or rebuild) the IVF index on ``chunks.pooled`` when due; True if one exists.

        IVF_SQ (8-bit scalar quantisation, cosine): measured here it builds ~20x faster than
        IVF_PQ on 2 cores and, re-ranked by exact MaxSim, loses nothing measurable (see bench).
        """
        min_rows = self.ann_min_rows if min_rows is None else min_rows
        n = self.count_rows("chunks")
        has = self.has_ann_index()
        trained = int(self.meta().get("ann_rows") or 0)
        if not force and (n < min_rows or (has and n <= 2 * max(trained, 1))):
            return has
        if n == 0:
            return False
        partitions = max(8, min(4096, n // ANN_ROWS_PER_PARTITION))
        self.table("chunks").create_index("pooled", config=_index_config("IvfSq")(distance_type="cosine", num_partitions=partitions), replace=True)
        self.write_meta(ann_rows=n, ann_partitions=partitions)
        return True

    def ensure_fts_index(self) -> None:
        ds = self._dataset("chunks")
        if not any("search_text" in ix.field_names for ix in ds.describe_indices()) and ds.count_rows() > 0:
            self.table("chunks").create_index(
                "search_text",
                config=_index_config("FTS")(base_tokenizer="whitespace", lower_case=True, stem=False, remove_stop_words=False, ascii_folding=True),
                replace=True,
            )

    def gc(self) -> int:
        """Delete cached vectors no chunk refers to any more; returns how many."""
        live = set(self.values("chunks", "key"))
        all_keys = self.values("vectors", "key")
        dead = [k for k in set(all_keys) if k not in live]
        for i in range(0, len(dead), _BATCH_IN):
            self.table("vectors").delete(sql_in("key", dead[i : i + _BATCH_IN]))
        return len(dead)

    def live_bytes(self) -> int:
        """Bytes of the current version of every table and its indexes (what stays after cleanup)."""
        total = 0
        for name in self.table_names() & {"vectors", "chunks", "files"}:
            tbl = self.table(name)
            total += int(tbl.stats().get("total_bytes") or 0)
            total += sum(int(getattr(ix, "size_bytes", 0) or 0) for ix in tbl.list_indices())
        return total

    def disk_full(self, pending_chunks: int = 0) -> DiskFull:
        """The error for a write that found the disk full, with the space a rerun needs: room to
        rewrite the tables once (compaction writes the new files before dropping the old) plus
        ``pending_chunks`` more chunks at this index's size per chunk (16 KB when it is empty)."""
        import shutil

        try:
            free = shutil.disk_usage(self.home).free
        except OSError:
            free = 0
        try:
            live = self.live_bytes()  # reads only: no table is created here
            n = self.count_chunks() if "chunks" in self.table_names() else 0
        except Exception:  # noqa: BLE001 - an estimate: never hide the real error behind another
            live, n = self.disk_bytes(), 0
        per_chunk = live / n if n else 16_000
        return DiskFull(self.home, free, int(live + pending_chunks * per_chunk) + (1 << 20))

    def disk_bytes(self) -> int:
        return sum(f.stat().st_size for f in (self.home / LANCE_DIR).rglob("*") if f.is_file())

    def drop_superseded_versions(self, *, grace_s: float | None = None,
                                 min_bytes: int | None = None, unverified: bool = False) -> int:
        """After ``optimize``, under the lock: delete every table version but the latest, and
        the files only they use (the uncompacted fragments), when that frees at least
        ``min_bytes`` and a quarter of the live size; returns the bytes freed.

        ``optimize`` keeps the last minute of versions for searches in flight, so right after
        an ``index`` run that was every commit of the run (about twice the compacted size).
        Nothing writes meanwhile (the lock), so each old version was superseded before this
        call; waiting ``grace_s`` lets a search that opened one just before finish.
        ``unverified``: also delete data files no version refers to, however new (the partial
        files of a write that failed, e.g. on a full disk); safe under the lock only.
        """
        grace_s = SUPERSEDED_GRACE_S if grace_s is None else grace_s
        min_bytes = SUPERSEDED_MIN_BYTES if min_bytes is None else min_bytes
        live = self.live_bytes()
        disk = self.disk_bytes()
        if min_bytes and disk - live < max(min_bytes, live // 4):  # min_bytes=0: whatever it frees
            return 0
        time.sleep(grace_s)
        for name in ("vectors", "chunks", "files"):
            if name in self.table_names():
                self._cleanup(name, timedelta(0), unverified)
        return disk - self.disk_bytes()


def _segments_to_merge(ds) -> list[tuple[str, int]]:
    """(index name, how many of its newest segments to merge) for each index of Lance dataset
    ``ds`` whose newest segments, SEGMENT_MERGE_AT or more, hold SEGMENT_MERGE_ROWS rows or fewer
    together. Segments stay at most that big, so a merge never reads a whole big index: an index
    over N rows keeps at most about 2N / SEGMENT_MERGE_ROWS + SEGMENT_MERGE_AT segments (3 at
    117k chunks), which each search reads."""
    rows = {f.fragment_id: f.metadata.physical_rows for f in ds.get_fragments()}
    merges = []
    for ix in ds.describe_indices():
        found = [(s.dataset_version_at_last_update, sum(rows.get(f, 0) for f in s.fragment_ids)) for s in ix.segments]
        k = total = 0
        for _, n in sorted(found, reverse=True):  # newest first, as Lance merges them
            if total + n > SEGMENT_MERGE_ROWS:
                break
            total += n
            k += 1
        if k >= SEGMENT_MERGE_AT:
            merges.append((ix.name, k))
    return merges


_RECORD_COLUMNS = ["path", "size", "mtime_ns", "repo"]


def _records(data: pa.Table | None) -> dict[str, tuple[int, int, str]]:
    if data is None:  # (no file recorded yet)
        return {}
    cols = [data.column(c).to_pylist() for c in _RECORD_COLUMNS]
    return {p: (s, m, r) for p, s, m, r in zip(*cols)}


def _under_filter(under: Sequence[Path] | None) -> str | None:
    """The filter of the file records under some roots (None: every record)."""
    return " OR ".join(sql_like_prefix("path", _dir_prefix(p)) for p in under) if under else None


def _unique_rows(data: pa.Table, column: str) -> pa.Table:
    seen: set = set()
    keep = []
    for i, v in enumerate(data.column(column).to_pylist()):
        if v not in seen:
            seen.add(v)
            keep.append(i)
    return data if len(keep) == data.num_rows else data.take(keep)


def _has_prefix(path: str, prefixes: set[str]) -> bool:
    """Whether ``path`` or one of its ancestor folders is in ``prefixes``."""
    while True:
        if path in prefixes:
            return True
        parent = os.path.dirname(path)
        if parent == path:
            return False
        path = parent


def _dir_prefix(path: Path) -> str:
    s = str(path)
    return s if s.endswith("/") else s + "/"


class VectorRows:
    """Where each key's token vectors lie in one version of the vectors table, so that a search
    reads its candidates' vectors by position rather than through an ``IN (...)`` filter on the
    key. Holds that version's Lance dataset and its keys sorted (40 bytes a chunk), and reads
    only the ``tokens`` column: a position of a version always holds the same row, so neither
    the key nor the token count need reading (the count is the value's length over the codec's
    bytes per token). 150 candidates' vectors at 100k chunks took 8.0 ms through LanceDB's
    ``take_offsets`` of key, count and tokens (10.9 ms by key) and take 1.8 ms so (docs/speed.md).

    Keys written after that version are not found here, and the caller reads them by key. A
    version whose files a clean-up has removed since (the home keeps a minute of versions)
    cannot be read: ``take`` then raises, and the caller reads by key and places the keys of
    the newest version (``stale`` marks the rows to replace)."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset  # (one version: lance.dataset(...) of the vectors table)
        keys = np.array([k.encode() for k in dataset.to_table(columns=["key"]).column("key").to_pylist()], dtype=bytes)
        self.order = np.argsort(keys, kind="stable")
        self.keys = keys[self.order]
        self.stale = False

    def take(self, keys: Sequence[str]) -> pa.Table | None:
        """``key`` and ``tokens`` of the rows of ``keys`` that this version holds, in the order
        of their positions (None if none)."""
        size = self.keys.dtype.itemsize
        wanted = np.array([b for b in (k.encode() for k in keys) if len(b) <= size], dtype=self.keys.dtype)
        positions, at = sorted_positions(self.keys, self.order, wanted)
        if not len(positions):
            return None
        tokens = self.dataset.take(positions.tolist(), columns=["tokens"]).column("tokens")
        names = pa.array([k.decode() for k in self.keys[at]], pa.string())
        return pa.table({"key": names, "tokens": tokens})


def sorted_positions(values: np.ndarray, order: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where the ``wanted`` values lie in a table whose column, sorted, is ``values`` (``order``:
    each sorted value's position in the table): their positions, ascending and each once, and
    each one's index in ``values``. Values the column lacks are left out."""
    if not len(wanted) or not len(values):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    at = np.minimum(np.searchsorted(values, wanted), len(values) - 1)
    found = at[values[at] == wanted]
    positions, first = np.unique(order[found], return_index=True)
    return positions, found[first]


def _unpack_tokens(data: pa.Table | pa.RecordBatch, codec, original: bool = False, float32: bool = False) -> dict[str, np.ndarray]:
    """Decode a batch of ``tokens`` values (all rows' codes at once, then split per row):
    float16 in the scoring space, float32 with ``float32``, or float32 in the encoder's space with
    ``original``."""
    keys = data.column("key").to_pylist()
    if not keys:
        return {}
    col = data.column("tokens")
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    offsets = np.frombuffer(col.buffers()[1], np.int32)[col.offset : col.offset + len(col) + 1]
    raw = np.frombuffer(col.buffers()[2], np.uint8)[offsets[0] : offsets[-1]]
    bpt = codec.bytes_per_token
    n_tokens = np.diff(offsets).astype(np.int64) // bpt  # (each value is n_tokens codes of bpt bytes)
    decoded = codec.decode_float32(raw.reshape(-1, bpt)) if float32 and not original else codec.decode(raw.reshape(-1, bpt))
    if original:
        decoded = codec.to_original(decoded)
    bounds = np.concatenate([[0], np.cumsum(n_tokens)])
    return {k: decoded[bounds[i] : bounds[i + 1]] for i, k in enumerate(keys)}


def _index_config(name: str):
    """An index configuration class of ``lancedb.index`` (imported when an index is built: a
    search that builds none does not import LanceDB's index module)."""
    from codesearch.lance_import import defer_rest_client

    defer_rest_client()
    import lancedb.index

    return getattr(lancedb.index, name)


def _owned(matrices: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each matrix in its own memory. ``_unpack_tokens`` returns views of one decoded array per
    batch of keys: a caller that keeps some of them (the searcher's token-vector cache, which
    counts ``nbytes`` against its cap) would otherwise keep every batch whole, far past the cap."""
    return {k: v.copy() for k, v in matrices.items()}


class _Lock:
    def __init__(self, path: Path):
        self.path = path
        self.fd: int | None = None

    def __enter__(self) -> "_Lock":
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise IndexLocked(
                f"another codesearch process is writing the index at {self.path.parent}; "
                "wait for it to finish (or stop it) and run again"
            ) from None
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None
