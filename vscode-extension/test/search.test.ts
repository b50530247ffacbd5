import { mock } from "./setup";
import { strict as assert } from "node:assert";
import { beforeEach, test } from "node:test";
import { CodesearchApi, SearchParams, SearchResponse, SearchResult, Token } from "../src/protocol";
import { overlaps, SearchPanel, similarQuery, toItem } from "../src/search";

const { recorded } = mock;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function result(name: string, line = 10, extra: Partial<SearchResult> = {}): SearchResult {
  return {
    uri: `file:///ws/src/${name}.rs`,
    range: { start: { line: line - 1, character: 0 }, end: { line: line + 3, character: 0 } },
    score: 0.5,
    name,
    kind: "function",
    language: "rust",
    snippet: `/// doc\npub fn ${name}() {\n}\n`,
    path: `/ws/src/${name}.rs`,
    relPath: `src/${name}.rs`,
    startLine: line,
    endLine: line + 3,
    ...extra,
  };
}

/** A server stand-in: each search waits until the test answers it (or it is cancelled). */
class FakeApi implements CodesearchApi {
  calls: { params: SearchParams; token: Token; answer: (r: SearchResponse) => void; fail: (e: unknown) => void }[] = [];
  commands: { name: string; args: unknown[] }[] = [];
  commandError: Error | undefined;
  search(params: SearchParams, token: Token): Promise<SearchResponse> {
    return new Promise((answer, fail) => this.calls.push({ params, token, answer, fail }));
  }
  async command<T>(name: string, ...args: unknown[]): Promise<T> {
    this.commands.push({ name, args });
    if (this.commandError) {
      throw this.commandError;
    }
    return { ok: true } as T;
  }
}

let api: FakeApi;
let panel: SearchPanel;
let options = { debounceMs: 30, limit: 5, feedback: true, explain: false, preview: false };

beforeEach(() => {
  recorded.reset();
  api = new FakeApi();
  options = { debounceMs: 30, limit: 5, feedback: true, explain: false, preview: false };
  panel = new SearchPanel(api, () => options);
});

test("keystrokes are debounced: one search for a burst of typing", async () => {
  const pick = panel.open() as any;
  for (const value of ["c", "ch", "che", "chec", "check"]) {
    pick.type(value);
    await sleep(5);
  }
  assert.equal(api.calls.length, 0);
  await sleep(50);
  assert.equal(api.calls.length, 1);
  assert.deepEqual(api.calls[0].params, { query: "check", limit: 5 });
  assert.equal(pick.busy, true);
  api.calls[0].answer({ results: [result("contains"), result("clamp")] });
  await sleep(0);
  assert.equal(pick.busy, false);
  assert.deepEqual(pick.items.map((i: any) => i.result.name), ["contains", "clamp"]);
  assert.ok(pick.items.every((i: any) => i.alwaysShow), "VS Code must not filter semantic results away");
  assert.equal(pick.matchOnDescription, false);
});

test("a new query cancels the search in flight, and a late answer to it is dropped", async () => {
  const pick = panel.open() as any;
  pick.type("bounds");
  await sleep(45);
  assert.equal(api.calls.length, 1);
  pick.type("bounds check");
  assert.equal(api.calls[0].token.isCancellationRequested, true, "the stale request is cancelled at once");
  await sleep(45);
  assert.equal(api.calls.length, 2);
  api.calls[1].answer({ results: [result("new_one")] });
  await sleep(0);
  api.calls[0].answer({ results: [result("stale_one")] });
  await sleep(0);
  assert.deepEqual(pick.items.map((i: any) => i.result.name), ["new_one"]);
  assert.equal(panel.stats.stale, 1);
});

test("clearing the box clears the results without asking the server", async () => {
  const pick = panel.open() as any;
  pick.type("abc");
  await sleep(45);
  api.calls[0].answer({ results: [result("a")] });
  await sleep(0);
  pick.type("");
  await sleep(45);
  assert.equal(api.calls.length, 1);
  assert.deepEqual(pick.items, []);
});

test("accepting a result opens the file at its range and records it as chosen", async () => {
  const pick = panel.open() as any;
  pick.type("within bounds");
  await sleep(45);
  api.calls[0].answer({ results: [result("contains", 11)] });
  await sleep(0);
  pick.choose(pick.items[0]);
  await sleep(0);
  assert.equal(recorded.opened[0].uri.toString(), "file:///ws/src/contains.rs");
  assert.equal(recorded.shown[0].options.selection.start.line, 10);
  assert.equal(recorded.revealed[0].start.line, 10);
  assert.equal(pick.disposed, true);
  assert.deepEqual(api.commands, [
    { name: "codesearch.feedback", args: [{ query: "within bounds", result: result("contains", 11), verdict: "chosen" }] },
  ]);
});

test("thumbs up and down send feedback for that result and mark the item", async () => {
  const pick = panel.open() as any;
  pick.type("lru cache");
  await sleep(45);
  api.calls[0].answer({ results: [result("put"), result("get")] });
  await sleep(0);
  pick.click(pick.items[0], 0);
  await sleep(0);
  pick.click(pick.items[1], 1);
  await sleep(0);
  assert.deepEqual(
    api.commands.map((c) => [(c.args[0] as any).result.name, (c.args[0] as any).verdict, (c.args[0] as any).query]),
    [["put", "good", "lru cache"], ["get", "bad", "lru cache"]],
  );
  assert.equal(pick.items[0].buttons[0].iconPath.id, "thumbsup-filled");
  assert.equal(pick.items[1].buttons[1].iconPath.id, "thumbsdown-filled");
  assert.equal(recorded.statusMessages.length, 2);
});

test("with feedback turned off there are no buttons and opening records nothing", async () => {
  options.feedback = false;
  const pick = panel.open() as any;
  pick.type("x");
  await sleep(45);
  api.calls[0].answer({ results: [result("a")] });
  await sleep(0);
  assert.deepEqual(pick.items[0].buttons, []);
  pick.choose(pick.items[0]);
  await sleep(0);
  assert.deepEqual(api.commands, []);
});

test("a failed feedback call warns instead of throwing", async () => {
  api.commandError = new Error("outside the workspace");
  const ok = await panel.sendFeedback("q", result("a"), "good");
  assert.equal(ok, false);
  assert.match(recorded.warnings[0], /outside the workspace/);
});

test("server errors are shown in the list; cancellations are not errors", async () => {
  const pick = panel.open() as any;
  pick.type("x");
  await sleep(45);
  api.calls[0].fail({ code: -32602, message: "unknown parameter 'langauge'" });
  await sleep(0);
  assert.equal(pick.items[0].label, "$(error) Search failed");
  assert.match(pick.items[0].detail, /langauge/);
  pick.type("y");
  await sleep(45);
  api.calls[1].fail({ code: -32800, message: "Request cancelled" });
  await sleep(0);
  assert.equal(pick.items[0].label, "$(error) Search failed", "the cancelled request changed nothing");
  assert.equal(pick.busy, false);
});

test("an empty answer says so", async () => {
  const pick = panel.open() as any;
  pick.type("zzz");
  await sleep(45);
  api.calls[0].answer({ results: [] });
  await sleep(0);
  assert.equal(pick.items[0].label, "No results");
});

test("find similar searches at once and leaves out the selection itself", async () => {
  const pick = panel.open({
    query: similarQuery("pub fn contains(&self,\n    value: T) -> bool {"),
    exclude: { path: "/ws/src/contains.rs", startLine: 12, endLine: 12 },
  }) as any;
  assert.equal(api.calls.length, 1, "no debounce for a given query");
  assert.equal(api.calls[0].params.query, "pub fn contains(&self, value: T) -> bool {");
  assert.equal(api.calls[0].params.limit, 6, "one more, for the excluded selection");
  api.calls[0].answer({ results: [result("contains", 11), ...["a", "b", "c", "d", "e"].map((n) => result(n))] });
  await sleep(0);
  assert.deepEqual(pick.items.map((i: any) => i.result.name), ["a", "b", "c", "d", "e"]);
});

test("closing the box cancels what is in flight", async () => {
  const pick = panel.open() as any;
  pick.type("x");
  await sleep(45);
  pick.hide();
  assert.equal(api.calls[0].token.isCancellationRequested, true);
  assert.equal(panel.quickPick, undefined);
});

test("items show name, place, language, kind and the first snippet lines", () => {
  const item = toItem(result("contains", 11), "q", true);
  assert.equal(item.label, "$(symbol-function) contains");
  assert.match(item.description!, /^src\/contains\.rs:11 {2}· {2}rust function {2}· {2}0\.50$/);
  assert.equal(item.detail, "/// doc  ⏎ pub fn contains() {");
  assert.equal(item.buttons!.length, 2);
  assert.equal(toItem(result("t", 1, { kind: "theorem" }), "q", false).label, "$(law) t");
});

test("overlap is by file and 1-based lines", () => {
  const r = result("a", 10); // lines 10-13
  assert.equal(overlaps(r, { path: "/ws/src/a.rs", startLine: 13, endLine: 20 }), true);
  assert.equal(overlaps(r, { path: "/ws/src/a.rs", startLine: 14, endLine: 20 }), false);
  assert.equal(overlaps(r, { path: "/ws/src/b.rs", startLine: 10, endLine: 10 }), false);
  assert.equal(overlaps(r, undefined), false);
});
