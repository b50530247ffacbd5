/** The language server's custom messages, as the extension uses them. */

export interface LspPosition {
  line: number;
  character: number;
}

export interface LspRange {
  start: LspPosition;
  end: LspPosition;
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
}

export interface SearchParams {
  query: string;
  limit?: number;
  lang?: string | string[];
  path?: string;
  kind?: string | string[];
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
