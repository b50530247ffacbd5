"""The search service (codesearch/service.py): a real server process over a real index (real
model, real LanceDB, real files), compared with the in-process `codesearch search`."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from codesearch import service
from codesearch.home import IndexHome
from codesearch.cli import main

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"


def _env() -> dict:
    env = dict(os.environ)
    env.pop("CODESEARCH_NO_SERVICE", None)
    return env


def _ping(home: Path) -> dict | None:
    return service.request(home, {"v": service.PROTOCOL, "op": "ping"}, timeout=5)


def _stale_socket(path: Path) -> int:
    """A socket file nobody listens on (what a killed service leaves); its inode."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.close()
    return path.stat().st_ino


@pytest.fixture(scope="module")
def served(encoder):
    """(home, repo, server process, inode of the stale socket the server replaced)."""
    from codesearch.config import load_settings
    from codesearch.indexer.pipeline import Indexer
    from codesearch.indexer.store import Store

    # (Not below pytest's 0700 tmp root: the second-uid test must be able to reach the socket.)
    base = Path(tempfile.mkdtemp(prefix="codesearch-svc-"))
    base.chmod(0o711)
    repo = base / "repos" / "small"
    shutil.copytree(FIXTURES / "repo_small", repo)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    home = base / "home"
    settings = load_settings(config_file=None, home=str(home))
    Indexer(Store(home), encoder, settings).run([repo.parent])
    stale = _stale_socket(IndexHome(home).service_socket)
    assert service.request(home, {"v": service.PROTOCOL, "op": "ping"}) is None  # stale: no answer, no hang
    proc = subprocess.Popen([sys.executable, "-m", "codesearch.cli", "--home", str(home), "serve"], cwd=ROOT,
                            env=_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        while _ping(home) is None:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the service did not come up"
            time.sleep(0.2)
        yield home, repo, proc, stale
    finally:
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stderr.close()
        shutil.rmtree(base, ignore_errors=True)


def _in_process(monkeypatch, encoder, home: Path, args: list[str]):
    """`codesearch search` in this process, as with no service."""
    monkeypatch.setenv("CODESEARCH_NO_SERVICE", "1")
    r = CliRunner().invoke(main, ["--home", str(home), "search", *args])
    return r.stdout, r.stderr, r.exit_code


def _via_service(home: Path, args: list[str]):
    r = subprocess.run([sys.executable, "-m", "codesearch.cli", "--home", str(home), "search", *args], cwd=ROOT,
                       env=_env(), capture_output=True, text=True, timeout=60)
    return r.stdout, r.stderr, r.returncode


def test_service_prints_what_the_in_process_search_prints(served, monkeypatch, encoder):
    home, _, _, _ = served
    # The stale socket was replaced by a live one (the pings answer), 0600 in a 0700 home.
    st = (IndexHome(home).service_socket).stat()
    assert stat.S_ISSOCK(st.st_mode) and st.st_mode & 0o777 == 0o600 and home.stat().st_mode & 0o077 == 0
    cases = [
        ["check if a value is within bounds", "-n", "3"],
        ["evict the least recently used entry", "--json"],
        ["evict the least recently used entry", "--lang", "py", "--method", "dense"],
        ["anything", "--lang", "pyhton"],  # an unknown language: rc 2, one line on stderr
        ["   "],  # an empty query
    ]
    for args in cases:
        before = _ping(home)["served"]
        got = _via_service(home, args)
        assert _ping(home)["served"] == before + 1, f"{args}: not answered by the service"
        want = _in_process(monkeypatch, encoder, home, args)
        assert got == want, args
    assert json.loads(_via_service(home, cases[1])[0])[0]["rel_path"] == "src/cache.py"
    assert _via_service(home, cases[3])[2] == 2


def test_a_search_without_the_service_runs_without_torch(served):
    # With no service (the first search after a reboot), `codesearch search` answers in this
    # process, without importing torch, transformers or peft: those took most of its seconds.
    home, _, _, _ = served
    code = (
        "import sys\nfrom codesearch.cli import main\n"
        "try:\n    main(['--home', sys.argv[1], 'search', 'check if a value is within bounds', '-n', '1'])\n"
        "except SystemExit:\n    pass\n"
        "print('loaded:', sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))"
    )
    env = dict(os.environ, CODESEARCH_NO_SERVICE="1")
    out = subprocess.run([sys.executable, "-c", code, str(home)], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True).stdout
    assert "method contains" in out.splitlines()[0] and out.strip().endswith("loaded: []"), out


def _ask_as(uid: int, sock_path: Path, request: bytes) -> str:
    """(In a forked child) become ``uid``, connect and ask: "error:<exception>" when the connection
    fails, "refused" when the server closes it without a word, else "reply:<reply>"."""
    os.setgid(uid)
    os.setuid(uid)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect(str(sock_path))
    except OSError as exc:
        return f"error:{type(exc).__name__}"
    try:
        s.sendall(request)
        s.shutdown(socket.SHUT_WR)
        reply = s.recv(1 << 16)
    except OSError:
        return "refused"
    return "reply:" + reply.decode(errors="replace") if reply else "refused"


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="needs root to act as a second uid")
def test_another_uid_is_refused(served):
    home, _, _, _ = served
    sock_path = IndexHome(home).service_socket
    request = json.dumps({"v": service.PROTOCOL, "op": "ping"}).encode()

    def as_nobody() -> str:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: become uid 65534, then ask
            os.close(r)
            try:
                out = _ask_as(65534, sock_path, request)
            except BaseException as exc:  # (never let the child run on inside pytest)
                out = f"error:{type(exc).__name__}"
            os.write(w, out.encode())
            os._exit(0)
        os.close(w)
        with os.fdopen(r) as f:
            out = f.read()
        os.waitpid(pid, 0)
        return out

    # The 0700 home and 0600 socket keep another uid out ...
    assert as_nobody().startswith("error:PermissionError")
    # ... and with them loosened, the service itself refuses it (SO_PEERCRED): no answer at all.
    before = _ping(home)["served"]
    home.chmod(0o711)
    sock_path.chmod(0o666)
    try:
        assert as_nobody() == "refused"
    finally:
        sock_path.chmod(0o600)
        home.chmod(0o700)
    assert _ping(home)["served"] == before  # and it still serves its owner


def test_a_stale_socket_is_no_service(tmp_path):
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    _stale_socket(IndexHome(home).service_socket)
    t = time.monotonic()
    assert service.search({"home": str(home), "search": {}}, {"query": "x"}, color=False) is None
    assert time.monotonic() - t < 2
    (IndexHome(home).service_socket).unlink()
    (IndexHome(home).service_socket).write_text("not a socket")
    assert service.search({"home": str(home), "search": {}}, {"query": "x"}, color=False) is None


def test_the_service_sees_a_newly_indexed_file(served, encoder):
    from codesearch.config import load_settings
    from codesearch.indexer.pipeline import Indexer
    from codesearch.indexer.store import Store

    home, repo, _, _ = served
    query = ["convert a temperature from fahrenheit to celsius", "--json", "-n", "3"]
    assert "thermo.py" not in _via_service(home, query)[0]
    (repo / "src" / "thermo.py").write_text(
        'def fahrenheit_to_celsius(degrees_f: float) -> float:\n'
        '    """Convert a temperature in degrees Fahrenheit to degrees Celsius."""\n'
        '    return (degrees_f - 32.0) * 5.0 / 9.0\n'
    )
    settings = load_settings(config_file=None, home=str(home))
    Indexer(Store(home), encoder, settings).run([repo.parent])
    before = _ping(home)["served"]
    out, err, rc = _via_service(home, query)
    assert rc == 0 and _ping(home)["served"] == before + 1, err
    assert json.loads(out)[0]["rel_path"] == "src/thermo.py"


def test_the_service_exits_when_its_home_is_deleted(served):
    home, _, proc, _ = served
    assert proc.poll() is None
    shutil.rmtree(home)
    proc.wait(timeout=15)
    assert proc.returncode == 0


def test_one_service_per_home_and_its_reasons_to_exit(tmp_path, monkeypatch):
    """The real accept loop in this process (no request comes, so no model is loaded)."""
    from codesearch.cli import Context

    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / "index.json").write_text(json.dumps({"model_fingerprint": "a", "dim": 4, "format": 3}))
    config = tmp_path / "config.yaml"
    config.write_text("search:\n  service_idle_s: 0.5\n")
    server = service.Server(Context(str(home), None, str(config), False), str(config))
    assert server.acquire(wait_s=0) and server.bind()
    try:
        other = service.Server(Context(str(home), None, str(config), False), str(config))
        assert not other.acquire(wait_s=0)  # the lock: one service per home
        assert server.exit_reason() is None
        t = time.monotonic()
        assert server.serve_forever() == "idle" and time.monotonic() - t < 5
        server.last_request = time.monotonic()
        (home / "index.json").write_text(json.dumps({"model_fingerprint": "b", "dim": 4, "format": 3}))
        assert server.exit_reason() == "index model or format changed"
        (home / "index.json").write_text(json.dumps({"model_fingerprint": "a", "dim": 4, "format": 3}))
        os.utime(config, ns=(1, 1))
        assert server.exit_reason() == "settings or personal model changed"
    finally:
        server.close()
    assert not (IndexHome(home).service_socket).exists()  # a stopped service leaves no socket behind


def _index_in_a_terminal(home: Path, repo: Path) -> str:
    """`codesearch index REPO` as a person runs it in a terminal (stdin, stdout and stderr a pty);
    what it printed."""
    import pty

    cmd = [sys.executable, "-m", "codesearch.cli", "--home", str(home), "index", str(repo)]
    master, slave = pty.openpty()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    out = b""
    while True:
        try:
            data = os.read(master, 1 << 16)
        except OSError:  # (the pty's other side closed: the command ended)
            break
        if not data:
            break
        out += data
    os.close(master)
    assert proc.wait(timeout=300) == 0, out.decode(errors="replace")
    return out.decode(errors="replace")


def test_an_index_run_in_a_terminal_starts_the_search_service_and_a_script_does_not(tmp_path, monkeypatch, encoder):
    from codesearch.config import load_settings
    from codesearch.indexer.pipeline import Indexer
    from codesearch.indexer.store import Store

    home = tmp_path / "home"
    repo = tmp_path / "repos" / "small"
    shutil.copytree(FIXTURES / "repo_small", repo)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    Indexer(Store(home), encoder, load_settings(config_file=None, home=str(home))).run([repo.parent])
    log = IndexHome(home).service_log
    assert "5 unchanged" in _index_in_a_terminal(home, repo.parent)  # (bringing it up to date: no model to load)
    pid = None
    try:
        deadline = time.monotonic() + 90
        while (reply := _ping(home)) is None:
            assert time.monotonic() < deadline, log.read_text() if log.exists() else "no service was started"
            time.sleep(0.2)
        pid = reply["pid"]
        # The person's first search is answered by the warm service.
        out, err, rc = _via_service(home, ["check if a value is within bounds", "--json"])
        assert rc == 0, err
        assert json.loads(out)[0]["name"] == "contains"
        assert _ping(home)["served"] == reply["served"] + 1
    finally:
        if pid:
            os.kill(pid, 15)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and _ping(home) is not None:
                time.sleep(0.2)
    assert _ping(home) is None and not IndexHome(home).service_socket.exists()

    # A script's run (no terminal) starts none: the service's log is opened before it would start.
    log.unlink()
    monkeypatch.delenv("CODESEARCH_NO_SERVICE", raising=False)
    r = CliRunner().invoke(main, ["--home", str(home), "index", str(repo.parent)])
    assert r.exit_code == 0 and "5 unchanged" in r.stdout, r.output
    assert not log.exists() and _ping(home) is None
