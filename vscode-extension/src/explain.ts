/**
 * Why a result matched (the server's `explain`): a short text for the result list, and editor
 * decorations on the code tokens the query words met (with each word's share of the score in
 * the hover) and on the words the full-text part matched (hybrid mode).
 *
 * The text and the ranges are pure functions (tested without VS Code); `Highlighter` applies them.
 */

import * as vscode from "vscode";
import { ExplainMatch, LspRange, SearchResult } from "./protocol";

const SPECIAL_TOKEN = /^\[[A-Z]+\]$/;

/** `bounds→bound 0.21`: a query word, what it met, its share of the score. */
export function matchText(m: ExplainMatch): string {
  const token = m.codeToken ?? "?";
  const where = m.place === "header" ? `${token} (path)` : token;
  return `${m.queryToken}→${where} ${m.score.toFixed(2)}`;
}

/**
 * What the result list shows of an explained result: the `max` strongest words (the server
 * sends them strongest first) and the words the full-text part matched. Empty when not explained.
 */
export function explainText(result: SearchResult, max = 3): string {
  const parts: string[] = [];
  // Left out: tokens with no text ([CLS]) and the query's own special tokens ([SEP]): they say
  // nothing a reader can check.
  const matches = (result.matches ?? []).filter((m) => m.place !== "special" && !SPECIAL_TOKEN.test(m.queryToken));
  if (matches.length) {
    const shown = matches.slice(0, max).map(matchText).join("  ");
    parts.push(matches.length > max ? `${shown} …` : shown);
  }
  if (result.lexical && result.lexical.words.length) {
    parts.push(`$(whole-word) ${result.lexical.words.join(" ")}`);
  }
  return parts.join("  ·  ");
}

/** A 1-based column counted in code points (as the server counts) as a 0-based UTF-16 offset in `line`. */
export function utf16Offset(line: string, codePointColumn: number): number {
  let offset = 0;
  let points = 1;
  while (points < codePointColumn && offset < line.length) {
    const c = line.codePointAt(offset)!;
    offset += c > 0xffff ? 2 : 1;
    points++;
  }
  return offset;
}

export interface Span {
  line: number; // 0-based
  start: number; // UTF-16 offsets, as VS Code counts
  end: number;
}

export interface TokenSpan extends Span {
  match: ExplainMatch;
}

/**
 * The code tokens the query met, as spans of the document (`lineText(i)`: line i's text, 0-based).
 * Columns are converted from code points to UTF-16; a span whose text is not the token's (the
 * file changed since it was indexed) is left out.
 */
export function tokenSpans(result: SearchResult, lineText: (line: number) => string | undefined): TokenSpan[] {
  const out: TokenSpan[] = [];
  for (const m of result.matches ?? []) {
    const range: LspRange | null | undefined = m.range;
    if (!range || !m.codeToken) {
      continue;
    }
    const text = lineText(range.start.line);
    if (text === undefined) {
      continue;
    }
    const start = utf16Offset(text, range.start.character + 1);
    const end = start + m.codeToken.length;
    if (text.slice(start, end) !== m.codeToken) {
      continue;
    }
    out.push({ line: range.start.line, start, end, match: m });
  }
  return out;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * Where the full-text words occur in the result's lines (0-based `first`..`last`), as words or as
 * parts of identifiers (`bound` in `upper_bound`, `Bound` in `lowerBound`), case-insensitively.
 */
export function wordSpans(words: readonly string[], lineText: (line: number) => string | undefined, first: number, last: number): Span[] {
  const wanted = words.filter((w) => w.length > 0);
  if (!wanted.length) {
    return [];
  }
  const pattern = new RegExp(wanted.map(escapeRegExp).sort((a, b) => b.length - a.length).join("|"), "gi");
  const out: Span[] = [];
  for (let line = first; line <= last; line++) {
    const text = lineText(line);
    if (text === undefined) {
      break;
    }
    for (const m of text.matchAll(pattern)) {
      const start = m.index!;
      const end = start + m[0].length;
      const before = text[start - 1] ?? "";
      const after = text[end] ?? "";
      // A word starts after a non-alphanumeric or at a camelCase hump, and ends before one or a hump.
      const startsWord = !/[A-Za-z0-9]/.test(before) || (/[a-z0-9]/.test(before) && /[A-Z]/.test(m[0][0]));
      const endsWord = !/[A-Za-z0-9]/.test(after) || (/[A-Z]/.test(after) && /[a-z0-9]/.test(m[0][m[0].length - 1]));
      if (startsWord && endsWord) {
        out.push({ line, start, end });
      }
    }
  }
  return out;
}

/** The hover of a matched token. */
export function hoverText(m: ExplainMatch, result: SearchResult): string {
  const share = result.score ? ` (${Math.round((100 * m.score) / result.score)}% of ${result.score.toFixed(2)})` : "";
  return `Code Search: “${m.queryToken}” met \`${m.codeToken}\`: ${m.score.toFixed(3)}${share}`;
}

/** The parts of `vscode.TextEditor` the highlighter uses. */
export interface DecoratedEditor {
  readonly document: { lineCount: number; lineAt(line: number): { text: string }; uri: vscode.Uri };
  setDecorations(type: vscode.TextEditorDecorationType, options: vscode.DecorationOptions[]): void;
}

/** Editor decorations of one explained result at a time: its lines, the tokens met, the full-text words. */
export class Highlighter {
  private types: { span: vscode.TextEditorDecorationType; token: vscode.TextEditorDecorationType; word: vscode.TextEditorDecorationType } | undefined;
  private editor: DecoratedEditor | undefined;
  private listener: vscode.Disposable | undefined;

  private decorationTypes() {
    if (!this.types) {
      this.types = {
        span: vscode.window.createTextEditorDecorationType({
          isWholeLine: true,
          backgroundColor: new vscode.ThemeColor("editor.rangeHighlightBackground"),
        }),
        token: vscode.window.createTextEditorDecorationType({
          backgroundColor: new vscode.ThemeColor("editor.findMatchHighlightBackground"),
          border: "1px solid",
          borderColor: new vscode.ThemeColor("editor.findMatchBorder"),
          borderRadius: "2px",
        }),
        word: vscode.window.createTextEditorDecorationType({
          textDecoration: "underline wavy",
          fontWeight: "bold",
        }),
      };
    }
    return this.types;
  }

  /** Decorate `editor` for `result` (clearing the last one). Returns the spans shown, for tests. */
  apply(editor: DecoratedEditor, result: SearchResult): { tokens: TokenSpan[]; words: Span[] } {
    this.clear();
    const types = this.decorationTypes();
    const doc = editor.document;
    const lineText = (i: number) => (i >= 0 && i < doc.lineCount ? doc.lineAt(i).text : undefined);
    const first = result.range.start.line;
    const last = Math.max(first, Math.min(doc.lineCount - 1, result.range.end.line - (result.range.end.character === 0 ? 1 : 0)));
    const tokens = tokenSpans(result, lineText);
    const words = wordSpans(result.lexical?.words ?? [], lineText, first, last);
    const range = (s: Span) => new vscode.Range(s.line, s.start, s.line, s.end);
    editor.setDecorations(types.span, result.matches ? [{ range: new vscode.Range(first, 0, last, 0) }] : []);
    editor.setDecorations(types.token, tokens.map((t) => ({ range: range(t), hoverMessage: hoverText(t.match, result) })));
    editor.setDecorations(
      types.word,
      words.map((w) => ({ range: range(w), hoverMessage: `Code Search: a query word, matched as a word (full-text part ${result.lexical!.score.toFixed(3)})` })),
    );
    this.editor = editor;
    // The ranges go stale once the file is edited: drop them then.
    this.listener = vscode.workspace.onDidChangeTextDocument((e) => {
      if (e.document.uri.toString() === doc.uri.toString()) {
        this.clear();
      }
    });
    return { tokens, words };
  }

  clear(): void {
    this.listener?.dispose();
    this.listener = undefined;
    const editor = this.editor;
    this.editor = undefined;
    if (editor && this.types) {
      for (const t of Object.values(this.types)) {
        editor.setDecorations(t, []);
      }
    }
  }

  dispose(): void {
    this.clear();
    for (const t of Object.values(this.types ?? {})) {
      t.dispose();
    }
    this.types = undefined;
  }
}
