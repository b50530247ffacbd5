/** The language server's custom messages, as the extension uses them. */

export interface LspPosition {
  line: number;
  character: number;
}

export interface LspRange {
  start: LspPosition;
  end: LspPosition;
}

/** With `explain`: one query word, the token of the result it met and its share of the score. */
export interface ExplainMatch {
  queryToken: string;
  /** The token's characters (for `place` "special": the tokenizer's "[CLS]"); null when unknown. */
  codeToken: string | null;
  /** "code": a token of the file (line, column, range given); "header": of the path or scope the
   * encoder reads before the code; "special": no text; null: unknown. */
  place?: "code" | "header" | "special" | string | null;
  /** 1-based line of the file, and 1-based column in characters (code points); null outside the code. */
  line: number | null;
  column: number | null;
  score: number;
  /** Where the token is in the file (0-based; characters as the server counts them, code points). */
  range?: LspRange | null;
}

/** With `explain`, in hybrid mode: the full-text part of the score and the query words met as words. */
export interface LexicalPart {
  score: number;
  words: string[];
}

export interface SearchResult {
  uri: string;
  range: LspRange;
  score: number;
  name: string;
  kind: string;
  language: string;
  snippet: string;
  path?: string;
  relPath?: string;
  repo?: string;
  startLine?: number;
  endLine?: number;
  /** Only when the search asked for `explain` (and the server knows it). */
  matches?: ExplainMatch[] | null;
  lexical?: LexicalPart | null;
  prior?: number | null;
}

export interface SearchParams {
  query: string;
  limit?: number;
  lang?: string | string[];
  path?: string;
  kind?: string | string[];
  /** Ask why each result matched (`matches`, `lexical`). */
  explain?: boolean;
}

export interface SearchResponse {
  results: SearchResult[];
}

export type Verdict = "good" | "bad" | "chosen";

export interface StatusParams {
  state: "starting" | "loading" | "indexing" | "ready" | "error" | string;
  message?: string;
  percentage?: number;
}

export interface PersonalEvalReport {
  n: number;
  "p@1": number;
  "mrr@10": number;
  "recall@5": number;
  missCount?: number;
  misses: { id: string; query: string; expected: { uri?: string; path: string; start_line: number; end_line: number }[] }[];
  file: string;
  message?: string;
}

/** A cancellation token as both VS Code and vscode-jsonrpc define it. */
export interface Token {
  readonly isCancellationRequested: boolean;
}

/** What the search box needs from the server (a LanguageClient in VS Code, a bare connection in tests). */
export interface CodesearchApi {
  search(params: SearchParams, token: Token): Promise<SearchResponse>;
  command<T = unknown>(name: string, ...args: unknown[]): Promise<T>;
}

export const METHODS = {
  search: "codesearch/search",
  status: "codesearch/status",
  indexed: "codesearch/indexed",
} as const;

export const COMMANDS = {
  search: "codesearch.search",
  reindex: "codesearch.reindex",
  feedback: "codesearch.feedback",
  personalEval: "codesearch.personalEval",
} as const;

/** Is this error the server's (or the client's) answer to a cancelled request? */
export function isCancellation(err: unknown): boolean {
  const e = err as { code?: number; name?: string } | undefined;
  // -32800 RequestCancelled, -32802 ServerCancelled; VS Code's CancellationError has that name.
  return !!e && (e.code === -32800 || e.code === -32802 || e.name === "Canceled" || e.name === "CancellationError");
}

export function errorMessage(err: unknown): string {
  const e = err as { message?: string } | undefined;
  return e?.message ? String(e.message) : String(err);
}
