/** The status bar item: what the server is doing (loading, indexing n%, ready with N chunks, error). */

import * as vscode from "vscode";
import { StatusParams } from "./protocol";

export interface StatusText {
  text: string;
  tooltip: string;
}

/** Status bar text for a `codesearch/status` notification. */
export function statusText(status: StatusParams): StatusText {
  const message = status.message ?? "";
  switch (status.state) {
    case "indexing": {
      const pct = typeof status.percentage === "number" ? ` ${Math.round(status.percentage)}%` : "";
      return { text: `$(sync~spin) Code Search${pct}`, tooltip: `Indexing: ${message}` };
    }
    case "loading":
    case "starting":
      return { text: "$(sync~spin) Code Search", tooltip: message || "Starting the server" };
    case "error":
      return { text: "$(warning) Code Search", tooltip: message || "The server reported an error" };
    case "stopped":
      return { text: "$(circle-slash) Code Search", tooltip: message || "The server is not running" };
    default:
      return { text: "$(search) Code Search", tooltip: message ? `Ready: ${message}` : "Ready. Click to search." };
  }
}

export class StatusBar implements vscode.Disposable {
  readonly item: vscode.StatusBarItem;
  last: StatusParams = { state: "starting" };

  constructor(command: string) {
    this.item = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Left, 50);
    this.item.command = command;
    this.update({ state: "starting" });
    this.item.show();
  }

  update(status: StatusParams): void {
    this.last = status;
    const { text, tooltip } = statusText(status);
    this.item.text = text;
    this.item.tooltip = tooltip;
  }

  dispose(): void {
    this.item.dispose();
  }
}
