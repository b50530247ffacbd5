"""numpy's BLAS at one thread while small matrix products run (searches, and the numpy side of an
index run): OpenBLAS's threads cost more than they bring on products this small."""

from __future__ import annotations

import sys
import threading
from contextlib import contextmanager

_BLAS_LOCK = threading.Lock()
_BLAS_USERS = 0
_BLAS_LIMIT = None  # the active threadpoolctl limiter while any user runs
_BLAS_CONTROLLER = None  # numpy's BLAS libraries (threadpoolctl); False: none to limit
# The libraries are looked for again when modules were imported since the last look (a BLAS
# is loaded with the module that uses it: scipy's with the model's imports, after a first search
# may have looked): about 1 ms, and only between uses.
_SCANNED_AT_MODULES = -1


@contextmanager
def one_blas_thread():
    """numpy's BLAS at one thread while searches or index runs go on (process-wide; restored
    after the last). The results are the same bit for bit (OpenBLAS does not split a product's
    sums over threads).

    A search's matrix products are small (a query's few tokens against the model's 384-wide
    layers, then against a few thousand candidate tokens): OpenBLAS's threads cost more than they
    bring there, the more so on a busy machine. Measured on 2 shared cores: the numpy query
    encoder took p50 62-96 ms per space with OpenBLAS's default 2 threads, 16-17 ms with 1 (min
    24 against 11.8 ms). An index run's are as small (a chunk's token vectors against the
    model's head, against each other to merge them, against the codec's rotation): merging the
    tokens of 512 chunks took 3.6 s with 2 threads and 0.65 s with 1 while torch was busy on the
    other core. Without threadpoolctl installed this does nothing.
    """
    global _BLAS_USERS, _BLAS_LIMIT, _BLAS_CONTROLLER, _SCANNED_AT_MODULES
    with _BLAS_LOCK:
        if _BLAS_USERS == 0 and len(sys.modules) != _SCANNED_AT_MODULES:
            import numpy  # noqa: F401 - (its BLAS is the one to limit: loaded before looking)

            try:
                from threadpoolctl import ThreadpoolController

                blas = ThreadpoolController().select(user_api="blas")
                # (numpy's own BLAS only: torch's threads are set by its own settings)
                blas = blas.select(filepath=[c.filepath for c in blas.lib_controllers if "torch" not in c.filepath])
                _BLAS_CONTROLLER = blas if blas.lib_controllers else False
            except Exception:  # noqa: BLE001 - no threadpoolctl, or a BLAS it cannot read: leave it
                _BLAS_CONTROLLER = False
            _SCANNED_AT_MODULES = len(sys.modules)
        if _BLAS_USERS == 0 and _BLAS_CONTROLLER:
            _BLAS_LIMIT = _BLAS_CONTROLLER.limit(limits=1)
        _BLAS_USERS += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _BLAS_USERS -= 1
            if _BLAS_USERS == 0 and _BLAS_LIMIT is not None:
                _BLAS_LIMIT.restore_original_limits()
                _BLAS_LIMIT = None
