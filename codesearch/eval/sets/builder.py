"""Build the held-out retrieval eval sets (CodeSearchNet style) from code on this machine.

For each set: take documented declarations from a real code base, use the first sentence
of the doc comment as the query, and copy the source files into a corpus folder with every
doc comment blanked out (each doc line becomes an empty line, so line numbers still match
the originals). The relevant span of a query is the declaration without its doc: its first
attribute/decorator/signature line through its last line. Queries are sampled with a fixed
seed; the output format is docs/eval-format.md.

    python scripts/build_eval_sets.py                       # all sets, seed 0
    python scripts/build_eval_sets.py --sets rust --max-queries 100

Output per set: <out>/<set>/corpus/... and <out>/<set>.jsonl; when <out> is the default
evals/data, the first 20 lines of each eval set's JSONL (not a validation set's) also go to
evals/samples/<set>.jsonl (committed, for review; `--samples DIR` writes them elsewhere), and
evals/heldout_sources.txt lists every source folder/file the sets are made from (never train
on them). See evals/README.md.

This module holds the sets (their fixed sources, files and specs), the sampling and the command
line (``scripts/build_eval_sets.py`` calls :func:`main`); each language's extractor is a
``codesearch.eval.extract_*`` module (shared parts: :mod:`codesearch.eval.sets.extract`).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from codesearch.eval.sets.extract import DocItem, FileResult, split_lines
from codesearch.eval.sets.coq import process_coq
from codesearch.eval.sets.lean import process_lean
from codesearch.eval.sets.python import process_python
from codesearch.eval.sets.rust import process_rust
from codesearch.eval.sets.tlaplus import process_tlaplus
from codesearch.eval.sets.verus import process_verus

REPO = Path(__file__).resolve().parents[3]

# ---------------------------------------------------------------------------------------
# Sources. Fixed lists (with versions) so that a rebuild gives the same sets; a set whose
# sources are not all present is skipped with a message.
# ---------------------------------------------------------------------------------------

CARGO_REGISTRY = Path("/usr/share/cargo/registry")
RUST_CRATES = (
    "bytes-1.2.1",
    "chrono-0.4.23",
    "hashbrown-0.12.3",
    "indexmap-1.9.2",
    "itertools-0.10.3",
    "smallvec-1.9.0",
)

PYTHON_VERSION = "3.11.7"
PYTHON_STDLIB = Path(f"/root/.pyenv/versions/{PYTHON_VERSION}/lib/python3.11")
# Pure-Python modules (a file) or packages (a folder, walked recursively, no tests).
PYTHON_MODULES = (
    "argparse.py",
    "base64.py",
    "bisect.py",
    "calendar.py",
    "collections/__init__.py",
    "colorsys.py",
    "configparser.py",
    "contextlib.py",
    "copy.py",
    "csv.py",
    "dataclasses.py",
    "datetime.py",
    "difflib.py",
    "email/_parseaddr.py",
    "email/message.py",
    "email/utils.py",
    "enum.py",
    "filecmp.py",
    "fnmatch.py",
    "fractions.py",
    "functools.py",
    "getopt.py",
    "gettext.py",
    "glob.py",
    "graphlib.py",
    "heapq.py",
    "http/cookies.py",
    "ipaddress.py",
    "json",
    "mimetypes.py",
    "netrc.py",
    "optparse.py",
    "pathlib.py",
    "pprint.py",
    "queue.py",
    "random.py",
    "reprlib.py",
    "sched.py",
    "shlex.py",
    "shutil.py",
    "statistics.py",
    "string.py",
    "tempfile.py",
    "textwrap.py",
    "tokenize.py",
    "urllib/parse.py",
    "zipfile.py",
)

COQ_VERSION = "8.16.1"
COQ_THEORIES = Path("/usr/lib/ocaml/coq/theories")
COQ_FOLDERS = (
    "Arith",
    "Bool",
    "Classes",
    "Init",
    "Lists",
    "Logic",
    "NArith",
    "PArith",
    "Program",
    "QArith",
    "Relations",
    "Sets",
    "Sorting",
    "Strings",
    "Structures",
    "Vectors",
    "Wellfounded",
    "ZArith",
)

# Lean and TLA+: checkouts of public repositories (not installed by any package); the
# version is the commit. Get them with `git clone https://github.com/<owner>/<name>
# /work/formal-src/<owner>+<name> && git -C ... checkout <commit>` (see evals/README.md).
FORMAL_SRC = Path("/work/formal-src")
LEAN_REPO = ("cedar-policy/cedar-spec", "795ddccff61c83aeb5d6a7ccd22abf5e00164c73")
# Lean files of the set: under these folders of the repository, minus tests and build files.
LEAN_FOLDERS = ("cedar-lean/Cedar", "cedar-lean/CedarProto", "cedar-lean/Protobuf")
TLAPLUS_REPO = ("tlaplus/CommunityModules", "a8068a4c21ed76b339b9a2aa6de69d78f64f6422")
TLAPLUS_FOLDERS = ("modules",)
# Validation sets: for choosing things the held-out pairs cannot judge (an adapter's
# interpolation factor, see docs/training.md) without looking at the eval sets.
# Built only on request (`--sets lean-validation,coq-validation`), no evals/samples; never trained on.
LEAN_VALIDATION_REPO = ("lecopivo/SciLean", "95f8119a2884e9c41f82136523bd5568ea7075c5")
LEAN_VALIDATION_FOLDERS = ("SciLean",)
COQ_VALIDATION_REPO = ("DeepSpec/InteractionTrees", "bd356ec0d2ea1cf13ed08b129967027f0f81b882")
COQ_VALIDATION_FOLDERS = ("theories",)
# Verus: asterinas/vostd (MPL-2.0), the `.rs` files under these folders that hold `verus!`
# code. Not ostd/libs, tools/ nor verified_libs/ (vstd extensions); nothing from
# verus-lang/verus, which is reserved for an independent benchmark. Its checkout is an export
# of the commit: `git -C <mirror> archive <commit> | tar -x -C <formal-src>/asterinas+vostd`.
VERUS_REPO = ("asterinas/vostd", "b5b972861a1ff6944269d08e3e8e2abbad7f4a93")
VERUS_FOLDERS = ("ostd/src", "ostd/specs")
VERUS_LICENSE = "LICENSE-MPL"  # copied into the corpus as is
# More validation sets, built only on request (`--sets rust-validation,tlaplus-validation,
# verus-validation`) like the two above. Rust: Debian crates (the highest version installed
# here), `src/` only as in the rust set; config/data.yaml's rust-crates source excludes them.
RUST_VALIDATION_CRATES = (
    "arrayvec-0.7.2",
    "either-1.6.1",
    "petgraph-0.6.2",
    "semver-1.0.14",
    "unicode-segmentation-1.9.0",
    "url-2.3.1",
)
# TLA+: Informal Systems' IBC specs in Hermes (ex ibc-rs, Apache-2.0), the `.tla` files under
# docs/spec (not tools/: integration tests' models).
TLAPLUS_VALIDATION_REPO = ("informalsystems/hermes", "a03355067ab95996ba7b951d21e7e12f0bbf38f3")
TLAPLUS_VALIDATION_FOLDERS = ("docs/spec",)
# Verus: the verified NrOS page table and node replication (MIT/Apache-2.0), the `.rs` files
# that hold `verus!` code (not benchmarks/, examples/, nor the verus submodule).
VERUS_VALIDATION_REPO = ("utaal/verified-nrkernel", "c0fc881677206b8fa0eb0b08b2e2b76d6e80d0b2")
VERUS_VALIDATION_FOLDERS = ("page-table/src", "verified-node-replication/verified-node-replication/src")

# Python: pure-Python packages installed with pip on the build machine (site-packages, no
# tests), as gate for the general phase; config/data.yaml's python-site-packages source
# excludes them.
PYTHON_VALIDATION_PACKAGES = (("click", "8.5.1"), ("jinja2", "3.1.6"), ("dateutil", "2.9.0.post0"))

DEFAULT_SEED = 0
DEFAULT_MAX_QUERIES = 300
SAMPLE_LINES = 20


# ---------------------------------------------------------------------------------------
# Sets
# ---------------------------------------------------------------------------------------


@dataclass
class SourceFile:
    src: Path  # absolute path of the original
    rel: str  # path inside the corpus, '/' separators


@dataclass
class SetSpec:
    name: str
    domain: str
    # (kind, name, version, path) rows of evals/heldout_sources.txt
    sources: list[tuple[str, str, str, Path]]
    list_files: Callable[[], list[SourceFile]]
    process: Callable[[str, str], FileResult]
    # files copied into the corpus unchanged and not counted (a license)
    extra_files: Callable[[], list[SourceFile]] = lambda: []
    # whether its first lines go to the samples folder (evals/samples): not for validation sets
    samples: bool = True


def _ext(language: str) -> str:
    """A language's main file extension, from the language registry (``codesearch.languages``).

    The sets' extractors (``process_rust``, ``process_coq``, ...) stay their own: they define
    the committed eval data, and their docs are found independently of the miner's."""
    from codesearch import languages

    lang = languages.get(language)
    assert lang is not None and lang.extensions, language
    return lang.extensions[0]


def _rust_files(registry: Path, crates: Sequence[str] | None = None) -> list[SourceFile]:
    out = []
    for crate in RUST_CRATES if crates is None else crates:
        root = registry / crate / "src"
        for p in sorted(root.rglob(f"*{_ext('rust')}")):
            rel = p.relative_to(registry / crate)
            if any(part in ("tests", "benches", "examples") for part in rel.parts[1:-1]):
                continue
            out.append(SourceFile(p, f"{crate}/{rel.as_posix()}"))
    return out


def _python_files(stdlib: Path, entries: Sequence[str] = PYTHON_MODULES) -> list[SourceFile]:
    out = []
    for entry in entries:
        p = stdlib / entry
        if p.is_dir():
            for f in sorted(p.rglob(f"*{_ext('python')}")):
                rel = f.relative_to(stdlib)
                if any(part in ("test", "tests", "idle_test", "__pycache__") for part in rel.parts):
                    continue
                out.append(SourceFile(f, rel.as_posix()))
        else:
            out.append(SourceFile(p, entry))
    return out


def _coq_files(theories: Path) -> list[SourceFile]:
    out = []
    for folder in COQ_FOLDERS:
        for f in sorted((theories / folder).rglob(f"*{_ext('coq')}")):
            out.append(SourceFile(f, f.relative_to(theories).as_posix()))
    return out


def _repo_files(root: Path, folders: Sequence[str], suffix: str) -> list[SourceFile]:
    out = []
    for folder in folders:
        for f in sorted((root / folder).rglob(f"*{suffix}")):
            rel = f.relative_to(root)
            if any(part.lower() in ("test", "tests", "unittest", "symtest", "difftest") for part in rel.parts[:-1]):
                continue
            out.append(SourceFile(f, rel.as_posix()))
    return out


def _verus_files(root: Path, folders: Sequence[str] = VERUS_FOLDERS) -> list[SourceFile]:
    return [f for f in _repo_files(root, folders, _ext("rust")) if "verus!" in _read(f.src)]


def repo_dir(formal_src: Path, repo: tuple[str, str]) -> Path:
    """Where a repository's checkout lives: <formal_src>/<owner>+<name>."""
    return formal_src / repo[0].replace("/", "+")


def make_specs(cargo_registry: Path, python_stdlib: Path, coq_theories: Path, coq_plain: bool,
               formal_src: Path = FORMAL_SRC) -> dict[str, SetSpec]:  # fmt: skip
    lean_dir, tla_dir = repo_dir(formal_src, LEAN_REPO), repo_dir(formal_src, TLAPLUS_REPO)
    lean_val_dir, coq_val_dir = repo_dir(formal_src, LEAN_VALIDATION_REPO), repo_dir(formal_src, COQ_VALIDATION_REPO)
    verus_dir = repo_dir(formal_src, VERUS_REPO)
    tla_val_dir = repo_dir(formal_src, TLAPLUS_VALIDATION_REPO)
    verus_val_dir = repo_dir(formal_src, VERUS_VALIDATION_REPO)

    def py_name(entry: str) -> str:
        return entry.removesuffix(".py").removesuffix("/__init__").replace("/", ".")

    return {
        "rust": SetSpec(
            "rust",
            "rust",
            [("crate", c.rsplit("-", 1)[0], c.rsplit("-", 1)[1], cargo_registry / c) for c in RUST_CRATES],
            lambda: _rust_files(cargo_registry),
            process_rust,
        ),
        "python": SetSpec(
            "python",
            "python",
            [
                ("package" if not entry.endswith(".py") else "module", py_name(entry), PYTHON_VERSION, python_stdlib / entry)
                for entry in PYTHON_MODULES
            ],
            lambda: _python_files(python_stdlib),
            process_python,
        ),
        "coq": SetSpec(
            "coq",
            "coq",
            [("theories", f"Coq.{f}", COQ_VERSION, coq_theories / f) for f in COQ_FOLDERS],
            lambda: _coq_files(coq_theories),
            lambda text, rel: process_coq(text, rel, accept_plain=coq_plain),
        ),
        "lean": SetSpec(
            "lean",
            "lean",
            [("repo", LEAN_REPO[0], LEAN_REPO[1], lean_dir)],
            lambda: _repo_files(lean_dir, LEAN_FOLDERS, _ext("lean")),
            process_lean,
        ),
        "tlaplus": SetSpec(
            "tlaplus",
            "tla",
            [("repo", TLAPLUS_REPO[0], TLAPLUS_REPO[1], tla_dir)],
            lambda: _repo_files(tla_dir, TLAPLUS_FOLDERS, _ext("tlaplus")),
            process_tlaplus,
        ),
        "lean-validation": SetSpec(
            "lean-validation",
            "lean",
            [("repo", LEAN_VALIDATION_REPO[0], LEAN_VALIDATION_REPO[1], lean_val_dir)],
            lambda: _repo_files(lean_val_dir, LEAN_VALIDATION_FOLDERS, _ext("lean")),
            process_lean,
            samples=False,
        ),
        "coq-validation": SetSpec(
            "coq-validation",
            "coq",
            [("repo", COQ_VALIDATION_REPO[0], COQ_VALIDATION_REPO[1], coq_val_dir)],
            lambda: _repo_files(coq_val_dir, COQ_VALIDATION_FOLDERS, _ext("coq")),
            lambda text, rel: process_coq(text, rel, accept_plain=True),  # few (** *) docs there
            samples=False,
        ),
        "verus": SetSpec(
            "verus",
            "verus",
            [("repo", VERUS_REPO[0], VERUS_REPO[1], verus_dir)],
            lambda: _verus_files(verus_dir),
            process_verus,
            lambda: [SourceFile(verus_dir / VERUS_LICENSE, VERUS_LICENSE)],
        ),
        "python-validation": SetSpec(
            "python-validation",
            "python",
            [("package", name, version, python_stdlib / "site-packages" / name) for name, version in PYTHON_VALIDATION_PACKAGES],
            lambda: _python_files(python_stdlib / "site-packages", [name for name, _ in PYTHON_VALIDATION_PACKAGES]),
            process_python,
            samples=False,
        ),
        "rust-validation": SetSpec(
            "rust-validation",
            "rust",
            [("crate", c.rsplit("-", 1)[0], c.rsplit("-", 1)[1], cargo_registry / c) for c in RUST_VALIDATION_CRATES],
            lambda: _rust_files(cargo_registry, RUST_VALIDATION_CRATES),
            process_rust,
            samples=False,
        ),
        "tlaplus-validation": SetSpec(
            "tlaplus-validation",
            "tla",
            [("repo", TLAPLUS_VALIDATION_REPO[0], TLAPLUS_VALIDATION_REPO[1], tla_val_dir)],
            lambda: _repo_files(tla_val_dir, TLAPLUS_VALIDATION_FOLDERS, _ext("tlaplus")),
            lambda text, rel: process_tlaplus(text, rel, drop_annotations=True),  # Apalache @type lines
            samples=False,
        ),
        "verus-validation": SetSpec(
            "verus-validation",
            "verus",
            [("repo", VERUS_VALIDATION_REPO[0], VERUS_VALIDATION_REPO[1], verus_val_dir)],
            lambda: _verus_files(verus_val_dir, VERUS_VALIDATION_FOLDERS),
            process_verus,
            samples=False,
        ),
    }


def group_queries(items: Sequence[DocItem]) -> list[tuple[str, list[DocItem]]]:
    """Usable items grouped by query text (case-insensitive, without the final period).

    The same doc on several declarations (cfg twins, map/set pairs) makes one query whose
    relevant spans are all of them, so no query has a right answer that counts as a miss.
    """
    groups: dict[str, list[DocItem]] = {}
    for it in items:
        if it.query is None:
            continue
        key = " ".join(it.query.lower().rstrip(".!? ").split())
        groups.setdefault(key, []).append(it)
    return sorted(groups.items())


def sample_queries(items: Sequence[DocItem], n: int, seed: int, domain: str, prefix: str) -> list[dict]:
    """Sample n query groups with a fixed seed; returns eval-set JSON objects."""
    groups = group_queries(items)
    rng = random.Random(seed)
    chosen = rng.sample(groups, min(n, len(groups)))
    out = []
    for i, (_, members) in enumerate(chosen):
        members = sorted(members, key=lambda it: (it.path, it.start_line))
        first = members[0]
        out.append(
            {
                "id": f"{prefix}-{i}",
                "query": first.query,
                "domain": domain,
                "relevant": [{"path": m.path, "start_line": m.start_line, "end_line": m.end_line} for m in members],
                "name": first.name,
                "kind": first.kind,
            }
        )
    return out


def _read(path: Path) -> str:
    # newline="" keeps CRLF; surrogateescape round-trips any odd byte
    with path.open(encoding="utf-8", errors="surrogateescape", newline="") as f:
        return f.read()


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", errors="surrogateescape", newline="") as f:
        f.write(text)


def build_set(spec: SetSpec, out: Path, seed: int, max_queries: int) -> dict | None:
    """Build one set; returns its summary, or None when its sources are missing."""
    missing = [str(p) for _, _, _, p in spec.sources if not p.exists()]
    if missing:
        print(f"[{spec.name}] skipped: missing source(s): {', '.join(missing[:5])}", file=sys.stderr)
        return None
    files = spec.list_files()
    corpus = out / spec.name / "corpus"
    if corpus.exists():
        shutil.rmtree(corpus)
    all_items: list[DocItem] = []
    n_lines = declarations = 0
    for f in files:
        text = _read(f.src)
        result = spec.process(text, f.rel)
        assert len(split_lines(result.text)) == len(split_lines(text)), f.rel
        _write(corpus / f.rel, result.text)
        n_lines += len(split_lines(text)) - (1 if text.endswith("\n") else 0)
        declarations += result.declarations
        all_items.extend(result.items)
    for f in spec.extra_files():
        _write(corpus / f.rel, _read(f.src))
    records = sample_queries(all_items, max_queries, seed, spec.domain, spec.name)
    jsonl = out / f"{spec.name}.jsonl"
    jsonl.parent.mkdir(parents=True, exist_ok=True)
    with jsonl.open("w", encoding="utf-8", newline="\n") as fh:
        for r in records:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    skips = Counter(it.skip for it in all_items if it.skip)
    summary = {
        "set": spec.name,
        "files": len(files),
        "lines": n_lines,
        "declarations": declarations,
        "documented": len(all_items),
        "usable": sum(1 for it in all_items if it.query),
        "unique_queries": len(group_queries(all_items)),
        "queries": len(records),
        "multi_target_queries": sum(1 for r in records if len(r["relevant"]) > 1),
        "skipped": dict(sorted(skips.items())),
        "corpus": str(corpus),
        "jsonl": str(jsonl),
    }
    return summary


def write_heldout(specs: dict[str, SetSpec], path: Path) -> None:
    lines = [
        "# Sources of the held-out eval and validation sets (see evals/README.md). NEVER use them for training:",
        "# not these files, nor other copies of them (any version of these crates, CPython's",
        "# Lib/ modules, the Coq standard library theories folders listed, any checkout of the",
        "# repositories listed as `repo`, whatever its commit).",
        "# Generated by scripts/build_eval_sets.py. Tab-separated columns:",
        "# set\tkind\tname\tversion\tpath",
    ]
    for spec in specs.values():
        for kind, name, version, p in spec.sources:
            lines.append(f"{spec.name}\t{kind}\t{name}\t{version}\t{p}")
    _write(path, "\n".join(lines) + "\n")


DEFAULT_OUT = REPO / "evals" / "data"
DEFAULT_SAMPLES = REPO / "evals" / "samples"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", default="rust,python,coq,lean,tlaplus",
                    help="comma-separated: rust,python,coq,lean,tlaplus (the eval sets; verus on request), "
                         "lean-validation,coq-validation,rust-validation,tlaplus-validation,verus-validation,python-validation")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (git-ignored)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--max-queries", type=int, default=DEFAULT_MAX_QUERIES, help="queries per set")
    ap.add_argument("--samples", type=Path, default=None,
                    help=f"where the first {SAMPLE_LINES} lines of each set go ('' to skip; default: "
                         "evals/samples when --out is the default, else nowhere)")
    ap.add_argument("--heldout-file", type=Path, default=REPO / "evals" / "heldout_sources.txt",
                    help="machine-readable list of the sources ('' to skip)")
    ap.add_argument("--cargo-registry", type=Path, default=CARGO_REGISTRY)
    ap.add_argument("--python-stdlib", type=Path, default=PYTHON_STDLIB)
    ap.add_argument("--coq-theories", type=Path, default=COQ_THEORIES)
    ap.add_argument("--formal-src", type=Path, default=FORMAL_SRC,
                    help="folder holding the <owner>+<name> checkouts of the Lean, TLA+ and Verus sets' repositories")
    ap.add_argument("--coq-plain-comments", action="store_true",
                    help="also accept plain (* *) comments above Coq declarations as docs")
    args = ap.parse_args(argv)
    if args.samples is None:  # a build elsewhere (experiments, validation sets) leaves the checkout alone
        args.samples = DEFAULT_SAMPLES if args.out.resolve() == DEFAULT_OUT.resolve() else Path("")

    specs = make_specs(args.cargo_registry, args.python_stdlib, args.coq_theories, args.coq_plain_comments,
                       args.formal_src)
    wanted = [s.strip() for s in args.sets.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in specs]
    if unknown:
        ap.error(f"unknown set(s): {', '.join(unknown)} (known: {', '.join(specs)})")
    if str(args.heldout_file) not in ("", "."):
        write_heldout(specs, args.heldout_file)
    built = 0
    for name in wanted:
        summary = build_set(specs[name], args.out, args.seed, args.max_queries)
        if summary is None:
            continue
        built += 1
        print(
            f"[{name}] files={summary['files']} lines={summary['lines']} "
            f"declarations={summary['declarations']} documented={summary['documented']} "
            f"usable={summary['usable']} unique_queries={summary['unique_queries']} "
            f"queries_written={summary['queries']} (multi-target {summary['multi_target_queries']})"
        )
        print(f"[{name}] skipped docs: {json.dumps(summary['skipped'])}")
        print(f"[{name}] -> {summary['jsonl']}, {summary['corpus']}")
        if str(args.samples) not in ("", ".") and specs[name].samples:
            args.samples.mkdir(parents=True, exist_ok=True)
            with open(summary["jsonl"], encoding="utf-8") as fh:
                head = [line for _, line in zip(range(SAMPLE_LINES), fh)]
            _write(args.samples / f"{name}.jsonl", "".join(head))
    return 0 if built or not wanted else 1


if __name__ == "__main__":
    sys.exit(main())
