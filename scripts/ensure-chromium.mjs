#!/usr/bin/env node
// Makes sure the browser the explorer's tests drive is present: Debian's chromium at
// /usr/bin/chromium (or COCO_CHROMIUM), and NSS's certutil (libnss3-tools), with which a test
// trusts the service certificate as a user would. When missing and we are root with apt-get,
// they are installed; otherwise the browser tests skip and say why (test/helpers/browser.ts).
// This script never fails the test run: a machine without a browser still runs every other test.
import { existsSync } from "node:fs";
import { spawnSync } from "node:child_process";

const DEBIAN_CHROMIUM = "/usr/bin/chromium";
const CHROMIUM = process.env.COCO_CHROMIUM ?? DEBIAN_CHROMIUM;

function run(command, args) {
  const r = spawnSync(command, args, { encoding: "utf8", env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
  if (r.status !== 0) {
    const output = `${r.stdout ?? ""}${r.stderr ?? ""}`.trim().split("\n").slice(-15).join("\n");
    console.log(`ensure-chromium: '${command} ${args.join(" ")}' failed (exit ${r.status ?? r.signal ?? r.error?.message}):\n${output}`);
    return false;
  }
  return true;
}

const CERTUTIL = "/usr/bin/certutil";
if (existsSync(CHROMIUM) && existsSync(CERTUTIL)) process.exit(0);
const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
if (CHROMIUM !== DEBIAN_CHROMIUM && !existsSync(CHROMIUM)) {
  console.log(`ensure-chromium: COCO_CHROMIUM=${CHROMIUM} does not exist; the explorer's browser tests will be skipped.`);
  process.exit(0);
}
if (!isRoot || !existsSync("/usr/bin/apt-get")) {
  console.log(`ensure-chromium: ${existsSync(CHROMIUM) ? CERTUTIL : CHROMIUM} is missing and cannot be installed here (${isRoot ? "no apt-get" : "not root"}); ` +
    "the explorer's browser tests that need it will be skipped. Install with: sudo apt-get install chromium libnss3-tools");
  process.exit(0);
}
console.log("ensure-chromium: installing Debian's chromium and libnss3-tools for the explorer's browser tests (apt-get; this takes a minute)...");
if (run("apt-get", ["update"]) && run("apt-get", ["install", "-y", "--no-install-recommends", "chromium", "libnss3-tools"]) && existsSync(CHROMIUM)) {
  console.log(`ensure-chromium: ${CHROMIUM} and ${CERTUTIL} installed.`);
} else {
  console.log("ensure-chromium: could not install chromium; the explorer's browser tests will be skipped.");
}
