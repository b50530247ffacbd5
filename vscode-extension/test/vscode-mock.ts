/**
 * A small stand-in for the `vscode` module: what the extension's logic touches, recording
 * what it is asked to do. `setup.ts` makes `require("vscode")` return it.
 */

type Listener<T> = (e: T) => unknown;

export class EventEmitter<T> {
  private listeners: Listener<T>[] = [];
  readonly event = (listener: Listener<T>) => {
    this.listeners.push(listener);
    return { dispose: () => (this.listeners = this.listeners.filter((l) => l !== listener)) };
  };
  fire(e: T): void {
    for (const l of [...this.listeners]) {
      l(e);
    }
  }
  dispose(): void {
    this.listeners = [];
  }
}

export class CancellationTokenSource {
  private emitter = new EventEmitter<void>();
  readonly token = {
    isCancellationRequested: false,
    onCancellationRequested: this.emitter.event,
  };
  cancel(): void {
    if (!this.token.isCancellationRequested) {
      this.token.isCancellationRequested = true;
      this.emitter.fire();
    }
  }
  dispose(): void {
    this.emitter.dispose();
  }
}

export class ThemeIcon {
  constructor(readonly id: string) {}
}

export class Uri {
  private constructor(
    readonly scheme: string,
    readonly fsPath: string,
    private readonly raw: string,
  ) {}
  static parse(value: string): Uri {
    const m = /^([a-z][a-z0-9+.-]*):(?:\/\/[^/]*)?(.*)$/i.exec(value);
    const scheme = m ? m[1] : "file";
    const path = m ? decodeURIComponent(m[2]) : value;
    return new Uri(scheme, path, value);
  }
  static file(path: string): Uri {
    return new Uri("file", path, "file://" + encodeURI(path));
  }
  toString(): string {
    return this.raw;
  }
}

export class Position {
  constructor(
    readonly line: number,
    readonly character: number,
  ) {}
}

export class Range {
  readonly start: Position;
  readonly end: Position;
  constructor(a: Position | number, b: Position | number, c?: number, d?: number) {
    if (typeof a === "number") {
      this.start = new Position(a, b as number);
      this.end = new Position(c ?? a, d ?? 0);
    } else {
      this.start = a;
      this.end = b as Position;
    }
  }
  get isEmpty(): boolean {
    return this.start.line === this.end.line && this.start.character === this.end.character;
  }
}

export class Selection extends Range {
  get active(): Position {
    return this.end;
  }
}

export enum TextEditorRevealType {
  Default = 0,
  InCenter = 1,
  InCenterIfOutsideViewport = 2,
  AtTop = 3,
}

export enum StatusBarAlignment {
  Left = 1,
  Right = 2,
}

export enum ProgressLocation {
  SourceControl = 1,
  Window = 10,
  Notification = 15,
}

export class FakeQuickPick<T extends { label: string }> {
  value = "";
  items: readonly T[] = [];
  selectedItems: readonly T[] = [];
  activeItems: readonly T[] = [];
  busy = false;
  title: string | undefined;
  placeholder: string | undefined;
  matchOnDescription = true;
  matchOnDetail = true;
  ignoreFocusOut = false;
  visible = false;
  disposed = false;
  private changeValue = new EventEmitter<string>();
  private accept = new EventEmitter<void>();
  private button = new EventEmitter<{ item: T; button: unknown }>();
  private hide_ = new EventEmitter<void>();
  readonly onDidChangeValue = this.changeValue.event;
  readonly onDidAccept = this.accept.event;
  readonly onDidTriggerItemButton = this.button.event;
  readonly onDidHide = this.hide_.event;

  show(): void {
    this.visible = true;
  }
  hide(): void {
    if (this.visible) {
      this.visible = false;
      this.hide_.fire();
    }
  }
  dispose(): void {
    this.disposed = true;
    this.hide();
  }
  /** The user types: the value changes, one event per keystroke. */
  type(value: string): void {
    this.value = value;
    this.changeValue.fire(value);
  }
  choose(item: T): void {
    this.selectedItems = [item];
    this.accept.fire();
  }
  click(item: T, index: number): void {
    this.button.fire({ item, button: (item as any).buttons[index] });
  }
}

export const recorded = {
  quickPicks: [] as FakeQuickPick<any>[],
  opened: [] as { uri: Uri }[],
  shown: [] as { doc: unknown; options: any }[],
  revealed: [] as Range[],
  statusMessages: [] as string[],
  warnings: [] as string[],
  errors: [] as string[],
  infos: [] as string[],
  commands: new Map<string, (...args: any[]) => unknown>(),
  config: new Map<string, unknown>(),
  reset(): void {
    this.quickPicks.length = 0;
    this.opened.length = 0;
    this.shown.length = 0;
    this.revealed.length = 0;
    this.statusMessages.length = 0;
    this.warnings.length = 0;
    this.errors.length = 0;
    this.infos.length = 0;
    this.commands.clear();
    this.config.clear();
  },
};

export const window = {
  createQuickPick<T extends { label: string }>() {
    const pick = new FakeQuickPick<T>();
    recorded.quickPicks.push(pick);
    return pick;
  },
  async showTextDocument(doc: unknown, options: any) {
    recorded.shown.push({ doc, options });
    return { revealRange: (range: Range) => recorded.revealed.push(range) };
  },
  setStatusBarMessage(text: string) {
    recorded.statusMessages.push(text);
    return { dispose() {} };
  },
  async showWarningMessage(text: string) {
    recorded.warnings.push(text);
    return undefined;
  },
  async showErrorMessage(text: string) {
    recorded.errors.push(text);
    return undefined;
  },
  async showInformationMessage(text: string) {
    recorded.infos.push(text);
    return undefined;
  },
  createStatusBarItem() {
    return { text: "", tooltip: "", command: undefined as string | undefined, show() {}, hide() {}, dispose() {} };
  },
  createOutputChannel() {
    const lines: string[] = [];
    return { lines, appendLine: (l: string) => lines.push(l), show() {}, dispose() {} };
  },
};

export const workspace = {
  async openTextDocument(uri: Uri) {
    const doc = { uri };
    recorded.opened.push(doc);
    return doc;
  },
  getConfiguration() {
    return { get: (key: string) => recorded.config.get(key) };
  },
};

export const commands = {
  registerCommand(name: string, fn: (...args: any[]) => unknown) {
    recorded.commands.set(name, fn);
    return { dispose: () => recorded.commands.delete(name) };
  },
  async executeCommand(name: string, ...args: unknown[]) {
    return recorded.commands.get(name)?.(...args);
  },
};
