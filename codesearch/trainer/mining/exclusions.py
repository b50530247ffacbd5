"""What pair mining must never read (contamination checks): the eval and validation sets'
sources (``evals/heldout_sources.txt``, any version of those crates, CPython's copies of those
modules, those Coq theories, checkouts of those repositories) and the repositories reserved for
an independent benchmark, as path rules (:class:`Exclusions`)."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Iterable

from codesearch.trainer.mining.sources import REPO_ROOT

log = logging.getLogger(__name__)

HELDOUT_FILE = REPO_ROOT / "evals" / "heldout_sources.txt"


# The eval and validation sets' sources, as in evals/heldout_sources.txt (kept in step by a test); used
# when that file is not there (an installed package without the repository).
FALLBACK_HELDOUT: dict[str, tuple[str, ...]] = {
    "crate": ("arrayvec", "bytes", "chrono", "either", "hashbrown", "indexmap", "itertools", "petgraph", "semver",
              "smallvec", "unicode-segmentation", "url"),
    "python": (
        "argparse.py", "base64.py", "bisect.py", "calendar.py", "collections/__init__.py", "colorsys.py",
        "configparser.py", "contextlib.py", "copy.py", "csv.py", "dataclasses.py", "datetime.py",
        "difflib.py", "email/_parseaddr.py", "email/message.py", "email/utils.py", "enum.py", "filecmp.py",
        "fnmatch.py", "fractions.py", "functools.py", "getopt.py", "gettext.py", "glob.py", "graphlib.py",
        "heapq.py", "http/cookies.py", "ipaddress.py", "json", "mimetypes.py", "netrc.py", "optparse.py",
        "pathlib.py", "pprint.py", "queue.py", "random.py", "reprlib.py", "sched.py", "shlex.py",
        "shutil.py", "statistics.py", "string.py", "tempfile.py", "textwrap.py", "tokenize.py",
        "urllib/parse.py", "zipfile.py",
        "site-packages/click", "site-packages/dateutil", "site-packages/jinja2",
    ),
    "coq": (
        "Arith", "Bool", "Classes", "Init", "Lists", "Logic", "NArith", "PArith", "Program", "QArith",
        "Relations", "Sets", "Sorting", "Strings", "Structures", "Vectors", "Wellfounded", "ZArith",
    ),
    "repo": (
        "DeepSpec/InteractionTrees", "asterinas/vostd", "cedar-policy/cedar-spec", "informalsystems/hermes",
        "lecopivo/SciLean", "tlaplus/CommunityModules", "utaal/verified-nrkernel",
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

