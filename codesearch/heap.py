"""The C heap of long-running work (glibc only; elsewhere these do nothing).

Why by hand: Python has no API for glibc's allocator settings, and the usual ways (the
``MALLOC_ARENA_MAX`` environment variable, ``LD_PRELOAD`` of jemalloc) must be set before the
process starts, which a user's editor or shell does not do. Both calls are glibc's own
(``mallopt``, ``malloc_trim``) through ctypes. Measurements: docs/speed.md.
"""

from __future__ import annotations

import ctypes
import functools

M_ARENA_MAX = -8  # glibc's malloc.h


@functools.cache
def _libc():
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim, libc.mallopt  # noqa: B018 - both present: glibc
        return libc
    except (OSError, AttributeError):  # not glibc (macOS, musl)
        return None


def release_free_heap() -> None:
    """Give the heap's free pages back to the system (``malloc_trim(0)``).

    A batch of documents frees hundreds of MB of activations; glibc kept much of that, and over
    an index run the process grew by it group after group. A call costs milliseconds.
    """
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def limit_arenas(n: int = 2) -> None:
    """At most ``n`` malloc arenas from now on: call it first thing in a long-lived process.

    glibc gives each thread that allocates under contention an arena of its own (up to 8 per
    core) and keeps what each arena freed. The search service and the language server run
    searches on a thread pool, and LanceDB, Arrow and BLAS run threads of their own: after 35
    searches over 40k chunks a process held 662-676 MB with glibc's default, 429-483 MB with two
    arenas, at the same latency.
    """
    libc = _libc()
    if libc is not None:
        libc.mallopt(M_ARENA_MAX, n)


def arrow_on_system_allocator() -> None:
    """Arrow's buffers (pyarrow's compute and tables) from glibc's malloc instead of the
    mimalloc that pyarrow bundles: call it first thing in a long-lived process. Its children
    (an index run's) keep pyarrow's default. ``ARROW_DEFAULT_MEMORY_POOL`` set by the user wins.

    mimalloc keeps the pages that buffers freed in 64 MB regions of its own: a language server
    over Rust's standard library (20,794 chunks) held 534-536 MB idle and 651-657 MB after 40
    edits, against 490 and 546-559 MB with glibc's (docs/speed.md)."""
    import os

    if "ARROW_DEFAULT_MEMORY_POOL" in os.environ:
        return
    import pyarrow as pa

    pa.set_memory_pool(pa.system_memory_pool())
