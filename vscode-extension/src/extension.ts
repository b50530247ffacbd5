/**
 * The VS Code extension: starts `codesearch lsp` with vscode-languageclient and adds
 * "Code Search: Search" (live QuickPick), "Find Similar" (from the selection), re-index,
 * personal eval and a status bar item that shows indexing progress.
 *
 * "Go to Symbol in Workspace" works too: the server answers workspace/symbol semantically.
 */

import * as vscode from "vscode";
import {
  LanguageClient,
  LanguageClientOptions,
  ServerOptions,
  State,
} from "vscode-languageclient/node";
import {
  CodesearchApi,
  COMMANDS,
  errorMessage,
  METHODS,
  PersonalEvalReport,
  SearchParams,
  SearchResponse,
  StatusParams,
  Token,
} from "./protocol";
import { SearchPanel, similarQuery } from "./search";
import { RESTART_KEYS, searchOptions, serverCommand, serverSettings } from "./settings";
import { StatusBar } from "./status";

const SECTION = "codesearch";

let client: LanguageClient | undefined;

function settings() {
  const config = vscode.workspace.getConfiguration(SECTION);
  return <T>(key: string) => config.get<T>(key);
}

function createClient(output: vscode.OutputChannel): LanguageClient {
  const { command, args } = serverCommand(settings());
  const serverOptions: ServerOptions = { command, args, options: { env: { ...process.env } } };
  const clientOptions: LanguageClientOptions = {
    // Every file: saves keep the index current whatever the language.
    documentSelector: [{ scheme: "file" }],
    initializationOptions: serverSettings(settings()),
    synchronize: { configurationSection: SECTION },
    outputChannel: output,
    middleware: {
      workspace: {
        // Answer workspace/configuration with only the keys the server reads.
        configuration: async (params, token, next) => {
          const answers = params.items.some((i) => i.section !== SECTION) ? await next(params, token) : [];
          if (answers instanceof Error) {
            return answers;
          }
          return params.items.map((item, i) =>
            item.section === SECTION ? serverSettings(settings()) : (answers as unknown[])[i] ?? null,
          );
        },
      },
    },
  };
  return new LanguageClient("codesearch", "Code Search", serverOptions, clientOptions);
}

function apiOf(getClient: () => LanguageClient | undefined): CodesearchApi {
  const need = () => {
    const c = getClient();
    if (!c || c.state !== State.Running) {
      throw new Error("the Code Search server is not running (see “Code Search: Show Log”)");
    }
    return c;
  };
  return {
    search: (params: SearchParams, token: Token) =>
      need().sendRequest<SearchResponse>(METHODS.search, params, token as vscode.CancellationToken),
    command: <T>(name: string, ...args: unknown[]) =>
      need().sendRequest<T>("workspace/executeCommand", { command: name, arguments: args }),
  };
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const output = vscode.window.createOutputChannel("Code Search");
  const status = new StatusBar("codesearch.ui.search");
  const api = apiOf(() => client);
  const panel = new SearchPanel(api, () => searchOptions(settings()), (m) => output.appendLine(m));
  context.subscriptions.push(output, status, { dispose: () => panel.dispose() });

  const start = async () => {
    client = createClient(output);
    client.onNotification(METHODS.status, (params: StatusParams) => status.update(params));
    client.onDidChangeState((e) => {
      if (e.newState === State.Stopped) {
        status.update({ state: "stopped", message: "The server stopped (see “Code Search: Show Log”)" });
      }
    });
    try {
      await client.start();
    } catch (err) {
      status.update({ state: "error", message: errorMessage(err) });
      const { command } = serverCommand(settings());
      const choice = await vscode.window.showErrorMessage(
        `Code Search could not start “${command} lsp”: ${errorMessage(err)}. ` +
          "Install codesearch (pip install codesearch) or set “codesearch.pythonPath”.",
        "Open Settings",
      );
      if (choice === "Open Settings") {
        await vscode.commands.executeCommand("workbench.action.openSettings", SECTION);
      }
    }
  };

  const restart = async () => {
    const old = client;
    client = undefined;
    if (old) {
      await old.stop().catch(() => undefined);
    }
    await start();
  };

  context.subscriptions.push(
    vscode.commands.registerCommand("codesearch.ui.search", () => panel.open()),
    vscode.commands.registerCommand("codesearch.ui.findSimilar", () => {
      const editor = vscode.window.activeTextEditor;
      if (!editor) {
        return;
      }
      const sel = editor.selection;
      const text = sel.isEmpty ? editor.document.lineAt(sel.active.line).text : editor.document.getText(sel);
      const query = similarQuery(text);
      if (!query) {
        vscode.window.showInformationMessage("Code Search: select some code to find similar code.");
        return;
      }
      panel.open({
        query,
        title: "Code Search: similar to the selection",
        exclude: { path: editor.document.uri.fsPath, startLine: sel.start.line + 1, endLine: sel.end.line + 1 },
      });
    }),
    vscode.commands.registerCommand("codesearch.ui.reindex", () =>
      vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: "Code Search: updating the index" },
        async () => {
          try {
            const s = await api.command<Record<string, number>>(COMMANDS.reindex);
            vscode.window.showInformationMessage(
              `Code Search: ${s.total_chunks} chunks; ${s.files_indexed} files updated, ${s.embedded} chunks embedded.`,
            );
          } catch (err) {
            vscode.window.showErrorMessage(`Code Search: indexing failed: ${errorMessage(err)}`);
          }
        },
      ),
    ),
    vscode.commands.registerCommand("codesearch.ui.personalEval", async () => {
      try {
        const r = await api.command<PersonalEvalReport>(COMMANDS.personalEval);
        if (!r.n) {
          vscode.window.showInformationMessage(`Code Search: ${r.message ?? "the personal eval set is empty"}`);
          return;
        }
        output.appendLine(`Personal eval (${r.file}): ${r.n} queries`);
        output.appendLine(`  P@1 ${r["p@1"].toFixed(3)}  MRR@10 ${r["mrr@10"].toFixed(3)}  Recall@5 ${r["recall@5"].toFixed(3)}`);
        for (const miss of r.misses) {
          const where = miss.expected.map((e) => `${e.path}:${e.start_line}-${e.end_line}`).join(", ");
          output.appendLine(`  missed: “${miss.query}” (expected ${where})`);
        }
        const choice = await vscode.window.showInformationMessage(
          `Code Search personal eval, ${r.n} queries: P@1 ${r["p@1"].toFixed(2)}, MRR@10 ${r["mrr@10"].toFixed(2)}, ` +
            `Recall@5 ${r["recall@5"].toFixed(2)}; ${r.missCount ?? r.misses.length} missed.`,
          "Show Misses",
        );
        if (choice) {
          output.show(true);
        }
      } catch (err) {
        vscode.window.showErrorMessage(`Code Search: personal eval failed: ${errorMessage(err)}`);
      }
    }),
    vscode.commands.registerCommand("codesearch.ui.restart", restart),
    vscode.commands.registerCommand("codesearch.ui.showLog", () => output.show()),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (RESTART_KEYS.some((k) => e.affectsConfiguration(`${SECTION}.${k}`))) {
        void restart();
      }
    }),
  );

  await start();
}

export async function deactivate(): Promise<void> {
  const c = client;
  client = undefined;
  if (c) {
    await c.stop();
  }
}
