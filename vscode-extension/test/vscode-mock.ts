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

export class ThemeColor {
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
  private items_: readonly T[] = [];
  private active_: readonly T[] = [];
  selectedItems: readonly T[] = [];
  keepScrollPosition = false;
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
  private changeActive = new EventEmitter<readonly T[]>();
  readonly onDidChangeActive = this.changeActive.event;
  readonly onDidChangeValue = this.changeValue.event;
  readonly onDidAccept = this.accept.event;
  readonly onDidTriggerItemButton = this.button.event;
  readonly onDidHide = this.hide_.event;

  /** As in VS Code: new items make the first one active. */
  get items(): readonly T[] {
    return this.items_;
  }
  set items(items: readonly T[]) {
    this.items_ = items;
    this.activeItems = items.length ? [items[0]] : [];
  }
  get activeItems(): readonly T[] {
    return this.active_;
  }
  set activeItems(items: readonly T[]) {
    this.active_ = items;
    this.changeActive.fire(items);
  }
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
  /** The user moves to an item (arrow keys). */
  focus(item: T): void {
    this.activeItems = [item];
  }
  click(item: T, index: number): void {
    this.button.fire({ item, button: (item as any).buttons[index] });
  }
}

export const recorded = {
  quickPicks: [] as FakeQuickPick<any>[],
  /** File contents by URI string, for documents that tests open. */
  files: new Map<string, string>(),
  /** setDecorations calls: decoration type, editor's URI, ranges (with hovers). */
  decorations: [] as { type: FakeDecorationType; uri: string; options: any[] }[],
  decorationTypes: [] as FakeDecorationType[],
  activeTextEditor: undefined as FakeEditor | undefined,
  opened: [] as { uri: Uri }[],
  shown: [] as { doc: unknown; options: any }[],
  revealed: [] as Range[],
  statusMessages: [] as string[],
  warnings: [] as string[],
  errors: [] as string[],
  infos: [] as string[],
  commands: new Map<string, (...args: any[]) => unknown>(),
  config: new Map<string, unknown>(),
  documentChanges: new EventEmitter<{ document: FakeDocument }>(),
  reset(): void {
    this.quickPicks.length = 0;
    this.files.clear();
    this.decorations.length = 0;
    this.decorationTypes.length = 0;
    this.activeTextEditor = undefined;
    this.documentChanges.dispose();
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

export class FakeDecorationType {
  disposed = false;
  constructor(readonly options: any) {}
  dispose(): void {
    this.disposed = true;
  }
}

export class FakeDocument {
  readonly lines: string[];
  constructor(
    readonly uri: Uri,
    text: string,
  ) {
    this.lines = text.split("\n");
  }
  get lineCount(): number {
    return this.lines.length;
  }
  lineAt(line: number): { text: string } {
    if (line < 0 || line >= this.lines.length) {
      throw new Error(`Illegal value for \`line\`: ${line}`);
    }
    return { text: this.lines[line] };
  }
}

export class FakeEditor {
  constructor(
    readonly document: FakeDocument,
    readonly selection: Selection,
    readonly viewColumn = 1,
  ) {}
  revealRange(range: Range): void {
    recorded.revealed.push(range);
  }
  setDecorations(type: FakeDecorationType, options: any[]): void {
    recorded.decorations.push({ type, uri: this.document.uri.toString(), options });
  }
  /** The ranges of one decoration type last set on this editor. */
  decorated(type: FakeDecorationType): any[] {
    const last = [...recorded.decorations].reverse().find((d) => d.type === type && d.uri === this.document.uri.toString());
    return last ? last.options : [];
  }
}

export const window = {
  get activeTextEditor() {
    return recorded.activeTextEditor;
  },
  createTextEditorDecorationType(options: any) {
    const type = new FakeDecorationType(options);
    recorded.decorationTypes.push(type);
    return type;
  },
  createQuickPick<T extends { label: string }>() {
    const pick = new FakeQuickPick<T>();
    recorded.quickPicks.push(pick);
    return pick;
  },
  async showTextDocument(doc: FakeDocument, options: any) {
    recorded.shown.push({ doc, options });
    const start = options?.selection?.start ?? new Position(0, 0);
    const editor = new FakeEditor(doc, new Selection(start, start), options?.viewColumn ?? 1);
    recorded.activeTextEditor = editor;
    return editor;
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
    const doc = new FakeDocument(uri, recorded.files.get(uri.toString()) ?? "");
    recorded.opened.push(doc);
    return doc;
  },
  onDidChangeTextDocument(listener: (e: { document: FakeDocument }) => unknown) {
    return recorded.documentChanges.event(listener);
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
