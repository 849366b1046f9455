// The workspace lock: one process per workspace; a dead holder's lock (or a PID reused by another
// process) is taken over; a live holder is named in the refusal.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { lockWorkspace, unlockWorkspace, workspaceHolder, WORKSPACE_LOCK_FILE } from "../../../src/node/workspace-lock.js";
import { CocoError } from "../../../src/util/index.js";

function workspace(): string {
  return mkdtempSync(join(tmpdir(), "coco-lock-"));
}

function startTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]);
}

test("a process takes the lock, takes it again, and removes it when it unlocks", () => {
  const dir = workspace();
  try {
    lockWorkspace(dir, "test");
    lockWorkspace(dir, "test again");
    assert.equal(JSON.parse(readFileSync(join(dir, WORKSPACE_LOCK_FILE), "utf8")).pid, process.pid);
    assert.equal(workspaceHolder(dir), process.pid);
    unlockWorkspace(dir);
    assert.equal(existsSync(join(dir, WORKSPACE_LOCK_FILE)), false);
    assert.equal(workspaceHolder(dir), undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a lock held by another live process is refused, naming its PID", async () => {
  const dir = workspace();
  const child = spawn(process.execPath, ["-e", "setTimeout(() => {}, 60000)"], { stdio: "ignore" });
  try {
    await new Promise((resolve) => child.once("spawn", resolve));
    const pid = child.pid!;
    writeFileSync(join(dir, WORKSPACE_LOCK_FILE), JSON.stringify({ pid, startTicks: startTicks(pid), command: "coco sandbox", since: "now" }));
    assert.throws(() => lockWorkspace(dir, "test"), (error: unknown) =>
      error instanceof CocoError && error.code === "WorkspaceLocked" && error.message.includes(`in use by process ${pid} (coco sandbox`));
    assert.equal(workspaceHolder(dir), pid);
  } finally {
    child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a lock whose holder is dead, or whose PID now belongs to another process, is taken over", async () => {
  const dir = workspace();
  const child = spawn(process.execPath, ["-e", "setTimeout(() => {}, 60000)"], { stdio: "ignore" });
  try {
    await new Promise((resolve) => child.once("spawn", resolve));
    const pid = child.pid!;
    // The same live PID, but started at another time: a reused PID, not the holder.
    writeFileSync(join(dir, WORKSPACE_LOCK_FILE), JSON.stringify({ pid, startTicks: startTicks(pid) - 1, command: "coco sandbox", since: "then" }));
    assert.equal(workspaceHolder(dir), undefined);
    lockWorkspace(dir, "test");
    assert.equal(JSON.parse(readFileSync(join(dir, WORKSPACE_LOCK_FILE), "utf8")).pid, process.pid);
    unlockWorkspace(dir);
    // A holder that has exited.
    child.kill("SIGKILL");
    await new Promise((resolve) => child.once("exit", resolve));
    writeFileSync(join(dir, WORKSPACE_LOCK_FILE), JSON.stringify({ pid, command: "coco sandbox", since: "then" }));
    lockWorkspace(dir, "test");
    assert.equal(JSON.parse(readFileSync(join(dir, WORKSPACE_LOCK_FILE), "utf8")).pid, process.pid);
    unlockWorkspace(dir);
  } finally {
    child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
});
