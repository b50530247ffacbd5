/**
 * The real Python server (`python -m codesearch.cli lsp`) driven from Node with vscode-jsonrpc:
 * the messages the extension sends, and the search box's typing behaviour against real
 * latencies. Skipped when no Python with codesearch is found (set CODESEARCH_PYTHON).
 */

import { mock } from "./setup";
import { strict as assert } from "node:assert";
import { ChildProcess, spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, test } from "node:test";
import * as rpc from "vscode-jsonrpc/node";
import { CodesearchApi, SearchParams, SearchResponse, Token } from "../src/protocol";
import { Highlighter } from "../src/explain";
import { SearchPanel, toItem } from "../src/search";

const PYTHON = process.env.CODESEARCH_PYTHON || "python3";
const FIXTURE = path.resolve(__dirname, "..", "..", "..", "tests", "fixtures", "repo_small");
const available =
  fs.existsSync(FIXTURE) && spawnSync(PYTHON, ["-c", "import codesearch.lsp.server"], { stdio: "ignore" }).status === 0;
const skip = available ? false : `no Python with codesearch (${PYTHON}); set CODESEARCH_PYTHON`;
const TIMEOUT = 240_000;

let proc: ChildProcess;
let conn: rpc.MessageConnection;
let tmp: string;
let ws: string;
const progress: any[] = [];
const statuses: any[] = [];
let indexed: Promise<any>;
let exitCode: Promise<number | null>;

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`timed out: ${what}`)), ms))]);
}

before(async () => {
  if (!available) {
    return;
  }
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "codesearch-vscode-"));
  ws = path.join(tmp, "ws");
  fs.cpSync(FIXTURE, ws, { recursive: true });
  proc = spawn(PYTHON, ["-m", "codesearch.cli", "lsp"], {
    env: { ...process.env, XDG_CONFIG_HOME: path.join(tmp, "config"), HF_HUB_OFFLINE: "1" },
    stdio: ["pipe", "pipe", "inherit"],
  });
  exitCode = new Promise((resolve) => proc.on("exit", (code) => resolve(code)));
  conn = rpc.createMessageConnection(new rpc.StreamMessageReader(proc.stdout!), new rpc.StreamMessageWriter(proc.stdin!));
  conn.onRequest("window/workDoneProgress/create", () => null);
  conn.onRequest("workspace/configuration", (params: any) => params.items.map(() => ({ limit: 5 })));
  conn.onRequest("client/registerCapability", () => null);
  conn.onNotification("$/progress", (p: any) => progress.push(p.value));
  conn.onNotification("codesearch/status", (s: any) => statuses.push(s));
  conn.onNotification("window/showMessage", () => undefined);
  conn.onNotification("window/logMessage", () => undefined);
  indexed = new Promise((resolve) => conn.onNotification("codesearch/indexed", resolve));
  conn.listen();
  const init: any = await withTimeout(
    conn.sendRequest("initialize", {
      processId: process.pid,
      rootUri: null,
      workspaceFolders: [{ uri: "file://" + ws, name: "ws" }],
      capabilities: { window: { workDoneProgress: true }, workspace: { configuration: true, workspaceFolders: true } },
      initializationOptions: { home: path.join(tmp, "home") },
    }),
    60_000,
    "initialize",
  );
  assert.equal(init.serverInfo.name, "codesearch");
  await conn.sendNotification("initialized", {});
  await withTimeout(indexed, TIMEOUT, "the first index run");
});

after(async () => {
  if (!available) {
    return;
  }
  await conn.sendRequest("shutdown");
  await conn.sendNotification("exit");
  assert.equal(await withTimeout(exitCode, 30_000, "exit"), 0);
  conn.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const api: CodesearchApi = {
  search(params: SearchParams, token: Token): Promise<SearchResponse> {
    const source = new rpc.CancellationTokenSource();
    (token as any).onCancellationRequested?.(() => source.cancel());
    return conn.sendRequest("codesearch/search", params, source.token);
  },
  command<T>(name: string, ...args: unknown[]): Promise<T> {
    return conn.sendRequest("workspace/executeCommand", { command: name, arguments: args });
  },
};

test("the workspace is indexed with percentages and a status for the status bar", { skip }, () => {
  const kinds = progress.map((v) => v.kind);
  assert.equal(kinds[0], "begin");
  assert.equal(kinds[kinds.length - 1], "end");
  const pct = progress.filter((v) => v.kind === "report").map((v) => v.percentage);
  assert.deepEqual(pct, [...pct].sort((a, b) => a - b));
  assert.ok(statuses.some((s) => s.state === "indexing"));
  assert.equal(statuses[statuses.length - 1].state, "ready");
});

test("codesearch/search answers with locations", { skip }, async () => {
  const res: any = await conn.sendRequest("codesearch/search", { query: "check if a value is within bounds" });
  assert.equal(res.results.length, 5, "limit from workspace/configuration");
  assert.equal(res.results[0].name, "contains");
  assert.equal(res.results[0].uri, "file://" + path.join(ws, "src", "bounds.rs"));
  assert.deepEqual(res.results[0].range.start, { line: 10, character: 0 });
});

test("explain: each word's token is at its range in the file, and the highlighter finds it there", { skip }, async () => {
  const res: any = await conn.sendRequest("codesearch/search", { query: "check if a value is within bounds", explain: true, limit: 3 });
  const top = res.results[0];
  assert.equal(top.name, "contains");
  assert.ok(Array.isArray(top.matches) && top.matches.length > 0, JSON.stringify(top));
  assert.ok(top.lexical && Array.isArray(top.lexical.words), "hybrid (the default) reports the full-text part");
  const file = path.join(ws, "src", "bounds.rs");
  const text = fs.readFileSync(file, "utf8");
  const lines = text.split("\n");
  let inCode = 0;
  for (const m of top.matches) {
    if (m.range) {
      inCode++;
      assert.equal(lines[m.range.start.line].slice(m.range.start.character, m.range.end.character), m.codeToken, JSON.stringify(m));
      assert.equal(m.line, m.range.start.line + 1);
    }
  }
  assert.ok(inCode > 0);
  mock.recorded.files.set(top.uri, text);
  const doc: any = await (mock.workspace as any).openTextDocument(mock.Uri.parse(top.uri));
  const editor: any = await mock.window.showTextDocument(doc, {});
  const shown = new Highlighter().apply(editor, top);
  assert.equal(shown.tokens.length, inCode);
  assert.match(toItem(top, "q", true).detail!, /→/);
  const plain: any = await conn.sendRequest("codesearch/search", { query: "check if a value is within bounds", limit: 3 });
  assert.equal(plain.results[0].matches, undefined, "no explanation unless asked");
});

test("bad params are an InvalidParams error with a clear message", { skip }, async () => {
  await assert.rejects(conn.sendRequest("codesearch/search", { query: "x", langauge: "rust" }), (err: any) => {
    assert.equal(err.code, -32602);
    assert.match(err.message, /unknown parameter 'langauge'/);
    return true;
  });
});

test("a cancelled request is answered RequestCancelled", { skip }, async () => {
  const sources = Array.from({ length: 6 }, () => new rpc.CancellationTokenSource());
  const pending = sources.map((s, i) => conn.sendRequest("codesearch/search", { query: "least recently used".slice(0, 8 + i) }, s.token));
  sources.slice(0, -1).forEach((s) => s.cancel());
  const outcomes = await Promise.allSettled(pending);
  assert.equal(outcomes[outcomes.length - 1].status, "fulfilled");
  const cancelled = outcomes.filter((o) => o.status === "rejected" && (o.reason as any).code === -32800);
  assert.ok(cancelled.length >= 3, `only ${cancelled.length} of 5 cancelled`);
});

test("the search box typing 20 keystrokes against the real server: one search at a time", { skip }, async () => {
  const before: any = await conn.sendRequest("codesearch/status");
  const panel = new SearchPanel(api, () => ({ debounceMs: 0, limit: 5, feedback: true, explain: true, preview: true }));
  const pick = panel.open() as any;
  const query = "evict least recently";
  for (let i = 1; i <= query.length; i++) {
    pick.type(query.slice(0, i));
    await new Promise((r) => setTimeout(r, 3));
  }
  const deadline = Date.now() + 60_000;
  while ((pick.busy || pick.items.length === 0) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(pick.items[0].query, query);
  assert.equal(pick.items[0].result.language, "python");
  const after: any = await conn.sendRequest("codesearch/status");
  assert.equal(after.searches.max_running, 1);
  const ran = after.searches.executed - before.searches.executed;
  assert.ok(ran < query.length, `${ran} searches ran for ${query.length} keystrokes`);
  // Thumbs up on the first result, then the personal eval scores it.
  pick.click(pick.items[0], 0);
  const deadline2 = Date.now() + 30_000;
  while (mock.recorded.statusMessages.length === 0 && Date.now() < deadline2) {
    await new Promise((r) => setTimeout(r, 20));
  }
  const report: any = await api.command("codesearch.personalEval");
  assert.equal(report.n, 1);
  assert.equal(report["p@1"], 1);
  panel.close();
});
