import { mock } from "./setup";
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { beforeEach, test } from "node:test";
import { explainText, Highlighter, tokenSpans, utf16Offset, wordSpans } from "../src/explain";
import { CodesearchApi, ExplainMatch, SearchParams, SearchResponse, SearchResult, Token } from "../src/protocol";
import { SearchPanel, toItem } from "../src/search";

const { recorded } = mock;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// The fixture repository's bounds.rs: the tokens below are at these places in it.
const BOUNDS_RS = fs.readFileSync(path.resolve(__dirname, "..", "..", "..", "tests", "fixtures", "repo_small", "src", "bounds.rs"), "utf8");
const URI = "file:///ws/src/bounds.rs";

function at(queryToken: string, codeToken: string, line: number, column: number, score: number): ExplainMatch {
  const start = { line: line - 1, character: column - 1 };
  return {
    queryToken,
    codeToken,
    place: "code",
    line,
    column,
    score,
    range: { start, end: { line: line - 1, character: column - 1 + codeToken.length } },
  };
}

/** A codesearch/search result with `explain: true`, as the server sends it (hybrid mode). */
function explained(extra: Partial<SearchResult> = {}): SearchResult {
  return {
    uri: URI,
    range: { start: { line: 10, character: 0 }, end: { line: 14, character: 0 } },
    score: 0.63,
    name: "contains",
    kind: "method",
    language: "rust",
    snippet: "/// Returns true when `value` lies between the lower and upper bound, inclusive.\npub fn contains(&self, value: i64) -> bool {",
    path: "/ws/src/bounds.rs",
    relPath: "src/bounds.rs",
    startLine: 11,
    endLine: 14,
    matches: [
      at("bounds", "bound", 11, 68, 0.21),
      at("value", "value", 12, 28, 0.15),
      at("within", "between", 11, 40, 0.09),
      { queryToken: "check", codeToken: "bounds", place: "header", line: null, column: null, score: 0.05 },
      { queryToken: "if", codeToken: "[CLS]", place: "special", line: null, column: null, score: 0.02 },
      at("is", "contains", 12, 12, 0.01),
      { queryToken: "[SEP]", codeToken: "bounds", place: "header", line: null, column: null, score: 0.01 },
    ],
    lexical: { score: 0.1, words: ["value", "bounds"] },
    prior: 0,
    ...extra,
  };
}

beforeEach(() => recorded.reset());

test("the list says which words met which tokens, strongest first, and the words matched as words; no special tokens", () => {
  const r = explained();
  assert.equal(explainText(r), "bounds→bound 0.21  value→value 0.15  within→between 0.09 …  ·  $(whole-word) value bounds");
  assert.equal(explainText(r, 5), "bounds→bound 0.21  value→value 0.15  within→between 0.09  check→bounds (path) 0.05  is→contains 0.01  ·  $(whole-word) value bounds");
  assert.equal(explainText(explained({ lexical: null, matches: r.matches!.slice(0, 1) })), "bounds→bound 0.21");
  assert.equal(explainText(explained({ matches: undefined, lexical: undefined })), "");
  const item = toItem(r, "q", true);
  assert.equal(item.description, "src/bounds.rs:11  ·  rust method  ·  0.63");
  assert.equal(
    item.detail,
    "bounds→bound 0.21  value→value 0.15  within→between 0.09 …  ·  $(whole-word) value bounds  —  " +
      "/// Returns true when `value` lies between the lower and upper bound, inclusive.  ⏎ pub fn contains(&self, value: i64) -> bool {",
  );
});

test("code-point columns become UTF-16 offsets", () => {
  assert.equal(utf16Offset("abc", 1), 0);
  assert.equal(utf16Offset("abc", 3), 2);
  assert.equal(utf16Offset("🦀 bound", 3), 3, "the crab is two UTF-16 units and one code point");
  assert.equal(utf16Offset("é bound", 3), 2);
});

test("token spans are where the token is; a token the file no longer has there is left out", () => {
  const lines = BOUNDS_RS.split("\n");
  const spans = tokenSpans(explained(), (i) => lines[i]);
  assert.deepEqual(
    spans.map((s) => [s.line, lines[s.line].slice(s.start, s.end)]),
    [[10, "bound"], [11, "value"], [10, "between"], [11, "contains"]],
  );
  const edited = [...lines];
  edited[10] = "    /// (edited)";
  assert.deepEqual(tokenSpans(explained(), (i) => edited[i]).map((s) => s.match.queryToken), ["value", "is"]);
  const crab = explained({ matches: [at("bounds", "bound", 1, 5, 0.2)] });
  assert.deepEqual(tokenSpans(crab, () => "// 🦀bound").map((s) => [s.start, s.end]), [[5, 10]]);
});

test("full-text words are found as words and as parts of identifiers, whatever the case", () => {
  const text = ["let upper_bound = lowerBound + Bound;", "boundary unbound BOUND", "fn value() {}"];
  const spans = wordSpans(["bound", "value"], (i) => text[i], 0, 5);
  assert.deepEqual(
    spans.map((s) => [s.line, text[s.line].slice(s.start, s.end)]),
    [[0, "bound"], [0, "Bound"], [0, "Bound"], [1, "BOUND"], [2, "value"]],
  );
  assert.deepEqual(wordSpans([], (i) => text[i], 0, 2), []);
  assert.deepEqual(wordSpans(["a.b"], () => "a.b axb", 0, 0).length, 1, "words are not patterns");
});

test("the highlighter marks the result's lines, the tokens met (with their share in the hover) and the words", async () => {
  recorded.files.set(URI, BOUNDS_RS);
  const doc: any = await (mock.workspace as any).openTextDocument(mock.Uri.parse(URI));
  const editor: any = await mock.window.showTextDocument(doc, {});
  const h = new Highlighter();
  const shown = h.apply(editor, explained());
  const [span, token, word] = recorded.decorationTypes;
  assert.equal(span.options.isWholeLine, true);
  assert.deepEqual(editor.decorated(span).map((o: any) => [o.range.start.line, o.range.end.line]), [[10, 13]]);
  const tokens = editor.decorated(token);
  assert.equal(tokens.length, 4);
  assert.deepEqual([tokens[0].range.start.line, tokens[0].range.start.character, tokens[0].range.end.character], [10, 67, 72]);
  assert.match(tokens[0].hoverMessage, /“bounds” met `bound`: 0\.210 \(33% of 0\.63\)/);
  const words = editor.decorated(word).map((o: any) => doc.lines[o.range.start.line].slice(o.range.start.character, o.range.end.character));
  assert.deepEqual(words, ["value", "value", "value", "value"], "`value` on lines 11-14; `bounds` is not there as a word");
  assert.equal(shown.words.length, 4);
  // An edit of the file makes the ranges stale: they go.
  recorded.documentChanges.fire({ document: doc });
  assert.deepEqual(editor.decorated(token), []);
  h.dispose();
  assert.ok(recorded.decorationTypes.every((t) => t.disposed));
});

/** Answers every search at once with `reply` (or fails with `reject` while `explain` is asked). */
class ExplainApi implements CodesearchApi {
  calls: SearchParams[] = [];
  rejectExplain = false;
  commands: unknown[] = [];
  constructor(private readonly reply: SearchResult[]) {}
  async search(params: SearchParams, _token: Token): Promise<SearchResponse> {
    this.calls.push(params);
    if (this.rejectExplain && "explain" in params) {
      throw { code: -32602, message: "unknown parameter 'explain': expected query, limit, lang, path, kind, method, role" };
    }
    const strip = !params.explain;
    return { results: this.reply.map((r) => (strip ? { ...r, matches: undefined, lexical: undefined } : r)) };
  }
  async command<T>(name: string, ...args: unknown[]): Promise<T> {
    this.commands.push({ name, args });
    return { ok: true } as T;
  }
}

function setup(reply: SearchResult[], opts: Partial<{ explain: boolean; preview: boolean }> = {}) {
  recorded.files.set(URI, BOUNDS_RS);
  recorded.files.set("file:///ws/src/other.rs", "fn a() {}\nfn value_of() {}\n");
  const api = new ExplainApi(reply);
  const logs: string[] = [];
  const panel = new SearchPanel(api, () => ({ debounceMs: 0, limit: 5, feedback: true, explain: true, preview: true, ...opts }), (m) =>
    logs.push(m),
  );
  return { api, panel, logs };
}

const other = (): SearchResult =>
  explained({
    uri: "file:///ws/src/other.rs",
    name: "value_of",
    path: "/ws/src/other.rs",
    relPath: "src/other.rs",
    range: { start: { line: 1, character: 0 }, end: { line: 2, character: 0 } },
    startLine: 2,
    endLine: 2,
    matches: [at("value", "value", 2, 4, 0.3)],
    lexical: { score: 0.05, words: ["value"] },
  });

test("the search asks for explain; the active result is previewed with its tokens highlighted, focus kept in the box", async () => {
  const { api, panel } = setup([explained(), other()]);
  const pick = panel.open({ query: "check if a value is within bounds" }) as any;
  await sleep(5);
  assert.equal(api.calls[0].explain, true);
  assert.match(pick.items[0].detail, /^bounds→bound 0\.21/);
  // The first item is active once the items arrive: it is previewed.
  assert.equal(recorded.shown.length, 1);
  assert.equal(recorded.shown[0].options.preserveFocus, true);
  assert.equal(recorded.shown[0].options.preview, true);
  const [, token] = recorded.decorationTypes;
  const editor = recorded.activeTextEditor!;
  assert.equal(editor.decorated(token as any).length, 4);
  // Arrow down: the second result is previewed, highlighted there.
  pick.focus(pick.items[1]);
  await sleep(5);
  assert.equal(recorded.shown.length, 2);
  const second = recorded.activeTextEditor!;
  assert.equal(second.document.uri.toString(), "file:///ws/src/other.rs");
  assert.deepEqual(second.decorated(token as any).map((o: any) => o.range.start.character), [3]);
  assert.deepEqual(editor.decorated(token as any), [], "the first preview's marks are gone");
  // Enter: opened for real (focus in the editor), still highlighted.
  pick.choose(pick.items[1]);
  await sleep(5);
  assert.equal(recorded.shown.length, 3);
  assert.equal(recorded.shown[2].options.preserveFocus, false);
  assert.equal(recorded.activeTextEditor!.decorated(token as any).length, 1);
});

test("closing the box after previews goes back to the editor before and drops the marks", async () => {
  const { panel } = setup([explained()]);
  recorded.files.set("file:///ws/README.md", "# hi\n");
  const doc: any = await (mock.workspace as any).openTextDocument(mock.Uri.parse("file:///ws/README.md"));
  const start = new mock.Position(0, 2);
  await mock.window.showTextDocument(doc, { selection: new mock.Range(start, start) });
  const shownBefore = recorded.shown.length;
  const pick = panel.open({ query: "bounds" }) as any;
  await sleep(5);
  const previewEditor = recorded.activeTextEditor!;
  assert.equal(previewEditor.document.uri.toString(), URI);
  pick.hide();
  await sleep(5);
  assert.equal(recorded.shown.length, shownBefore + 2);
  assert.equal(recorded.activeTextEditor!.document.uri.toString(), "file:///ws/README.md");
  assert.equal(recorded.shown[recorded.shown.length - 1].options.selection.start.character, 2);
  const [, token] = recorded.decorationTypes;
  assert.deepEqual(previewEditor.decorated(token as any), []);
});

test("with preview off nothing opens until Enter; with explain off nothing is asked or marked", async () => {
  let s = setup([explained()], { preview: false });
  let pick = s.panel.open({ query: "bounds" }) as any;
  await sleep(5);
  assert.equal(recorded.shown.length, 0);
  pick.choose(pick.items[0]);
  await sleep(5);
  assert.equal(recorded.shown.length, 1);
  assert.equal(recorded.activeTextEditor!.decorated(recorded.decorationTypes[1] as any).length, 4);

  recorded.reset();
  s = setup([explained()], { explain: false });
  pick = s.panel.open({ query: "bounds" }) as any;
  await sleep(5);
  assert.equal("explain" in s.api.calls[0], false);
  assert.match(pick.items[0].detail, /^\/\/\/ Returns/);
  assert.equal(recorded.shown.length, 1, "previewed");
  assert.ok(recorded.decorations.every((d) => d.options.length === 0), "but nothing marked");
});

test("a server that does not know explain is asked again without it, and not asked with it again", async () => {
  const { api, panel, logs } = setup([explained()], { preview: false });
  api.rejectExplain = true;
  const pick = panel.open({ query: "bounds" }) as any;
  await sleep(5);
  assert.deepEqual(api.calls.map((c) => c.explain), [true, undefined]);
  assert.equal(pick.items[0].result.name, "contains");
  assert.match(pick.items[0].detail, /^\/\/\/ Returns/);
  assert.match(logs[0], /does not know 'explain'/);
  pick.type("bounds check");
  await sleep(5);
  assert.equal(api.calls.length, 3);
  assert.equal("explain" in api.calls[2], false);
  // Other InvalidParams errors are still shown as errors.
  assert.equal(panel.stats.sent, 3);
});
