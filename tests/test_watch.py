"""The watcher on real file-system events (inotify), the real model and a real LanceDB index.

"Converged" is checked with ``diagnose(deep=True)``: every file the walker yields is recorded
with its current size and mtime, its stored chunks are exactly the ones cut from its current
text (chunk ids hash path, lines and content), nothing else is stored, no id twice. The
mass-change test also compares with an index built from scratch.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from codesearch.config import load_settings
from codesearch.indexer.pipeline import Indexer
from codesearch.indexer.store import Store
from codesearch.indexer.doctor import diagnose
from codesearch.indexer.watch import Watcher
from codesearch.search import Filters, Searcher

FIB = '''def fibonacci_numbers(n):
    """Yield the first n Fibonacci numbers."""
    a, b = 0, 1
    for _ in range(n):
        yield a
        a, b = b, a + b
'''

CLAMP = '''pub fn clamp_to_range(value: i64, lo: i64, hi: i64) -> i64 {
    if value < lo { lo } else if value > hi { hi } else { value }
}
'''


def _settings(home: Path) -> dict:
    settings = load_settings(config_file=None, home=str(home))
    settings["watch"] = {"debounce_ms": 200, "max_delay_ms": 1000, "optimize_idle_s": 3600}
    return settings


class Env:
    def __init__(self, root: Path, home: Path, encoder):
        self.root = root
        self.settings = _settings(home)
        self.store = Store(home)
        self.encoder = encoder
        self.updates = []
        self.watcher = Watcher(self.store, encoder, self.settings, [root], on_update=self.updates.append)
        self.searcher = None

    def start(self) -> "Env":
        self.watcher.start()
        assert self.watcher.wait_idle(120)
        self.searcher = Searcher(self.store, self.encoder, self.settings)
        return self

    def settle(self) -> None:
        assert self.watcher.wait_idle(60), "the watcher did not settle"
        assert not any(u.error for u in self.updates), [u.error for u in self.updates if u.error]

    def paths(self) -> set[str]:
        rows = self.store.table("chunks").search().select(["path"]).limit(None).to_arrow()
        return {os.path.relpath(p, self.root) for p in rows.column("path").to_pylist()}

    def names(self, query: str, n: int = 3) -> list[tuple[str, str]]:
        return [(r.name, r.rel_path) for r in self.searcher.search(query, limit=n)]

    def converged(self) -> bool:
        d = diagnose(self.store, [self.root], deep=True)
        assert d.ok, d.as_dict(limit=5)
        return True

    def embedded_since(self, n: int) -> int:
        return sum(u.summary.embedded for u in self.updates[n:] if u.summary)


@pytest.fixture
def env(small_repo, tmp_path, encoder):
    e = Env(small_repo, tmp_path / "home", encoder).start()
    yield e
    e.watcher.stop()


def test_create_modify_delete_rename_files_and_folders(env):
    root = env.root
    (root / "src" / "fib.py").write_text(FIB)
    env.settle()
    assert env.names("fibonacci sequence generator", 1) == [("fibonacci_numbers", "src/fib.py")]

    bounds = root / "src" / "bounds.rs"
    bounds.write_text(bounds.read_text() + "\n" + CLAMP)
    env.settle()
    assert env.names("clamp a value into a range", 1) == [("clamp_to_range", "src/bounds.rs")]

    os.rename(root / "src" / "fib.py", root / "src" / "sequences.py")
    env.settle()
    assert env.names("fibonacci sequence generator", 1) == [("fibonacci_numbers", "src/sequences.py")]

    os.rename(root / "proofs", root / "theory")
    env.settle()
    assert not any(p.startswith("proofs/") for p in env.paths())
    assert {"theory/Lists.lean", "theory/Counter.tla", "theory/counter.smt2"} <= env.paths()

    (root / "src" / "cache.py").unlink()
    shutil.rmtree(root / "theory")
    env.settle()
    assert env.paths() == {"src/bounds.rs", "src/sequences.py"}

    (root / "new" / "deep").mkdir(parents=True)  # a folder made with its content at once
    (root / "new" / "deep" / "fib.py").write_text(FIB)
    env.settle()
    assert "new/deep/fib.py" in env.paths()
    assert env.converged()


def test_atomic_saves_and_a_burst_of_writes_are_coalesced(env):
    root = env.root
    bounds = root / "src" / "bounds.rs"
    # An editor's atomic save: write a temporary file, then rename it over the original.
    tmp = root / "src" / ".bounds.rs.swp-tmp"
    tmp.write_text(bounds.read_text() + "\n" + CLAMP)
    os.replace(tmp, bounds)
    # vim's backup dance: move the original away, write a new file, delete the backup.
    cache = root / "src" / "cache.py"
    text = cache.read_text()
    os.rename(cache, root / "src" / "cache.py~")
    cache.write_text(text + "\n\n" + FIB)
    (root / "src" / "cache.py~").unlink()
    env.settle()
    assert env.names("clamp a value into a range", 1) == [("clamp_to_range", "src/bounds.rs")]
    assert env.names("fibonacci sequence generator", 1) == [("fibonacci_numbers", "src/cache.py")]
    assert not any("swp" in p or p.endswith("~") for p in env.paths())

    # 60 writes to one file in about a second: a handful of updates, not 60.
    n = len(env.updates)
    for i in range(60):
        (root / "src" / "counter.py").write_text(f"def counter_{i}():\n    return {i}\n")
        time.sleep(0.015)
    env.settle()
    assert 1 <= len(env.updates) - n <= 4
    found = env.searcher.search("counter", limit=5, filters=Filters(path="src/counter.py"))
    assert [r.name for r in found] == ["counter_59"]
    assert env.converged()


def test_waiting_for_the_watcher_covers_a_rename_that_watchdog_passes_on_late(env):
    """watchdog can hand on an editor's atomic save (a rename) half a second after the kernel
    reported it. Simulated by a change that lands 0.3 s after the wait began (past the 0.2 s
    debounce of these tests, within the 0.75 s the wait allows for that): the wait
    includes it and its update, so the search after it finds the new function."""
    bounds = env.root / "src" / "bounds.rs"
    late = threading.Timer(0.3, lambda: bounds.write_text(bounds.read_text() + "\n" + CLAMP))
    late.start()
    try:
        env.settle()
    finally:
        late.join()
    assert env.names("clamp a value into a range", 1) == [("clamp_to_range", "src/bounds.rs")]


def test_ignore_file_changes_recheck_their_folder(env):
    root = env.root
    (root / ".codesearchignore").write_text("proofs/\n")
    env.settle()
    assert env.paths() == {"src/bounds.rs", "src/cache.py"}
    n = len(env.updates)
    (root / ".codesearchignore").unlink()
    env.settle()
    assert {"proofs/Lists.lean", "proofs/Counter.tla"} <= env.paths()
    assert env.embedded_since(n) == 0  # back from the vector cache
    (root / "src" / ".gitignore").write_text("*.py\n")
    env.settle()
    assert "src/cache.py" not in env.paths() and "src/bounds.rs" in env.paths()
    assert env.converged()


def test_vanishing_files_self_symlink_and_excluded_folders(env):
    root = env.root
    for i in range(20):  # created and deleted before (or while) the watcher reads them
        p = root / "src" / f"flash_{i}.py"
        p.write_text(FIB.replace("fibonacci_numbers", f"flash_{i}"))
        p.unlink()
    (root / "loop").symlink_to(root)  # a folder symlinked into itself
    (root / "target" / "debug").mkdir(parents=True)  # build output: never indexed
    (root / "target" / "debug" / "gen.rs").write_text(CLAMP)
    env.settle()
    paths = env.paths()
    assert not any(p.startswith(("loop/", "target/")) or "flash" in p for p in paths)
    rows = env.store.table("chunks").search().select(["id"]).limit(None).to_arrow().column("id").to_pylist()
    assert len(rows) == len(set(rows))
    assert env.converged()


@pytest.mark.skipif(os.geteuid() == 0, reason="running as root: chmod 000 does not deny access")
def test_a_file_that_becomes_unreadable_leaves_the_index(env):
    cache = env.root / "src" / "cache.py"
    cache.chmod(0)
    try:
        env.settle()
        assert "src/cache.py" not in env.paths()
    finally:
        cache.chmod(0o644)
    env.settle()
    assert "src/cache.py" in env.paths()


def test_a_file_that_becomes_unreadable_leaves_the_index_as_another_user(small_repo, tmp_path):
    """Root reads everything: run the update as an unprivileged user instead."""
    if os.geteuid() != 0:
        pytest.skip("covered by the test above")
    try:
        import pwd

        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no 'nobody' user")
    work = Path(f"/tmp/codesearch-perm-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(mode=0o777)
    try:
        repo = work / "repo"
        shutil.copytree(small_repo, repo)
        for p in [work, *work.rglob("*")]:
            p.chmod(0o777 if p.is_dir() else 0o666)
        script = f"""
import os, json
from pathlib import Path
from codesearch.config import load_settings
from codesearch.indexer.pipeline import Indexer
from codesearch.indexer.store import Store
from codesearch.model import load_encoder
s = load_settings(config_file=None, home="{work}/home")
store = Store(Path(s["home"]))
ix = Indexer(store, load_encoder("default"), s)
ix.run(["{repo}"])
os.chmod("{repo}/src/cache.py", 0)
summary = ix.update(["{repo}"], ["{repo}/src/cache.py"])
paths = store.table("chunks").search().select(["path"]).limit(None).to_arrow().column("path").to_pylist()
print(json.dumps({{"skipped": dict(summary.skipped), "paths": sorted(set(paths))}}))
"""
        env = dict(os.environ, HOME=str(work), HF_HUB_OFFLINE="1")
        try:
            out = subprocess.run(
                [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=str(work),
                preexec_fn=lambda: (os.setgid(nobody.pw_gid), os.setuid(nobody.pw_uid)),
            )
        except PermissionError:
            pytest.skip("the unprivileged user cannot run this Python")
        if out.returncode != 0 and "Permission denied" in out.stderr:
            pytest.skip("the unprivileged user cannot read the installed packages")
        assert out.returncode == 0, out.stderr[-2000:]
        result = json.loads(out.stdout.strip().splitlines()[-1])
        assert result["skipped"] == {"unreadable": 1}
        assert str(repo / "src" / "cache.py") not in result["paths"]
        assert str(repo / "src" / "bounds.rs") in result["paths"]
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                   check=True, capture_output=True)


BODIES = [
    "def parse_duration_{k}(text):\n    number, unit = text[:-1], text[-1]\n    return int(number) * {{'s': 1, 'm': 60}}[unit]\n",
    "def merge_sorted_{k}(a, b):\n    out = []\n    while a and b:\n        out.append(a.pop(0) if a[0] < b[0] else b.pop(0))\n    return out + a + b\n",
    "def retry_backoff_{k}(call, attempts=5):\n    for i in range(attempts):\n        try:\n            return call()\n        except OSError:\n            time.sleep(2 ** i)\n",
]


def _body(i: int, variant: int) -> str:
    # Few distinct texts (so few chunks need the model), many files.
    return BODIES[i % 3].format(k=variant)


def branch_switch_converges(tmp_path, encoder, n_files: int, mass_change: int, switches=("topic", "main", "topic")):
    """A repository with two branches differing in ``n_files`` files (a third deleted, a third
    modified, as many added); the watcher follows each checkout and converges."""
    repo = tmp_path / "repos" / "big"
    (repo / "pkg").mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    for i in range(n_files):
        (repo / "pkg" / f"m{i:04d}.py").write_text(_body(i, i % 4))
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "main")
    _git(repo, "checkout", "-q", "-b", "topic")
    for i in range(0, n_files, 3):
        (repo / "pkg" / f"m{i:04d}.py").unlink()
    for i in range(1, n_files, 3):
        (repo / "pkg" / f"m{i:04d}.py").write_text(_body(i, 4 + i % 3))
    (repo / "lib").mkdir()
    for i in range(len(range(0, n_files, 3))):
        (repo / "lib" / f"n{i:04d}.py").write_text(_body(i, i % 2))
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "topic")
    _git(repo, "checkout", "-q", "main")

    e = Env(repo, tmp_path / "home", encoder)
    e.watcher.mass_change = mass_change
    e.start()
    try:
        assert len(e.paths()) == n_files
        for branch in switches:
            _git(repo, "checkout", "-q", branch)
            e.settle()
            assert e.converged()
        on_topic = switches[-1] == "topic"
        assert len(e.paths()) == n_files
        assert ("lib/n0000.py" in e.paths()) == on_topic and ("pkg/m0000.py" in e.paths()) != on_topic
    finally:
        e.watcher.stop()
    # The same index as one built from scratch.
    clean = Store(tmp_path / "clean")
    Indexer(clean, encoder, _settings(tmp_path / "clean")).run([repo])

    def state(store):
        rows = store.table("chunks").search().select(["path", "start_line", "end_line", "key"]).limit(None).to_arrow()
        return sorted(map(tuple, (r.values() for r in rows.to_pylist())))

    assert state(e.store) == state(clean)
    return e


@pytest.mark.slow  # (over 15 s: .ci/run's slow step)
def test_a_branch_switch_touching_hundreds_of_files_converges(tmp_path, encoder):
    # mass_change 150: the switches (~300 paths) re-walk; smaller batches go path by path.
    branch_switch_converges(tmp_path, encoder, 300, mass_change=150, switches=("topic", "main"))


@pytest.mark.slow
def test_a_2000_file_branch_switch_converges(tmp_path, encoder):
    """The issue's scale: a checkout rewriting 2,000 files, with the default batching."""
    branch_switch_converges(tmp_path, encoder, 3000, mass_change=1000)


def test_searches_keep_answering_and_never_mix_two_versions_of_a_file(env):
    root = env.root
    target = root / "src" / "shapes.py"
    versions = [
        "".join(f"def area_of_{shape}_v{v}(x):\n    return x * x * {i + 1}\n\n\n" for i, shape in enumerate(["square", "disc", "hexagon", "star"]))
        for v in ("a", "b")
    ]
    target.write_text(versions[0])
    env.settle()
    seen, errors, stop = [], [], threading.Event()
    searcher = Searcher(Store(env.store.home), env.encoder, env.settings)  # another reader, as the CLI would be

    def search_loop():
        while not stop.is_set():
            try:
                found = searcher.search("area of a shape", limit=20, filters=Filters(path="src/shapes.py"))
                seen.append({r.name.rsplit("_v", 1)[1] for r in found})
            except Exception as exc:  # noqa: BLE001
                errors.append(repr(exc))

    reader = threading.Thread(target=search_loop)
    reader.start()
    try:
        for i in range(8):
            target.write_text(versions[(i + 1) % 2])
            time.sleep(0.5)
        env.settle()
    finally:
        stop.set()
        reader.join()
    assert not errors, errors[:3]
    assert len(seen) > 5
    assert all(len(s) == 1 and len(next(iter(s))) == 1 for s in seen if s), seen  # one version per answer
    assert {"a", "b"} <= set().union(*seen)
    assert all(len(s) == 1 for s in seen[-1:])


def test_an_idle_watcher_uses_no_cpu(env):
    time.sleep(0.5)
    before = time.process_time()
    time.sleep(3)
    used = time.process_time() - before
    assert used < 0.03 * 3, f"{used:.3f}s of CPU in 3s idle"


@pytest.mark.slow  # (about 23 s: .ci/run runs it in its slow step)
def test_watch_command_updates_an_index_other_processes_search(small_repo, tmp_path):
    home = tmp_path / "home"
    cmd = [sys.executable, "-m", "codesearch.cli", "--home", str(home), "watch", str(small_repo), "--json"]
    # Documents in 8 bits (the default on a CPU without native bfloat16): no torch in a long-lived
    # watcher (codesearch/model/docint8.py).
    env = dict(os.environ, CODESEARCH_DOCUMENT_RUNTIME="int8")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        first = json.loads(proc.stdout.readline())  # the initial pass
        assert first["full"] and first["summary"]["files_indexed"] == 5
        (small_repo / "src" / "fib.py").write_text(FIB)
        update = json.loads(proc.stdout.readline())
        assert not update["full"] and update["summary"]["embedded"] == 1 and update["latency_s"] < 5
        assert "libtorch" not in Path(f"/proc/{proc.pid}/maps").read_text()
        out = subprocess.run(
            [sys.executable, "-m", "codesearch.cli", "--home", str(home), "search", "fibonacci sequence", "--json", "-n", "1"],
            capture_output=True, text=True, check=True,
        )
        assert json.loads(out.stdout)[0]["name"] == "fibonacci_numbers"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


@pytest.mark.slow  # (35 s: four CLI processes; .ci/run's slow step)
def test_watch_command_exits_within_a_second_of_sigint(small_repo, tmp_path):
    """Idle or in the middle of an embed, `watch` exits promptly on Ctrl-C; an abandoned
    update is redone by the next run and the index converges (doctor clean)."""
    from conftest import STDLIB

    home = tmp_path / "home"
    cli = [sys.executable, "-m", "codesearch.cli", "--home", str(home)]
    times = {}
    for case in ("idle", "busy"):
        proc = subprocess.Popen([*cli, "watch", str(small_repo), "--json"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert json.loads(proc.stdout.readline())["full"]  # the initial pass is done
            if case == "busy":  # 8 new modules: an update of a few hundred chunks is embedding
                for p in sorted(p for p in STDLIB.glob("*.py") if 5_000 < p.stat().st_size < 40_000)[:8]:
                    shutil.copy(p, small_repo / p.name)
                time.sleep(1.5)  # past the debounce (0.3 s): the batch is being applied
            started = time.monotonic()
            proc.send_signal(signal.SIGINT)
            rc = proc.wait(30)
            times[case] = time.monotonic() - started
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert rc == 0, proc.stderr.read()
        assert times[case] < 3, times  # measured: 0.07-0.12 s idle, 0.62 s mid-embed (was 2.1 s, 30 s)
    # Whatever the abandoned update left, the next run converges.
    subprocess.run([*cli, "index", str(small_repo)], capture_output=True, text=True, check=True)
    doctor = subprocess.run([*cli, "doctor", str(small_repo)], capture_output=True, text=True)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr


# ---------------------------------------------------------------------------- a damaged index
def _truncate_chunks(home: Path) -> None:
    """As tests/test_damage.py does: half of each data file of the chunks table is gone."""
    for f in (home / "lance" / "chunks.lance" / "data").glob("*.lance"):
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def test_watch_command_refuses_a_damaged_index(small_repo, index_env):
    """Like index and search: checked at start, one line, exit status 2, no traceback."""
    from click.testing import CliRunner

    from codesearch.cli import main

    store, indexer, _ = index_env
    indexer.run([small_repo])
    _truncate_chunks(store.home)
    out = CliRunner().invoke(main, ["--home", str(store.home), "watch", str(small_repo)], catch_exceptions=False)
    assert out.exit_code == 2
    lines = out.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.output, out.output
    assert lines[0].startswith("codesearch: error: index damaged: run codesearch doctor --fix (chunks:"), lines


def test_a_watcher_stops_when_an_update_finds_the_index_damaged(small_repo, tmp_path, encoder):
    """A read error inside an update is not retried forever: the watcher stops and says what to run."""
    e = Env(small_repo, tmp_path / "home", encoder).start()
    try:
        _truncate_chunks(e.store.home)
        (small_repo / "src" / "fib.py").write_text(FIB)
        deadline = time.monotonic() + 60
        while e.watcher.running and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not e.watcher.running, "the watcher kept going over a damaged index"
        assert e.watcher.damaged and e.watcher.damaged.startswith("index damaged: run codesearch doctor --fix (")
        failed = [u for u in e.updates if u.error]
        assert len(failed) == 1 and failed[0].damaged and failed[0].as_dict()["damaged"] is True
    finally:
        e.watcher.stop()


@pytest.mark.slow  # (9 s: .ci/run's slow step; the watcher's own stop is tested in-process above)
def test_watch_command_stops_with_rc_2_when_the_index_turns_out_damaged(small_repo, tmp_path):
    home = tmp_path / "home"
    cmd = [sys.executable, "-m", "codesearch.cli", "--home", str(home), "watch", str(small_repo), "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert json.loads(proc.stdout.readline())["full"]  # the initial pass is done
        _truncate_chunks(home)
        (small_repo / "src" / "fib.py").write_text(FIB)
        rc = proc.wait(60)
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rc == 2, err
    assert "Traceback" not in err, err
    assert err.strip().splitlines()[-1].startswith("codesearch: error: index damaged: run codesearch doctor --fix ("), err
    assert proc.stdout.read() == ""  # no "update failed; retrying" line: it stopped


def test_git_add_of_an_ignored_file_is_picked_up_from_the_git_index(small_repo, tmp_path, encoder, monkeypatch):
    """Nothing but .git/index changes on `git add -f`: the watcher re-checks the files whose
    tracked state changed, and batches in between do not re-run `git ls-files`."""
    import codesearch.indexer.walk as walker

    runs = []
    real = walker._git_tracked
    monkeypatch.setattr(walker, "_git_tracked", lambda r: runs.append(r) or real(r))
    (small_repo / ".gitignore").write_text("*.log\n")
    (small_repo / "notes.log").write_text("def ledger_totals(rows):\n    return sum(r.amount for r in rows)\n")
    e = Env(small_repo, tmp_path / "home", encoder).start()
    try:
        assert "notes.log" not in e.paths()
        before = len(runs)
        for k in range(2):  # two batches, each walking an ignored file: no git run
            (small_repo / f"scratch{k}.log").write_text("ignored\n")
            e.settle()
        assert len(runs) == before
        _git(small_repo, "add", "-f", "notes.log")
        e.settle()
        assert "notes.log" in e.paths()
        _git(small_repo, "rm", "-q", "--cached", "notes.log")
        e.settle()
        assert "notes.log" not in e.paths()
        assert e.converged()
    finally:
        e.watcher.stop()
