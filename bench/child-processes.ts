// Server processes started by the benchmark. Every child is registered so that it is stopped
// on every way out: normal end, thrown error, Ctrl-C, or the bench process exiting.
import { spawn, type ChildProcess } from "node:child_process";

const live = new Set<ChildProcess>();
let hooksInstalled = false;

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  // Last resort: nothing asynchronous runs in 'exit', so kill outright.
  process.on("exit", () => {
    for (const child of live) killGroup(child, "SIGKILL");
  });
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      process.stderr.write(`\nbench: ${signal} received, stopping child processes\n`);
      void stopAll().finally(() => process.exit(130));
    });
  }
}

export interface ManagedChild {
  readonly process: ChildProcess;
  readonly pid: number;
  /** Last lines of the child's stdout+stderr, for error messages. */
  readonly outputTail: () => string;
  /** Resolves with the exit code (or signal name) once the child has exited. */
  readonly exited: Promise<string>;
}

export function startChild(name: string, nodeArgs: readonly string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): ManagedChild {
  installExitHooks();
  // Its own process group: a kill reaches the processes it starts too (a sandbox's other nodes),
  // which would otherwise outlive a bench that stopped on an error.
  const child = spawn(process.execPath, nodeArgs, { cwd: options.cwd, env: options.env ?? process.env, stdio: ["ignore", "pipe", "pipe"], detached: true });
  if (child.pid === undefined) throw new Error(`Could not start ${name} (${process.execPath} ${nodeArgs.join(" ")})`);
  live.add(child);
  const tail: string[] = [];
  const keep = (data: Buffer): void => {
    tail.push(data.toString("utf8"));
    if (tail.length > 50) tail.shift();
  };
  child.stdout!.on("data", keep);
  child.stderr!.on("data", keep);
  const exited = new Promise<string>((resolve) => {
    child.once("exit", (code, signal) => {
      live.delete(child);
      resolve(signal ?? String(code));
    });
  });
  return { process: child, pid: child.pid, outputTail: () => tail.join("").slice(-4000), exited };
}

/** Signals the child's whole process group (startChild makes one per child), or the child alone if that fails. */
function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    if (child.pid !== undefined) {
      process.kill(-child.pid, signal);
      return;
    }
  } catch {
    /* the group is gone, or was never made: signal the child itself */
  }
  child.kill(signal);
}

/** SIGINT (clean shutdown, lets --cpu-prof write its profile), then SIGKILL after `graceMs`. */
export async function stopChild(child: ManagedChild, graceMs = 10_000): Promise<string> {
  if (child.process.exitCode !== null || child.process.signalCode !== null) return child.exited;
  child.process.kill("SIGINT");
  const timer = setTimeout(() => killGroup(child.process, "SIGKILL"), graceMs);
  const result = await child.exited;
  clearTimeout(timer);
  return result;
}

export async function stopAll(): Promise<void> {
  await Promise.all(
    [...live].map(
      (p) =>
        new Promise<void>((resolve) => {
          p.once("exit", () => resolve());
          p.kill("SIGINT");
          setTimeout(() => killGroup(p, "SIGKILL"), 5_000).unref();
        }),
    ),
  );
}
