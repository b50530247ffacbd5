"""Fault injection: a failure at every write point of the store, in turn, then a clean rerun.

Everything the indexer writes goes through one of LanceDB's table writes (create, add,
merge_insert, delete, create_index: scalar, full-text and ANN index builds, drop), Lance's
upkeep through pylance (compaction, new rows into the indexes, cleanup of old versions) or the
home's own files (``index.json``, the token codec). A run without faults is recorded first,
listing its writes in order: those are the injection points. Then, for each point in turn, a
run fails at exactly that write, raising what LanceDB or the OS raises (an exception,
``ENOSPC`` or ``EIO``); a second run without faults must leave an index equal to a clean build:
the same chunks, file records, vectors (bit for bit), indexes and metadata, with no compaction
left due.

Two scenarios: the first build of a small real corpus, and an update of that index after
a file changed, one was deleted and one added (deletes and merges). Marked slow (a
step of its own in .ci/run): one test fails the first write of each kind in the first build,
cycling through the three kinds of fault (about 20 s); the other fails every write of both
scenarios with each kind (222 trials, about 1.5 minutes).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import lancedb.db
import lancedb.merge
import lancedb.table
import numpy as np
import pytest
from lance.dataset import DatasetOptimizer, LanceDataset  # (the name lance.dataset is also a function)

from codesearch.config import load_settings
from codesearch.indexer import store as store_mod
from codesearch.indexer.pipeline import Indexer
from codesearch.indexer.quant import TokenCodec
from codesearch.indexer.store import DiskFull, Store

pytestmark = pytest.mark.slow  # (under 2 minutes in all; .ci/run runs it as its own step)

FIXTURES = Path(__file__).parent / "fixtures" / "repo_small"
KINDS = ("exception", "ENOSPC", "EIO")
MTIME_NS = 1_700_000_000_000_000_000

# (owner, attribute, label): every way the store writes to disk.
WRITES = [
    (lancedb.db.LanceDBConnection, "create_table", "create table"),
    (lancedb.db.LanceDBConnection, "drop_table", "drop table"),
    (lancedb.table.LanceTable, "add", "add rows"),
    (lancedb.merge.LanceMergeInsertBuilder, "execute", "merge rows"),
    (lancedb.table.LanceTable, "delete", "delete rows"),
    (DatasetOptimizer, "compact_files", "compact"),
    (DatasetOptimizer, "optimize_indices", "update indexes"),
    (LanceDataset, "cleanup_old_versions", "drop old versions"),
    (lancedb.table.LanceTable, "create_index", lambda args, kwargs: _INDEX_LABELS.get(
        type(kwargs.get("config")).__name__, "build ANN index")),
    (Store, "write_meta", "write metadata"),
    (TokenCodec, "save", "write token codec"),
]


# create_index builds every kind of index; its config says which
_INDEX_LABELS = {"BTree": "build scalar index", "FTS": "build full-text index"}


class Injected(Exception):
    pass


def _fault(kind: str, label: str, python_io: bool) -> BaseException:
    if kind == "exception":
        return Injected(f"injected fault at {label}")
    code, text = (errno.ENOSPC, "No space left on device") if kind == "ENOSPC" else (errno.EIO, "Input/output error")
    if python_io:
        return OSError(code, text)
    return RuntimeError(f"lance error: LanceError(IO): {text} (os error {code}), injected at {label}")


class Faults:
    """Counts the store's writes; fails the ``at``-th one (0-based) with ``kind``."""

    def __init__(self, at: int | None = None, kind: str = "exception"):
        self.at, self.kind = at, kind
        self.calls: list[str] = []

    @contextmanager
    def installed(self):
        saved = [(owner, name, getattr(owner, name)) for owner, name, _ in WRITES]
        for (owner, name, label), (_, _, original) in zip(WRITES, saved):
            setattr(owner, name, self._wrap(original, label, python_io=owner in (Store, TokenCodec)))
        try:
            yield self
        finally:
            for owner, name, original in saved:
                setattr(owner, name, original)

    def _wrap(self, original, label: str, python_io: bool):
        faults = self

        def write(*args, **kwargs):
            n = len(faults.calls)
            named = label(args, kwargs) if callable(label) else label
            faults.calls.append(named)
            if n == faults.at:
                raise _fault(faults.kind, named, python_io)
            return original(*args, **kwargs)

        return write


def _settings(home: Path) -> dict:
    settings = load_settings(config_file=None, home=str(home))
    # Small commit groups, mid-run compaction and an ANN index: every kind of write happens.
    settings.setdefault("index", {}).update(batch_chunks=6, compact_every=3, ann_min_rows=16)
    settings.setdefault("search", {}).update(in_memory_max=0)  # (searches that use the ANN index: it is built)
    return settings


class RememberingEncoder:
    """The real encoder, asked once per text: the hundreds of runs here repeat the same texts.

    A document's vectors do not depend on the batch it is encoded in (test_resume_equal.py),
    so answering a text again from memory is what the model would answer; the store, not the
    model, is under test here."""

    def __init__(self, encoder):
        self._encoder, self._seen = encoder, {}

    def __getattr__(self, name):
        return getattr(self._encoder, name)

    def encode_documents(self, texts, batch_size=32, *, space=None, **kwargs):
        todo = list(dict.fromkeys(t for t in texts if (space, t) not in self._seen))
        if todo:
            tokens, pooled = self._encoder.encode_documents(todo, batch_size=batch_size, space=space, **kwargs)
            self._seen.update({(space, t): (v, p) for t, v, p in zip(todo, tokens, pooled)})
        got = [self._seen[(space, t)] for t in texts]
        return [v for v, _ in got], np.stack([p for _, p in got])


def _index(home: Path, repo: Path, encoder, faults: Faults | None = None):
    store = Store(home)
    indexer = Indexer(store, encoder, _settings(home))
    if faults is None:
        return indexer.run([repo])
    with faults.installed():
        return indexer.run([repo])


def _pin_mtimes(repo: Path) -> None:
    for p in repo.rglob("*"):
        if p.is_file() and ".git" not in p.parts:
            os.utime(p, ns=(MTIME_NS, MTIME_NS))


def _make_v1(repo: Path) -> None:
    if repo.exists():
        shutil.rmtree(repo)
    shutil.copytree(FIXTURES, repo)
    # A few real stdlib modules besides the fixture: enough chunks for several commit groups.
    for name in ("colorsys.py", "bisect.py", "sched.py"):
        shutil.copy(Path(os.__file__).parent / name, repo / "src" / name)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    _pin_mtimes(repo)


def _make_v2(repo: Path) -> None:
    """v1 with one file changed, one deleted and one added."""
    cache = repo / "src" / "cache.py"
    cache.write_text(cache.read_text() + "\n\ndef clear_all(cache):\n    \"\"\"Drop every entry.\"\"\"\n    cache.clear()\n")
    (repo / "src" / "colorsys.py").unlink()
    shutil.copy(Path(os.__file__).parent / "glob.py", repo / "src" / "glob.py")
    _pin_mtimes(repo)


def snapshot(home: Path) -> dict:
    """Everything a search can see, in a comparable form (order and history left out)."""
    store = Store(home, create=False)
    out = {}
    for name, key in (("chunks", "id"), ("files", "path"), ("vectors", "key")):
        rows = store.table(name).search().limit(None).to_arrow().to_pylist()
        out[name] = sorted(rows, key=lambda r: r[key])
        out[name + " indexes"] = sorted(
            (type(ix).__name__, getattr(ix, "index_type", ""), tuple(getattr(ix, "columns", ())))
            for ix in store.table(name).list_indices()
        )
    # The ANN index is trained again when the table has doubled since its last training, so
    # the row count it was trained at depends on the commits so far (as in any two histories).
    out["meta"] = {k: v for k, v in store.meta().items() if k not in ("ann_rows", "ann_partitions")}
    out["codec"] = (home / "token_codec.npz").read_bytes()
    return out


def _diff(got: dict, want: dict) -> list[str]:
    return [k for k in want if got.get(k) != want[k]] + [k for k in got if k not in want]


@pytest.fixture(autouse=True)
def no_grace_for_searches(monkeypatch):
    """No search runs beside these builds, so the wait left to searches still reading an old
    version (2 s, before old versions are dropped) only adds up: every rerun after a fault drops
    them."""
    monkeypatch.setattr(store_mod, "SUPERSEDED_GRACE_S", 0.0)


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory, encoder):
    """Per scenario: how to arrange its state, the clean result, and the writes of a clean run."""
    encoder = RememberingEncoder(encoder)
    base = tmp_path_factory.mktemp("faults")
    repo = base / "repo"
    home_v1 = base / "home-v1"

    def first_build(home: Path) -> None:
        _make_v1(repo)

    def update(home: Path) -> None:
        _make_v1(repo)
        shutil.copytree(home_v1, home)
        _make_v2(repo)

    _make_v1(repo)
    first = Faults()
    _index(home_v1, repo, encoder, first)
    clean = {"first build": (first_build, snapshot(home_v1), first.calls)}

    # The update scenario's clean result: a fresh build of v2 for the chunks, files and
    # indexes; vectors also keep v1's cached rows (dropped by gc only), so those come from an
    # update run without faults.
    probe = base / "home-update-clean"
    update(probe)
    calls = Faults()
    _index(probe, repo, encoder, calls)
    fresh = base / "home-v2-fresh"
    _index(fresh, repo, encoder)
    want = snapshot(probe)
    fresh_snap = snapshot(fresh)
    for k in ("chunks", "files", "chunks indexes", "files indexes"):
        assert want[k] == fresh_snap[k], f"an update without faults differs from a fresh build in {k}"
    clean["update"] = (update, want, calls.calls)
    return repo, clean, encoder


def _points(scenarios) -> list[tuple[str, int, str]]:
    return [(s, i, label) for s, (_, _, calls) in scenarios[1].items() for i, label in enumerate(calls)]


def _trial(tmp_path, scenarios, scenario: str, at: int, kind: str) -> None:
    repo, clean, encoder = scenarios
    arrange, want, calls = clean[scenario]
    home = tmp_path / f"home-{scenario.replace(' ', '-')}-{at}-{kind}"
    arrange(home)
    faults = Faults(at, kind)
    with pytest.raises(Exception) as failed:
        _index(home, repo, encoder, faults)
    label = calls[at]
    after = faults.calls[at + 1 :]  # only a rollback of what the failed write began
    assert set(after) <= {"drop table"}, f"the run went on after the fault at {label}: {after}"
    if kind == "ENOSPC":  # a full disk is one error naming the home, never LanceDB's traceback
        assert isinstance(failed.value, DiskFull) and str(home) in str(failed.value), failed.value
    _index(home, repo, encoder)  # the rerun, with space and no faults
    got = snapshot(home)
    assert not got["meta"].get("compaction_due"), f"compaction still due after the rerun (fault at {label})"
    diff = _diff(got, want)
    assert not diff, f"fault {kind} at write {at} ({label}) of the {scenario}: rerun differs in {diff}"


def test_every_write_point_of_a_clean_run_is_listed(scenarios):
    """The points cover chunk, vector and file commits, deletes, compaction, index builds and metadata."""
    labels = {label for _, _, label in _points(scenarios)}
    wanted = {"create table", "add rows", "merge rows", "delete rows", "compact", "update indexes", "drop old versions",
              "build ANN index", "build full-text index", "build scalar index", "write metadata", "write token codec"}
    assert wanted <= labels, wanted - labels


def _run_trials(tmp_path, scenarios, trials) -> None:
    failures = []
    for scenario, at, kind in trials:
        try:
            _trial(tmp_path, scenarios, scenario, at, kind)
        except AssertionError as exc:
            failures.append(str(exc).splitlines()[0])
    assert not failures, f"{len(failures)} of {len(trials)} faults do not converge:\n" + "\n".join(failures)
    print(f"{len(trials)} faults injected, all converging")


def test_a_fault_at_each_kind_of_write_then_a_rerun_equals_a_clean_build(tmp_path, scenarios):
    """The first write of each kind in the first build, the three faults in turn (quick to run
    by hand; the test below fails every write of both scenarios with each fault)."""
    firsts = {}
    for scenario, at, label in _points(scenarios):
        if scenario == "first build":
            firsts.setdefault((scenario, label), at)
    trials = [(scenario, at, KINDS[n % len(KINDS)]) for n, ((scenario, _), at) in enumerate(firsts.items())]
    _run_trials(tmp_path, scenarios, trials)


def test_every_fault_at_every_write_then_a_rerun_equals_a_clean_build(tmp_path, scenarios):
    """Every write point of both scenarios, each with an exception, ENOSPC and EIO."""
    _run_trials(tmp_path, scenarios, [(s, at, kind) for s, at, _ in _points(scenarios) for kind in KINDS])
