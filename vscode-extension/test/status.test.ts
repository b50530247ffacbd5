import "./setup";
import { strict as assert } from "node:assert";
import { test } from "node:test";
import { StatusBar, statusText } from "../src/status";

test("indexing shows a percentage, ready shows the search icon, errors a warning", () => {
  assert.equal(statusText({ state: "indexing", percentage: 42.4, message: "embedding 10/20 chunks" }).text, "$(sync~spin) Code Search 42%");
  assert.match(statusText({ state: "indexing", message: "scanning" }).tooltip, /Indexing: scanning/);
  assert.equal(statusText({ state: "ready", message: "20000 chunks" }).text, "$(search) Code Search");
  assert.match(statusText({ state: "ready", message: "20000 chunks" }).tooltip, /20000 chunks/);
  assert.equal(statusText({ state: "error", message: "boom" }).text, "$(warning) Code Search");
  assert.equal(statusText({ state: "loading" }).text, "$(sync~spin) Code Search");
});

test("the status bar item follows the server's notifications and opens the search", () => {
  const bar = new StatusBar("codesearch.ui.search");
  assert.equal(bar.item.command, "codesearch.ui.search");
  bar.update({ state: "indexing", percentage: 5 });
  assert.equal(bar.item.text, "$(sync~spin) Code Search 5%");
  bar.update({ state: "ready", message: "61 chunks" });
  assert.equal(bar.item.text, "$(search) Code Search");
});
