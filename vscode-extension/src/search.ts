/**
 * "Code Search: Search": a live QuickPick over codesearch/search.
 *
 * - Debounced: a search starts `debounceMs` after the last keystroke.
 * - Stale requests are cancelled: each new search cancels the one before it (the client sends
 *   `$/cancelRequest`; the server never runs a search that was cancelled before it started),
 *   and an answer that arrives for an older query is dropped.
 * - Items are `alwaysShow`: VS Code's own fuzzy filter would hide semantic matches.
 * - Accepting an item opens the file at the result's range; thumbs up/down on an item record
 *   feedback in the personal eval set, and opening a result records it as "chosen".
 * - With `explain` (the default) each item says which query words met which code tokens, and
 *   the result shown in an editor (the active item's preview, or the opened result) has those
 *   tokens and the full-text words highlighted. A server that does not know `explain` yet is
 *   asked again without it (once; later searches leave it out).
 */

import * as vscode from "vscode";
import { explainText, Highlighter } from "./explain";
import {
  CodesearchApi,
  COMMANDS,
  errorMessage,
  isCancellation,
  SearchParams,
  SearchResponse,
  SearchResult,
  Token,
  Verdict,
} from "./protocol";
import { SearchOptions } from "./settings";

export interface ResultItem extends vscode.QuickPickItem {
  result?: SearchResult;
  query?: string;
}

export interface ExcludeSpan {
  path: string;
  startLine: number;
  endLine: number;
}

export interface OpenOptions {
  /** Start with this query (searched at once, without the debounce). */
  query?: string;
  title?: string;
  /** Drop results overlapping these lines (1-based) of this file (Find Similar: the selection itself). */
  exclude?: ExcludeSpan;
  /** Extra params for every search (lang, path, kind). */
  params?: Omit<SearchParams, "query" | "limit">;
}

const THUMBS_UP: vscode.QuickInputButton = { iconPath: new vscode.ThemeIcon("thumbsup"), tooltip: "Good result" };
const THUMBS_DOWN: vscode.QuickInputButton = { iconPath: new vscode.ThemeIcon("thumbsdown"), tooltip: "Bad result" };
const RATED_UP: vscode.QuickInputButton = { iconPath: new vscode.ThemeIcon("thumbsup-filled"), tooltip: "Marked good" };
const RATED_DOWN: vscode.QuickInputButton = { iconPath: new vscode.ThemeIcon("thumbsdown-filled"), tooltip: "Marked bad" };

const KIND_ICONS: Record<string, string> = {
  function: "symbol-function",
  method: "symbol-method",
  constructor: "symbol-constructor",
  class: "symbol-class",
  struct: "symbol-struct",
  enum: "symbol-enum",
  interface: "symbol-interface",
  trait: "symbol-interface",
  impl: "symbol-class",
  module: "symbol-module",
  mod: "symbol-module",
  namespace: "symbol-namespace",
  field: "symbol-field",
  variable: "symbol-variable",
  constant: "symbol-constant",
  const: "symbol-constant",
  operator: "symbol-operator",
  theorem: "law",
  lemma: "law",
  axiom: "law",
  macro: "symbol-misc",
  window: "file-code",
};

export function kindIcon(kind: string): string {
  return KIND_ICONS[kind.toLowerCase()] ?? "symbol-misc";
}

/** The QuickPick item of one result. */
export function toItem(result: SearchResult, query: string, withButtons: boolean): ResultItem {
  const where = `${result.relPath ?? result.path ?? result.uri}:${(result.startLine ?? result.range.start.line + 1)}`;
  const firstLines = result.snippet
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l.length > 0)
    .slice(0, 2)
    .join("  ⏎ ");
  const why = explainText(result);
  return {
    label: `$(${kindIcon(result.kind)}) ${result.name || "(unnamed)"}`,
    description: `${where}  ·  ${result.language} ${result.kind}  ·  ${result.score.toFixed(2)}`,
    // Why it matched comes first on the second line (the description is elided early); the
    // code itself is in the preview.
    detail: why ? `${why}  —  ${firstLines}` : firstLines,
    alwaysShow: true,
    buttons: withButtons ? [THUMBS_UP, THUMBS_DOWN] : [],
    result,
    query,
  };
}

/** Is this the server's InvalidParams answer to a parameter it does not know, `explain`? */
export function rejectsExplain(err: unknown): boolean {
  const e = err as { code?: number; message?: string } | undefined;
  return !!e && e.code === -32602 && /unknown parameter.*'explain'/.test(String(e.message ?? ""));
}

/** Does a result overlap some 1-based lines of a file? */
export function overlaps(result: SearchResult, exclude: ExcludeSpan | undefined): boolean {
  if (!exclude) {
    return false;
  }
  const path = result.path ?? vscode.Uri.parse(result.uri).fsPath;
  if (path !== exclude.path) {
    return false;
  }
  const start = result.startLine ?? result.range.start.line + 1;
  const end = result.endLine ?? result.range.end.line;
  return start <= exclude.endLine && exclude.startLine <= end;
}

export class SearchPanel {
  private pick: vscode.QuickPick<ResultItem> | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private inflight: vscode.CancellationTokenSource | undefined;
  private generation = 0;
  private opts: OpenOptions = {};
  /** The server answered that it does not know `explain`: leave it out from now on. */
  private explainRejected = false;
  private readonly highlighter = new Highlighter();
  /** The editor before the box opened, to go back to when it closes after previews. */
  private before: { editor: vscode.TextEditor; selection: vscode.Selection } | undefined;
  private previewed = false;
  private accepting = false;
  private previewSeq = 0;
  /** Counters for tests and the log. */
  readonly stats = { sent: 0, cancelled: 0, shown: 0, stale: 0 };

  constructor(
    private readonly api: CodesearchApi,
    private readonly options: () => SearchOptions,
    private readonly log: (message: string) => void = () => undefined,
  ) {}

  get quickPick(): vscode.QuickPick<ResultItem> | undefined {
    return this.pick;
  }

  open(opts: OpenOptions = {}): vscode.QuickPick<ResultItem> {
    this.close();
    this.highlighter.clear();
    this.opts = opts;
    const editor = vscode.window.activeTextEditor;
    this.before = editor ? { editor, selection: editor.selection } : undefined;
    this.previewed = false;
    const pick = vscode.window.createQuickPick<ResultItem>();
    this.pick = pick;
    pick.title = opts.title ?? "Code Search";
    pick.placeholder = "Describe what you are looking for, e.g. “check if a value is within bounds”";
    pick.matchOnDescription = false;
    pick.matchOnDetail = false;
    pick.ignoreFocusOut = false;
    pick.keepScrollPosition = true;
    pick.onDidChangeValue((value) => this.onType(value));
    pick.onDidAccept(() => this.onAccept());
    pick.onDidTriggerItemButton((e) => this.onButton(e.item, e.button));
    pick.onDidChangeActive((items) => void this.preview(items[0]));
    pick.onDidHide(() => this.onHide());
    pick.show();
    if (opts.query) {
      pick.value = opts.query;
      this.run(opts.query);
    }
    return pick;
  }

  close(): void {
    this.cancelPending();
    const pick = this.pick;
    this.pick = undefined;
    pick?.dispose();
  }

  dispose(): void {
    this.close();
    this.highlighter.dispose();
  }

  /** Closed without opening a result: drop the preview's highlights and go back to the editor before. */
  private onHide(): void {
    const wasOpen = this.pick !== undefined;
    this.close();
    if (!wasOpen || this.accepting || !this.previewed) {
      return;
    }
    this.previewSeq++;
    this.highlighter.clear();
    const before = this.before;
    if (before) {
      void Promise.resolve(
        vscode.window.showTextDocument(before.editor.document, { viewColumn: before.editor.viewColumn, selection: before.selection }),
      ).catch(() => undefined);
    }
  }

  /** Show the active item's result in a preview editor, focus staying in the box. */
  private async preview(item: ResultItem | undefined): Promise<void> {
    if (!item?.result || !this.pick || !this.options().preview) {
      return;
    }
    const seq = ++this.previewSeq;
    const pick = this.pick;
    try {
      const editor = await showResult(item.result, true);
      if (seq !== this.previewSeq || this.pick !== pick) {
        return;
      }
      this.previewed = true;
      this.highlighter.apply(editor, item.result);
    } catch (err) {
      this.log(`preview failed: ${errorMessage(err)}`);
    }
  }

  /** The search request, asked again without `explain` if the server does not know it. */
  private async search(params: SearchParams, token: Token): Promise<SearchResponse> {
    try {
      return await this.api.search(params, token);
    } catch (err) {
      if (!params.explain || !rejectsExplain(err) || token.isCancellationRequested) {
        throw err;
      }
      this.explainRejected = true;
      this.log("the server does not know 'explain' (an older codesearch): searching without it");
      const rest: SearchParams = { ...params };
      delete rest.explain;
      this.stats.sent++;
      return this.api.search(rest, token);
    }
  }

  private cancelPending(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.inflight) {
      this.inflight.cancel();
      this.inflight.dispose();
      this.inflight = undefined;
      this.stats.cancelled++;
    }
  }

  private onType(value: string): void {
    this.cancelPending();
    const query = value.trim();
    if (!query) {
      this.generation++;
      if (this.pick) {
        this.pick.items = [];
        this.pick.busy = false;
      }
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.run(query);
    }, this.options().debounceMs);
  }

  /** Search now, replacing any search in flight. Resolves when this search is answered or dropped. */
  run(query: string): Promise<void> {
    this.cancelPending();
    const pick = this.pick;
    if (!pick) {
      return Promise.resolve();
    }
    const generation = ++this.generation;
    const source = new vscode.CancellationTokenSource();
    this.inflight = source;
    pick.busy = true;
    const { limit, feedback, explain } = this.options();
    const exclude = this.opts.exclude;
    const params: SearchParams = { ...(this.opts.params ?? {}), query, limit: exclude ? limit + 1 : limit };
    if (explain && !this.explainRejected) {
      params.explain = true;
    }
    this.stats.sent++;
    return this.search(params, source.token).then(
      (response) => {
        if (generation !== this.generation || source.token.isCancellationRequested || this.pick !== pick) {
          this.stats.stale++;
          return;
        }
        this.inflight = undefined;
        source.dispose();
        const results = response.results.filter((r) => !overlaps(r, exclude)).slice(0, limit);
        pick.items = results.length
          ? results.map((r) => toItem(r, query, feedback))
          : [{ label: "No results", description: "try other words, or check that the workspace is indexed", alwaysShow: true }];
        pick.busy = false;
        this.stats.shown++;
      },
      (err) => {
        if (generation !== this.generation || this.pick !== pick) {
          this.stats.stale++;
          return;
        }
        this.inflight = undefined;
        source.dispose();
        pick.busy = false;
        if (isCancellation(err)) {
          return;
        }
        const message = errorMessage(err);
        this.log(`search failed: ${message}`);
        pick.items = [{ label: "$(error) Search failed", detail: message, alwaysShow: true }];
      },
    );
  }

  private async onAccept(): Promise<void> {
    const item = this.pick?.selectedItems[0];
    if (!item?.result) {
      return;
    }
    const { result, query } = item;
    this.accepting = true;
    try {
      this.close();
    } finally {
      this.accepting = false;
    }
    this.previewSeq++;
    const editor = await openResult(result);
    if (result.matches || result.lexical) {
      this.highlighter.apply(editor, result);
    } else {
      this.highlighter.clear();
    }
    if (this.options().feedback && query) {
      await this.sendFeedback(query, result, "chosen");
    }
  }

  private async onButton(item: ResultItem, button: vscode.QuickInputButton): Promise<void> {
    if (!item.result || !item.query) {
      return;
    }
    const verdict: Verdict = button === THUMBS_UP || button === RATED_UP ? "good" : "bad";
    const ok = await this.sendFeedback(item.query, item.result, verdict);
    if (ok && this.pick) {
      // Show the verdict on the item (QuickPick items are replaced, not mutated); the active
      // item stays the active one (replacing the items makes the first one active).
      const pick = this.pick;
      const active = pick.activeItems[0];
      pick.items = pick.items.map((it) =>
        it === item ? { ...it, buttons: verdict === "good" ? [RATED_UP, THUMBS_DOWN] : [THUMBS_UP, RATED_DOWN] } : it,
      );
      const index = active ? pick.items.findIndex((it) => it.result === active.result) : -1;
      if (index > 0) {
        pick.activeItems = [pick.items[index]];
      }
    }
  }

  async sendFeedback(query: string, result: SearchResult, verdict: Verdict): Promise<boolean> {
    try {
      await this.api.command(COMMANDS.feedback, { query, result, verdict });
      if (verdict !== "chosen") {
        vscode.window.setStatusBarMessage(`Code Search: marked ${verdict} for “${query}”`, 3000);
      }
      return true;
    } catch (err) {
      this.log(`feedback failed: ${errorMessage(err)}`);
      vscode.window.showWarningMessage(`Code Search: could not record feedback: ${errorMessage(err)}`);
      return false;
    }
  }
}

/** Open a result's file with the cursor at the start of its range, range revealed. */
export function openResult(result: SearchResult): Promise<vscode.TextEditor> {
  return showResult(result, false);
}

/** Show a result's file, cursor at the start of its range; `keepFocus`: a preview while the box stays open. */
async function showResult(result: SearchResult, keepFocus: boolean): Promise<vscode.TextEditor> {
  const uri = vscode.Uri.parse(result.uri);
  const start = new vscode.Position(result.range.start.line, 0);
  const end = new vscode.Position(Math.max(result.range.start.line, result.range.end.line - 1), 0);
  const doc = await vscode.workspace.openTextDocument(uri);
  const editor = await vscode.window.showTextDocument(doc, {
    selection: new vscode.Range(start, start),
    preview: true,
    preserveFocus: keepFocus,
  });
  editor.revealRange(new vscode.Range(start, end), keepFocus ? vscode.TextEditorRevealType.InCenter : vscode.TextEditorRevealType.InCenterIfOutsideViewport);
  return editor;
}

/** The query for "Find Similar": the selection (or the current line), whitespace collapsed. */
export function similarQuery(text: string, maxChars = 600): string {
  return text.replace(/\s+/g, " ").trim().slice(0, maxChars);
}
