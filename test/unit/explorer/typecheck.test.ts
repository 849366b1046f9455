// The page's modules are plain JavaScript with JSDoc types, checked by tsc against the DOM's
// types (src/explorer/static/tsconfig.json: checkJs, strict), as the node's TypeScript is.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { join } from "node:path";
import { STATIC_DIR } from "./static-modules.js";

test("the explorer's browser modules type-check (tsc --checkJs, strict, DOM types)", () => {
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  const result = spawnSync(process.execPath, [tsc, "-p", join(STATIC_DIR, "tsconfig.json")], { encoding: "utf8" });
  assert.equal(result.status, 0, `${result.stdout}${result.stderr}`);
});
