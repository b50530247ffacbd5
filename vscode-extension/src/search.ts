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
 */

import * as vscode from "vscode";
import {
  CodesearchApi,
  COMMANDS,
  errorMessage,
  isCancellation,
  SearchParams,
  SearchResult,
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
  return {
    label: `$(${kindIcon(result.kind)}) ${result.name || "(unnamed)"}`,
    description: `${where}  ·  ${result.language} ${result.kind}  ·  ${result.score.toFixed(2)}`,
    detail: firstLines,
    alwaysShow: true,
    buttons: withButtons ? [THUMBS_UP, THUMBS_DOWN] : [],
    result,
    query,
  };
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
    this.opts = opts;
    const pick = vscode.window.createQuickPick<ResultItem>();
    this.pick = pick;
    pick.title = opts.title ?? "Code Search";
    pick.placeholder = "Describe what you are looking for, e.g. “check if a value is within bounds”";
    pick.matchOnDescription = false;
    pick.matchOnDetail = false;
    pick.ignoreFocusOut = false;
    pick.onDidChangeValue((value) => this.onType(value));
    pick.onDidAccept(() => this.onAccept());
    pick.onDidTriggerItemButton((e) => this.onButton(e.item, e.button));
    pick.onDidHide(() => this.close());
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
    const { limit, feedback } = this.options();
    const exclude = this.opts.exclude;
    const params: SearchParams = { ...(this.opts.params ?? {}), query, limit: exclude ? limit + 1 : limit };
    this.stats.sent++;
    return this.api.search(params, source.token).then(
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
    this.close();
    await openResult(result);
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
      // Show the verdict on the item (QuickPick items are replaced, not mutated).
      this.pick.items = this.pick.items.map((it) =>
        it === item ? { ...it, buttons: verdict === "good" ? [RATED_UP, THUMBS_DOWN] : [THUMBS_UP, RATED_DOWN] } : it,
      );
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
export async function openResult(result: SearchResult): Promise<void> {
  const uri = vscode.Uri.parse(result.uri);
  const start = new vscode.Position(result.range.start.line, 0);
  const end = new vscode.Position(Math.max(result.range.start.line, result.range.end.line - 1), 0);
  const doc = await vscode.workspace.openTextDocument(uri);
  const editor = await vscode.window.showTextDocument(doc, { selection: new vscode.Range(start, start), preview: true });
  editor.revealRange(new vscode.Range(start, end), vscode.TextEditorRevealType.InCenterIfOutsideViewport);
}

/** The query for "Find Similar": the selection (or the current line), whitespace collapsed. */
export function similarQuery(text: string, maxChars = 600): string {
  return text.replace(/\s+/g, " ").trim().slice(0, maxChars);
}
