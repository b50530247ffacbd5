"""The language server's torch encoder, in a child process that exits when it is dropped.

Measured on the rust eval corpus (4,664 chunks, see CHANGELOG): a server that had embedded
and then dropped its torch encoder in-process still held 1,039 MB (torch, transformers and
peft stay imported, with their allocator's pages), against 480 MB for one that never imported
torch. So documents are embedded in ``python -m codesearch.lsp.embedder SPEC``: the server
sends batches of texts and gets their vectors back; ending the child gives back everything.

Protocol: pickles over the child's stdin/stdout, one object per message (a private pipe
between a process and its own child). The child answers ``(True, {"device", "fingerprint"})``
once its model is loaded, then ``(ok, vectors or error text)`` per request
``("encode", texts, batch_size, space)``; it exits at end of input, so it also ends when the
server dies. Stray prints of the libraries go to stderr (the server's log), never into the
protocol.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
from pathlib import Path

_ACTIVE = "__active__"  # the encoder's ACTIVE sentinel, which does not survive pickling


class EmbedderError(RuntimeError):
    """The embedding process failed to start, or died."""


class EmbedderProcess:
    """``encode_documents`` of a torch encoder running in a child process."""

    def __init__(self, spec: str, start_timeout: float | None = None):
        import codesearch

        root = str(Path(codesearch.__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self.spec = spec
        self._lock = threading.Lock()
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
        return self._proc.poll() is None

    def encode_documents(self, documents, batch_size: int = 32, progress=None, *, space=_ACTIVE):
        from codesearch.model.encoder import ACTIVE

        with self._lock:
            self._send(("encode", list(documents), int(batch_size), _ACTIVE if space is ACTIVE else space))
            ok, value = self._recv()
        if not ok:
            raise EmbedderError(value)
        return value

    def close(self, timeout: float = 5.0) -> None:
        """End the child (it exits at end of input; killed if it does not within ``timeout``)."""
        with self._lock:
            try:
                self._proc.stdin.close()
            except OSError:
                pass
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc.stdout.close()

    def _send(self, message) -> None:
        try:
            pickle.dump(message, self._proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self._proc.stdin.flush()
        except (OSError, ValueError) as exc:
            raise EmbedderError(f"the embedding process is gone (exit {self._proc.poll()}): {exc}") from None

    def _recv(self):
        try:
            return pickle.load(self._proc.stdout)
        except (EOFError, OSError, pickle.UnpicklingError) as exc:
            raise EmbedderError(f"the embedding process is gone (exit {self._proc.poll()}): {exc!r}") from None


def main(argv: list[str]) -> int:
    from codesearch.heap import limit_arenas

    limit_arenas()  # (as `codesearch index` does: docs/speed.md)
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed goes to stderr, not into the protocol
    sys.stdout = sys.stderr
    inp = sys.stdin.buffer

    def send(message) -> None:
        pickle.dump(message, out, protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()

    try:
        from codesearch.blas import one_blas_thread
        from codesearch.model import load_encoder
        from codesearch.model.encoder import ACTIVE

        encoder = load_encoder(argv[0])
    except Exception as exc:  # noqa: BLE001 - reported to the server, which says it
        send((False, f"{type(exc).__name__}: {exc}"))
        return 1
    send((True, {"device": str(encoder.device), "fingerprint": encoder.fingerprint}))
    while True:
        try:
            kind, texts, batch_size, space = pickle.load(inp)
        except EOFError:
            return 0
        try:
            with one_blas_thread():  # (as an index run does: the head's products are small)
                result = encoder.encode_documents(texts, batch_size, space=ACTIVE if space == _ACTIVE else space)
        except Exception as exc:  # noqa: BLE001 - one bad batch: the indexer retries file by file
            send((False, f"{type(exc).__name__}: {exc}"))
        else:
            send((True, result))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
