"""What `codesearch index` tells a person about a run: an estimate before the work (stderr), and
where the time went after it (walk, chunk, embed, write). Real model, real LanceDB, real files."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from codesearch.cli import Context, main
from conftest import FIXTURES

STAGES = ["walk", "chunk", "embed", "write"]
ESTIMATE = re.compile(r"^To index: (\d+) files? \((\d+ KB|[\d.]+ MB)\), about ([\d,]+) chunks, about [\d.]+ (s|min|h) "
                      r"at ~(\d+) chunks/s \((default for this machine|this home's last run)\)\.$", re.M)
TIME = re.compile(r"^Time: walk ([\d.]+)s, chunk ([\d.]+)s, embed ([\d.]+)s, write ([\d.]+)s, other ([\d.]+)s\.$", re.M)
WALL = re.compile(r"^Indexed \d+ files in 1 repository in ([\d.]+)s", re.M)


@pytest.fixture(autouse=True)
def one_model(monkeypatch, encoder):
    """Every CLI run here uses the session's real model instead of loading it again."""
    monkeypatch.setattr(Context, "encoder", lambda self: encoder)


@pytest.fixture
def tiny_repo(tmp_path) -> Path:
    """A git repository with one Rust and one Python file (a handful of chunks)."""
    repo = tmp_path / "repos" / "tiny"
    (repo / "src").mkdir(parents=True)
    for name in ("bounds.rs", "cache.py"):
        shutil.copy(FIXTURES / "repo_small" / "src" / name, repo / "src" / name)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    return repo


def run_cli(*args: str, home: Path):
    return CliRunner().invoke(main, ["--home", str(home), *args], catch_exceptions=False)


def _time_line(stdout: str) -> tuple[dict[str, float], float, float]:
    """(stage -> seconds, other, wall) as the summary prints them."""
    m = TIME.search(stdout)
    assert m, stdout
    wall = WALL.search(stdout)
    assert wall, stdout
    return dict(zip(STAGES, map(float, m.groups()[:4]))), float(m.group(5)), float(wall.group(1))


def test_first_run_estimates_then_says_where_the_time_went(tiny_repo, tmp_path):
    home = tmp_path / "home"
    first = run_cli("index", str(tiny_repo), home=home)
    assert first.exit_code == 0, first.output
    m = ESTIMATE.search(first.stderr)
    assert m, first.stderr
    assert m.group(1) == "2" and m.group(2) == "2 KB" and int(m.group(3).replace(",", "")) >= 2
    assert m.group(6) == "default for this machine"  # a fresh home has no rate of its own yet
    assert "To index" not in first.stdout  # stdout stays the summary's
    stages, other, wall = _time_line(first.stdout)
    assert all(t >= 0 for t in stages.values()) and other >= 0
    assert stages["embed"] > 0  # this run embedded its chunks
    assert sum(stages.values()) <= wall + 0.25  # each printed figure is rounded to 0.1 s
    assert re.search(r"Chunks written: \d+ \(\d+ embedded at [\d.]+ chunks/s over the run, 0 reused\)", first.stdout)
    assert "embedding" in first.stderr  # its progress bar

    again = run_cli("index", str(tiny_repo), home=home)  # nothing changed: nothing to estimate
    assert again.exit_code == 0, again.output
    assert "To index" not in again.output
    assert "embedding" not in again.stderr  # no empty "embedding: 0chunks" bar
    stages, _, wall = _time_line(again.stdout)
    assert stages["embed"] == 0 and sum(stages.values()) <= wall + 0.25

    bounds = tiny_repo / "src" / "bounds.rs"
    bounds.write_text(bounds.read_text())  # a new mtime, the same chunks: cut again, nothing to embed
    touched = run_cli("index", str(tiny_repo), home=home)
    assert touched.exit_code == 0, touched.output
    assert "To index: 1 file" in touched.stderr and "chunking" in touched.stderr
    assert "embedding" not in touched.stderr and "(0 embedded, " in touched.stdout


def test_json_summary_has_seconds_by_stage_and_no_estimate(tiny_repo, tmp_path):
    out = run_cli("index", "--json", str(tiny_repo), home=tmp_path / "home")
    assert out.exit_code == 0, out.output
    assert "To index" not in out.output
    summary = json.loads(out.stdout)
    by_stage = summary["seconds_by_stage"]
    assert list(by_stage) == STAGES
    assert all(t >= 0 for t in by_stage.values()) and by_stage["embed"] > 0
    assert sum(by_stage.values()) <= summary["seconds"] + 0.03  # rounded to 0.01 s each
    # (both from the unrounded run time; "seconds" is printed to 0.01 s, the rate to 0.1)
    assert summary["chunks_per_second"] == pytest.approx(summary["embedded"] / summary["seconds"], rel=0.02, abs=0.1)


def test_quiet_has_no_estimate(tiny_repo, tmp_path):
    out = run_cli("index", "-q", str(tiny_repo), home=tmp_path / "home")
    assert out.exit_code == 0, out.output
    assert "To index" not in out.output and out.stderr == ""
    assert TIME.search(out.stdout)


def test_the_next_estimate_uses_the_rate_this_home_measured(tiny_repo, index_env, monkeypatch, capfd):
    """The rate is kept in the index meta per device; the indexer itself prints nothing (the
    watcher and the language server use it, and the language server talks on stdout)."""
    from codesearch.indexer import pipeline

    store, indexer, _ = index_env
    monkeypatch.setattr(pipeline, "MIN_CHUNKS_FOR_RATE", 1)  # a tiny repo's rate is kept too
    seen: list = []
    first = indexer.run([tiny_repo], on_estimate=seen.append)
    assert [(e.files, e.measured, e.rate) for e in seen] == [(2, False, pipeline.default_rate("cpu"))]
    rate = store.meta()["index_rate"]["cpu"]
    assert rate > 0 and abs(rate - first.embedded / first.seconds) <= 0.1 * rate + 0.1  # taken just before the lock is let go
    (tiny_repo / "src" / "more.py").write_text("def add_tax(price):\n    return round(price * 1.2, 2)\n")
    seen.clear()
    indexer.run([tiny_repo], on_estimate=seen.append)
    assert [(e.files, e.measured, e.rate) for e in seen] == [(1, True, rate)]
    indexer.update([tiny_repo], [tiny_repo / "src" / "more.py"], force=[tiny_repo / "src" / "more.py"])
    assert capfd.readouterr().out == ""


def test_a_log_file_gets_a_few_progress_lines_not_a_frame_per_batch(tmp_path):
    """stderr redirected to a file (not a terminal): the progress bar draws at most every 30 s,
    so a run of a dozen batches leaves a few lines in the log instead of one frame per batch."""
    repo = tmp_path / "repo"
    (repo / "src").mkdir(parents=True)
    for i in range(60):
        (repo / "src" / f"m{i}.py").write_text("".join(
            f"def f{i}_{j}(x):\n    '''Step {j} of module {i}.'''\n    return x * {j} + {i}\n\n\n" for j in range(5)))
    out = CliRunner().invoke(main, ["--home", str(tmp_path / "home"), "index", str(repo)])
    assert out.exit_code == 0, out.output
    frames = [f for f in re.split(r"[\r\n]", out.stderr) if f.startswith("embedding:")]
    assert 1 <= len(frames) <= 3, frames


RUST_CORE = Path("/usr/lib/rustlib/src/rust/library/core/src")


@pytest.mark.skipif(not RUST_CORE.exists(), reason="needs Debian's rust-src")
def test_the_estimate_counts_chunks_as_the_run_will_cut_them(index_env):
    """Rust's core library has about 2.6 times the bytes per chunk of the eval corpora a fixed
    ratio came from (long doc comments): the estimate cuts a sample of the run's own files."""
    from codesearch.indexer.chunking import chunk_text
    from codesearch.indexer.walk import SourceFile, read_text, stored_path, walk

    _, indexer, _ = index_env
    files = [f for f in walk([RUST_CORE / "iter", RUST_CORE / "num"]) if isinstance(f, SourceFile)]
    assert len(files) > 64  # more than the sample
    cut = sum(len(chunk_text(stored_path(f.rel_path), read_text(f))) for f in files)
    estimate = indexer._estimate(files)
    assert 0.8 * cut <= estimate.chunks <= 1.25 * cut, (estimate.chunks, cut)
