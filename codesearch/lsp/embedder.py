"""The language server's document encoder and its index runs, in a child process that exits
when it is dropped.

Measured on the rust eval corpus (4,664 chunks, see CHANGELOG): a server that had embedded
and then dropped its torch encoder in-process still held 1,039 MB (torch, transformers and
peft stay imported, with their allocator's pages), against 480 MB for one that never imported
torch. So documents are embedded in ``python -m codesearch.lsp.embedder SPEC``: the server
sends batches of texts and gets their vectors back; ending the child gives back everything.
Whole index runs (the workspace at start, ``codesearch.reindex``, a save without the watcher)
run in the child too: a server that ran one over 20k chunks itself held about 110 MB more
private memory after it than one restarted over the same index (docs/speed.md).

Protocol: pickles over the child's stdin/stdout, one object per message (a private pipe
between a process and its own child). The child answers ``(True, {"device", "fingerprint"})``
once the numpy query side of its model is read (the document encoder, torch's or the torch-free
8-bit one of codesearch/model/docint8.py, is loaded at the first document to embed), then:

- ``("encode", texts, batch_size, space)``: ``(ok, vectors or error text)``;
- ``("prepare",)``: ``(True, None)`` once what an index run needs first is imported;
- ``("index", settings, roots, exclude, log_level)``: ``("progress", stage, done, total)`` and
  ``("log", level, logger, text)`` messages while the run goes, then ``(True, IndexSummary)``
  or ``(False, exception)`` (the exception itself where it pickles, else its text).

It exits at end of input, so it also ends when the server dies; in the middle of a run, at
the run's next message (each commit is atomic: the next run finishes the job). Stray prints of
the libraries go to stderr (the server's log), never into the protocol.
"""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
import threading
import time
from pathlib import Path

_ACTIVE = "__active__"  # the encoder's ACTIVE sentinel, which does not survive pickling


class EmbedderError(RuntimeError):
    """The embedding process failed to start, or died."""


class EmbedderProcess:
    """``encode_documents`` of a torch encoder running in a child process, and ``run_index``:
    a whole index run there."""

    def __init__(self, spec: str, start_timeout: float | None = None):
        import codesearch

        root = str(Path(codesearch.__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self.spec = spec
        self._lock = threading.Lock()
        self._gone = False  # (its pipe broke: it is dying, though it may not have exited yet)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "codesearch.lsp.embedder", spec],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, close_fds=True,
        )
        ok, hello = self._recv()
        if not ok:
            self.close()
            raise EmbedderError(f"cannot load the model {spec!r} to embed documents: {hello}")
        self.device = hello["device"]
        self.fingerprint = hello["fingerprint"]

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def alive(self) -> bool:
        # A child killed mid-run closes its pipes a moment before it has exited: after a broken
        # pipe it counts as gone at once, so the next use starts a new one instead of writing to it.
        return not self._gone and self._proc.poll() is None

    def encode_documents(self, documents, batch_size: int = 32, progress=None, *, space=_ACTIVE):
        from codesearch.model.encoder import ACTIVE

        with self._lock:
            self._send(("encode", list(documents), int(batch_size), _ACTIVE if space is ACTIVE else space))
            ok, value = self._recv()
        if not ok:
            raise EmbedderError(value)
        return value

    def prepare_index(self) -> None:
        """Have the child import what an index run needs (LanceDB) now, while the server gets
        its run ready; a child started only to embed never pays for it."""
        with self._lock:
            self._send(("prepare",))
            self._recv()

    def run_index(self, settings: dict, roots, *, exclude=None, progress=None):
        """``Indexer(Store(settings["home"]), model, settings, exclude=exclude).run(roots,
        progress=progress)`` in the child; its log records go to this process's loggers.
        ``exclude`` must pickle. Raises what the run raised (an :class:`EmbedderError` with its
        text where that does not pickle)."""
        request = ("index", settings, [str(r) for r in roots], exclude, logging.getLogger("codesearch").getEffectiveLevel())
        with self._lock:
            self._send(request)
            while True:
                message = self._recv()
                if message[0] == "progress":
                    if progress is not None:
                        progress(*message[1:])
                elif message[0] == "log":
                    level, name, text = message[1:]
                    logging.getLogger(name).log(level, "%s", text)
                else:
                    ok, value = message
                    break
        if ok:
            return value
        raise value if isinstance(value, BaseException) else EmbedderError(value)

    def close(self, timeout: float = 5.0) -> None:
        """End the child (it exits at end of input; killed if it does not within ``timeout``,
        or at once when an index run holds it that long)."""
        held = self._lock.acquire(timeout=timeout)
        try:
            try:
                self._proc.stdin.close()
            except OSError:
                pass
            try:
                self._proc.wait(timeout if held else 0.1)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            if held:
                self._proc.stdout.close()
        finally:
            if held:
                self._lock.release()

    def _send(self, message) -> None:
        try:
            pickle.dump(message, self._proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self._proc.stdin.flush()
        except (OSError, ValueError) as exc:
            self._gone = True
            raise EmbedderError(f"the embedding process is gone (exit {self._proc.poll()}): {exc}") from None

    def _recv(self):
        try:
            return pickle.load(self._proc.stdout)
        except (EOFError, OSError, pickle.UnpicklingError) as exc:
            self._gone = True
            raise EmbedderError(f"the embedding process is gone (exit {self._proc.poll()}): {exc!r}") from None


def main(argv: list[str]) -> int:
    from codesearch.heap import limit_arenas

    limit_arenas()  # (as `codesearch index` does: docs/speed.md)
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed goes to stderr, not into the protocol
    sys.stdout = sys.stderr
    inp = sys.stdin.buffer
    lock = threading.Lock()  # (log records may come from the run's other threads)

    def send(message) -> None:
        with lock:
            pickle.dump(message, out, protocol=pickle.HIGHEST_PROTOCOL)
            out.flush()

    try:
        from codesearch.blas import one_blas_thread
        from codesearch.model import load_index_encoder
        from codesearch.model.encoder import ACTIVE

        spec = argv[0]
        # The document encoder is loaded at the first document to embed: an index run with
        # nothing to embed (a server started over an up-to-date index) never loads it. On a CPU
        # it is the torch-free 8-bit one (codesearch/model/docint8.py).
        encoder = load_index_encoder(spec)
        device = str(encoder.device)
    except Exception as exc:  # noqa: BLE001 - reported to the server, which says it
        send((False, f"{type(exc).__name__}: {exc}"))
        return 1
    send((True, {"device": device, "fingerprint": encoder.fingerprint}))
    while True:
        try:
            request = pickle.load(inp)
        except EOFError:
            return 0
        if request[0] == "prepare":
            try:  # what an index run needs first (LanceDB: about 1 s)
                from codesearch.lance_import import lancedb

                lancedb()

                import codesearch.indexer.pipeline  # noqa: F401
            except Exception:  # noqa: BLE001 - said by the run that needs it
                pass
            send((True, None))
            continue
        if request[0] == "index":
            try:
                _index(encoder, request[1:], send)
            except BrokenPipeError:  # the server is gone
                return 0
            continue
        kind, texts, batch_size, space = request
        try:
            with one_blas_thread():  # (as an index run does: the head's products are small)
                result = encoder.encode_documents(texts, batch_size, space=ACTIVE if space == _ACTIVE else space)
        except Exception as exc:  # noqa: BLE001 - one bad batch: the indexer retries file by file
            send((False, f"{type(exc).__name__}: {exc}"))
        else:
            send((True, result))


def _index(encoder, request, send) -> None:
    """One index run for the server (see the module's docstring)."""
    from codesearch.heap import release_free_heap
    from codesearch.indexer.pipeline import Indexer
    from codesearch.indexer.store import Store

    settings, roots, exclude, level = request
    forward = _Forward(send)
    forward.setLevel(level)
    top = logging.getLogger()
    top.addHandler(forward)
    old_level, top.level = top.level, level
    last = 0.0

    def progress(stage: str, done: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        if done < total and now - last < 0.05:
            return  # (at most 20 messages a second: the server's bar moves 10 times)
        last = now
        send(("progress", stage, done, total))

    try:
        store = Store(Path(settings["home"]), dim=encoder.dim)
        summary = Indexer(store, encoder, settings, exclude=exclude).run(roots, progress=progress)
    except Exception as exc:  # noqa: BLE001 - the server raises it in the run's place
        send((False, _portable(exc)))
    else:
        send((True, summary))
    finally:
        top.removeHandler(forward)
        top.level = old_level
        release_free_heap()  # (the child may stay for the next batch: lsp.model_idle_s)


class _Forward(logging.Handler):
    """Log records of a run, sent to the server's loggers."""

    def __init__(self, send):
        super().__init__()
        self.send = send

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.send(("log", record.levelno, record.name, record.getMessage()))
        except Exception:  # noqa: BLE001 - a record that cannot go is dropped, never the run
            pass


def _portable(exc: BaseException):
    """``exc`` where it comes back whole through pickle (IndexLocked: the server retries),
    else its text."""
    try:
        back = pickle.loads(pickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception:  # noqa: BLE001 - an exception whose constructor takes other arguments
        back = None
    if type(back) is type(exc) and str(back) == str(exc):
        return back
    return f"{type(exc).__name__}: {exc}" if not isinstance(exc, RuntimeError) else str(exc)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
