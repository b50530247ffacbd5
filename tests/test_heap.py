"""glibc heap settings of long-running work (codesearch/heap.py): the calls take effect."""

from __future__ import annotations

import ctypes
import subprocess
import sys

import pytest

try:
    ctypes.CDLL("libc.so.6").malloc_trim  # noqa: B018
except (OSError, AttributeError):  # pragma: no cover
    pytest.skip("not glibc", allow_module_level=True)

# Threads allocating at once: glibc gives each contended thread an arena of its own. The count
# is the number of <heap> elements in malloc_info's report.
ARENAS = r"""
import ctypes, os, sys, threading
from codesearch.heap import limit_arenas
if sys.argv[1] != "default":
    limit_arenas(int(sys.argv[1]))
start = threading.Barrier(8)
def work():
    start.wait()
    for _ in range(2000):
        blocks = [bytearray(512) for _ in range(50)]
        del blocks
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
libc = ctypes.CDLL("libc.so.6")
libc.fdopen.restype = ctypes.c_void_p
f = libc.fdopen(os.dup(1), b"w")
libc.malloc_info(0, ctypes.c_void_p(f)); libc.fflush(ctypes.c_void_p(f))
"""


def _arenas(setting: str) -> int:
    out = subprocess.run([sys.executable, "-c", ARENAS, setting], capture_output=True, text=True, check=True).stdout
    return out.count("<heap nr=")


def test_limit_arenas_caps_the_arenas_threads_get():
    assert _arenas("default") > 2  # (else the test could not tell)
    assert _arenas("2") <= 2


TRIM = r"""
import sys
from codesearch.heap import release_free_heap
def rss():
    return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) // 1024
blocks = [bytearray(100_000) for _ in range(3000)]  # 300 MB on the heap (below the mmap threshold)
keep = blocks[-1]
del blocks  # freed, but the last block pins the top of the heap: free() alone cannot shrink it
before = rss()
release_free_heap()
print(before, rss())
"""


def test_release_free_heap_gives_freed_memory_back():
    before, after = map(int, subprocess.run([sys.executable, "-c", TRIM], capture_output=True, text=True, check=True).stdout.split())
    assert before > 250 and after < before - 200, (before, after)


def test_the_store_caps_lances_read_ahead_unless_the_user_set_it(monkeypatch):
    """Lance reads ahead up to 2 GiB per scan; an index run's compactions filled that with whole
    tables (docs/speed.md). The store sets 32 MiB before any table is opened; a value the user
    set is kept."""
    code = "import os, codesearch.indexer.store; print(os.environ['LANCE_DEFAULT_IO_BUFFER_SIZE'])"
    monkeypatch.delenv("LANCE_DEFAULT_IO_BUFFER_SIZE", raising=False)
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == str(32 << 20)
    monkeypatch.setenv("LANCE_DEFAULT_IO_BUFFER_SIZE", "1234567")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "1234567"


def test_the_store_scans_in_batches_of_1024_rows_unless_the_user_says_otherwise(monkeypatch):
    """A compaction of the token-vector table decoded and re-encoded Lance's default 8,192-row
    batches (about 6 KB a row): 120-210 MB above the run's baseline, 15-80 MB with 1,024 rows
    (docs/speed.md). A value the user set is kept."""
    code = "import os, codesearch.indexer.store; print(os.environ['LANCE_DEFAULT_BATCH_SIZE'])"
    monkeypatch.delenv("LANCE_DEFAULT_BATCH_SIZE", raising=False)
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "1024"
    monkeypatch.setenv("LANCE_DEFAULT_BATCH_SIZE", "4096")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "4096"



POOL = r"""
import pyarrow as pa
from codesearch.heap import arrow_on_system_allocator
arrow_on_system_allocator()
data = pa.array(range(100_000))
print(pa.default_memory_pool().backend_name, data.sort().buffers()[1].size > 0)
"""


@pytest.mark.parametrize("env, backend", [({}, "system"), ({"ARROW_DEFAULT_MEMORY_POOL": "mimalloc"}, "mimalloc")])
def test_long_lived_processes_put_arrow_on_the_system_allocator_unless_told_otherwise(env, backend):
    # pyarrow's bundled mimalloc kept what a language server's reads freed after each edit
    # (docs/speed.md); a user's ARROW_DEFAULT_MEMORY_POOL still decides.
    import os

    full = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"} | env
    out = subprocess.run([sys.executable, "-c", POOL], capture_output=True, text=True, check=True, env=full).stdout.split()
    assert out == [backend, "True"]
