"""`codesearch chunks` and `codesearch bench --chunks`: the real CLI on files written here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from codesearch.cli import main

RUST = """\
use std::fmt;

/// A point on the plane.
pub struct Point {
    x: i32,
}

impl Point {
    /// The origin.
    pub fn origin() -> Self {
        Point { x: 0 }
    }
}
"""

PYTHON = """\
import os


def area(w, h):
    return w * h


class Box:
    def volume(self):
        return 1
"""

# A script: a declaration, then top-level code the chunker can only keep as unnamed "code".
SCRIPT = """\
def helper():
    return 1


for i in range(3):
    print(i)
    print(helper())
total = 0
"""


def run(*args: str, home: Path):
    return CliRunner().invoke(main, ["--home", str(home), *args], catch_exceptions=False)


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def test_chunks_text_shows_spans_kinds_names_and_context(tmp_path):
    write(tmp_path, {"point.rs": RUST, "shapes.py": PYTHON})
    out = run("chunks", str(tmp_path / "point.rs"), str(tmp_path / "shapes.py"), home=tmp_path / "home")
    assert out.exit_code == 0, out.output
    lines = [line.split() for line in out.output.splitlines()]
    assert lines == [
        [str(tmp_path / "point.rs"), "[rust,", "2", "chunks]"],
        ["3-6", "struct", "Point"],
        ["9-12", "method", "origin", "(impl", "Point)"],
        [str(tmp_path / "shapes.py"), "[python,", "3", "chunks]"],
        ["4-5", "function", "area"],
        ["8-8", "class", "Box"],
        ["9-10", "method", "volume", "(class", "Box)"],
    ]


def test_chunks_json_lists_every_chunk(tmp_path):
    write(tmp_path, {"point.rs": RUST})
    out = run("chunks", "--json", str(tmp_path / "point.rs"), home=tmp_path / "home")
    assert out.exit_code == 0, out.output
    assert json.loads(out.output) == [
        {"path": str(tmp_path / "point.rs"), "start_line": 3, "end_line": 6, "language": "rust",
         "kind": "struct", "name": "Point", "context": "", "lines": 4},
        {"path": str(tmp_path / "point.rs"), "start_line": 9, "end_line": 12, "language": "rust",
         "kind": "method", "name": "origin", "context": "impl Point", "lines": 4},
    ]


def test_chunks_lang_overrides_the_extension(tmp_path):
    write(tmp_path, {"point.txt": RUST})
    out = run("chunks", "--json", "--lang", "rust", str(tmp_path / "point.txt"), home=tmp_path / "home")
    assert [(c["language"], c["kind"], c["name"]) for c in json.loads(out.output)] == [
        ("rust", "struct", "Point"), ("rust", "method", "origin")]
    plain = run("chunks", "--json", str(tmp_path / "point.txt"), home=tmp_path / "home")
    assert [(c["language"], c["kind"], c["name"]) for c in json.loads(plain.output)] == [("text", "window", "")]
    bad = run("chunks", "--lang", "cobol", str(tmp_path / "point.txt"), home=tmp_path / "home")
    assert bad.exit_code == 2 and "unknown language 'cobol'" in bad.output


def test_chunks_of_a_folder_are_the_indexable_files(tmp_path):
    repo = write(tmp_path / "repo", {"src/point.rs": RUST, "shapes.py": PYTHON, "skip/me.py": PYTHON,
                                     ".gitignore": "skip/\n"})
    (repo / "logo.png").write_bytes(b"\x89PNG\0\0")
    out = run("chunks", "--json", str(repo), home=tmp_path / "home")
    assert out.exit_code == 0, out.output
    chunks = json.loads(out.output)
    assert sorted({c["path"] for c in chunks}) == [str(repo / "shapes.py"), str(repo / "src" / "point.rs")]
    assert len(chunks) == 5


def test_chunks_errors_are_one_line_with_status_2(tmp_path):
    missing = run("chunks", str(tmp_path / "nope.rs"), home=tmp_path / "home")
    assert missing.exit_code == 2
    assert missing.output.strip().splitlines() == [f"codesearch: error: {tmp_path / 'nope.rs'} does not exist"]
    (tmp_path / "blob.dat").write_bytes(b"\0\1\2" * 50)
    binary = run("chunks", str(tmp_path / "blob.dat"), home=tmp_path / "home")
    assert binary.exit_code == 2
    assert binary.output.strip().splitlines() == [f"codesearch: error: {tmp_path / 'blob.dat'} is not indexable (binary)"]


def test_chunks_loads_no_model(tmp_path):
    write(tmp_path, {"point.rs": RUST})
    code = ("import sys; from codesearch.cli import main\n"
            "try:\n    main(['chunks', sys.argv[1]])\nexcept SystemExit as e:\n    assert not e.code\n"
            "assert 'torch' not in sys.modules and 'codesearch.model' not in sys.modules, 'a model was loaded'\n")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "point.rs")], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "3-6" in proc.stdout and "origin" in proc.stdout


def test_bench_chunks_reports_the_fallback_share(tmp_path):
    corpus = write(tmp_path / "corpus", {"point.rs": RUST, "script.py": SCRIPT, "notes.txt": "some\n\nnotes\n"})
    out = run("bench", "--chunks", str(corpus), "--json", home=tmp_path / "home")
    assert out.exit_code == 0, out.output
    figures = json.loads(out.output)
    rust, python, text = (figures["languages"][k] for k in ("rust", "python", "text"))
    # point.rs: 11 non-blank lines; `use`, `impl Point {` and its `}` are in no chunk, nothing in a fallback.
    assert (rust["files"], rust["lines"], rust["fallback_lines"], rust["uncovered_lines"]) == (1, 11, 0, 3)
    assert rust["fallback_share"] == 0.0 and rust["uncovered_share"] == round(3 / 11, 4)
    assert (rust["chunks"], rust["named_chunks"], rust["parse_errors"]) == (2, 2, 0)
    # script.py: 6 non-blank lines, 4 of them top-level code (an unnamed "code" chunk).
    assert (python["lines"], python["fallback_lines"], python["fallback_share"]) == (6, 4, round(4 / 6, 4))
    assert (python["chunks"], python["named_chunks"]) == (2, 1)
    # notes.txt: windowed, but plain text bears no declarations: not in the share.
    assert (text["files"], text["lines"], text["decl_lines"], text["fallback_share"]) == (1, 2, 0, None)
    assert text["parse_errors"] is None
    total = figures["total"]
    assert (total["files"], total["decl_lines"], total["fallback_lines"]) == (3, 17, 4)
    assert total["fallback_share"] == round(4 / 17, 4)
    assert figures["most_fallback"] == [{"path": "script.py", "language": "python", "fallback_lines": 4}]
    table = run("bench", "--chunks", str(corpus), home=tmp_path / "home")
    assert table.exit_code == 0
    assert any(line.split()[:5] == ["python", "1", "6", "6", "66.7%"] for line in table.output.splitlines())
    missing = run("bench", "--chunks", str(tmp_path / "nope"), home=tmp_path / "home")
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_parse_error_regions_counts_maximal_error_nodes():
    from codesearch.indexer.chunking.coverage import parse_error_regions

    assert parse_error_regions("rust", RUST) == 0
    assert parse_error_regions("rust", "fn a() { let x = ; }\n\nfn b() { ) }\n") >= 1
    assert parse_error_regions("lean", "theorem t : True := trivial\n") is None
    assert parse_error_regions("text", "anything") is None
