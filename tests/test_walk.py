"""Tests for codesearch.indexer.walk, on a real filesystem (tmp_path) and real git."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from codesearch.indexer.walk import (
    SECRET_PATTERNS,
    SkipFile,
    Skipped,
    SourceFile,
    find_repositories,
    read_text,
    walk,
)

HAS_GIT = shutil.which("git") is not None
needs_git = pytest.mark.skipif(not HAS_GIT, reason="git not installed")


def make(root: Path, files: dict[str, str | bytes]) -> Path:
    """Create files under root; a name ending in '/' makes a folder."""
    for rel, content in files.items():
        p = root / rel
        if rel.endswith("/"):
            p.mkdir(parents=True, exist_ok=True)
            continue
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content)
    return root


def git_init(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    return path


def collect(roots, keep_ignored=False, **kw) -> tuple[dict[str, SourceFile], dict[str, str]]:
    """(files by path relative to the first root, skip reasons by the same key; paths
    skipped by an ignore file only with ``keep_ignored``)."""
    roots = [roots] if isinstance(roots, (str, Path)) else list(roots)
    base = Path(os.path.abspath(roots[0]))
    base = base if base.is_dir() else base.parent
    files, skipped = {}, {}
    for item in walk(roots, **kw):
        key = os.path.relpath(item.path, base).replace(os.sep, "/")
        if isinstance(item, SourceFile):
            assert key not in files, f"{key} yielded twice"
            files[key] = item
        else:
            assert isinstance(item, Skipped)
            if keep_ignored or not item.reason.startswith("ignored"):
                skipped[key] = item.reason
    return files, skipped


# ----------------------------------------------------------------- repositories


def test_repositories_nested_loose_and_worktree(tmp_path):
    root = make(tmp_path / "root", {
        "loose.py": "x = 1\n",
        "proj/.git/": "",
        "proj/src/main.rs": "fn main() {}\n",
        "proj/vendor/dep/.git/": "",
        "proj/vendor/dep/lib.rs": "pub fn f() {}\n",
        "wt/.git": "gitdir: /nonexistent/.git/worktrees/wt\n",
        "wt/a.py": "a = 1\n",
    })
    assert find_repositories(root) == [
        root, root / "proj", root / "proj/vendor/dep", root / "wt"]

    files, skipped = collect(root)
    assert skipped == {}
    assert set(files) == {"loose.py", "proj/src/main.rs", "proj/vendor/dep/lib.rs", "wt/a.py"}
    assert (files["loose.py"].repo, files["loose.py"].rel_path) == (root, "loose.py")
    assert (files["proj/src/main.rs"].repo, files["proj/src/main.rs"].rel_path) == (
        root / "proj", "src/main.rs")
    dep = files["proj/vendor/dep/lib.rs"]
    assert (dep.repo, dep.rel_path) == (root / "proj/vendor/dep", "lib.rs")
    assert (files["wt/a.py"].repo, files["wt/a.py"].rel_path) == (root / "wt", "a.py")
    f = files["loose.py"]
    assert f.path == root / "loose.py" and f.path.is_absolute()
    assert f.size == 6 and f.mtime_ns == os.stat(f.path).st_mtime_ns


def test_root_inside_a_repository_is_its_own_repository(tmp_path):
    make(tmp_path, {".git/": "", ".gitignore": "*.py\n", "src/pkg/a.py": "", "src/pkg/b.rs": ""})
    files, _ = collect(tmp_path / "src")
    assert set(files) == {"pkg/a.py", "pkg/b.rs"}  # the outer .gitignore is not read
    assert files["pkg/a.py"].repo == tmp_path / "src"
    assert files["pkg/a.py"].rel_path == "pkg/a.py"
    assert find_repositories(tmp_path / "src") == [tmp_path / "src"]


def test_find_repositories_skips_ignored_and_excluded_folders(tmp_path):
    make(tmp_path, {".gitignore": "ignored/\n", "ignored/r/.git/": "",
                    "node_modules/m/.git/": "", "ok/r/.git/": ""})
    assert find_repositories(tmp_path) == [tmp_path, tmp_path / "ok/r"]


# ----------------------------------------------------------------- ignore rules


def test_gitignore_root_and_subfolder_with_negation(tmp_path):
    make(tmp_path, {
        ".git/": "",
        ".gitignore": "*.log\n!important.log\n/only_root.txt\ngen/\ndocs/*.txt\n!docs/keep.txt\n",
        "a.log": "", "important.log": "", "only_root.txt": "", "main.py": "",
        "sub/only_root.txt": "", "sub/b.log": "", "sub/gen/x.py": "",
        "docs/a.txt": "", "docs/keep.txt": "",
        "sub/.gitignore": "*.py\n!keep.py\n!*.log\n",
        "sub/drop.py": "", "sub/keep.py": "",
        "sub/deeper/drop.py": "",
    })
    files, skipped = collect(tmp_path, keep_ignored=True)
    assert skipped == {  # counted (not a repository git can read: nothing tracked)
        "a.log": "ignored (.gitignore)", "docs/a.txt": "ignored (.gitignore)",
        "only_root.txt": "ignored (.gitignore)", "sub/deeper/drop.py": "ignored (.gitignore)",
        "sub/drop.py": "ignored (.gitignore)", "sub/gen": "ignored folder (.gitignore)"}
    assert set(files) - {".gitignore", "sub/.gitignore"} == {
        "important.log", "main.py", "sub/only_root.txt", "sub/b.log", "sub/keep.py",
        "docs/keep.txt"}


def git_untracked(root: Path) -> list[str]:
    """What git would list, less the ignore files themselves (rules, never indexed)."""
    out = subprocess.run(["git", "ls-files", "--others", "--exclude-standard"], cwd=root,
                         check=True, capture_output=True, text=True).stdout
    return sorted(p for p in out.split() if p.rsplit("/", 1)[-1] not in (".gitignore", ".ignore", ".codesearchignore"))


@needs_git
def test_agrees_with_git_ls_files(tmp_path):
    """git itself is the oracle for gitignore semantics."""
    git_init(tmp_path)
    make(tmp_path, {
        ".gitignore": "*.tmp\n/top/\nlogs/**\n!logs/keep/\n!logs/keep/**\n"
                      "a/**/z.txt\n*.txt\n!*.md.txt\nd/**/\n",
        "top/x.rs": "", "inner/top/y.rs": "", "x.tmp": "", "inner/x.tmp": "",
        "logs/keep/k.rs": "", "logs/drop/d.rs": "", "logs/e.rs": "",
        "a/b/c/z.txt": "", "a/z.md.txt": "", "readme.md": "",
        "d/kept.rs": "", "d/sub/dropped.rs": "",  # "d/**/" matches folders below d only
        "lib/.gitignore": "!*.tmp\nsecret_dir/\n!keep\n", "lib/u.tmp": "",
        "lib/secret_dir/s.rs": "", "lib/ok.rs": "",
        "lib/keep/x.txt": "",  # "!keep" re-includes the folder, not the *.txt inside
        "lib/keep/y.rs": "",
    })
    files, _ = collect(tmp_path)
    assert sorted(files) == git_untracked(tmp_path)


@needs_git
def test_agrees_with_git_on_random_layered_ignore_files(tmp_path):
    import random

    patterns = [
        "*.txt", "!*.md.txt", "logs/", "logs/**", "!logs/keep/", "!logs/keep/**", "/b", "b/",
        "a/**/y.rs", "!b/keep", "a/*", "!a/keep/", "keep", "!keep", "**/logs", "a/**/", "*",
        "!*/", "!*.rs", "/a/logs/", "a/b/", "**/keep/**", "!**/keep/x.txt", "?.rs", "[xy].*",
        "k*p/", "/logs/*/", "a/**/b", "!**/", "#x.txt", "logs/*.txt", "!/a/", "**/a/*.rs",
    ]
    rng = random.Random(1234)
    for trial in range(12):
        root = git_init(tmp_path / f"t{trial}")
        dirs = [""]
        for _ in range(10):
            d = os.path.join(rng.choice(dirs), rng.choice(["a", "b", "logs", "keep"]))
            if d not in dirs:
                dirs.append(d)
        for d in dirs:
            make(root, {os.path.join(d, f): "" for f in ("x.txt", "y.rs", "z.md.txt")})
        for d in rng.sample(dirs, 3):
            (root / d / ".gitignore").write_text("\n".join(rng.sample(patterns, 5)) + "\n")
        files, _ = collect(root)
        assert sorted(files) == git_untracked(root), f"trial {trial}"


def test_ignore_and_codesearchignore_precedence(tmp_path):
    make(tmp_path, {
        ".git/": "",
        ".gitignore": "*.gen\nboth.txt\nlayers.txt\n",
        ".ignore": "!keep.gen\n!both.txt\n!deep.gen\n",
        ".codesearchignore": "both.txt\nnoise/\n",
        "keep.gen": "", "drop.gen": "", "both.txt": "", "layers.txt": "", "noise/n.rs": "",
        "sub/.gitignore": "!layers.txt\n*.rs\n",
        "sub/layers.txt": "", "sub/a.rs": "", "sub/deep.gen": "",
    })
    files, _ = collect(tmp_path)
    names = set(files) - {".gitignore", ".ignore", ".codesearchignore", "sub/.gitignore"}
    # .ignore re-includes keep.gen over .gitignore; .codesearchignore beats .ignore;
    # a root .ignore beats a deeper .gitignore (ripgrep order); deeper .gitignore beats
    # the root .gitignore.
    assert names == {"keep.gen", "sub/layers.txt", "sub/deep.gen"}


def test_git_info_exclude(tmp_path):
    make(tmp_path, {".git/info/exclude": "# local\n*.scratch\n", "a.scratch": "", "a.rs": "",
                    "sub/b.scratch": ""})
    files, _ = collect(tmp_path)
    assert set(files) == {"a.rs"}


def test_info_exclude_of_worktree_via_commondir(tmp_path):
    make(tmp_path, {
        "main/.git/info/exclude": "*.scratch\n",
        "main/.git/worktrees/wt/commondir": "../..\n",
        "wt/.git": f"gitdir: {tmp_path / 'main/.git/worktrees/wt'}\n",
        "wt/a.scratch": "", "wt/a.rs": "",
    })
    files, _ = collect(tmp_path / "wt")
    assert set(files) == {"a.rs"}


def test_gitignore_rules_stop_at_nested_repo_but_ignore_files_carry_on(tmp_path):
    make(tmp_path, {
        ".git/": "", ".gitignore": "*.tmp\nskipped_repo/\n", ".ignore": "*.bak\n",
        "a.tmp": "", "a.bak": "",
        "nested/.git/": "", "nested/b.tmp": "", "nested/b.bak": "",
        "skipped_repo/.git/": "", "skipped_repo/c.rs": "",
    })
    files, _ = collect(tmp_path)
    assert set(files) - {".gitignore", ".ignore"} == {"nested/b.tmp"}


def test_always_excluded_folders_are_never_entered(tmp_path, tmp_path_factory):
    outside = make(tmp_path_factory.mktemp("outside"), {"o.rs": ""})
    root = make(tmp_path / "root", {
        ".gitignore": "!node_modules/\n!target/\n",  # cannot bring them back
        "src/lib.rs": "", "__pycache__/m.cpython-311.pyc": b"\0",
        ".venv/lib/x.py": "", "build/out.rs": "", "dist/d.js": "", ".lake/b.olean": "",
        "sub/_build/x.ml": "", ".git/config": "", "proj/.hg/store": "",
    })
    for folder in ("node_modules/pkg", "target/debug"):
        # Anything inside would be *reported* if the folder were entered.
        d = root / folder
        d.mkdir(parents=True)
        (d / "index.js").write_text("")
        (d / ".env").write_text("SECRET=1")
        (d / "out").symlink_to(outside)
        (d / "self").symlink_to(d)
    files, skipped = collect(root)
    assert set(files) == {"src/lib.rs"}  # the .gitignore itself is a rule file, never indexed
    assert skipped == {}


def test_always_excluded_files_are_silent(tmp_path):
    make(tmp_path, {"Cargo.lock": "", "package-lock.json": "{}", "app.min.js": "x",
                    "app.min.css": "x", "app.js.map": "{}", "app.js": "x", "logo.png": b"\x89PNG",
                    "lib.so": b"\x7fELF", "m.safetensors": b"", "real.rs": ""})
    files, skipped = collect(tmp_path)
    assert set(files) == {"app.js", "real.rs"}
    assert skipped == {}


# ----------------------------------------------------------------- secrets

SECRET_FILES = [
    ".env", ".env.local", ".env.production", "server.pem", "tls.key", "cert.p12", "cert.pfx",
    "app.keystore", "app.jks", "id_rsa", "id_rsa.pub", "id_dsa", "id_ecdsa", "id_ed25519",
    "id_ed25519.pub", ".netrc", ".pgpass", "passwords.kdbx", "credentials.json", ".npmrc",
    ".pypirc", "secrets.yaml", "secrets.yml", "secrets.json", "secrets.toml", "backup.gpg",
    ".git-credentials", "SERVER.PEM", ".aws/credentials",
]


@pytest.mark.parametrize("name", SECRET_FILES)
def test_secret_files_are_reported_never_yielded(tmp_path, name):
    make(tmp_path, {"sub/" + name: "hunter2\n", "sub/ok.rs": ""})
    files, skipped = collect(tmp_path)
    assert set(files) == {"sub/ok.rs"}
    assert skipped == {"sub/" + name: "secret"}


def test_ssh_folder_is_secret_as_a_whole(tmp_path):
    make(tmp_path, {".ssh/config": "Host x\n", ".ssh/known_hosts": "", "a.rs": ""})
    files, skipped = collect(tmp_path)
    assert set(files) == {"a.rs"}
    assert skipped == {".ssh": "secret"}


def test_secret_like_but_harmless_files_are_yielded(tmp_path):
    harmless = [".env.example", ".env.sample", ".env.template", "secrets.py", "keys.rs",
                "credentials.py", "environment.ts", "aws/credentials.md"]
    make(tmp_path, {n: "x\n" for n in harmless})
    files, skipped = collect(tmp_path)
    assert set(files) == set(harmless)
    assert skipped == {}


def test_secret_patterns_constant_is_documented_globs():
    assert ".env" in SECRET_PATTERNS and "!.env.example" in SECRET_PATTERNS


# ----------------------------------------------------------------- content


def test_binary_content_is_reported_by_read_text(tmp_path):
    make(tmp_path, {"blob.dat": b"abc\0def" * 10, "late.txt": b"a" * 9000 + b"\0"})
    files, _ = collect(tmp_path)
    with pytest.raises(SkipFile) as err:
        read_text(files["blob.dat"])
    assert err.value.reason == "binary"
    assert read_text(files["late.txt"]).startswith("aaa")  # NUL after the first 8 KiB


def test_too_large_is_reported_without_reading(tmp_path):
    make(tmp_path, {"big.rs": "x" * 101, "small.rs": "x" * 100})
    files, skipped = collect(tmp_path, max_file_bytes=100)
    assert set(files) == {"small.rs"}
    assert skipped == {"big.rs": "too large"}


def test_minified_detected_by_read_text(tmp_path):
    line = "var a=1;" * 100 + "\n"  # 801 chars per line
    make(tmp_path, {
        "bundle.js": "function(){" * 3000,            # 33 KB, one line
        "wide.js": line * 30,                          # 24 KB, average line 801
        "one_long_line.py": "x = 1\n" * 5000 + "y = '" + "z" * 21000 + "'\n",
        "small_wide.js": line * 10,                    # 8 KB: too small to judge
        "normal.py": "def f(x):\n    return x\n" * 2000,
    })
    for name in ("bundle.js", "wide.js", "one_long_line.py"):
        with pytest.raises(SkipFile) as err:
            read_text(tmp_path / name)
        assert err.value.reason == "minified", name
    assert read_text(tmp_path / "small_wide.js") == line * 10
    assert read_text(tmp_path / "normal.py").startswith("def f(x):")


def test_minified_check_is_linear(tmp_path):
    p = tmp_path / "huge.js"
    p.write_text("a" * 5_000_000)
    t = time.perf_counter()
    with pytest.raises(SkipFile):
        read_text(p)
    assert time.perf_counter() - t < 1.0
    _, skipped = collect(tmp_path)  # caught before reading at the default limit
    assert skipped == {"huge.js": "too large"}


def test_invalid_utf8(tmp_path):
    make(tmp_path, {
        # 2 bad bytes in ~1000 characters: replaced; 1 in 33 (latin-1 text): too many
        "mostly_fine.rs": b"fn main() {}\n" * 40 + b"// caf\xe9 cr\xe8me\n" + b"fn f() {}\n" * 40,
        "three_percent.rs": b"fn main() { let s = \"caf\xe9\"; }\n" * 20,
        "latin1.txt": "d\xe9j\xe0 vu, \xe7a va\n".encode("latin-1"),      # too many
        "garbage.txt": bytes(range(128, 256)) * 10,
    })
    text = read_text(tmp_path / "mostly_fine.rs")
    assert text.count("\ufffd") == 2 and "// caf\ufffd cr\ufffdme\n" in text
    for name in ("three_percent.rs", "latin1.txt", "garbage.txt"):
        with pytest.raises(SkipFile) as err:
            read_text(tmp_path / name)
        assert err.value.reason == "not text"


def test_bom_is_stripped_and_text_kept_verbatim(tmp_path):
    p = tmp_path / "bom.py"
    p.write_bytes(b"\xef\xbb\xbfprint('h\xc3\xa9')\r\n")
    assert read_text(p) == "print('hé')\r\n"
    assert read_text(str(p)) == read_text(p)


def test_read_text_vanished(tmp_path):
    make(tmp_path, {"a.rs": "fn a() {}"})
    (f,) = walk([tmp_path])
    os.remove(f.path)
    with pytest.raises(SkipFile) as err:
        read_text(f)
    assert err.value.reason == "vanished"


# ----------------------------------------------------------------- permissions

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.mark.skipif(IS_ROOT, reason="running as root: chmod 000 does not deny access")
def test_unreadable_file(tmp_path):
    make(tmp_path, {"locked.rs": "x", "ok.rs": "y"})
    (tmp_path / "locked.rs").chmod(0)
    try:
        if os.access(tmp_path / "locked.rs", os.R_OK):
            pytest.skip("chmod 000 does not deny access here")
        files, skipped = collect(tmp_path)
        assert set(files) == {"ok.rs"}
        assert skipped == {"locked.rs": "unreadable"}
        with pytest.raises(SkipFile) as err:
            read_text(tmp_path / "locked.rs")
        assert err.value.reason == "unreadable"
    finally:
        (tmp_path / "locked.rs").chmod(0o644)


@pytest.mark.skipif(IS_ROOT, reason="running as root: chmod 000 does not deny access")
def test_unreadable_folder_reported_once(tmp_path):
    make(tmp_path, {"locked/a.rs": "", "locked/b.rs": "", "ok.rs": ""})
    (tmp_path / "locked").chmod(0)
    try:
        if os.access(tmp_path / "locked", os.R_OK):
            pytest.skip("chmod 000 does not deny access here")
        files, skipped = collect(tmp_path)
        assert set(files) == {"ok.rs"}
        assert skipped == {"locked": "unreadable"}
    finally:
        (tmp_path / "locked").chmod(0o755)


def test_fifo_is_skipped_without_blocking(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    make(tmp_path, {"a.rs": ""})
    os.mkfifo(tmp_path / "pipe")
    files, skipped = collect(tmp_path)
    assert set(files) == {"a.rs"} and skipped == {"pipe": "not a regular file"}


# ----------------------------------------------------------------- symlinks


def test_symlink_loops_terminate_and_are_reported(tmp_path):
    root = make(tmp_path / "root", {"a/x.rs": "", "top.rs": ""})
    (root / "a/up").symlink_to("..")          # folder symlinked into its parent
    (root / "a/self").symlink_to(".")         # folder symlinked into itself
    (root / "l1").symlink_to("l2")            # symlink cycle
    (root / "l2").symlink_to("l1")
    files, skipped = collect(root)
    assert set(files) == {"a/x.rs", "top.rs"}
    assert skipped == {"a/up": "symlink loop", "a/self": "symlink loop",
                       "l1": "symlink loop", "l2": "symlink loop"}


def test_symlinks_outside_the_root_are_not_followed(tmp_path):
    outside = make(tmp_path / "outside", {"secret_code.rs": "", "f.rs": ""})
    root = make(tmp_path / "root", {"a.rs": ""})
    (root / "ext").symlink_to(outside)
    (root / "ext_file.rs").symlink_to(outside / "f.rs")
    (root / "sneaky").symlink_to("../outside")
    files, skipped = collect(root)
    assert set(files) == {"a.rs"}
    assert skipped == {"ext": "symlink outside root", "ext_file.rs": "symlink outside root",
                       "sneaky": "symlink outside root"}


def test_symlink_inside_root_followed_once(tmp_path):
    root = make(tmp_path / "root", {"real/a.rs": "fn a() {}", "real/sub/b.rs": "", "c.rs": ""})
    (root / "alias").symlink_to("real")        # sorted before "real": followed first
    (root / "z_alias").symlink_to("real")      # target already walked: silent
    (root / "c_link.rs").symlink_to("c.rs")    # same file as c.rs: reported once
    (root / "dangling.rs").symlink_to("nowhere.rs")
    files, skipped = collect(root)
    assert skipped == {}
    assert set(files) == {"alias/a.rs", "alias/sub/b.rs", "c.rs"}
    assert files["alias/a.rs"].path == root / "alias/a.rs"
    assert files["alias/a.rs"].rel_path == "alias/a.rs"
    assert read_text(files["alias/a.rs"]) == "fn a() {}"


def test_symlinked_root_is_walked(tmp_path):
    real = make(tmp_path / "real", {"a.rs": "", "inner/b.rs": ""})
    (real / "link_in").symlink_to(real / "inner")
    (tmp_path / "root_link").symlink_to(real)
    files, skipped = collect(tmp_path / "root_link")
    assert set(files) == {"a.rs", "inner/b.rs"} and skipped == {}
    assert files["a.rs"].path == tmp_path / "root_link/a.rs"


# ----------------------------------------------------------------- roots


def test_nonexistent_root_raises_at_call_time(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match="nope"):
        walk([tmp_path, missing])
    with pytest.raises(FileNotFoundError, match="nope"):
        find_repositories(missing)


def test_single_file_root(tmp_path):
    make(tmp_path, {"repo/.git/": "", "repo/.gitignore": "*.rs\n", "repo/src/main.rs": "",
                    "loose/x.py": "", "repo/.env": "K=V"})
    (item,) = walk([tmp_path / "repo/src/main.rs"])  # ignore files do not apply
    assert (item.repo, item.rel_path) == (tmp_path / "repo", "src/main.rs")
    (item,) = walk([str(tmp_path / "loose/x.py")])
    assert (item.repo, item.rel_path) == (tmp_path / "loose", "x.py")
    (item,) = walk([tmp_path / "repo/.env"])
    assert item == Skipped(tmp_path / "repo/.env", "secret")
    assert find_repositories(tmp_path / "repo/src/main.rs") == [tmp_path / "repo"]


def test_overlapping_roots_report_each_file_once(tmp_path):
    make(tmp_path, {"a.rs": "", "sub/b.rs": "", "sub/deep/c.rs": ""})
    expected = {"a.rs", "sub/b.rs", "sub/deep/c.rs"}
    for roots in ([tmp_path, tmp_path / "sub"], [tmp_path / "sub", tmp_path],
                  [tmp_path, tmp_path / "sub/b.rs", tmp_path]):
        items = list(walk(roots))
        assert sorted(os.path.relpath(i.path, tmp_path) for i in items) == sorted(expected)
        assert all(i.repo == tmp_path for i in items)  # the outer root claims them


def test_single_root_given_as_string_and_deterministic_order(tmp_path):
    make(tmp_path, {"b/2.rs": "", "b/1.rs": "", "a.rs": "", "c.rs": "", "B.rs": ""})
    first = [f.rel_path for f in walk(str(tmp_path))]
    assert first == ["B.rs", "a.rs", "b/1.rs", "b/2.rs", "c.rs"]
    assert [f.rel_path for f in walk([tmp_path])] == first


# ---------------------------------------------------------------------------- git ls-files cache
@needs_git
def test_git_ls_files_runs_again_only_when_the_git_index_changes(tmp_path, monkeypatch):
    """The watcher walks the paths of every batch: `git ls-files` is not re-run per batch,
    only after the repository's git index changed (a `git add -f` of an ignored file)."""
    import codesearch.indexer.walk as walker
    from codesearch.indexer.scope import walk_paths

    repo = git_init(tmp_path / "repo")
    make(repo, {".gitignore": "*.log\n", "main.py": "def main():\n    return 1\n",
                "keep.log": "a log git will track\n", "other.log": "ignored\n"})
    runs = []
    real = walker._git_tracked
    monkeypatch.setattr(walker, "_git_tracked", lambda r: runs.append(r) or real(r))

    def batch() -> set[str]:
        scope = walk_paths([repo], [repo / "keep.log", repo / "other.log", repo / "main.py"])
        return {s.rel_path for s in scope.sources}

    assert batch() == {"main.py"} and len(runs) == 1  # keep.log, other.log: ignored, not tracked
    assert batch() == {"main.py"} and len(runs) == 1  # a second batch: no git run
    subprocess.run(["git", "-C", str(repo), "add", "-f", "keep.log"], check=True)
    assert walker.tracked_changes(str(repo)) == ["keep.log"] and len(runs) == 2
    assert batch() == {"main.py", "keep.log"} and len(runs) == 2  # picked up; not re-run again
    subprocess.run(["git", "-C", str(repo), "rm", "-q", "--cached", "keep.log"], check=True)
    assert batch() == {"main.py"} and len(runs) == 3
    assert walker.tracked_changes(str(repo)) == [] and len(runs) == 3


# ----------------------------------------------------------------- walking only some paths


def test_path_walker_yields_what_the_full_walk_yields_at_each_path(tmp_path):
    """PathWalker.walk_path(p) lists only the folders down to p, yet gives exactly the
    records and skips of walk(root) at and below p: layered ignore files, a nested
    repository, excluded folders, secrets, sizes, binaries."""
    from codesearch.indexer.walk import PathWalker

    root = make(tmp_path / "root", {
        ".git/": "", ".gitignore": "*.log\ngen/\n", ".ignore": "!keep.log\n",
        "main.py": "x", "a.log": "", "keep.log": "", "gen/g.py": "", "big.py": "x" * 64,
        "src/.gitignore": "*.tmp\n!*.py\n", "src/m.py": "", "src/t.tmp": "", "src/pic.png": b"\x89",
        "src/.env": "SECRET=1", "src/deep/.codesearchignore": "*.rs\n", "src/deep/d.rs": "",
        "src/deep/d.py": "", "vendor/.git/": "", "vendor/v.tmp": "", "vendor/v.log": "",
        "vendor/inner/w.py": "", "node_modules/n.js": "", ".ssh/id": "", "missing_parent/": "",
    })
    full = list(walk(root, max_file_bytes=32))
    paths = ["", "main.py", "a.log", "keep.log", "gen", "gen/g.py", "big.py", "src", "src/m.py",
             "src/t.tmp", "src/pic.png", "src/.env", "src/deep", "src/deep/d.rs", "src/deep/d.py",
             "vendor", "vendor/v.tmp", "vendor/v.log", "vendor/inner", "node_modules",
             "node_modules/n.js", ".ssh", ".ssh/id", ".gitignore", "gone.py", "missing_parent/x/y"]
    for rel in paths:
        p = os.path.join(root, rel) if rel else str(root)
        expected = [i for i in full if str(i.path) == p or str(i.path).startswith(p + "/")]
        got = list(PathWalker([root], max_file_bytes=32).walk_path(p, root))
        assert got == expected, rel
    # One PathWalker for several paths (folders above them listed once): the same answers.
    pw = PathWalker([str(root)], max_file_bytes=32)
    for rel in ("src/m.py", "src/deep", "vendor/v.log", "vendor/inner/w.py"):
        p = os.path.join(root, rel)
        expected = [i for i in full if str(i.path) == p or str(i.path).startswith(p + "/")]
        assert list(pw.walk_path(p, root)) == expected, rel


def test_path_walker_on_a_file_root_and_a_vanished_root(tmp_path):
    from codesearch.indexer.walk import PathWalker

    f = make(tmp_path, {"one.py": "x", "key.pem": "k"}) / "one.py"
    assert list(PathWalker([f]).walk_path(f, f)) == list(walk(f))
    pem = tmp_path / "key.pem"
    assert list(PathWalker([pem]).walk_path(pem, pem)) == [Skipped(pem, "secret")]
    gone = tmp_path / "gone"
    assert list(PathWalker([gone]).walk_path(gone / "a.py", gone)) == []  # no error either


def test_recheck_path_maps_a_change_to_what_it_can_alter(tmp_path):
    from codesearch.indexer.walk import recheck_path

    r = str(tmp_path)
    j = lambda *p: os.path.join(r, *p)  # noqa: E731
    assert recheck_path(j("src", "a.py"), r) == j("src", "a.py")
    assert recheck_path(r, r) == r
    assert recheck_path(j("src", ".gitignore"), r) == j("src")  # rules of the whole folder
    assert recheck_path(j(".codesearchignore"), r) == r
    assert recheck_path(j("sub", ".ignore"), r) == j("sub")
    assert recheck_path(j("vendor", ".git"), r) == j("vendor")  # a repository boundary
    assert recheck_path(j(".git", "info", "exclude"), r) == r
    assert recheck_path(j("v", ".git", "info"), r) == j("v")
    assert recheck_path(j("v", ".git", "index"), r) == j("v", ".git", "index")  # tracked files
    assert recheck_path(j(".git", "objects", "ab"), r) is None
    assert recheck_path(j("node_modules", "p", "i.js"), r) is None  # never entered
    assert recheck_path(j("src", "build", "out.rs"), r) is None
    assert recheck_path(j("src", "build"), r) == j("src", "build")  # what was recorded there
