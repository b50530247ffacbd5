"""The VS Code extension inside a real VS Code: code-server in headless Chromium, driven by Playwright.

The flow a user has: VS Code opens a folder, the extension (installed from its .vsix) starts
`codesearch lsp` with this Python and a home in a tmp folder, the index gets built, "Code Search:
Search" is run from the command palette, a query is typed, results show up, one is marked good
(👍, the personal eval feedback), Enter opens it at the right line, and "Code Search: Run
Personal Eval" counts the query that was marked. A screenshot of the results is saved
(``$CODESEARCH_VSCODE_SHOTS``, default the test's tmp folder).

What it needs, found as below or skipped with the reason (``.ci/run`` installs them best-effort):

- Node 24 (code-server needs it): ``$CODESEARCH_NODE24``, ``/opt/cs-vscode/node24`` (npm's
  ``node@24`` package), or a ``node`` on the PATH whose major version is 24;
- code-server (VS Code in a browser, npm's ``code-server``): ``$CODESEARCH_CODE_SERVER`` (its
  ``out/node/entry.js`` or the ``code-server`` link), ``/opt/cs-vscode/cs``, or the PATH;
- Chromium: ``$CODESEARCH_CHROMIUM``, else ``chromium`` / ``chromium-browser`` on the PATH;
  Playwright (PyPI ``playwright``) drives it; no browser is downloaded;
- the extension: ``$CODESEARCH_VSIX``, else built from ``vscode-extension/`` with its vsce
  (``npm ci`` there first).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_lsp_harness import TIMEOUT, make_workspace, server_env

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
EXTENSION = REPO / "vscode-extension"
OPT = Path(os.environ.get("CODESEARCH_VSCODE_OPT", "/opt/cs-vscode"))
QUERY = "check if a value is within bounds"


def _node_major(node: str) -> int | None:
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.match(r"v(\d+)\.", out.strip())
    return int(m.group(1)) if m else None


def find_node24() -> str | None:
    candidates = [os.environ.get("CODESEARCH_NODE24"), str(OPT / "node24/node_modules/node/bin/node"), shutil.which("node")]
    for c in candidates:
        if c and Path(c).exists() and _node_major(c) == 24:
            return c
    return None


def find_code_server() -> str | None:
    candidates = [os.environ.get("CODESEARCH_CODE_SERVER"), str(OPT / "cs/node_modules/code-server/out/node/entry.js"),
                  shutil.which("code-server")]
    for c in candidates:
        if c and Path(c).exists():
            return str(Path(c).resolve())
    return None


def find_chromium() -> str | None:
    found = os.environ.get("CODESEARCH_CHROMIUM")
    if found and Path(found).exists():
        return found
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def build_vsix(dest: Path) -> Path | None:
    given = os.environ.get("CODESEARCH_VSIX")
    if given:
        return Path(given) if Path(given).exists() else None
    vsce = EXTENSION / "node_modules" / ".bin" / "vsce"
    if not vsce.exists():
        return None
    out = dest / "codesearch.vsix"
    # vsce runs `vscode:prepublish` (tsc) first; its own node (the PATH's) is fine for that.
    proc = subprocess.run([str(vsce), "package", "--allow-missing-repository", "-o", str(out)], cwd=EXTENSION,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"vsce package failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    import urllib.request

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"code-server exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status < 500:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"code-server did not answer at {url}:\n{log.read_text()[-4000:]}")


def run_command(page, title: str) -> None:
    """Run a command from the command palette by its title."""
    page.keyboard.press("Control+Shift+P")
    box = page.locator(".quick-input-widget .quick-input-box input")
    box.wait_for(state="visible", timeout=30_000)
    box.fill(">" + title)
    page.locator(".quick-input-list .monaco-list-row", has_text=title).first.wait_for(timeout=30_000)
    page.keyboard.press("Enter")


def test_extension_in_code_server(tmp_path):
    node = find_node24()
    if node is None:
        pytest.skip("no Node 24 (code-server needs it): npm install --prefix /opt/cs-vscode/node24 node@24, or set CODESEARCH_NODE24")
    code_server = find_code_server()
    if code_server is None:
        pytest.skip("no code-server: npm install code-server (with Node 24) under /opt/cs-vscode/cs, or set CODESEARCH_CODE_SERVER")
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no Chromium: apt-get install chromium, or set CODESEARCH_CHROMIUM")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("no Playwright: pip install playwright (the browser is the system Chromium; nothing is downloaded)")
    vsix = build_vsix(tmp_path)
    if vsix is None:
        pytest.skip("no .vsix: run `npm ci` in vscode-extension/ (for vsce), or set CODESEARCH_VSIX")

    shots = Path(os.environ.get("CODESEARCH_VSCODE_SHOTS") or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    ws = make_workspace(tmp_path)
    home = tmp_path / "home"
    user_data = tmp_path / "user-data"
    extensions = tmp_path / "extensions"
    (user_data / "User").mkdir(parents=True)
    (user_data / "User" / "settings.json").write_text(json.dumps({
        "codesearch.pythonPath": sys.executable,
        "codesearch.home": str(home),
        "codesearch.debounceMs": 50,
        "workbench.startupEditor": "none",
        "workbench.tips.enabled": False,
        "workbench.enableExperiments": False,
        "security.workspace.trust.enabled": False,
        "telemetry.telemetryLevel": "off",
        "update.mode": "none",
        "extensions.autoCheckUpdates": False,
        "extensions.ignoreRecommendations": True,
        "chat.disableAIFeatures": True,
        "window.commandCenter": False,
        "workbench.secondarySideBar.defaultVisibility": "hidden",
    }, indent=1))
    env = server_env(tmp_path)
    env.update(XDG_DATA_HOME=str(tmp_path / "data"), XDG_CACHE_HOME=str(tmp_path / "cache"))
    env["PATH"] = f"{Path(node).parent}{os.pathsep}{env.get('PATH', '')}"
    dirs = ["--user-data-dir", str(user_data), "--extensions-dir", str(extensions)]

    t0 = time.monotonic()
    proc = subprocess.run([node, code_server, *dirs, "--install-extension", str(vsix)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "codesearch" in proc.stdout, f"install failed:\n{proc.stdout}\n{proc.stderr}"
    installed = sorted(p.name for p in extensions.iterdir())
    assert any(n.startswith("codesearch.codesearch-") for n in installed), installed

    port = free_port()
    log = tmp_path / "code-server.log"
    config = tmp_path / "code-server.yaml"
    config.write_text(f"bind-addr: 127.0.0.1:{port}\nauth: none\ncert: false\n")
    with open(log, "w") as log_file:
        server = subprocess.Popen(
            [node, code_server, "--config", str(config), *dirs, "--disable-telemetry", "--disable-update-check",
             "--disable-workspace-trust", "--disable-getting-started-override", str(ws)],
            env=env, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_http(url + "healthz", server, log, 120)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, headless=True,
                                         args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 850})
                page.set_default_timeout(TIMEOUT * 1000)
                _drive(page, url + "?folder=" + str(ws), ws, home, shots)
            finally:
                browser.close()
        print(f"\nVS Code (code-server) flow took {time.monotonic() - t0:.0f} s; screenshots in {shots}")
    finally:
        os.killpg(server.pid, 15)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            server.wait()


def _drive(page, url: str, ws: Path, home: Path, shots: Path) -> None:
    page.goto(url)
    page.locator(".monaco-workbench").wait_for()
    # The extension's status bar item: spinning while the server loads and indexes, a search icon when ready.
    item = page.locator(".statusbar-item", has_text="Code Search")
    item.first.wait_for()
    page.locator(".statusbar-item:has-text('Code Search') .codicon-search").first.wait_for()
    page.screenshot(path=str(shots / "01-ready.png"))

    run_command(page, "Code Search: Search")
    # The extension's box (not the command palette it replaces): its placeholder.
    box = page.locator(".quick-input-widget .quick-input-box input[placeholder*='Describe what you are looking for']")
    box.wait_for(state="visible", timeout=30_000)
    page.keyboard.type(QUERY, delay=20)
    rows = page.locator(".quick-input-list .monaco-list-row")
    top = rows.filter(has_text="contains").first
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            top.wait_for(timeout=5_000)
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            if rows.filter(has_text="No results").count():
                # Indexed after the box opened: search again.
                page.keyboard.press("End")
                page.keyboard.type(" ")
                page.keyboard.press("Backspace")
    first = rows.first.inner_text()
    assert "bounds.rs:11" in first, first
    if _server_explains():
        # Why it matched (codesearch.explain, on by default): "word→token share" in the list; the
        # preview behind the box (the active result) has those tokens highlighted.
        assert "→" in first, first
        page.locator(".tab.active", has_text="bounds.rs").wait_for()

    # 👍 on the top result: the personal eval feedback.
    rows.first.hover()
    rows.first.locator(".codicon-thumbsup").first.click()
    rows.first.locator(".codicon-thumbsup-filled").first.wait_for()
    page.screenshot(path=str(shots / "02-results-marked-good.png"))
    feedback = home / "personal" / "feedback.jsonl"
    _wait_for(lambda: feedback.exists() and '"good"' in feedback.read_text(), "the good mark in " + str(feedback))

    # Enter opens the top result at its first line.
    box.focus()
    page.keyboard.press("Enter")
    page.locator(".tab.active", has_text="bounds.rs").wait_for()
    page.locator("#status\\.editor\\.selection", has_text="Ln 11, Col 1").wait_for()
    page.locator(".view-line", has_text="pub fn contains").first.wait_for()
    page.screenshot(path=str(shots / "03-opened.png"))
    _wait_for(lambda: '"chosen"' in feedback.read_text(), "the chosen mark")
    records = [json.loads(line) for line in feedback.read_text().splitlines() if line.strip()]
    assert [r.get("verdict") for r in records] == ["good", "chosen"], records

    # The personal eval counts the query that was marked good.
    run_command(page, "Code Search: Run Personal Eval")
    toast = page.locator(".notification-toast", has_text="Code Search personal eval")
    toast.wait_for()
    text = toast.inner_text()
    assert "1 queries" in text and "P@1 1.00" in text, text
    page.wait_for_timeout(500)  # the toast slides in
    page.screenshot(path=str(shots / "04-personal-eval.png"))


def _server_explains() -> bool:
    from codesearch.lsp import search

    return "explain" in getattr(search, "SEARCH_PARAMS", ())


def _wait_for(check, what: str, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)
