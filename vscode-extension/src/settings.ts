/**
 * Settings: how to start the server, and which settings the server itself reads.
 *
 * Pure functions over a `get(key)` accessor, so they are tested without VS Code.
 */

export type Get = <T>(key: string) => T | undefined;

export interface ServerCommand {
  command: string;
  args: string[];
}

/** Keys of the `codesearch` section that the language server reads (see codesearch/lsp/config.py). */
export const SERVER_KEYS = [
  "home",
  "model",
  "limit",
  "symbolLimit",
  "ignore",
  "method",
  "scope",
  "indexOnStartup",
  "reindexOnSave",
] as const;

/** Keys whose change needs a new server process. */
export const RESTART_KEYS = ["command", "pythonPath", "serverArgs"] as const;

/** `codesearch lsp`, or `python -m codesearch.cli lsp` when a Python interpreter is configured. */
export function serverCommand(get: Get): ServerCommand {
  const extra = (get<string[]>("serverArgs") ?? []).filter((a) => typeof a === "string" && a.length > 0);
  const python = (get<string>("pythonPath") ?? "").trim();
  if (python) {
    return { command: python, args: ["-m", "codesearch.cli", "lsp", ...extra] };
  }
  const command = (get<string>("command") ?? "").trim() || "codesearch";
  return { command, args: ["lsp", ...extra] };
}

/** The object sent as initializationOptions and as the answer to workspace/configuration. */
export function serverSettings(get: Get): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of SERVER_KEYS) {
    const value = get<unknown>(key);
    if (value === undefined || value === null || value === "") {
      continue;
    }
    out[key] = value;
  }
  return out;
}

/** Client-side options of the search box. */
export interface SearchOptions {
  debounceMs: number;
  limit: number;
  feedback: boolean;
  /** Ask the server why each result matched, and show it (`codesearch.explain`). */
  explain: boolean;
  /** Show the active result in an editor while moving through the list (`codesearch.preview`). */
  preview: boolean;
}

export function searchOptions(get: Get): SearchOptions {
  const num = (key: string, fallback: number, lo: number, hi: number) => {
    const v = get<number>(key);
    return typeof v === "number" && Number.isFinite(v) ? Math.min(hi, Math.max(lo, Math.round(v))) : fallback;
  };
  return {
    debounceMs: num("debounceMs", 150, 0, 2000),
    limit: num("limit", 20, 1, 200),
    feedback: get<boolean>("feedback") !== false,
    explain: get<boolean>("explain") !== false,
    preview: get<boolean>("preview") !== false,
  };
}
