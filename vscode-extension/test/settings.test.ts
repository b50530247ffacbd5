import "./setup";
import { strict as assert } from "node:assert";
import { test } from "node:test";
import { searchOptions, serverCommand, serverSettings } from "../src/settings";

const from = (values: Record<string, unknown>) => <T>(key: string) => values[key] as T | undefined;

test("the server command defaults to `codesearch lsp`", () => {
  assert.deepEqual(serverCommand(from({})), { command: "codesearch", args: ["lsp"] });
  assert.deepEqual(serverCommand(from({ command: "  " })), { command: "codesearch", args: ["lsp"] });
  assert.deepEqual(serverCommand(from({ command: "/opt/cs/bin/codesearch", serverArgs: ["--log-level", "info"] })), {
    command: "/opt/cs/bin/codesearch",
    args: ["lsp", "--log-level", "info"],
  });
});

test("a Python path runs the module instead", () => {
  assert.deepEqual(serverCommand(from({ command: "ignored", pythonPath: "/venv/bin/python" })), {
    command: "/venv/bin/python",
    args: ["-m", "codesearch.cli", "lsp"],
  });
});

test("only the keys the server reads are sent to it, unset ones left out", () => {
  const sent = serverSettings(
    from({ home: "/idx", model: null, limit: 7, ignore: ["vendor/"], command: "x", debounceMs: 3, feedback: false, method: "" }),
  );
  assert.deepEqual(sent, { home: "/idx", limit: 7, ignore: ["vendor/"] });
});

test("search options are clamped to sane values", () => {
  assert.deepEqual(searchOptions(from({})), { debounceMs: 150, limit: 20, feedback: true, explain: true, preview: true });
  assert.deepEqual(searchOptions(from({ debounceMs: -5, limit: 5000, feedback: false, explain: false, preview: false })), {
    debounceMs: 0,
    limit: 200,
    feedback: false,
    explain: false,
    preview: false,
  });
  assert.equal(searchOptions(from({ limit: Number.NaN })).limit, 20);
});
