"""A real Emacs (batch mode) drives `codesearch lsp` through the README's Emacs snippets, verbatim.

Emacs comes from $CODESEARCH_EMACS or the `PATH` (Debian: `apt-get install emacs-nox elpa-eglot
elpa-lsp-mode`; eglot is built into Emacs 29+). Without Emacs the tests skip, saying so, and each
skips without its client (eglot or lsp-mode) loadable. Both snippets are read from README.md (the
```elisp blocks under "### Emacs") and loaded before their package, as in a user's init file. The
buffer is put in one of the eglot snippet's modes (a stand-in `coq-mode` where Proof General is
absent), `M-x eglot` / `M-x lsp` start `codesearch` (this Python's bin folder on `PATH`, the index
home from $CODESEARCH_HOME, shared by the two tests so only the first one embeds), and then what the
README tells Emacs users to run: `M-x xref-find-apropos` (workspace/symbol, read back from *xref*),
the `jsonrpc-request` of `codesearch/search`, and the `codesearch.search` command.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from test_lsp_harness import TIMEOUT, make_workspace, server_env

README = Path(__file__).resolve().parent.parent / "README.md"

# Emacs 28 has no eglot of its own: Debian's elpa-* packages live under site-lisp, which -Q leaves out.
ACTIVATE = r"""
(require 'package)
(unless (locate-library (getenv "CS_FEATURE"))
  (add-to-list 'package-directory-list "/usr/share/emacs/site-lisp/elpa")
  (package-activate-all))
"""

PRELUDE = ACTIVATE + r"""
(require 'cl-lib)
(require 'json)
(defvar cs-ws (file-name-as-directory (getenv "CS_WS")))
(defvar cs-timeout (string-to-number (getenv "CS_TIMEOUT")))
(defvar cs-result nil)
(defvar cs-indexed nil)
(defun cs-put (key value) (push (cons key value) cs-result))
(defun cs-wait (pred seconds)
  (let ((deadline (+ (float-time) seconds)))
    (while (and (not (funcall pred)) (< (float-time) deadline))
      (accept-process-output nil 0.05))
    (funcall pred)))
(defun cs-xrefs (items)
  (vconcat (mapcar (lambda (item)
                     (let ((loc (xref-item-location item)))
                       `((name . ,(xref-item-summary item))
                         (file . ,(xref-file-location-file loc))
                         (line . ,(xref-file-location-line loc)))))
                   items)))
(defun cs-xref-buffer (pattern)
  "What a user sees after M-x xref-find-apropos RET PATTERN RET."
  (xref-find-apropos pattern)
  (with-current-buffer "*xref*" (buffer-substring-no-properties (point-min) (point-max))))

(load (getenv "CS_SNIPPET") nil t)   ; the README's snippet, before its package: as in an init file
(cs-put 'emacs emacs-version)
(cs-put 'library (locate-library (getenv "CS_FEATURE")))
(unless (fboundp 'coq-mode)          ; a stand-in for Proof General's mode, one of the snippet's
  (define-derived-mode coq-mode prog-mode "Coq"))
"""

EGLOT = PRELUDE + r"""
(require 'eglot)
(setq eglot-sync-connect 5 eglot-connect-timeout cs-timeout)
(cs-put 'entry (format "%S" (car eglot-server-programs)))
(cl-defmethod eglot-handle-notification (_server (_method (eql codesearch/indexed)) &rest params)
  (setq cs-indexed params))
(condition-case err
    (progn
      (find-file (expand-file-name "src/bounds.rs" cs-ws))
      (coq-mode)
      (call-interactively #'eglot)                         ; M-x eglot
      (cs-put 'connected (and (cs-wait #'eglot-current-server cs-timeout) t))
      (let ((server (eglot-current-server)))
        (cs-put 'indexed (and (cs-wait (lambda () cs-indexed) cs-timeout) t))
        (cs-put 'chunks (plist-get cs-indexed :total_chunks))
        (cs-put 'symbols (jsonrpc-request server :workspace/symbol
                                          '(:query "check if a value is within bounds")))
        ;; xref-find-apropos asks the backend for every workspace/symbol answer, as xref items
        ;; (eglot's summary: the text of the line where the symbol's range starts).
        (cs-put 'apropos (cs-xrefs (xref-backend-apropos 'eglot "check if a value is within bounds")))
        (cs-put 'xref-buffer (cs-xref-buffer "evict the least recently used entry"))
        ;; The README's line for codesearch/search from Lisp.
        (cs-put 'search (jsonrpc-request (eglot-current-server) :codesearch/search
                                         '(:query "evict the least recently used entry" :limit 3)))
        (cs-put 'command-search (eglot-execute-command server 'codesearch.search
                                                       ["evict the least recently used entry"]))
        (cs-put 'bad-error (condition-case e
                               (progn (jsonrpc-request server :codesearch/search '(:query "x" :limt 3)) nil)
                             (jsonrpc-error (format "%S" e))))
        (eglot-shutdown server)))
  (error (cs-put 'error (format "%S" err))))
(with-temp-file (getenv "CS_OUT") (insert (json-encode cs-result)))
(kill-emacs 0)
"""

LSP_MODE = PRELUDE + r"""
(setq lsp-session-file (expand-file-name "lsp-session" (getenv "CS_TMP"))
      lsp-server-install-dir (expand-file-name "lsp-servers" (getenv "CS_TMP"))
      lsp-auto-guess-root t            ; what a user answers at lsp-mode's "import project root?"
      lsp-restart 'ignore lsp-keep-workspace-alive nil lsp-enable-snippet nil)
(require 'lsp-mode)
(cs-put 'entry (format "%S" (and (gethash 'codesearch lsp-clients) 'codesearch)))
;; The README's client ignores codesearch/indexed; the test waits for it.
(puthash "codesearch/indexed" (lambda (_workspace params) (setq cs-indexed params))
         (lsp--client-notification-handlers (gethash 'codesearch lsp-clients)))
(condition-case err
    (progn
      (find-file (expand-file-name "src/bounds.rs" cs-ws))
      (coq-mode)
      (call-interactively #'lsp)                           ; M-x lsp
      (cs-put 'connected (and (cs-wait (lambda () (lsp-find-workspace 'codesearch nil)) cs-timeout) t))
      (cs-put 'indexed (and (cs-wait (lambda () cs-indexed) cs-timeout) t))
      (cs-put 'chunks (gethash "total_chunks" cs-indexed))
      (cs-put 'symbols (lsp-request "workspace/symbol" '(:query "check if a value is within bounds")))
      ;; lsp-mode's xref summary: "[Kind] name".
      (cs-put 'apropos (cs-xrefs (xref-backend-apropos 'xref-lsp "check if a value is within bounds")))
      (cs-put 'xref-buffer (cs-xref-buffer "evict the least recently used entry"))
      (cs-put 'search (lsp-request "codesearch/search" '(:query "evict the least recently used entry" :limit 3)))
      (cs-put 'command-search (lsp-request "workspace/executeCommand"
                                           '(:command "codesearch.search"
                                             :arguments ["evict the least recently used entry"])))
      (cs-put 'bad-error (condition-case e
                             (progn (lsp-request "codesearch/search" '(:query "x" :limt 3)) nil)
                           (error (format "%S" e))))
      (lsp-workspace-shutdown (lsp-find-workspace 'codesearch nil)))
  (error (cs-put 'error (format "%S" err))))
(with-temp-file (getenv "CS_OUT") (insert (json-encode cs-result)))
(kill-emacs 0)
"""


def readme_snippets() -> list[str]:
    """The ```elisp blocks under README.md's "### Emacs" heading: eglot's, then lsp-mode's."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n### Emacs\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```elisp\n(.*?)^```$", section, re.S | re.M)


def test_readme_emacs_snippets_are_eglot_then_lsp_mode():
    eglot, lsp_mode = readme_snippets()
    assert eglot.startswith("(with-eval-after-load 'eglot") and '"codesearch" "lsp"' in eglot, eglot
    assert lsp_mode.startswith("(with-eval-after-load 'lsp-mode") and '"codesearch" "lsp"' in lsp_mode, lsp_mode


@pytest.fixture(scope="module")
def emacs() -> str:
    found = os.environ.get("CODESEARCH_EMACS") or shutil.which("emacs")
    if found is None:
        pytest.skip("no Emacs found: apt-get install emacs-nox elpa-eglot elpa-lsp-mode (Emacs 29+ has eglot built in)")
    return found


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> tuple[Path, Path]:
    """One workspace and index home for both clients: the first test indexes, the second reuses."""
    root = tmp_path_factory.mktemp("emacs")
    return make_workspace(root), root / "home"


def run_emacs(emacs: str, feature: str, elisp: str, snippet: str, tmp_path: Path, shared) -> tuple[dict, str]:
    probe = subprocess.run([emacs, "--batch", "-Q", "--eval", f"(progn {ACTIVATE} (require '{feature}))"],
                           env={**os.environ, "CS_FEATURE": feature}, capture_output=True, text=True,
                           timeout=120, stdin=subprocess.DEVNULL)
    if probe.returncode != 0:
        pytest.skip(f"{feature} is not loadable in {emacs} (apt-get install elpa-{feature}): {probe.stderr.strip()[-300:]}")
    ws, home = shared
    (tmp_path / "snippet.el").write_text(snippet)
    (tmp_path / "test.el").write_text(elisp)
    out = tmp_path / "out.json"
    env = server_env(tmp_path)
    bin_dir = str(Path(sys.executable).parent)  # where pip put the `codesearch` script
    env.update(CS_FEATURE=feature, CS_WS=str(ws), CS_SNIPPET=str(tmp_path / "snippet.el"), CS_OUT=str(out),
               CS_TMP=str(tmp_path), CS_TIMEOUT=str(TIMEOUT), CODESEARCH_HOME=str(home),
               PATH=bin_dir + os.pathsep + env.get("PATH", ""),
               XDG_STATE_HOME=str(tmp_path / "state"), XDG_DATA_HOME=str(tmp_path / "data"))
    proc = subprocess.run([emacs, "--batch", "-Q", "-l", str(tmp_path / "test.el")], env=env, cwd=ws,
                          capture_output=True, text=True, timeout=TIMEOUT * 2 + 120, stdin=subprocess.DEVNULL)
    detail = f"(exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert out.exists(), f"Emacs wrote nothing {detail}"
    result = json.loads(out.read_text())
    assert "error" not in result and result["connected"], f"{result} {detail}"
    assert result["indexed"] and result["chunks"] > 20, result
    return result, proc.stderr


def check_results(result: dict, ws: Path) -> None:
    bounds = ws / "src" / "bounds.rs"
    top = result["symbols"][0]
    assert top["name"] == "contains" and top["location"]["uri"] == bounds.as_uri(), result["symbols"]
    assert len(result["apropos"]) == len(result["symbols"]) > 1
    top_xref = result["apropos"][0]
    start, end = (top["location"]["range"][k]["line"] for k in ("start", "end"))  # 0-based; xref's 1-based
    assert top_xref["file"] == str(bounds) and start <= top_xref["line"] <= end + 1, (top_xref, top)
    lru = {str(ws / "src" / "cache.py"), str(ws / "src" / "lru_cache.py")}
    search = result["search"]["results"]
    assert len(search) == 3 and search[0]["path"] in lru, search
    assert result["command-search"]["results"][0]["path"] in lru, result["command-search"]
    assert "unknown parameter 'limt'" in re.sub("[\u2018\u2019]", "'", result["bad-error"]), result["bad-error"]
    # *xref* groups the matches under file names relative to the project: the first is an LRU one.
    first_group = next(line for line in result["xref-buffer"].splitlines() if line.strip())
    assert str(ws / first_group.strip()) in lru, result["xref-buffer"]


@pytest.mark.slow  # the first of the two embeds the workspace: 50 to 90 s on 2 shared cores
def test_emacs_eglot_workspace_symbol_and_search(emacs, shared, tmp_path):
    result, _ = run_emacs(emacs, "eglot", EGLOT, readme_snippets()[0], tmp_path, shared)
    assert result["entry"].startswith("((lean4-mode tla-mode coq-mode python-ts-mode)"), result["entry"]
    check_results(result, shared[0])
    assert "`value` lies between the lower and upper bound" in result["apropos"][0]["name"], result["apropos"]
    print(f"\nEmacs {result['emacs']}, {result['library']}: {len(result['apropos'])} symbols; "
          f"*xref*:\n{result['xref-buffer'][:200]}")


@pytest.mark.slow
def test_emacs_lsp_mode_workspace_symbol_and_search(emacs, shared, tmp_path):
    result, stderr = run_emacs(emacs, "lsp-mode", LSP_MODE, readme_snippets()[1], tmp_path, shared)
    assert result["entry"] == "codesearch", result
    check_results(result, shared[0])
    assert result["apropos"][0]["name"] == "[Method] contains", result["apropos"]
    # The snippet's notification handlers keep lsp-mode from warning about every codesearch/status.
    assert "Unknown notification" not in stderr, stderr[-2000:]
    print(f"\nEmacs {result['emacs']}, {result['library']}: {len(result['apropos'])} symbols; "
          f"*xref*:\n{result['xref-buffer'][:200]}")
