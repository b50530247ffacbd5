"""Walking folders of code: which files get indexed, and why the others do not.

``walk(roots)`` yields one :class:`SourceFile` per file worth indexing and one
:class:`Skipped` per file (or folder) that was deliberately left out *and is worth
telling the user about*. Noise (build folders, obvious binaries by extension) is
skipped silently; files and folders left out by an ignore file are reported.
``read_text(file)`` then reads a file, raising :class:`SkipFile` for content that turns
out not to be indexable.

Repositories
    A folder holding a ``.git`` entry (a folder, or a file for worktrees and
    submodules) is a repository root. Each given root is itself treated as a repository
    root, whether or not it holds ``.git``: ``.gitignore`` files *above* a root are never
    read, and ``rel_path`` is relative to the root. Repositories nested under a root
    (vendored checkouts, submodules) are repositories of their own; their files belong to
    the innermost one. Files under a root that are in no nested repository belong to the
    (pseudo-)repository whose root is the given root. Exception: a root that is a single
    file belongs to its enclosing repository (nearest ancestor holding ``.git``), or to
    its parent folder when there is none; it is checked like any file except that ignore
    files and the silent exclusions do not apply (it was asked for by name; a binary
    extension is then reported as ``"binary"``). :func:`find_repositories` lists
    repositories the way ``walk`` assigns them (the root first, then nested ones in walk
    order, ignored folders not searched).

Ignore rules (gitignore syntax, via :class:`pathspec.GitIgnoreSpec`)
    In every folder, ``.codesearchignore``, ``.ignore`` and ``.gitignore`` apply to the
    paths below that folder; ``.git/info/exclude`` (of a worktree: of its common git
    folder) applies to its repository. Precedence follows ripgrep: a match in any
    ``.codesearchignore`` beats one in any ``.ignore``, which beats ``.gitignore``,
    which beats ``info/exclude``; among files of one kind the deepest folder wins, and
    within one file the last matching pattern wins, so ``!negations`` work.
    ``.gitignore`` and ``info/exclude`` rules stop at a nested repository's boundary
    (as in git); ``.ignore`` and ``.codesearchignore`` rules carry on into nested
    repositories (as in ripgrep). ``.gitignore`` files are honoured even in folders that
    are not git repositories. Global git excludes (``core.excludesFile``) are not read.
    As in git, a file that git tracks is indexed even if a ``.gitignore`` or
    ``info/exclude`` pattern matches it (``git ls-files -z``, run once per repository,
    only once such a pattern matches, and again only after the repository's git index
    changed: the watcher's walks of each batch reuse it; without git or a repository nothing is
    tracked); ``.codesearchignore`` and ``.ignore`` exclude tracked files too. An ignored
    folder is descended into only when git tracks files in it (then only those are
    indexed); otherwise it is reported once and never entered. Every file or folder left
    out by an ignore file is reported: ``"ignored (KIND)"`` / ``"ignored folder (KIND)"``,
    KIND one of ``.codesearchignore``, ``.ignore``, ``.gitignore``, ``info/exclude``.
    pathspec parses the patterns; each path is then matched by itself, as git does while
    descending, rather than through its ancestors as ``GitIgnoreSpec.check_file`` does
    (see ``_Layer``); tests compare the result with ``git ls-files``.

Always skipped silently
    Folders named in :data:`EXCLUDED_DIRS`, files matching :data:`EXCLUDED_FILES`,
    files whose extension is in :data:`BINARY_EXTENSIONS`, dangling symlinks, and a
    second path to a file already yielded (same device and inode: overlapping roots,
    symlinks, hard links).

File names that are not valid UTF-8
    are walked like any other (``path`` and ``rel_path`` hold them with surrogate escapes,
    as ``os.fsdecode`` gives them). The index keeps :func:`stored_path` of a path (the
    undecodable bytes as ``\\xNN``), and :func:`real_path` maps it back to the file. Such
    a file whose escaped name is also a real file's name is reported "file name not UTF-8".

Reported as :class:`Skipped` by ``walk`` (see :data:`SKIP_REASONS`)
    ``"secret"``: name matches :data:`SECRET_PATTERNS` (never opened);
    ``"too large"``: size above ``max_file_bytes`` (never opened);
    ``"unreadable"``: permission denied on a file or on a folder (a folder is reported
    once and not descended into);
    ``"vanished"``: removed between listing and ``stat``;
    ``"not a regular file"``: a FIFO, socket or device (never opened: reading may block);
    ``"symlink outside root"``: a symlink whose target resolves outside every given root
    (never followed);
    ``"ignored (KIND)"``, ``"ignored folder (KIND)"``: left out by an ignore file (above);
    ``"symlink loop"``: a symlink cycle, or a folder symlink pointing to one of its own
    ancestors. A folder symlink into the roots is followed only if its target has not
    been walked yet (first path reached wins; a real folder reached after a symlink to
    it was followed is skipped silently).

Reported by ``read_text`` (as ``SkipFile(reason)``): ``"binary"`` (a NUL byte in the
first 8 KiB), ``"not text"`` (more than 1% of characters undecodable as UTF-8),
``"minified"``, ``"unreadable"``, ``"vanished"``. ``walk`` does not open files, so
callers turn these into ``Skipped(file.path, err.reason)`` themselves.

Order is deterministic: depth first, entries sorted by name within each folder, roots
outermost first (a root inside another root is walked after it, and anything already
walked is not walked twice).

Walking only what changed
    :class:`PathWalker` applies the same rules at and below chosen paths without listing
    the rest of the roots (the watcher and ``doctor --fix``, through
    :func:`codesearch.indexer.scope.walk_paths`); :func:`recheck_path` says which path a
    change on disk can alter the walk of (an ignore file: its folder; a ``.git`` entry or
    ``info/exclude``: the repository; inside an excluded folder: none).
"""

from __future__ import annotations

import codecs
import errno
import fnmatch
import os
import re
import stat
import subprocess
import threading
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import Callable, Iterable, Iterator

import pathspec

__all__ = [
    "BINARY_EXTENSIONS",
    "EXCLUDED_DIRS",
    "EXCLUDED_FILES",
    "IGNORE_FILES",
    "SECRET_PATTERNS",
    "SKIP_REASONS",
    "PathWalker",
    "recheck_path",
    "real_path",
    "stored_path",
    "SkipFile",
    "Skipped",
    "SourceFile",
    "find_repositories",
    "read_text",
    "walk",
]

# --------------------------------------------------------------------------- rules

#: The kinds of ignore rules, in precedence order (the IGNORE_FILES, then info/exclude).
_KIND_NAMES = (".codesearchignore", ".ignore", ".gitignore", "info/exclude")

#: Every reason a :class:`Skipped` or :class:`SkipFile` can carry.
SKIP_REASONS = (
    "binary",
    "too large",
    "minified",
    "secret",
    "secret (content)",
    "unreadable",
    "symlink outside root",
    "symlink loop",
    "not text",
    "vanished",
    "not a regular file",
    "file name not UTF-8",
) + tuple(f"ignored ({k})" for k in _KIND_NAMES) + tuple(f"ignored folder ({k})" for k in _KIND_NAMES)

#: Per-folder ignore files, highest precedence first (ripgrep order).
IGNORE_FILES = (".codesearchignore", ".ignore", ".gitignore")

#: Folder names never descended into, whatever the ignore files say (VCS metadata,
#: dependency caches, virtualenvs, tool caches, build outputs).
EXCLUDED_DIRS = frozenset({
    ".git", ".hg", ".svn",
    "node_modules", ".venv", "venv", ".tox", ".direnv",
    "__pycache__", ".mypy_cache", ".pytest_cache", ".cache", ".gradle", ".idea",
    "target",   # cargo, maven
    "_build",   # dune, coq
    ".lake",    # lean / lake
    ".next", "dist", "build",
})

#: File-name globs (matched against the lower-cased name) never indexed and not
#: reported: lock files, minified bundles, source maps, OS litter, the ignore files
#: themselves (rules, not code). A ``.git`` *file* marks a worktree or submodule.
EXCLUDED_FILES = (
    ".git", "*.lock", "package-lock.json", "pnpm-lock.yaml",
    "*.min.js", "*.min.css", "*.map", ".ds_store",
    ".gitignore", ".ignore", ".codesearchignore",
)

#: Extensions (lower case, no dot) of files that are binary by nature. They are skipped
#: silently, without being opened: they are noise in a summary. Binary files with other
#: extensions are caught by content sniffing in :func:`read_text` (reported "binary").
BINARY_EXTENSIONS = frozenset("""
    png jpg jpeg gif bmp ico icns tif tiff webp psd xcf heic avif
    mp3 mp4 m4a wav ogg flac aac avi mov mkv webm
    zip tar gz tgz bz2 xz zst 7z rar lz4 lzma jar war ear whl egg apk deb rpm dmg iso
    crate gem nupkg
    exe dll so dylib o a lib obj ko pdb rlib rmeta wasm class pyc pyo pyd beam
    olean ilean vo vok vos vio cmi cmo cmx cmxa cmt cmti hi dyn_hi
    pdf doc docx xls xlsx ppt pptx odt ods odp
    ttf otf woff woff2 eot
    db sqlite sqlite3 db3 mdb
    bin onnx safetensors pt pth ckpt npy npz pkl pickle h5 hdf5 parquet arrow feather
    lance tflite pb gguf ggml
    idx pack swp
""".split())

#: Files that may hold credentials: never opened, never indexed, reported as "secret".
#: Glob syntax, matched case-insensitively:
#:
#: - ``name-glob``: matches the file name (``*.pem``, ``id_rsa*``);
#: - ``folder/name``: matches a file name together with its parent folder's name;
#: - ``folder/``: a folder whose whole content is secret (reported once, not entered);
#: - ``!name-glob``: exempts matching file names from the rules above.
SECRET_PATTERNS = (
    ".env", ".env.*", "!.env.example", "!.env.sample", "!.env.template",
    "*.pem", "*.key", "*.p12", "*.pfx", "*.keystore", "*.jks", "*.kdbx", "*.gpg",
    "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*",  # public halves too, for simplicity
    ".netrc", ".pgpass", ".npmrc", ".pypirc", ".git-credentials", "credentials.json",
    "secrets.yaml", "secrets.yml", "secrets.json", "secrets.toml",
    ".aws/credentials",
    ".ssh/",
)

_SNIFF_BYTES = 8192          # a NUL byte in this prefix means binary
_MAX_BAD_CHAR_RATIO = 0.01   # more U+FFFD than this after decoding means "not text"
_MINIFIED_MIN_BYTES = 20_000
_MINIFIED_AVG_LINE = 500
_MINIFIED_MAX_LINE = 20_000


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class SourceFile:
    """A file to index."""

    path: Path      # absolute path as reached under the root (symlinks inside not resolved)
    repo: Path      # absolute root of the repository this file belongs to
    rel_path: str   # path relative to ``repo``, '/' separators
    size: int
    mtime_ns: int
    scan_secrets: bool = True  # False: ``index.secrets_allow`` matches it (no scan by content)


@dataclass(frozen=True, slots=True)
class Skipped:
    """A file or folder deliberately left out; ``reason`` is one of :data:`SKIP_REASONS`."""

    path: Path
    reason: str


class SkipFile(Exception):
    """Raised by :func:`read_text` when a file's content should not be indexed."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# --------------------------------------------------------------------------- matching


class _Globs:
    """Fast test of a name against fnmatch globs: exact names, ``*suffix`` and
    ``prefix*`` globs become set / endswith / startswith checks; the rest one regex."""

    def __init__(self, globs: Iterable[str]):
        exact, prefixes, suffixes, other = set(), [], [], []
        for g in globs:
            if not _has_magic(g):
                exact.add(g)
            elif g[0] == "*" and not _has_magic(g[1:]):
                suffixes.append(g[1:])
            elif g[-1] == "*" and not _has_magic(g[:-1]):
                prefixes.append(g[:-1])
            else:
                other.append(fnmatch.translate(g))
        self._exact = frozenset(exact)
        self._prefixes = tuple(prefixes)
        self._suffixes = tuple(suffixes)
        self._regex = re.compile("|".join(other)) if other else None

    def __call__(self, name: str) -> bool:
        return (
            name in self._exact
            or name.endswith(self._suffixes)
            or name.startswith(self._prefixes)
            or (self._regex is not None and self._regex.match(name) is not None)
        )


def _has_magic(glob: str) -> bool:
    return any(c in glob for c in "*?[")


_is_excluded_file = _Globs(EXCLUDED_FILES)
_secret_exempt = _Globs(p[1:] for p in SECRET_PATTERNS if p.startswith("!"))
_secret_dir = _Globs(p[:-1] for p in SECRET_PATTERNS if p.endswith("/"))
_secret_path = _Globs(p for p in SECRET_PATTERNS if "/" in p[:-1] and p[0] != "!")
_secret_name = _Globs(p for p in SECRET_PATTERNS if "/" not in p and p[0] != "!")


def _is_secret(lname: str, parent_lname: str) -> bool:
    """``lname``/``parent_lname``: lower-cased names of the file and its folder."""
    if _secret_exempt(lname):
        return False
    return _secret_name(lname) or _secret_path(parent_lname + "/" + lname)


def _is_binary_name(lname: str) -> bool:
    dot = lname.rfind(".")
    return dot > 0 and lname[dot + 1:] in BINARY_EXTENSIONS


# pathspec compiles each gitignore pattern to a regex matching the path *or any path
# below it*; these are the shapes of that regex we rely on (checked by the tests
# against git itself).
_FLOATING = "^(?:.+/)?"            # start of a pattern without '/': any folder depth
_OPT_DIR = "(?:(?P<ps_d>/)|$)"      # end of a pattern: the path itself, or below it
_DIR = "(?P<ps_d>/)"                # end of a folder-only pattern ("name/"): below it


class _Layer:
    """The patterns of one ignore file, for paths below the folder holding it.

    pathspec parses and translates the patterns. Matching follows git's own walk: since
    ignored folders are pruned, each path is matched by itself (never through an
    ancestor folder) and the last matching pattern wins. (pathspec's ``check_file``
    also matches through ancestors, which is right for a flat file list but wrong once
    several ignore files are layered: ``!keep`` in one would re-include ``keep/x.txt``
    that another ignores with ``*.txt``.)
    """

    __slots__ = ("cut", "rules", "quick")

    def __init__(self, cut: int, spec: pathspec.GitIgnoreSpec):
        self.cut = cut  # length of the folder's walk-relative prefix ("a/b/")
        self.rules = []  # (regex, include, folder_only), last pattern first
        floating, anchored = [], []
        for p in reversed(spec.patterns):
            if p.include is None or p.regex is None:
                continue
            rx = p.regex.pattern
            dir_only = rx.endswith(_DIR)
            if dir_only:  # tried on "folder/"
                # "a/**/" matches the folders below a, not a itself (pathspec: both)
                below = p.pattern.rstrip().endswith("/**/")
                rx = rx[: -len(_DIR)] + (r"/.+/\Z" if below else r"/\Z")
            elif rx.endswith(_OPT_DIR):
                rx = rx[: -len(_OPT_DIR)] + r"\Z"
            self.rules.append((re.compile(rx, p.regex.flags), p.include, dir_only))
            # The prefilter is tried on paths without a trailing '/'.
            qx = re.sub(r"\(\?P<\w+>", "(?:", rx[:-3] + r"\Z" if dir_only else rx)  # drop "/\Z"
            if qx.startswith(_FLOATING):
                floating.append(qx[len(_FLOATING):])
            else:
                anchored.append(qx)
        # One combined regex answers the common "no pattern matches" case in one call.
        # It may match more than the patterns do (a prefilter), never less.
        alternatives = []
        if floating:  # tried only at the start and after each '/'
            alternatives.append("(?:^|/)(?:%s)" % "|".join(floating))
        if anchored:
            alternatives.append("(?:%s)" % "|".join(anchored))
        try:
            self.quick = re.compile("|".join(alternatives)) if alternatives else None
        except re.error:  # pragma: no cover - defensive: fall back to the full loop
            self.quick = None

    def match(self, rel: str, is_dir: bool) -> bool | None:
        """True: ignored, False: re-included by a ``!`` pattern, None: no pattern matched.
        ``rel``: walk-relative path, no trailing '/'."""
        sub = rel[self.cut:]
        if self.quick is not None and self.quick.search(sub) is None:
            return None
        for regex, include, dir_only in self.rules:
            if dir_only:
                if is_dir and regex.search(sub + "/") is not None:
                    return include
            elif regex.search(sub) is not None:
                return include
        return None


# The ignore rules in force in a folder ("layers"), in precedence order: one tuple per
# kind (the IGNORE_FILES, then info/exclude), each tuple deepest folder first.
_NO_LAYERS: tuple[tuple[_Layer, ...], ...] = ((), (), (), ())
_GIT_KINDS = (2, 3)  # .gitignore and info/exclude: reset at repository boundaries


def _is_ignored(layers: tuple[tuple[_Layer, ...], ...], rel: str, is_dir: bool) -> bool:
    """Whether the walk-relative path ``rel`` is ignored: the first layer (in precedence
    order) with a matching pattern decides."""
    d = _decide(layers, rel, is_dir)
    return d is not None and d[1]


def _decide(layers: tuple[tuple[_Layer, ...], ...], rel: str, is_dir: bool
            ) -> tuple[int, bool] | None:
    """(kind of the deciding layer, ignored?) for ``rel``, or None when no pattern matches."""
    for k, kind in enumerate(layers):
        for layer in kind:
            m = layer.match(rel, is_dir)
            if m is not None:
                return k, m
    return None


def _git_tracked(repo: str) -> tuple[frozenset[str], frozenset[str]] | None:
    """(tracked files, folders holding tracked files) of the repository at or above ``repo``,
    as paths relative to ``repo`` ('' is ``repo`` itself); None without git or a repository."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_PREFIX")}
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=repo, env=env, capture_output=True,
                             timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    files = frozenset(os.fsdecode(f) for f in out.split(b"\0") if f)
    dirs = {""}
    for f in files:
        cut = f.rfind("/")
        while cut > 0:
            d = f[:cut]
            if d in dirs:
                break
            dirs.add(d)
            cut = f.rfind("/", 0, cut)
    return files, frozenset(dirs)


def _load_layer(path: str, cut: int) -> _Layer | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            spec = pathspec.GitIgnoreSpec.from_lines(fh.read().splitlines())
    except (OSError, ValueError):
        return None  # an unreadable or malformed ignore file ignores nothing
    layer = _Layer(cut, spec)
    return layer if layer.rules else None


# ---------------------------------------------------------------- index.secrets_allow

def walk_options(settings) -> dict:
    """The settings a walk follows, as keyword arguments of :func:`walk`: ``index.max_file_bytes``
    and ``index.secrets_allow``. Everything that compares the index with the disk (the indexer,
    ``doctor``) walks with them, so they agree on what belongs in the index."""
    from codesearch.settings import IndexSettings

    return IndexSettings.from_settings(settings).walk_options()


def compile_secrets_allow(patterns) -> "Callable[[str], bool] | None":
    """``index.secrets_allow``: gitignore-style patterns, relative to each repository's root,
    of files that are not scanned for secrets by content (test fixtures with fake keys, say;
    the rules by file name still apply). Returns a test on a path relative to its repository
    (None for no patterns); raises ValueError with a one-line message for a bad value."""
    if patterns is None:
        return None
    if isinstance(patterns, str) or not isinstance(patterns, (list, tuple)):
        raise ValueError(
            f"index.secrets_allow: expected a list of gitignore-style patterns relative to the "
            f"repository root (e.g. [tests/fixtures/]), got {type(patterns).__name__} {patterns!r}"[:300])
    lines = []
    for p in patterns:
        if not isinstance(p, str) or not p.strip() or p.strip().startswith("#"):
            raise ValueError(f"index.secrets_allow: {p!r} is not a pattern (a non-empty path pattern such as tests/fixtures/ or *.sample)")
        lines.append(p.strip())
    if not lines:
        return None
    try:
        spec = pathspec.GitIgnoreSpec.from_lines(lines)
    except Exception as exc:  # noqa: BLE001 - pathspec's errors differ by version
        raise ValueError(f"index.secrets_allow: invalid pattern: {exc}".splitlines()[0]) from None
    return spec.match_file




# ``git ls-files`` per repository, kept across walks (the watcher walks the paths of every
# batch) until the repository's git index changes: repo -> (stamp, result).
_TRACKED_CACHE: dict[str, tuple[tuple, tuple[frozenset[str], frozenset[str]] | None]] = {}
_TRACKED_LOCK = threading.Lock()


def _git_index_stamp(repo: str) -> tuple:
    """What changes when the list of tracked files of the repository at ``repo`` may have:
    its ``.git`` entry and the inode, size and times of its index (git rewrites the index
    through a rename, so each rewrite is a new inode)."""
    git = os.path.join(repo, ".git")
    try:
        st = os.stat(git)
    except OSError:
        return ("no .git",)
    gitdir = git
    if stat.S_ISREG(st.st_mode):  # worktree / submodule: "gitdir: <path>"; the index is per worktree
        try:
            with open(git, encoding="utf-8") as fh:
                line = fh.readline().strip()
        except OSError:
            line = ""
        gitdir = os.path.join(repo, line[len("gitdir:"):].strip()) if line.startswith("gitdir:") else ""
    try:
        ist = os.stat(os.path.join(gitdir, "index"))
        index = (ist.st_ino, ist.st_size, ist.st_mtime_ns, ist.st_ctime_ns)
    except OSError:
        index = None  # no index yet (a fresh `git init`)
    return (st.st_dev, st.st_ino, gitdir, index)


def git_tracked(repo: str | Path) -> tuple[frozenset[str], frozenset[str]] | None:
    """:func:`_git_tracked` of ``repo``, run again only when its git index changed."""
    repo = os.fspath(repo)
    stamp = _git_index_stamp(repo)
    with _TRACKED_LOCK:
        hit = _TRACKED_CACHE.get(repo)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    value = _git_tracked(repo)
    if _git_index_stamp(repo) == stamp:  # the index did not change while git read it
        with _TRACKED_LOCK:
            _TRACKED_CACHE[repo] = (stamp, value)
    return value


def tracked_changes(repo: str | Path) -> list[str] | None:
    """Files (relative to ``repo``) that became tracked or untracked since ``git ls-files``
    last ran for ``repo`` in this process (the cache is refreshed); None when it never ran
    here (the walker runs it only once a git rule ignores something: nothing to compare)."""
    repo = os.fspath(repo)
    with _TRACKED_LOCK:
        hit = _TRACKED_CACHE.get(repo)
    if hit is None:
        return None
    now = git_tracked(repo)
    before = hit[1][0] if hit[1] is not None else frozenset()
    after = now[0] if now is not None else frozenset()
    return sorted(before ^ after)


def _git_exclude_file(repo_dir: str) -> str:
    """Path of ``info/exclude`` for the repository at ``repo_dir`` (``.git`` dir or file)."""
    git = os.path.join(repo_dir, ".git")
    if os.path.isfile(git):  # worktree / submodule: "gitdir: <path>"
        try:
            with open(git, encoding="utf-8") as fh:
                line = fh.readline().strip()
        except OSError:
            return ""
        if not line.startswith("gitdir:"):
            return ""
        git = os.path.join(repo_dir, line[len("gitdir:"):].strip())
        try:
            with open(os.path.join(git, "commondir"), encoding="utf-8") as fh:
                git = os.path.join(git, fh.read().strip())
        except OSError:
            pass
    return os.path.join(git, "info", "exclude")


# --------------------------------------------------------------------------- walking


class _Frame:
    """A folder being listed: its entries still to visit and the rules in force."""

    __slots__ = ("entries", "rel", "lname", "repo", "repo_cut", "layers", "ancestors", "gitignored")

    def __init__(self, entries, rel, lname, repo, repo_cut, layers, ancestors, gitignored=None):
        self.entries = entries      # iterator over sorted os.DirEntry
        self.rel = rel              # walk-root-relative prefix: "" or "a/b/"
        self.lname = lname          # lower-cased folder name (for "folder/name" secrets)
        self.repo = repo            # Path of the repository root
        self.repo_cut = repo_cut    # len(rel) of the repository root
        self.layers = layers
        self.ancestors = ancestors  # (st_dev, st_ino) of this folder and its ancestors
        # Kind (2 or 3) of the git rule that ignores this folder, entered only because git
        # tracks files in it: its untracked files are ignored whatever the patterns say.
        self.gitignored = gitignored


_by_name = attrgetter("name")


class _Walker:
    def __init__(self, roots: list[str], max_file_bytes: int, files: bool = True, secrets_allow=None):
        self.roots = roots
        # rel path (to its repository) -> not scanned for secrets by content
        self.secrets_allow = compile_secrets_allow(secrets_allow)
        self.max_file_bytes = max_file_bytes
        self.files = files  # False: only discover repositories (find_repositories)
        self.real_roots = [_dir_prefix(os.path.realpath(r)) for r in roots]
        self.visited_dirs: set[tuple[int, int]] = set()
        self.seen_files: set[tuple[int, int]] = set()
        self.repos: list[Path] = []
        self._tracked: dict[Path, tuple[frozenset[str], frozenset[str]] | None] = {}

    def tracked(self, repo: Path):
        """``git ls-files`` of ``repo`` (None: no git, or not a repository): run again only
        when the repository's git index changed (:func:`git_tracked`), checked once per walk."""
        if repo not in self._tracked:
            self._tracked[repo] = git_tracked(repo)
        return self._tracked[repo]

    def _git_ignored(self, d, frame: "_Frame", rel: str, is_dir: bool) -> int | None:
        """Kind of the git rule (.gitignore, info/exclude) that ignores ``rel`` and that git
        itself would not override (``rel`` not tracked, or for a folder: holding nothing
        tracked); None when ``rel`` is not ignored by git rules, or is kept by git."""
        kind = frame.gitignored if frame.gitignored is not None else (d[0] if d is not None and d[1] else None)
        if kind is None:
            return None
        t = self.tracked(frame.repo)
        if t is not None and rel[frame.repo_cut:] in t[1 if is_dir else 0]:
            return None
        return kind

    def run(self) -> Iterator[SourceFile | Skipped]:
        for root in self.roots:
            if os.path.isdir(root):
                yield from self._walk_dir_root(root)
            elif self.files:
                out = self._file_root(root)
                if out is not None:
                    yield out

    # -- roots

    def _walk_dir_root(self, root: str) -> Iterator[SourceFile | Skipped]:
        try:
            st = os.stat(root)
        except OSError:
            yield Skipped(Path(root), "vanished")
            return
        key = (st.st_dev, st.st_ino)
        if key in self.visited_dirs:
            return  # inside a root walked before
        repo = Path(root)
        self.repos.append(repo)
        frame = self._enter(root, "", "", repo, 0, _NO_LAYERS, (), key, True)
        if isinstance(frame, Skipped):
            yield frame
            return
        yield from self.descend(frame)

    def descend(self, frame: "_Frame") -> Iterator[SourceFile | Skipped]:
        """Everything below an entered folder, depth first, in walk order."""
        stack = [frame]
        while stack:
            frame = stack[-1]
            entry = next(frame.entries, None)
            if entry is None:
                stack.pop()
                continue
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                out = self._subdir(entry, frame)
                if isinstance(out, _Frame):
                    stack.append(out)
                elif out is not None:
                    yield out
            elif self.files:
                out = self._file(entry, frame)
                if out is not None:
                    yield out

    def _file_root(self, root: str) -> SourceFile | Skipped | None:
        """A root that is a single file: checked like any file, but ignore files and the
        silent exclusions do not apply (it was asked for by name)."""
        path, name = Path(root), os.path.basename(root)
        lname = name.lower()
        if _is_secret(lname, os.path.basename(os.path.dirname(root)).lower()):
            return Skipped(path, "secret")
        if _is_binary_name(lname):
            return Skipped(path, "binary")
        try:
            st = os.stat(root)
        except OSError as e:
            return _stat_error(path, e, is_link=False)
        repo = _enclosing_repo(os.path.dirname(root))
        rel = os.path.relpath(root, repo).replace(os.sep, "/")
        return self._source_file(root, st, Path(repo), rel)

    # -- folders

    def _enter(self, path, rel, lname, repo, repo_cut, layers, ancestors, key, is_root,
               gitignored=None):
        """List a folder and work out the rules in force inside it."""
        try:
            with os.scandir(path) as it:
                entries = sorted(it, key=_by_name)
        except (FileNotFoundError, NotADirectoryError):
            return Skipped(Path(path), "vanished")
        except OSError as e:
            return Skipped(Path(path), "symlink loop" if e.errno == errno.ELOOP else "unreadable")
        self.visited_dirs.add(key)
        names = {e.name for e in entries}
        new_repo = ".git" in names and not is_root
        if new_repo:
            repo, repo_cut = Path(path), len(rel)
            self.repos.append(repo)
            gitignored = None
            layers = tuple(() if k in _GIT_KINDS else kind for k, kind in enumerate(layers))
        if ".git" in names and (is_root or new_repo):
            layer = _load_layer(_git_exclude_file(path), len(rel))
            if layer is not None:
                layers = layers[:3] + ((layer,) + layers[3],)
        for k, fname in enumerate(IGNORE_FILES):
            if fname in names:
                layer = _load_layer(os.path.join(path, fname), len(rel))
                if layer is not None:
                    layers = layers[:k] + ((layer,) + layers[k],) + layers[k + 1:]
        return _Frame(iter(entries), rel, lname, repo, repo_cut, layers, ancestors + (key,),
                      gitignored)

    def _subdir(self, entry: os.DirEntry, frame: _Frame) -> _Frame | Skipped | None:
        name = entry.name
        rel = frame.rel + name
        if name in EXCLUDED_DIRS:
            return None
        d = _decide(frame.layers, rel, True)
        gitignored = None
        if d is not None and d[0] not in _GIT_KINDS:  # codesearch's own rules decide
            if d[1]:
                return Skipped(Path(entry.path), f"ignored folder ({_KIND_NAMES[d[0]]})")
        else:
            gitignored = self._git_ignored(d, frame, rel, True)
            if gitignored is not None:  # counted once, never descended into
                return Skipped(Path(entry.path), f"ignored folder ({_KIND_NAMES[gitignored]})")
            if frame.gitignored is not None or (d is not None and d[1]):
                gitignored = frame.gitignored if frame.gitignored is not None else d[0]
        lname = name.lower()
        if _secret_dir(lname):
            return Skipped(Path(entry.path), "secret")
        try:
            st = entry.stat()
        except OSError as e:
            return _stat_error(Path(entry.path), e, entry.is_symlink())
        key = (st.st_dev, st.st_ino)
        if entry.is_symlink():
            if not self._inside_roots(entry.path):
                return Skipped(Path(entry.path), "symlink outside root")
            if key in frame.ancestors:
                return Skipped(Path(entry.path), "symlink loop")
        if key in self.visited_dirs:
            return None  # already walked through another path
        return self._enter(entry.path, rel + "/", lname, frame.repo, frame.repo_cut,
                           frame.layers, frame.ancestors, key, False, gitignored)

    # -- files

    def _file(self, entry: os.DirEntry, frame: _Frame) -> SourceFile | Skipped | None:
        name = entry.name
        lname = name.lower()
        if _is_excluded_file(lname):
            return None
        rel = frame.rel + name
        d = _decide(frame.layers, rel, False)
        if d is not None and d[0] not in _GIT_KINDS:  # codesearch's own rules decide
            if d[1]:
                return Skipped(Path(entry.path), f"ignored ({_KIND_NAMES[d[0]]})")
        else:
            kind = self._git_ignored(d, frame, rel, False)
            if kind is not None:
                return Skipped(Path(entry.path), f"ignored ({_KIND_NAMES[kind]})")
        if _is_secret(lname, frame.lname):
            return Skipped(Path(entry.path), "secret")
        if _is_binary_name(lname):
            return None
        is_link = entry.is_symlink()
        try:
            st = entry.stat()
        except OSError as e:
            return _stat_error(Path(entry.path), e, is_link)
        if is_link and not self._inside_roots(entry.path):
            return Skipped(Path(entry.path), "symlink outside root")
        return self._source_file(entry.path, st, frame.repo, rel[frame.repo_cut:])

    def _source_file(self, raw: str, st: os.stat_result, repo: Path, rel: str):
        if not stat.S_ISREG(st.st_mode):
            return Skipped(Path(raw), "not a regular file")  # FIFO, socket, device: reading may block
        key = (st.st_dev, st.st_ino)
        if key in self.seen_files:
            return None
        self.seen_files.add(key)
        if st.st_size > self.max_file_bytes:
            return Skipped(Path(raw), "too large")
        stored = stored_path(raw)
        if stored != raw and os.path.lexists(stored):
            return Skipped(Path(raw), "file name not UTF-8")  # its index form names another file
        # World-readable files need no access() call (ACLs aside: read_text catches those).
        if not st.st_mode & stat.S_IROTH and not os.access(raw, os.R_OK):
            return Skipped(Path(raw), "unreadable")
        scan = self.secrets_allow is None or not self.secrets_allow(rel)
        return SourceFile(Path(raw), repo, rel, st.st_size, st.st_mtime_ns, scan)

    def _inside_roots(self, path: str) -> bool:
        real = os.path.realpath(path)
        return any(real == r[:-1] or real.startswith(r) for r in self.real_roots)


def stored_path(path: Path | str) -> str:
    """The form of a path kept in the index (LanceDB holds only valid UTF-8): the path itself
    when it is valid UTF-8, else the bytes that are not as ``\\xNN`` escapes."""
    s = os.fspath(path)
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        return os.fsencode(s).decode("utf-8", "backslashreplace")


_BYTE_ESCAPE = re.compile(rb"\\x([0-9a-f]{2})")


def real_path(stored: str) -> str:
    """The file a :func:`stored_path` names (the inverse map; a stored path that exists as
    written is itself)."""
    if "\\x" not in stored or os.path.lexists(stored):
        return stored
    raw = _BYTE_ESCAPE.sub(lambda m: bytes([int(m[1], 16)]), stored.encode("utf-8"))
    path = os.fsdecode(raw)
    return path if stored_path(path) == stored else stored


def _stat_error(path: Path, e: OSError, is_link: bool) -> Skipped | None:
    if e.errno == errno.ELOOP:
        return Skipped(path, "symlink loop")
    if isinstance(e, FileNotFoundError):
        return None if is_link else Skipped(path, "vanished")  # dangling links: silent
    return Skipped(path, "unreadable")


def _dir_prefix(real: str) -> str:
    return real if real.endswith(os.sep) else real + os.sep


def _enclosing_repo(folder: str) -> str:
    """Nearest folder at or above ``folder`` holding ``.git``, else ``folder``."""
    d = folder
    while True:
        if os.path.lexists(os.path.join(d, ".git")):
            return d
        parent = os.path.dirname(d)
        if parent == d:
            return folder
        d = parent


def _prepare_roots(roots: Iterable[Path | str] | Path | str) -> list[str]:
    """Absolute (not symlink-resolved) roots, checked to exist, outermost first."""
    if isinstance(roots, (str, os.PathLike)):
        roots = [roots]
    out = []
    for r in roots:
        p = os.path.abspath(os.fspath(r))
        if not os.path.exists(p):
            raise FileNotFoundError(errno.ENOENT, "codesearch: no such file or folder to index", p)
        out.append(p)
    # Outer roots first, so that a root inside another one is claimed by the outer walk.
    return sorted(out, key=lambda p: os.path.realpath(p).count(os.sep))


# --------------------------------------------------------------------------- public API


def walk(roots: Iterable[Path | str], *, max_file_bytes: int | None = None, secrets_allow=None
         ) -> Iterator[SourceFile | Skipped]:
    """Yield the files under ``roots`` worth indexing, and the notable ones skipped.

    Raises :class:`FileNotFoundError` at once (not on first iteration) if a root does not
    exist. See the module docstring for the rules. ``secrets_allow``: patterns of files not
    to scan for secrets by content (see :func:`compile_secrets_allow`; the caller passes its
    settings' ``index.secrets_allow``), None: every file is scanned. ``max_file_bytes`` None:
    the default ``index.max_file_bytes`` (config/default.yaml).
    """
    if max_file_bytes is None:
        max_file_bytes = _default_max_file_bytes()
    walker = _Walker(_prepare_roots(roots), max_file_bytes, secrets_allow=secrets_allow)
    return walker.run()


def _default_max_file_bytes() -> int:
    """``index.max_file_bytes`` of the default settings (config/default.yaml)."""
    from codesearch.settings import IndexSettings

    return IndexSettings.defaults().max_file_bytes


class PathWalker:
    """The rules of :func:`walk` over ``roots``, applied at and below chosen paths only.

    For callers that know which paths changed (the watcher, ``doctor --fix``; see
    :func:`codesearch.indexer.scope.walk_paths`): re-walking every root for each saved file
    would cost a full directory scan. :meth:`walk_path` lists only the folders on the way
    from the root down to the path (reading the ignore files of each, finding nested
    repositories) and the whole subtree below a path that is a folder, and yields what
    ``walk(roots)`` yields at and below that path (same records, same skip reasons, same
    order).

    ``roots``: the folders (or files) being indexed, as absolute paths or relative to the
    current folder; unlike :func:`walk`, a root need not exist (nothing is found below it).
    ``max_file_bytes`` None: the default ``index.max_file_bytes``; ``secrets_allow``: as for
    :func:`walk` (a bad pattern raises ValueError here).

    Folders entered on the way are kept for the next :meth:`walk_path` call of this object,
    so the paths of one batch list each folder once. Give each path once, and none below a
    path already given (``walk_paths`` sees to both): a file or folder already walked is
    not walked again, but a skipped one would be reported again.

    Differences with a full walk: a file reachable through two paths (hard link, symlink
    inside the roots) is reported once per ``PathWalker``, not once per walk of every root;
    a folder symlink is followed even when its target is also walked elsewhere
    (``codesearch doctor`` finds and fixes the rare duplicates).
    """

    def __init__(self, roots: Iterable[Path | str], *, max_file_bytes: int | None = None,
                 secrets_allow=None):
        if max_file_bytes is None:
            max_file_bytes = _default_max_file_bytes()
        self._core = _Walker([os.path.abspath(os.fspath(r)) for r in roots], max_file_bytes,
                             secrets_allow=secrets_allow)
        self._frames: dict[str, _Frame | None] = {}  # folder -> its frame; None: not walked into

    def walk_path(self, path: Path | str, root: Path | str) -> Iterator[SourceFile | Skipped]:
        """What ``walk(roots)`` yields at and below ``path``: the file itself (or why it is
        skipped), or everything below a folder (or why the folder is skipped); nothing when
        ``path`` does not exist or lies in a folder the walk never enters (excluded, ignored,
        secret, unreadable). ``root``: the root whose walk reaches ``path`` (the outermost root
        at or above it, see :func:`codesearch.indexer.scope.owning_root`)."""
        path = os.path.abspath(os.fspath(path))
        root = os.path.abspath(os.fspath(root))
        core = self._core
        if path == root:
            if os.path.isdir(root):
                frame = self._frame(root, root)
                if frame is not None:
                    yield from core.descend(frame)
            elif os.path.lexists(root):
                out = core._file_root(root)
                if out is not None:
                    yield out
            return
        parent = self._frame(os.path.dirname(path), root)
        if parent is None or not os.path.lexists(path):
            return
        entry = _NamedEntry(path)
        if entry.is_dir():
            out = core._subdir(entry, parent)
            if isinstance(out, _Frame):
                self._frames[path] = out
                yield from core.descend(out)
            elif out is not None:
                yield out
        else:
            out = core._file(entry, parent)
            if out is not None:
                yield out

    def _frame(self, folder: str, root: str) -> _Frame | None:
        """The entered folder ``folder`` (at or below ``root``), entering the folders above it
        first; None when the walk does not enter it."""
        if folder in self._frames:
            return self._frames[folder]
        out = None
        if folder == root:
            try:
                st = os.stat(root)
            except OSError:
                st = None
            if st is not None and os.path.isdir(root):
                out = self._core._enter(root, "", "", Path(root), 0, _NO_LAYERS, (),
                                        (st.st_dev, st.st_ino), True)
        else:
            parent = self._frame(os.path.dirname(folder), root)
            if isinstance(parent, _Frame):
                entry = _NamedEntry(folder)
                if entry.is_dir():
                    out = self._core._subdir(entry, parent)
        if not isinstance(out, _Frame):
            out = None
        self._frames[folder] = out
        return out


class _NamedEntry:
    """The parts of ``os.DirEntry`` the walker uses, for a path named directly."""

    __slots__ = ("path", "name")

    def __init__(self, path: str):
        self.path = path
        self.name = os.path.basename(path)

    def is_dir(self) -> bool:
        try:
            return os.path.isdir(self.path)
        except OSError:
            return False

    def is_symlink(self) -> bool:
        return os.path.islink(self.path)

    def stat(self) -> os.stat_result:
        return os.stat(self.path)


def recheck_path(path: str, root: str) -> str | None:
    """The path to walk again (with :class:`PathWalker`) after a change on disk at ``path``
    (absolute, at or below the folder ``root``, no trailing '/'), or None when the change
    cannot alter what the walk yields:

    - a file or folder: ``path`` itself;
    - an ignore file (:data:`IGNORE_FILES`): the folder whose rules it sets;
    - a ``.git`` entry (a repository boundary appearing or going), its ``info`` folder or
      ``info/exclude``: the repository's folder;
    - a repository's git index (``<repo>/.git/index``): that path itself, meaning the files
      whose tracked state changed (see :func:`tracked_changes`), not the index;
    - None: anything else under ``.git``, anything inside a folder of :data:`EXCLUDED_DIRS`
      (never entered; a path *named* like one is still returned, for what was recorded there).
    """
    rel = path[len(root):].strip("/")
    parts = rel.split("/") if rel else []
    if ".git" in parts:
        i = parts.index(".git")
        repo = os.path.join(root, *parts[:i])
        tail = parts[i + 1 :]
        if tail == ["index"]:
            return os.path.join(repo, ".git", "index")
        return repo if tail in ([], ["info"], ["info", "exclude"]) else None
    if any(p in EXCLUDED_DIRS for p in parts[:-1]):
        return None  # the walker never enters these folders (build output, dependencies)
    if parts and parts[-1] in IGNORE_FILES:
        return os.path.dirname(path)  # rules changed for everything in that folder
    return path


def find_repositories(root: Path | str) -> list[Path]:
    """Repository roots as :func:`walk` assigns them: ``root`` itself first (a real or a
    pseudo-repository), then the repositories nested under it, in walk order. For a file
    ``root``, its enclosing repository (or its folder)."""
    (r,) = _prepare_roots([root])
    if not os.path.isdir(r):
        return [Path(_enclosing_repo(os.path.dirname(r)))]
    walker = _Walker([r], 0, files=False)
    for _ in walker.run():
        pass
    return walker.repos


def read_text(file: SourceFile | Path | str) -> str:
    """The file's text: UTF-8 (BOM stripped), a few undecodable bytes replaced by U+FFFD.

    Raises :class:`SkipFile` with reason "vanished", "unreadable", "binary" (NUL byte in
    the first 8 KiB), "not text" (over 1% of characters undecodable) or "minified" (file
    over 20 KB whose average line exceeds 500 characters or with a line over 20,000).
    """
    path = file.path if isinstance(file, SourceFile) else file
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise SkipFile("vanished") from None
    except OSError:
        raise SkipFile("unreadable") from None
    text = _decode(data)
    from codesearch.indexer import secrets  # secrets by content: "secret (content)"
    scan = file.scan_secrets if isinstance(file, SourceFile) else True  # index.secrets_allow
    if scan and secrets.has_secret(text, os.fsdecode(path)):
        raise SkipFile(secrets.SKIP_REASON)
    return text


def _decode(data: bytes) -> str:
    if b"\0" in data[:_SNIFF_BYTES]:
        raise SkipFile("binary")
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("utf-8", errors="replace")
        if text.count("\ufffd") > _MAX_BAD_CHAR_RATIO * len(text):
            raise SkipFile("not text") from None
    if len(data) > _MINIFIED_MIN_BYTES and _looks_minified(text):
        raise SkipFile("minified")
    return text


def _looks_minified(text: str) -> bool:
    """Linear time: one count and, if needed, one split."""
    n_lines = text.count("\n") + (0 if text.endswith("\n") else 1)
    if len(text) / max(n_lines, 1) > _MINIFIED_AVG_LINE:
        return True
    return max(map(len, text.split("\n"))) > _MINIFIED_MAX_LINE
