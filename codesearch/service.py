"""The search service: one background process per index home that keeps the model and the index
open, so that `codesearch search` from a shell answers in a fraction of a second instead of
importing LanceDB and loading the model every time (about 2.5 s here; see codesearch/model/query.py).

``codesearch search`` first asks the socket HOME/search.sock (JSON in, JSON out: the command's
stdout, stderr and exit code, made by the very function the in-process path runs). With no live
service it searches in-process as always, then starts one in the background for next time
(``codesearch --home HOME serve``, a hidden command). Off with ``search.service: false`` or
``CODESEARCH_NO_SERVICE=1``.

Safety: the socket lives in the home (0700) and is itself 0600; the service answers only
processes of its own uid (SO_PEERCRED), and the client talks only to a service of its own uid.
One service per home (HOME/search.lock, fcntl); a stale socket (nobody listening) is replaced.
The service exits after ``search.service_idle_s`` seconds without a request, when its home or
socket file goes away (or is replaced), and when what it loaded changed: the index's model
fingerprint, dimension or format, the settings files, a personal model, or codesearch's own code.
The next search starts a fresh one.

The client side (``enabled``, ``search``, ``emit``, ``start``) imports only the standard
library: no torch, transformers, lancedb or numpy before the socket answers.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys
import time
from pathlib import Path

from codesearch.home import IndexHome

PROTOCOL = 1
MAX_MESSAGE = 64 << 20  # replies carry whole result lists (--json, -n 1000)
CONNECT_TIMEOUT_S = 2.0
REPLY_TIMEOUT_S = 120.0  # a search of a huge index; past this the client searches itself
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


# ---------------------------------------------------------------------------- shared
def enabled(settings: dict) -> bool:
    """Whether `codesearch search` may use (and start) the service."""
    if os.environ.get("CODESEARCH_NO_SERVICE", "").strip() not in ("", "0", "false", "no"):
        return False
    if not hasattr(socket, "AF_UNIX") or not hasattr(socket, "SO_PEERCRED"):
        return False
    from codesearch.settings import SearchSettings

    return SearchSettings.from_settings(settings).service


def socket_path(home: str | Path) -> Path:
    return IndexHome(home).service_socket


def _address(path: Path) -> tuple[str, int | None]:
    """A bindable/connectable name for ``path``: itself, or (past the 107-byte limit of socket
    names) the same file through /proc/self/fd of its opened folder. Returns (name, fd to close)."""
    if len(os.fsencode(str(path))) < 100:
        return str(path), None
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    return f"/proc/self/fd/{fd}/{path.name}", fd


def _peer_uid(sock: socket.socket) -> int:
    return _PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))[1]


def _read_all(sock: socket.socket) -> bytes:
    parts, size = [], 0
    while True:
        data = sock.recv(1 << 16)
        if not data:
            return b"".join(parts)
        parts.append(data)
        size += len(data)
        if size > MAX_MESSAGE:
            raise ValueError("message too large")


def _settings_key(settings: dict) -> str:
    """What must be equal for a service to answer a caller (a relative home: the same folder)."""
    return json.dumps({**settings, "home": os.path.abspath(settings["home"])}, sort_keys=True, default=str)


# ---------------------------------------------------------------------------- client
def request(home: str | Path, message: dict, timeout: float = REPLY_TIMEOUT_S) -> dict | None:
    """Send one request to the service of ``home``; its reply, or None when no service of this
    uid answers (no socket, a stale one, a refusal, a timeout, a garbled reply)."""
    path = socket_path(home)
    if not path.exists():
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    fd = None
    try:
        sock.settimeout(CONNECT_TIMEOUT_S)
        addr, fd = _address(path)
        sock.connect(addr)
        if _peer_uid(sock) != os.getuid():
            return None  # never hand a query to (or take output from) another user's process
        sock.settimeout(timeout)
        sock.sendall(json.dumps(message).encode())
        sock.shutdown(socket.SHUT_WR)
        reply = json.loads(_read_all(sock) or b"null")
    except (OSError, ValueError):
        return None
    finally:
        sock.close()
        if fd is not None:
            os.close(fd)
    return reply if isinstance(reply, dict) else None


def search(settings: dict, params: dict, color: bool) -> dict | None:
    """Run `codesearch search` with ``params`` (the command's parameters) on the service; its
    {stdout, stderr, rc}, or None when there is no service to ask (search in-process then)."""
    try:
        key = _settings_key(settings)
    except (TypeError, ValueError):
        return None
    message = {"v": PROTOCOL, "op": "search", "settings": key, "cwd": os.getcwd(), "color": color, "params": params}
    reply = request(settings["home"], message)
    if not reply or reply.get("ok") is not True:
        return None
    if not isinstance(reply.get("stdout"), str) or not isinstance(reply.get("stderr"), str) or not isinstance(reply.get("rc"), int):
        return None
    return reply


def emit(reply: dict) -> None:
    """Print a service reply as the in-process command would have, and exit with its code."""
    if reply["stdout"]:
        sys.stdout.write(reply["stdout"])
        sys.stdout.flush()
    if reply["stderr"]:
        sys.stderr.write(reply["stderr"])
        sys.stderr.flush()
    sys.exit(reply["rc"])


def start(settings: dict, model: str | None = None, config_file: str | None = None) -> bool:
    """Start a detached service for this home (it gives up at once if one runs already).
    Never raises: the search it follows has done its job either way."""
    import subprocess

    home = IndexHome.of(settings)
    if not home.has_index():
        return False
    # This very codesearch package first on the path (a checkout may shadow an installed copy),
    # run in the caller's folder: relative --home, --model and --config mean what they meant here.
    boot = "import sys; sys.path.insert(0, sys.argv.pop(1)); from codesearch.cli import main; main(prog_name='codesearch')"
    cmd = [sys.executable, "-c", boot, str(Path(__file__).resolve().parent.parent), "--home", os.path.abspath(settings["home"])]
    if model is not None:
        cmd += ["--model", model]
    if config_file is not None:
        cmd += ["--config", config_file]
    cmd.append("serve")
    log = None
    try:
        log = os.open(home.service_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                         start_new_session=True, close_fds=True)
        return True
    except OSError:
        return False
    finally:
        if log is not None:
            os.close(log)


# ---------------------------------------------------------------------------- server
def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


class Server:
    """The service of one home. ``ctx``: the CLI's Context (settings loaded by `serve`)."""

    def __init__(self, ctx, config_file: str | None = None):
        self.ctx = _service_context(ctx)
        self.index_home = IndexHome(Path(ctx.settings["home"]).absolute())
        self.home = self.index_home.path
        self.path = self.index_home.service_socket
        self.settings_key = _settings_key(ctx.settings)
        # A relative model or config path means this folder's: only callers here match.
        self.cwd = os.getcwd()
        model = str(ctx.settings.get("model") or "default")
        self.relative = any(p and not os.path.isabs(os.path.expanduser(p)) for p in (
            config_file, None if model in ("default", "shipped", "base") else model))
        from codesearch.settings import SearchSettings

        # search.service_idle_s (0: its default, as null was before the settings were typed)
        self.idle_s = SearchSettings.from_settings(ctx.settings).service_idle_s or SearchSettings.defaults().service_idle_s
        self.sock: socket.socket | None = None
        self.inode: tuple[int, int] | None = None
        self.lock_fd: int | None = None
        self.served = 0
        self.code: dict[str, int | None] = {}
        self.last_request = time.monotonic()
        from codesearch.config import defaults_file, user_config_file

        watched = [Path(config_file).absolute() if config_file else user_config_file().absolute(),
                   self.index_home.personal_model.config_file]
        try:
            watched.append(Path(str(defaults_file())))
        except (TypeError, ValueError):
            pass
        self.watched = {p: _mtime(p) for p in watched}
        self.meta = self._meta()

    # -------------------------------------------------------------- state checks
    def _meta(self) -> tuple | None:
        try:
            meta = json.loads(self.index_home.index_meta.read_text())
        except (OSError, ValueError):
            return None
        return (meta.get("model_fingerprint"), meta.get("dim"), meta.get("format"))

    def _code(self) -> dict[str, int | None]:
        files = {}
        for name, module in list(sys.modules.items()):
            if name == "codesearch" or name.startswith("codesearch."):
                f = getattr(module, "__file__", None)
                if f:
                    files[f] = _mtime(Path(f))
        return files

    def exit_reason(self) -> str | None:
        """Why the service should stop now, or None."""
        try:
            st = os.stat(self.path)
        except OSError:
            return "socket or home removed"
        if (st.st_dev, st.st_ino) != self.inode:
            return "socket replaced"
        if time.monotonic() - self.last_request > self.idle_s:
            return "idle"
        if self._meta() != self.meta:
            return "index model or format changed"
        if any(_mtime(p) != m for p, m in self.watched.items()):
            return "settings or personal model changed"
        if any(_mtime(Path(f)) != m for f, m in self.code.items()):
            return "codesearch code changed"
        return None

    # -------------------------------------------------------------- start and stop
    def acquire(self, wait_s: float = 3.0) -> bool:
        """The home's service lock (waiting a little for a service that is just stopping)."""
        import fcntl

        fd = os.open(self.index_home.service_lock, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self.lock_fd = fd
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return False
                time.sleep(0.1)

    def bind(self) -> bool:
        """Listen on the socket, replacing a stale one. False if a live service answers there."""
        addr, fd = _address(self.path)
        try:
            if os.path.lexists(self.path):
                probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                probe.settimeout(1.0)
                try:
                    probe.connect(addr)
                    return False  # someone listens (a service that predates the lock file)
                except OSError:
                    pass
                finally:
                    probe.close()
                os.unlink(self.path)  # stale: a file nobody listens on
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            old = os.umask(0o177)
            try:
                sock.bind(addr)
            finally:
                os.umask(old)
            os.chmod(self.path, 0o600)
            sock.listen(16)
            st = os.stat(self.path)
            self.sock, self.inode = sock, (st.st_dev, st.st_ino)
            return True
        finally:
            if fd is not None:
                os.close(fd)

    def close(self) -> None:
        if self.sock is not None:
            try:
                st = os.stat(self.path)
                if (st.st_dev, st.st_ino) == self.inode:
                    os.unlink(self.path)
            except OSError:
                pass
            self.sock.close()
            self.sock = None
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None

    def warm_up(self) -> None:
        """Load the model and open the index now, not on the first request."""
        try:
            self.ctx.searcher().search("warm up", limit=1)
        except BaseException as exc:  # (a broken index or model: each request reports it as the CLI would)
            _log(f"warm-up failed: {exc!r}")

    # -------------------------------------------------------------- requests
    def serve_forever(self) -> str:
        assert self.sock is not None
        self.sock.settimeout(1.0)
        self.code = self._code()  # after the warm-up imported what searching needs
        while True:
            reason = self.exit_reason()
            if reason:
                return reason
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError as exc:
                return f"accept failed: {exc}"
            with conn:
                reason = self.handle(conn)
            if reason:
                return reason

    def handle(self, conn: socket.socket) -> str | None:
        """Answer one connection; a reason to stop, or None."""
        try:
            if _peer_uid(conn) != os.getuid():
                return None  # another user: closed without a word
            conn.settimeout(10.0)
            message = json.loads(_read_all(conn) or b"null")
        except (OSError, ValueError):
            return None
        if not isinstance(message, dict) or message.get("v") != PROTOCOL:
            self._reply(conn, {"ok": False, "reason": "protocol"})
            return None
        self.last_request = time.monotonic()
        if message.get("op") == "ping":
            self._reply(conn, {"ok": True, "pid": os.getpid(), "served": self.served})
            return None
        if message.get("op") != "search":
            self._reply(conn, {"ok": False, "reason": "unknown op"})
            return None
        reason = self.exit_reason()
        if reason:
            self._reply(conn, {"ok": False, "reason": reason})
            return reason
        if message.get("settings") != self.settings_key or (self.relative and message.get("cwd") != self.cwd):
            self._reply(conn, {"ok": False, "reason": "other settings"})  # (another --model or --config)
            return None
        try:
            reply = self.run_search(message)
        except Exception as exc:  # (a malformed request: the client searches itself)
            reply = {"ok": False, "reason": f"bad request: {exc!r}"}
        self.served += 1
        self._reply(conn, reply)
        return None

    @staticmethod
    def _reply(conn: socket.socket, reply: dict) -> None:
        try:
            conn.sendall(json.dumps(reply).encode())
        except OSError:
            pass

    def run_search(self, message: dict) -> dict:
        """The CLI's own search function, its output captured: what the client prints."""
        import contextlib
        import io
        import traceback

        import click

        from codesearch import cli

        p = dict(message["params"])
        for name in ("lang", "kind", "roles"):
            p[name] = tuple(p.get(name) or ())
        os.chdir(message["cwd"])  # (relative --repo/--path: as the caller's shell sees them)
        out, err = io.StringIO(), io.StringIO()
        rc = 0
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                click.Context(cli.search, info_name="search", color=bool(message.get("color"))):
            try:
                cli.run_search(self.ctx, **p)
            except SystemExit as exc:
                code = exc.code
                if code is None:
                    rc = 0
                elif isinstance(code, int):
                    rc = code
                else:
                    print(code, file=sys.stderr)
                    rc = 1
            except Exception:
                traceback.print_exc()
                rc = 1
        os.chdir("/")
        return {"ok": True, "stdout": out.getvalue(), "stderr": err.getvalue(), "rc": rc}


def _service_context(ctx):
    """The CLI Context, keeping one Store and one Searcher (with its vector cache) for all requests."""
    from codesearch import cli

    class ServiceContext(cli.Context):
        def __init__(self, base):  # (no settings reload: those `serve` loaded)
            self.settings, self.verbose, self._encoder, self._query_encoder = base.settings, False, None, None
            self._store = self._searcher = None

        def store(self, create: bool):
            if create:
                return super().store(create=True)
            if self._store is None:
                self._store = super().store(create=False)
            return self._store

        def searcher(self):
            if self._searcher is None:
                self._searcher = super().searcher()
            return self._searcher

    return ServiceContext(ctx)


def _log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} codesearch service [{os.getpid()}]: {message}", file=sys.stderr, flush=True)


def serve(ctx, config_file: str | None = None) -> int:
    """Run the service of ctx's home until a reason to stop (see the module doc). 0: stopped
    normally or another service runs already; 1: could not start."""
    from codesearch.heap import arrow_on_system_allocator, limit_arenas

    limit_arenas()  # (before the service's threads: about 200 MB less after searching, docs/speed.md)
    arrow_on_system_allocator()  # (the same for Arrow's buffers: docs/speed.md)
    home = IndexHome.of(ctx.settings)
    if not home.has_index():
        _log(f"no index at {home.path}")
        return 1
    try:
        server = Server(ctx, config_file)
        if not server.acquire():
            return 0  # another service has this home
        try:
            log = home.service_log
            if log.exists() and log.stat().st_size > (1 << 20):
                os.truncate(log, 0)
        except OSError:
            pass
        if not server.bind():
            server.close()
            return 0
    except OSError as exc:
        _log(f"cannot start: {exc}")
        return 1
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # (stop cleanly: the socket file goes too)
    try:
        _log(f"listening on {server.path}")
        server.warm_up()
        os.chdir("/")  # (not holding on to the caller's folder; a request runs in its caller's)
        server.last_request = time.monotonic()
        _log(f"stopping: {server.serve_forever()} (served {server.served} searches)")
    finally:
        server.close()
    return 0
