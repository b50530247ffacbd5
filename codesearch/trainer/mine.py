"""Pair mining: (query, code) training pairs from source trees (``codesearch data build``).

For each source (a folder: a set of repositories, a library, the user's own code) the
miner walks the files with the indexer's rules (:mod:`codesearch.indexer.walk`), chunks
each with :func:`codesearch.indexer.chunking.chunk_text` (the chunks the index holds), groups
the chunks into declarations and mines:

* **doc** pairs: the first sentence of a declaration's doc comment (see
  :mod:`codesearch.trainer.doc_queries`) -> the declaration without its doc;
* **name** pairs, for declarations without a usable doc: ``parse_interval`` ->
  "parse interval" (with the owner for members: "ring buffer push");
* **test** pairs: a test ``test_parses_ranges`` -> "parses ranges", paired with the
  declaration it most likely tests (name words inside the test's, same file or a file of
  the same stem first);
* **commit** pairs (git repositories): a commit's subject -> the declarations it changed,
  when the file is unchanged since that commit (same blob at HEAD, clean work tree);
* **augmented** pairs: formal-methods phrasings (:mod:`codesearch.trainer.augment`).

Then near-duplicates are removed, a held-out split is taken per domain by file, BM25 hard
negatives are mined within each split, and ``train.jsonl``, ``heldout.jsonl`` and
``summary.json`` are written. Sources of the eval sets (``evals/heldout_sources.txt``, any
version of those crates, CPython's copies of those modules, those Coq theories, checkouts of
those repositories) and the
repositories reserved for an independent benchmark are never read.
"""

from __future__ import annotations

import bisect
import logging
import os
import random
import re
import subprocess
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from codesearch import languages as _languages
from codesearch.indexer.chunking import Chunk, chunk_text
from codesearch.indexer.chunking.spans import MAX_CHUNK_CHARS, split_lines
from codesearch.trainer import augment as aug
from codesearch.trainer.doc_queries import (
    Doc,
    doc_query,
    identifier_words,
    leading_doc,
    looks_like_prose,
    python_doc,
    python_docstrings,
)
from codesearch.trainer.pairs import (
    Origin,
    Pair,
    count_pairs,
    dedup_pairs,
    domain_for,
    split_pairs,
    write_jsonl,
)

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
HELDOUT_FILE = REPO_ROOT / "evals" / "heldout_sources.txt"

DEFAULT_MAX_PAIRS = 20_000  # per source
MAX_PAIRS_PER_FILE = 300
MAX_NAME_PAIRS_PER_FILE = 100
MAX_POSITIVE_LINES = 60  # a declaration's positive: its first lines (as the index's first chunk)
MAX_COMMITS = 500
MAX_DECLS_PER_COMMIT = 6  # a commit touching more declarations says little about each
MAX_PAIRS_PER_COMMIT = 3
NAME_SHARE = 0.35  # at most this share of a (non-personal) source's cap are name pairs

MINED_LANGUAGES = _languages.structured_names()  # as registered at import (codesearch.languages)

# Chunk kinds that are not declarations.
NOT_DECLS = frozenset({"code", "window", "doc", "section", "commands", "module", "algorithm"})
# Kinds that make no name pair (containers, bindings, housekeeping).
NO_NAME_KINDS = NOT_DECLS | frozenset(
    """impl mod extern namespace assert variable parameter notation declaration coercion canonical
    scheme derive import package instance define""".split()
)
CONTAINER_KINDS = frozenset({"impl", "trait", "class", "interface", "mod", "namespace", "object", "extern"})
TRIVIAL_NAMES = frozenset(
    """new main fmt from default clone drop eq ne hash into deref deref_mut next len is_empty as_ref
    as_mut borrow borrow_mut index index_mut partial_cmp cmp to_string __init__ __repr__ __str__
    __eq__ __hash__ __len__ __iter__ __next__ __call__ __enter__ __exit__ __getitem__ __setitem__
    __contains__ __del__ __lt__ __le__ __gt__ __ge__ __ne__ __bool__ init run get set size build
    setup teardown setUp tearDown toString equals hashCode constructor apply call poll describe
    render update handle process value values keys items""".split()
)


# ---------------------------------------------------------------------------------------
# Sources and exclusions
# ---------------------------------------------------------------------------------------


@dataclass
class SourceSpec:
    """One folder to mine."""

    name: str
    path: str
    domain: str | None = None  # override the per-language domain
    personal: bool = False  # the user's own code: every pair's domain is "personal"
    max_pairs: int | None = None
    include: list[str] = field(default_factory=list)  # gitignore-style patterns of files to keep
    exclude: list[str] = field(default_factory=list)  # gitignore-style patterns of files to drop
    commits: bool = True  # mine git history where the source holds repositories

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SourceSpec":
        path = expand_path(str(d["path"]))
        name = str(d.get("name") or Path(path).name)
        return cls(
            name=name,
            path=path,
            domain=d.get("domain") or None,
            personal=bool(d.get("personal", False)),
            max_pairs=int(d["max_pairs"]) if d.get("max_pairs") is not None else None,
            include=[str(x) for x in d.get("include") or []],
            exclude=[str(x) for x in d.get("exclude") or []],
            commits=bool(d.get("commits", True)),
        )


def expand_path(path: str) -> str:
    """``~`` and ``{python_stdlib}`` (this interpreter's standard library) expanded."""
    if "{python_stdlib}" in path:
        import sysconfig

        path = path.replace("{python_stdlib}", sysconfig.get_paths()["stdlib"])
    return os.path.expanduser(path)


def default_config_path() -> Path:
    """The shipped ``config/data.yaml`` (packaged as ``codesearch.defaults``)."""
    try:
        from importlib.resources import files

        p = Path(str(files("codesearch.defaults") / "data.yaml"))
        if p.exists():
            return p
    except (ModuleNotFoundError, FileNotFoundError):
        pass
    return REPO_ROOT / "config" / "data.yaml"


def load_data_config(path: Path | str | None = None) -> tuple[list[SourceSpec], dict[str, Any]]:
    """(sources, options) from a data config file (default: the shipped one)."""
    import yaml

    p = Path(path) if path else default_config_path()
    with p.open(encoding="utf-8") as fh:
        cfg = yaml.safe_load(fh) or {}
    sources = [SourceSpec.from_dict(s) for s in cfg.get("sources") or []]
    options = {k: v for k, v in cfg.items() if k != "sources"}
    return sources, options


# The eval and validation sets' sources, as in evals/heldout_sources.txt (kept in step by a test); used
# when that file is not there (an installed package without the repository).
FALLBACK_HELDOUT: dict[str, tuple[str, ...]] = {
    "crate": ("bytes", "chrono", "hashbrown", "indexmap", "itertools", "smallvec"),
    "python": (
        "argparse.py", "base64.py", "bisect.py", "calendar.py", "collections/__init__.py", "colorsys.py",
        "configparser.py", "contextlib.py", "copy.py", "csv.py", "dataclasses.py", "datetime.py",
        "difflib.py", "email/_parseaddr.py", "email/message.py", "email/utils.py", "enum.py", "filecmp.py",
        "fnmatch.py", "fractions.py", "functools.py", "getopt.py", "gettext.py", "glob.py", "graphlib.py",
        "heapq.py", "http/cookies.py", "ipaddress.py", "json", "mimetypes.py", "netrc.py", "optparse.py",
        "pathlib.py", "pprint.py", "queue.py", "random.py", "reprlib.py", "sched.py", "shlex.py",
        "shutil.py", "statistics.py", "string.py", "tempfile.py", "textwrap.py", "tokenize.py",
        "urllib/parse.py", "zipfile.py",
    ),
    "coq": (
        "Arith", "Bool", "Classes", "Init", "Lists", "Logic", "NArith", "PArith", "Program", "QArith",
        "Relations", "Sets", "Sorting", "Strings", "Structures", "Vectors", "Wellfounded", "ZArith",
    ),
    "repo": (
        "DeepSpec/InteractionTrees", "asterinas/vostd", "cedar-policy/cedar-spec", "lecopivo/SciLean",
        "tlaplus/CommunityModules",
    ),
}  # fmt: skip
# Repositories an eval source was copied from: their checkouts hold the same doc comments, so
# they are excluded like the source itself (vostd's ostd/ is a verified copy of asterinas' ostd/).
UPSTREAMS_OF_EVAL_SOURCES = ("asterinas/asterinas",)

# Repositories reserved for an independent benchmark (owner, name): never read, any copy.
RESERVED_REPOS = (
    ("tlaplus", "Examples"),
    ("leanprover-community", "batteries"),
    ("verus-lang", "verus"),
    ("BurntSushi", "jiff"),
)

_PY_LIB = re.compile(r"(?:^|/)(?:lib/python\d+(?:\.\d+)?|Lib)/(.+)$")
_VERSION_SUFFIX = r"-\d+(?:\.\d+)*(?:[-+.][0-9A-Za-z.]+)?"


class Exclusions:
    """Paths that must never be read: the eval sets' sources (and other copies of them) and
    the repositories reserved for an independent benchmark."""

    def __init__(self, crates: Iterable[str], python_modules: Iterable[str], coq_folders: Iterable[str],
                 paths: Iterable[str] = (), repos: Iterable[str] = ()):  # fmt: skip
        self.crates = sorted(set(crates))
        self.repos = sorted(set(repos))  # "owner/name" of eval-set repositories: any checkout of them
        self.python_modules = sorted(set(python_modules))
        self.coq_folders = sorted(set(coq_folders))
        self.paths = sorted({os.path.abspath(p).replace(os.sep, "/") for p in paths})
        crate_alt = "|".join(re.escape(c) for c in self.crates) or "(?!)"
        self._crate_versioned = re.compile(rf"^(?:{crate_alt}){_VERSION_SUFFIX}$", re.I)
        self._crate_bare = re.compile(rf"^(?:rust-)?(?:{crate_alt})$", re.I)
        reserved = "|".join(re.escape(n) for _, n in RESERVED_REPOS if n != "Examples")
        pairs = "|".join(re.escape(f"{o}+{n}") for o, n in RESERVED_REPOS)
        self._reserved = re.compile(
            rf"^(?:(?:{reserved})(?:{_VERSION_SUFFIX})?|{pairs}|tlaplus[-_]examples)$", re.I
        )
        self._py_files = {m for m in self.python_modules if m.endswith(".py")}
        self._py_dirs = tuple(m.rstrip("/") + "/" for m in self.python_modules if not m.endswith(".py"))
        self._coq = set(self.coq_folders)
        repos_too = [*self.repos, *(UPSTREAMS_OF_EVAL_SOURCES if self.repos else ())]
        repo_names = [alt for r in repos_too for alt in (r.split("/")[-1], r.replace("/", "+"))]
        repo_alt = "|".join(re.escape(n) for n in repo_names) or "(?!)"
        # also an archive download's folder: vostd-main, vostd-1.2
        self._repo = re.compile(rf"^(?:{repo_alt})(?:-(?:main|master|\d[\w.]*))?$", re.I)
        self._crate_roots: dict[str, bool] = {}

    @classmethod
    def from_heldout_file(cls, path: Path | str | None = None) -> "Exclusions":
        p = Path(path) if path else HELDOUT_FILE
        crates: list[str] = []
        modules: list[str] = []
        coq: list[str] = []
        paths: list[str] = []
        repos: list[str] = []
        if not p.exists():
            log.warning("%s not found: using the built-in list of held-out sources", p)
            return cls(FALLBACK_HELDOUT["crate"], FALLBACK_HELDOUT["python"], FALLBACK_HELDOUT["coq"],
                       repos=FALLBACK_HELDOUT["repo"])  # fmt: skip
        for line in p.read_text(encoding="utf-8").splitlines():
            if not line.strip() or line.startswith("#"):
                continue
            cols = line.split("\t")
            if len(cols) < 5:
                continue
            _set, kind, name, _version, src = cols[:5]
            paths.append(src)
            if kind == "crate":
                crates.append(name)
            elif kind in ("module", "package"):
                m = _PY_LIB.search(src.replace(os.sep, "/"))
                modules.append(m.group(1) if m else name.replace(".", "/") + (".py" if kind == "module" else ""))
            elif kind == "theories":
                coq.append(name.split(".", 1)[-1])
            elif kind == "repo":
                repos.append(name)
        return cls(crates, modules, coq, paths, repos)

    def _is_crate_root(self, folder: str) -> bool:
        hit = self._crate_roots.get(folder)
        if hit is None:
            hit = self._crate_roots[folder] = os.path.isfile(os.path.join(folder, "Cargo.toml"))
        return hit

    def reason(self, path: Path | str) -> str | None:
        """Why ``path`` (a file or folder) must not be read, or None.

        * a listed eval source, or anything inside one;
        * a copy of a listed crate: a folder ``<crate>-<version>``, or a folder named
          ``<crate>`` / ``rust-<crate>`` that holds a ``Cargo.toml`` (vendored copies, mirrors);
        * a Coq ``theories/<listed folder>`` below a folder whose name mentions coq/rocq;
        * CPython's copy of a listed module: ``lib/pythonX.Y/<module>`` or ``Lib/<module>``;
        * a checkout of a listed repository (``owner/name``): a folder ``name`` or ``owner+name``;
        * a reserved benchmark repository: folders ``batteries``, ``verus``, ``jiff`` (any
          version), ``Examples`` under a ``tlaplus`` folder, ``tlaplus-examples``,
          ``owner+name`` mirrors.
        """
        p = os.path.abspath(os.fspath(path)).replace(os.sep, "/")
        for r in self.paths:
            if p == r or p.startswith(r + "/"):
                return "eval source"
        if "/evals/data/" in p or "/evals/samples/" in p:
            return "eval source (codesearch eval corpus)"
        parts = p.split("/")
        for i, comp in enumerate(parts):
            if not comp:
                continue
            if self._reserved.match(comp):
                return "reserved benchmark"
            if self._repo.match(comp):
                return "eval source (repository copy)"
            if comp.lower() == "examples" and i > 0 and "tlaplus" in parts[i - 1].lower():
                return "reserved benchmark"
            if self._crate_versioned.match(comp):
                return "eval source (crate copy)"
            if self._crate_bare.match(comp) and self._is_crate_root("/".join(parts[: i + 1]) or "/"):
                return "eval source (crate copy)"
            if comp == "theories" and i + 1 < len(parts) and parts[i + 1] in self._coq:
                if any("coq" in x.lower() or "rocq" in x.lower() for x in parts[:i]):
                    return "eval source (coq)"
        m = _PY_LIB.search(p)
        if m:
            rel = m.group(1)
            if rel in self._py_files or rel.startswith(self._py_dirs):
                return "eval source (python)"
        return None

    def git_excludes(self) -> list[str]:
        """git pathspecs that keep excluded folders out of ``git log``."""
        out = []
        for c in self.crates:
            out += [f":(exclude,icase,glob)**/{c}/**", f":(exclude,icase,glob)**/{c}-[0-9]*/**"]
        for _owner, name in RESERVED_REPOS:
            if name != "Examples":
                out += [f":(exclude,icase,glob)**/{name}/**", f":(exclude,icase,glob)**/{name}-[0-9]*/**"]
        out.append(":(exclude,icase,glob)**/tlaplus*/Examples/**")
        for r in self.repos:
            out += [f":(exclude,icase,glob)**/{r.split('/')[-1]}/**", f":(exclude,icase,glob)**/{r.replace('/', '+')}/**"]
        return out


# ---------------------------------------------------------------------------------------
# Declarations
# ---------------------------------------------------------------------------------------


def mining_language(rel_path: str) -> str | None:
    """The language a file is mined as: a registered language with a structural chunker, or
    None when it gives no pairs (plain text)."""
    lang = _languages.for_path(rel_path)
    return lang.name if lang is not None and lang.structured else None


@dataclass
class Decl:
    """A declaration: one chunk, or the windows of one large declaration put together."""

    path: str
    language: str
    kind: str
    name: str
    context: str
    start: int  # 1-based, inclusive; includes the doc and attributes above
    end: int


def declarations(chunks: list[Chunk]) -> list[Decl]:
    """Declarations of a file's chunks (windows of one declaration merged back)."""
    out: list[Decl] = []
    for c in chunks:
        if c.kind in NOT_DECLS:
            continue
        prev = out[-1] if out else None
        if (
            prev is not None
            and (prev.kind, prev.name, prev.context) == (c.kind, c.name, c.context)
            and c.start_line <= prev.end
        ):
            prev.end = max(prev.end, c.end_line)
            continue
        out.append(Decl(c.path, c.language, c.kind, c.name, c.context, c.start_line, c.end_line))
    return out


def _extend_container(d: Decl, chunks: list[Chunk]) -> int:
    """End line for a container whose header alone says little: through its members' chunks."""
    inner = (d.context + " > " if d.context else "") + f"{d.kind} {d.name}".strip()
    end = d.end
    for c in chunks:
        if c.start_line <= d.end:
            continue
        if c.context == inner or c.context.startswith(inner + " > "):
            end = max(end, c.end_line)
        else:
            break
    return end


def positive_chunk(d: Decl, lines: list[str], doc: Doc | None, end: int | None = None) -> Chunk | None:
    """The declaration as the encoder sees it, without its doc: a :class:`Chunk` of its
    first MAX_POSITIVE_LINES non-doc lines. None when nothing but the doc is there."""
    removed = doc.lines if doc is not None else frozenset()
    replace = dict(doc.replace) if doc is not None else {}
    last = min(end or d.end, len(lines))
    kept: list[tuple[int, str]] = []
    for ln in range(d.start, last + 1):
        if ln in removed:
            continue
        kept.append((ln, replace.get(ln, lines[ln - 1])))
    while kept and not kept[0][1].strip():
        kept.pop(0)
    while kept and not kept[-1][1].strip():
        kept.pop()
    if not kept:
        return None
    kept = kept[:MAX_POSITIVE_LINES]
    text = "\n".join(t for _, t in kept)[:MAX_CHUNK_CHARS]
    if not text.strip():
        return None
    return Chunk(d.path, kept[0][0], kept[-1][0], d.language, d.kind, d.name, text, d.context)


def _owner(context: str) -> str:
    """The type a member belongs to: "impl Display for RingBuffer" -> "RingBuffer"."""
    if not context:
        return ""
    label = context.split(" > ")[-1]
    head, _, rest = label.partition(" ")
    if head in (
        "MODULE", "module", "namespace", "section", "Section", "Module", "mod", "extern", "theory", "scope",
        "locale", "context", "instantiation",
    ):  # fmt: skip
        return ""
    if " for " in rest:
        rest = rest.rsplit(" for ", 1)[1]
    return re.split(r"[<\s(\[]", rest.strip(), maxsplit=1)[0]


def good_name_words(name: str, words: list[str]) -> bool:
    """Enough real words in a name to make a query (not ``x⊓y≈y⇒y≤x`` or ``a1``)."""
    if not words:
        return False
    letters = sum(ch.isascii() and ch.isalnum() for ch in name)
    if letters < 0.7 * len(name.strip("_|")):
        return False
    if not any(len(w) >= 3 and w.isalpha() for w in words):
        return False
    return sum(len(w) == 1 for w in words) * 3 <= len(words)


def name_query(d: Decl) -> str | None:
    """A query from the declaration's name: "parse interval", "ring buffer push"."""
    if d.kind in NO_NAME_KINDS or not d.name or ", " in d.name:
        return None
    short = re.split(r"::|\.", d.name.strip("|"))[-1]
    if short in TRIVIAL_NAMES or short.lower() in TRIVIAL_NAMES or short.startswith("__"):
        return None
    if d.language == "c" and d.kind == "macro":
        return None  # header constants: FOO_BAR_SZ
    words = identifier_words(short)
    if not good_name_words(short, words):
        return None
    owner = _owner(d.context)
    owner_words = identifier_words(owner) if owner and d.kind in ("method", "function", "constructor", "field") else []
    if len(words) < 2 and not owner_words:
        return None
    q = " ".join(owner_words + words)
    if len(q.split()) < 2 or len(q) < 6:
        return None
    return q


def file_chunks(rel_path: str, text: str, language: str) -> list[Chunk]:
    """A file's chunks as the index cuts them (the eval builder imports this name)."""
    return chunk_text(rel_path, text, language)


# ---------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------

_RUST_TEST_ATTR = re.compile(r"^\s*#\[\s*(?:[\w:]+::)?(?:test|quickcheck|proptest|rstest)\b")
_TEST_PREFIX = re.compile(r"^(?:tests?_?|it_|should_)", re.I)


def is_test_decl(d: Decl, lines: list[str]) -> bool:
    """A test function: ``test_*`` (Python), ``#[test]`` / in ``mod tests`` (Rust),
    ``TestXxx`` in ``*_test.go`` (Go), ``@Test`` (Java)."""
    if d.kind not in ("function", "method"):
        return False
    head = lines[d.start - 1 : min(d.end, d.start + 20)]
    if d.language == "python":
        return d.name.startswith("test_") or (d.name.startswith("test") and d.name[4:5].isupper())
    if d.language == "rust":
        return any(_RUST_TEST_ATTR.match(x) for x in head) or bool(re.search(r"\bmod tests?\b", d.context))
    if d.language == "go":
        return d.name.startswith("Test") and d.path.endswith("_test.go")
    if d.language == "java":
        return any(x.strip().startswith("@Test") for x in head)
    return False


def test_query(name: str) -> str | None:
    words = identifier_words(_TEST_PREFIX.sub("", name))
    if words and words[0] in ("test", "tests"):
        words = words[1:]
    return " ".join(words) if len(words) >= 2 else None


def _file_stem(path: str) -> str:
    stem = os.path.splitext(os.path.basename(path))[0].lower()
    stem = re.sub(r"^(?:test_|tests_)|(?:_test|_tests|test|tests|_spec|\.test|\.spec)$", "", stem)
    return stem or os.path.splitext(os.path.basename(path))[0].lower()


def _stem(w: str) -> str:
    for suffix in ("ing", "es", "ed", "er", "s", "e"):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            return w[: -len(suffix)]
    return w


def _word_match(a: str, b: str) -> bool:
    """Same word up to an inflection: parse / parses / parsed / parsing."""
    return a == b or _stem(a) == _stem(b)


def _contains_run(hay: list[str], needle: list[str]) -> bool:
    n = len(needle)
    return any(all(_word_match(hay[i + j], needle[j]) for j in range(n)) for i in range(len(hay) - n + 1))


@dataclass
class _Target:
    repo: str
    path: str
    stem: str
    words: list[str]
    decl: Decl
    abs_path: str


@dataclass
class _Test:
    repo: str
    path: str
    stem: str
    query: str
    words: list[str]
    language: str


class _TargetIndex:
    """Non-test declarations of one repository, by the stem of their name's first word."""

    def __init__(self, targets: list[_Target]):
        self.by_word: dict[str, list[_Target]] = defaultdict(list)
        for tg in targets:
            if tg.words:
                self.by_word[_stem(tg.words[0])].append(tg)

    def candidates(self, t: _Test) -> list[_Target]:
        seen: set[int] = set()
        out: list[_Target] = []
        for w in {_stem(w) for w in t.words}:
            for tg in self.by_word.get(w, ()):
                if id(tg) not in seen:
                    seen.add(id(tg))
                    out.append(tg)
        return out


def _best_target(t: _Test, targets: list[_Target]) -> _Target | None:
    """The declaration a test most likely tests: its name words appear (as a run, light
    stemming) in the test's; same file beats same stem beats elsewhere; ties elsewhere are
    ambiguous."""
    best: list[tuple[tuple[int, int], _Target]] = []
    for tg in targets:
        if tg.decl.language != t.language or tg.decl.kind in NO_NAME_KINDS:
            continue
        if not good_name_words(tg.words and "_".join(tg.words) or "", tg.words):
            continue  # `X86_64`, `c_int`: too little to go on
        place = 2 if tg.path == t.path else 1 if tg.stem == t.stem else 0
        if len(tg.words) == 1 and (place == 0 or len(tg.words[0]) < 5 or tg.words[0] in TRIVIAL_NAMES):
            continue  # one word names a target only next to the test
        if len(tg.words) >= len(t.words) or not _contains_run(t.words, tg.words):
            continue
        best.append(((place, len(tg.words)), tg))
    if not best:
        return None
    best.sort(key=lambda x: x[0], reverse=True)
    top_score = best[0][0]
    tied = {(b.path, b.decl.start) for s, b in best if s == top_score}
    if len(tied) > 1:
        return None
    return best[0][1]


# ---------------------------------------------------------------------------------------
# Git history
# ---------------------------------------------------------------------------------------

_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@")
_CONVENTIONAL = re.compile(
    r"^(?:feat|feature|fix|bugfix|chore|docs|doc|refactor|perf|test|tests|style|build|ci|revert)(?:\([^)]*\))?!?:\s*",
    re.I,
)
_NOISE_SUBJECT = re.compile(
    r"^(?:merge|revert|wip\b|fixup!|squash!|amend!|bump|release|version|v?\d+\.\d+|update (?:changelog|readme|deps|dependencies)"
    r"|cargo fmt|rustfmt|run (?:black|rustfmt|prettier)|format|reformat|typo|initial commit|first commit|lint|clippy)",
    re.I,
)


def commit_query(subject: str) -> str | None:
    """A commit subject as a query, or None for merges, releases, formatting and the like."""
    s = subject.strip()
    s = re.sub(r"^(?:\[[^\]]*\]\s*)+", "", s)
    s = _CONVENTIONAL.sub("", s)
    s = re.sub(r"\s*\((?:#\d+|closes?[^)]*|fixes[^)]*)\)\s*$", "", s, flags=re.I)
    s = re.sub(r"\s*(?:#\d+|\bGH-\d+)\s*$", "", s).strip().rstrip(".")
    if not s or _NOISE_SUBJECT.match(s):
        return None
    words = s.split()
    if len(words) < 3 or len(words) > 30 or not looks_like_prose(s):
        return None
    return s


def _git(repo: Path, *args: str, timeout: float = 120) -> str | None:
    try:
        r = subprocess.run(
            ["git", "-c", "core.quotepath=off", "-C", str(repo), *args],
            capture_output=True, timeout=timeout, check=False,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"},
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    if r.returncode != 0:
        return None
    return r.stdout.decode("utf-8", "replace")


@dataclass
class CommitChange:
    sha: str
    subject: str
    ranges: list[tuple[int, int]]  # 1-based inclusive line ranges of the current file version


def commit_changes(
    repo: Path, max_commits: int = MAX_COMMITS, exclusions: Exclusions | None = None
) -> dict[str, list[CommitChange]]:
    """Per file (path relative to ``repo``): the recent commits whose changes still describe
    the current file, i.e. the file's blob after the commit is its blob at HEAD and the work
    tree has not changed it since. Empty when ``repo`` is not in a git work tree."""
    top = _git(repo, "rev-parse", "--show-toplevel")
    if top is None:
        return {}
    top_path = Path(top.strip())
    try:
        prefix = Path(os.path.realpath(repo)).relative_to(os.path.realpath(top_path)).as_posix()
    except ValueError:
        return {}
    prefix = "" if prefix == "." else prefix + "/"
    head = _git(repo, "ls-tree", "-r", "-z", "--full-tree", "HEAD")
    if head is None:
        return {}
    blobs: dict[str, str] = {}
    for entry in head.split("\0"):
        if "\t" in entry:
            meta, path = entry.split("\t", 1)
            parts = meta.split()
            if len(parts) == 3 and parts[1] == "blob":
                blobs[path] = parts[2]
    status = _git(repo, "status", "--porcelain", "-z", "--untracked-files=no") or ""
    dirty = {e[3:] for e in status.split("\0") if len(e) > 3}
    spec = ["."] + (exclusions.git_excludes() if exclusions is not None else [])
    out_text = _git(
        repo, "log", "--no-merges", f"-n{max_commits}", "--no-renames", "--no-color", "--no-ext-diff",
        "--unified=0", "--format=%x1e%H%x1f%s", "-p", "--", *spec, timeout=300,
    )  # fmt: skip
    if not out_text:
        return {}
    result: dict[str, list[CommitChange]] = defaultdict(list)
    for record in out_text.split("\x1e")[1:]:
        header, _, body = record.partition("\n")
        sha, _, subject = header.partition("\x1f")
        path: str | None = None
        new_blob = ""
        ranges: list[tuple[int, int]] = []

        def flush() -> None:
            if path is None or not ranges or path in dirty or not path.startswith(prefix):
                return
            full = blobs.get(path)
            if full is None or not new_blob or not full.startswith(new_blob):
                return
            result[path[len(prefix) :]].append(CommitChange(sha, subject, list(ranges)))

        for line in body.split("\n"):
            if line.startswith("diff --git "):
                flush()
                path, new_blob, ranges = None, "", []
            elif line.startswith("index "):
                m = re.match(r"index [0-9a-f]+\.\.([0-9a-f]+)", line)
                new_blob = m.group(1) if m else ""
            elif line.startswith("+++ "):
                target = line[4:].rstrip("\t")
                path = target[2:] if target.startswith("b/") else None
            elif line.startswith("@@"):
                m = _HUNK.match(line)
                if m:
                    start, count = int(m.group(1)), int(m.group(2) if m.group(2) is not None else 1)
                    ranges.append((max(start, 1), start + count - 1) if count > 0 else (max(start, 1), max(start, 1)))
        flush()
    return dict(result)


# ---------------------------------------------------------------------------------------
# Mining one file
# ---------------------------------------------------------------------------------------


@dataclass
class FileMined:
    pairs: list[Pair] = field(default_factory=list)
    skips: Counter = field(default_factory=Counter)  # why documented declarations gave no doc pair
    decls: list[tuple[Decl, Chunk]] = field(default_factory=list)  # non-test declarations and positives
    tests: list[tuple[Decl, str]] = field(default_factory=list)  # test declarations and their queries


def mine_text(
    rel_path: str,
    text: str,
    *,
    corpus: str = "",
    language: str | None = None,
    domain: str | None = None,
    personal: bool = False,
    origin_path: str | None = None,
) -> FileMined:
    """Doc, name and augmented pairs of one file's text (test and commit pairs need the
    other files and the history: :func:`mine_source` adds them).

    ``rel_path`` is the path the encoder sees (relative to the file's repository, as the
    index has it); ``origin_path`` (default ``rel_path``) names the file inside the corpus."""
    res = FileMined()
    lang = language or mining_language(rel_path)
    if lang is None:
        return res
    chunks = file_chunks(rel_path, text, lang)
    if not chunks:
        return res
    lines = split_lines(text)
    pydocs = python_docstrings(text) if lang == "python" else {}
    dom = domain_for(lang, personal, domain)
    starts = [c.start_line for c in chunks]
    n_name = 0
    for d in declarations(chunks):
        if d.start > len(lines) or ", " in d.name:
            continue  # merged runs of tiny items: no one query describes them all
        if lang == "python" and d.kind in ("function", "method", "class"):
            doc = python_doc(lines, d.start, d.end, d.name, pydocs)
        else:
            doc = leading_doc(lang, lines, d.start, d.end)
        end = d.end
        if d.kind in CONTAINER_KINDS:
            pos0 = positive_chunk(d, lines, doc)
            if pos0 is None or sum(1 for x in pos0.text.split("\n") if x.strip()) < 3:
                k = bisect.bisect_right(starts, d.end)
                end = _extend_container(d, chunks[k : k + 200])
        pos = positive_chunk(d, lines, doc, end)
        if pos is None:
            continue
        if is_test_decl(d, lines):
            q = test_query(d.name)
            if q:
                res.tests.append((d, q))
            continue
        res.decls.append((d, pos))
        positive = pos.encoder_text()
        origin = Origin(corpus, origin_path or rel_path, pos.start_line, max(end, pos.end_line), d.name, d.kind)

        def add(query: str, source: str) -> None:
            res.pairs.append(Pair(query, positive, [], dom, lang, source, origin))

        query = None
        if doc is not None:
            query, skip = doc_query(lang, doc, d.name)
            if query is None:
                res.skips[skip or "unusable"] += 1
            else:
                add(query, "doc")
        short = re.split(r"::|\.", d.name.strip("|"))[-1]
        if d.name and not good_name_words(short, identifier_words(short)) and d.kind != "assert":
            augmented = []
        else:
            augmented = aug.augment_queries(lang, d.kind, d.name, pos.text, query, key=f"{corpus}:{rel_path}:{d.start}")
        for _rule, q in augmented:
            add(q, "augmented")
        if query is None and not augmented and n_name < MAX_NAME_PAIRS_PER_FILE:
            nq = name_query(d)
            if nq:
                add(nq, "name")
                n_name += 1
        if len(res.pairs) >= MAX_PAIRS_PER_FILE:
            break
    return res


# ---------------------------------------------------------------------------------------
# Mining one source
# ---------------------------------------------------------------------------------------


@dataclass
class SourceResult:
    spec: SourceSpec
    pairs: list[Pair]
    stats: dict[str, Any]


def _patterns(patterns: list[str]):
    import pathspec

    return pathspec.GitIgnoreSpec.from_lines(patterns) if patterns else None


def list_files(spec: SourceSpec, exclusions: Exclusions, stats: Counter) -> list[tuple[Any, str]]:
    """(SourceFile, language) of the files of a source that may be mined, sorted."""
    from codesearch.indexer.walk import SourceFile, walk

    include = _patterns(spec.include)
    exclude = _patterns(spec.exclude)
    out = []
    for item in walk([spec.path]):
        if not isinstance(item, SourceFile):
            stats["skipped: " + item.reason] += 1
            continue
        why = exclusions.reason(item.path)
        if why is not None:
            stats["excluded: " + why] += 1
            continue
        rel_root = os.path.relpath(item.path, spec.path).replace(os.sep, "/")
        if include is not None and not include.match_file(rel_root):
            continue
        if exclude is not None and exclude.match_file(rel_root):
            stats["excluded by config"] += 1
            continue
        lang = mining_language(item.rel_path)
        if lang is None:
            continue
        out.append((item, lang))
    out.sort(key=lambda x: (str(x[0].repo), x[0].rel_path))
    return out


def mine_source(
    spec: SourceSpec,
    *,
    exclusions: Exclusions,
    max_pairs: int | None = None,
    seed: int = 0,
    max_commits: int = MAX_COMMITS,
) -> SourceResult:
    """All pairs of one source: files in a seeded random order until ``max_pairs`` is reached
    (then test and commit pairs of the files read)."""
    from codesearch.indexer.walk import SkipFile, read_text

    stats: Counter[str] = Counter()
    cap = max_pairs or spec.max_pairs or DEFAULT_MAX_PAIRS
    files = list_files(spec, exclusions, stats)
    stats["files"] = len(files)
    random.Random(f"{seed}:{spec.name}").shuffle(files)
    pairs: list[Pair] = []
    doc_skips: Counter[str] = Counter()
    targets: list[_Target] = []
    tests: list[_Test] = []
    history: dict[str, dict[str, list[CommitChange]]] = {}
    commit_hits: dict[str, list[tuple[int, Pair]]] = defaultdict(list)
    n_names = 0
    for f, lang in files:
        if len(pairs) >= cap:
            break
        try:
            text = read_text(f)
        except SkipFile as e:
            stats["skipped: " + e.reason] += 1
            continue
        stats["files read"] += 1
        repo = str(f.repo)
        corpus_path = f.rel_path if repo == os.path.abspath(spec.path) else os.path.relpath(
            f.path, spec.path).replace(os.sep, "/")  # fmt: skip
        mined = mine_text(
            f.rel_path, text, corpus=spec.name, language=lang, domain=spec.domain, personal=spec.personal,
            origin_path=corpus_path,
        )  # fmt: skip
        doc_skips.update(mined.skips)
        for p in mined.pairs:
            if p.source == "name" and not spec.personal:
                if n_names >= NAME_SHARE * cap:
                    continue
                n_names += 1
            pairs.append(p)
        stem = _file_stem(corpus_path)
        for d, _pos in mined.decls:
            targets.append(_Target(repo, corpus_path, stem, identifier_words(re.split(r"::|\.", d.name)[-1]), d, str(f.path)))
        for d, q in mined.tests:
            tests.append(_Test(repo, corpus_path, stem, q, q.split(), d.language))
        # commits that changed this file's declarations
        if spec.commits:
            if repo not in history:
                history[repo] = commit_changes(Path(repo), max_commits, exclusions)
                stats["commits touching current files"] += sum(len(v) for v in history[repo].values())
            changes = history[repo].get(f.rel_path)
            for ch in changes or ():
                q = commit_query(ch.subject)
                if q is None:
                    continue
                for d, pos in mined.decls:
                    touched = sum(
                        max(0, min(b, d.end) - max(a, d.start) + 1) for a, b in ch.ranges if a <= d.end and b >= d.start
                    )
                    if touched:
                        origin = Origin(spec.name, corpus_path, pos.start_line, d.end, d.name, d.kind)
                        dom = domain_for(d.language, spec.personal, spec.domain)
                        commit_hits[ch.sha].append(
                            (touched, Pair(q, pos.encoder_text(), [], dom, d.language, "commit", origin))
                        )
    # test pairs
    by_repo: dict[str, list[_Target]] = defaultdict(list)
    for tg in targets:
        by_repo[tg.repo].append(tg)
    indexes = {repo: _TargetIndex(tgs) for repo, tgs in by_repo.items()}
    for t in tests:
        index = indexes.get(t.repo)
        tg = _best_target(t, index.candidates(t)) if index is not None else None
        if tg is None:
            continue
        pos = _rebuild_positive(tg)
        if pos is None:
            continue
        origin = Origin(spec.name, tg.path, pos.start_line, tg.decl.end, tg.decl.name, tg.decl.kind)
        dom = domain_for(tg.decl.language, spec.personal, spec.domain)
        pairs.append(Pair(t.query, pos.encoder_text(), [], dom, tg.decl.language, "test", origin))
    # commit pairs
    for sha in sorted(commit_hits):
        hits = commit_hits[sha]
        if len(hits) > MAX_DECLS_PER_COMMIT:
            stats["commits touching too many declarations"] += 1
            continue
        hits.sort(key=lambda h: -h[0])
        for _, p in hits[:MAX_PAIRS_PER_COMMIT]:
            pairs.append(p)
    stats["pairs"] = len(pairs)
    return SourceResult(spec, pairs, {**dict(stats), "doc skips": dict(doc_skips)})


def _rebuild_positive(tg: _Target) -> Chunk | None:
    """The positive of a test's target declaration (its file is read again)."""
    from codesearch.indexer.walk import SkipFile, read_text

    try:
        text = read_text(tg.abs_path)
    except SkipFile:
        return None
    lines = split_lines(text)
    d = tg.decl
    if d.language == "python":
        doc = python_doc(lines, d.start, d.end, d.name, python_docstrings(text))
    else:
        doc = leading_doc(d.language, lines, d.start, d.end)
    return positive_chunk(d, lines, doc)


# ---------------------------------------------------------------------------------------
# The whole dataset
# ---------------------------------------------------------------------------------------


def build_dataset(
    sources: list[SourceSpec | dict],
    out_dir: Path | str | None,
    *,
    max_per_source: int | None = None,
    seed: int = 0,
    negatives: int = 3,
    heldout_fraction: float = 0.05,
    min_heldout: int = 50,
    max_commits: int = MAX_COMMITS,
    heldout_file: Path | str | None = None,
    exclusions: Exclusions | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Mine, deduplicate, split, add hard negatives; write ``train.jsonl``, ``heldout.jsonl``
    and ``summary.json`` under ``out_dir`` (nothing is written when it is None). Returns the
    summary; with ``out_dir`` None the summary also carries the pairs (``"train"``,
    ``"heldout"`` as lists of :class:`Pair`)."""
    from codesearch.trainer.negatives import mine_bm25_negatives

    t0 = time.monotonic()
    say = progress or (lambda _msg: None)
    specs = [s if isinstance(s, SourceSpec) else SourceSpec.from_dict(s) for s in sources]
    excl = exclusions or Exclusions.from_heldout_file(heldout_file)
    all_pairs: list[Pair] = []
    used: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for spec in specs:
        if not os.path.exists(spec.path):
            skipped.append({"name": spec.name, "path": spec.path, "reason": "missing"})
            say(f"[{spec.name}] skipped: {spec.path} does not exist")
            continue
        why = excl.reason(spec.path)
        if why is not None:
            skipped.append({"name": spec.name, "path": spec.path, "reason": why})
            say(f"[{spec.name}] skipped: {why}")
            continue
        t = time.monotonic()
        cap = max_per_source if max_per_source is not None else spec.max_pairs
        if max_per_source is not None and spec.max_pairs is not None:
            cap = min(max_per_source, spec.max_pairs)
        res = mine_source(spec, exclusions=excl, max_pairs=cap, seed=seed, max_commits=max_commits)
        all_pairs.extend(res.pairs)
        entry = {
            "name": spec.name, "path": spec.path, "personal": spec.personal, "domain": spec.domain,
            "max_pairs": cap or DEFAULT_MAX_PAIRS, "seconds": round(time.monotonic() - t, 2),
            "mined": count_pairs(res.pairs), "stats": res.stats,
        }  # fmt: skip
        used.append(entry)
        say(f"[{spec.name}] {len(res.pairs)} pairs from {res.stats.get('files read', 0)} files in {entry['seconds']}s")
    mined_counts = count_pairs(all_pairs)
    t = time.monotonic()
    kept, dedup_stats = dedup_pairs(all_pairs, seed=seed)
    say(f"dedup: {len(all_pairs)} -> {len(kept)} pairs ({time.monotonic() - t:.1f}s)")
    train, heldout = split_pairs(kept, heldout_fraction, min_heldout)
    t = time.monotonic()
    neg_stats = {}
    if negatives > 0:
        neg_stats["train"] = mine_bm25_negatives(train, k=negatives, seed=seed)
        neg_stats["heldout"] = mine_bm25_negatives(heldout, k=negatives, seed=seed)
        say(f"negatives: {time.monotonic() - t:.1f}s")
    summary: dict[str, Any] = {
        "seed": seed,
        "heldout_fraction": heldout_fraction,
        "min_heldout": min_heldout,
        "negatives_per_pair": negatives,
        "sources_used": used,
        "sources_skipped": skipped,
        "exclusions": {"crates": excl.crates, "python_modules": len(excl.python_modules), "coq_folders": excl.coq_folders,
                       "repos": excl.repos, "reserved_repos": [f"{o}/{n}" for o, n in RESERVED_REPOS]},  # fmt: skip
        "mined": mined_counts,
        "dedup": dedup_stats,
        "train": count_pairs(train),
        "heldout": count_pairs(heldout),
        "negatives": neg_stats,
    }
    summary["wall_s"] = round(time.monotonic() - t0, 2)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_jsonl(out / "train.jsonl", train)
        write_jsonl(out / "heldout.jsonl", heldout)
        summary["wall_s"] = round(time.monotonic() - t0, 2)
        import json

        (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    else:
        summary["train_pairs"] = train
        summary["heldout_pairs"] = heldout
    return summary


def build_from_config(
    config: Path | str | None,
    out_dir: Path | str | None,
    *,
    max_per_source: int | None = None,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """:func:`build_dataset` with the sources and options of a data config file."""
    sources, opts = load_data_config(config)
    default_cap = opts.get("max_pairs_per_source")
    for s in sources:
        if s.max_pairs is None and default_cap is not None:
            s.max_pairs = int(default_cap)
    return build_dataset(
        sources,
        out_dir,
        max_per_source=max_per_source,
        seed=seed,
        negatives=int(opts.get("negatives", 3)),
        heldout_fraction=float(opts.get("heldout_fraction", 0.05)),
        min_heldout=int(opts.get("min_heldout", 50)),
        max_commits=int(opts.get("max_commits", MAX_COMMITS)),
        progress=progress,
    )


def personal_sources(roots: Iterable[Path | str], max_pairs: int | None = None) -> list[SourceSpec]:
    """Sources for the user's own repositories (domain "personal"), for ``finetune --personal``."""
    out = []
    for r in roots:
        p = os.path.abspath(os.fspath(r))
        out.append(SourceSpec(name=f"personal:{Path(p).name}", path=p, personal=True, max_pairs=max_pairs))
    return out
