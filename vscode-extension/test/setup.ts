/** Makes `require("vscode")` return the mock (VS Code itself is not available to tests). */

import Module from "node:module";
import * as mock from "./vscode-mock";

const loader = Module as unknown as { _load: (request: string, ...rest: unknown[]) => unknown };
const original = loader._load;
loader._load = function (request: string, ...rest: unknown[]) {
  if (request === "vscode") {
    return mock;
  }
  return original.call(this, request, ...rest);
};

export { mock };
