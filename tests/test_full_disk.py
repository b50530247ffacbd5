"""A full disk, for real: the index home on a small tmpfs that fills up during `codesearch index`.

Needs root (mount); skipped elsewhere. Marked slow (about 90 s: three CLI runs); the same
failure at each write point of the store, simulated, is in the default run (test_faults.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import stdlib_repo


def _mount_tmpfs(where: Path, size_kb: int) -> None:
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k,mode=0700", "tmpfs", str(where)], check=True,
                   capture_output=True)


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "codesearch.cli", "--home", str(home), *args],
                          capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def _chunks(home: Path) -> list:
    from codesearch.indexer.store import Store

    rows = Store(home, create=False).table("chunks").search().select(["path", "start_line", "end_line", "key"]).limit(None)
    return sorted(tuple(r.values()) for r in rows.to_arrow().to_pylist())


@pytest.fixture
def tmpfs(tmp_path):
    probe = tmp_path / "probe"
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    try:
        _mount_tmpfs(probe, 1024)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot mount tmpfs here: {exc.stderr.strip()}")
    subprocess.run(["umount", str(probe)], check=True)
    mounted: list[Path] = []

    def mount(where: Path, size_kb: int) -> Path:
        _mount_tmpfs(where, size_kb)
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


@pytest.mark.slow
def test_a_full_disk_is_one_line_loses_nothing_and_the_next_run_finishes_the_job(tmp_path, tmpfs):
    repo = stdlib_repo(tmp_path / "repo", 4, max_bytes=20_000)
    clean = tmp_path / "clean"
    assert _cli(clean, "index", str(repo), "-q").returncode == 0
    size_kb = sum(f.stat().st_size for f in clean.rglob("*") if f.is_file()) // 1024

    disk = tmpfs(tmp_path / "disk", int(size_kb * 0.7))  # room for the rows, not for compacting them
    home = disk / "home"
    full = _cli(home, "index", str(repo), "-q")
    assert full.returncode == 2, full.stderr
    lines = full.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in full.stderr, full.stderr
    assert "no space left" in lines[0] and str(home) in lines[0] and "MB free" in lines[0], lines[0]

    # Nothing lost: what was committed reads back whole, and search answers from it.
    doctor = _cli(home, "doctor", "--json")
    assert doctor.returncode in (0, 1), doctor.stdout + doctor.stderr  # 2 would be a damaged table
    assert not json.loads(doctor.stdout).get("broken")
    assert _cli(home, "search", "parse the arguments", "--json").returncode == 0

    subprocess.run(["mount", "-o", f"remount,size={size_kb * 4}k", str(disk)], check=True)
    again = _cli(home, "index", str(repo), "--json")
    assert again.returncode == 0, again.stderr
    meta = json.loads((home / "index.json").read_text())
    assert not meta.get("compaction_due"), "the compaction the full disk stopped was not finished"
    assert _chunks(home) == _chunks(clean)
    assert _cli(home, "doctor").returncode == 0
