#!/usr/bin/env node
// Runs every compiled test file (dist/test/**/*.test.js) with node's built-in test runner.
// Unit tests run in parallel; end-to-end tests (real node processes) run one file at a time
// so that two files never fight over the machine's two cores or the same ports.
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";

function find(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...find(p));
    else if (name.endsWith(".test.js")) out.push(p);
  }
  return out.sort();
}

const filter = process.argv.slice(2);
const all = find("dist/test").filter((f) => filter.length === 0 || filter.some((s) => f.includes(s)));
// The explorer's browser tests drive Debian's chromium: install it first if missing (or say why not).
if (all.some((f) => f.includes("explorer"))) spawnSync(process.execPath, ["scripts/ensure-chromium.mjs"], { stdio: "inherit" });
const unit = all.filter((f) => !f.includes("/e2e/"));
const e2e = all.filter((f) => f.includes("/e2e/"));
let failed = false;
for (const [files, concurrency] of [[unit, 2], [e2e, 1]]) {
  if (files.length === 0) continue;
  const r = spawnSync(process.execPath, ["--test", `--test-concurrency=${concurrency}`, ...files], { stdio: "inherit" });
  if (r.status !== 0) failed = true;
}
process.exit(failed ? 1 : 0);
