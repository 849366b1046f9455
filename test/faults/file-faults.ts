// The rounds that fault a node's files: a full disk under its ledger (tmpfs), a damaged last
// ledger chunk, a wiped ledger. Each says what it did and whether the node kept its promises; a machine that
// cannot mount tmpfs gets a SKIPPED line, never a pass.
import { mkdirSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { delay, PROBE_TIMEOUT_MS } from "./cluster.js";
import { damageLastChunk, fillDisk, freeDisk, ledgerOffTmpfs, ledgerOntoTmpfs, probeTmpfs, restoreChunk, unmountQuietly, type Damage } from "./disk.js";
import type { Injected, RoundContext } from "./scenarios.js";

const TMPFS_HEADROOM_BYTES = 4 << 20;

function pickBackup(ctx: RoundContext, primary: number): number {
  const backups = [...Array(ctx.cluster.size).keys()].filter((i) => i !== primary && ctx.cluster.answering(i));
  return backups[Math.floor(ctx.random() * backups.length)]!;
}

export async function diskFullRound(ctx: RoundContext): Promise<Injected> {
  const { cluster, book, options } = ctx;
  const probe = probeTmpfs(ctx.dir);
  if (!probe.ok) {
    const line = `SKIPPED disk-full: mount -t tmpfs failed here (${probe.reason})`;
    ctx.skipped.push(line);
    options.log({ event: "skipped", nodes: cluster.size, round: ctx.round, detail: line });
    return { detail: line };
  }
  const p = await cluster.findPrimary(options.electionTimeoutMs);
  if (p === undefined) throw new Error("no primary before the fault");
  const target = pickBackup(ctx, p);
  const ledgerDir = join(cluster.node(target).dir, "ledger");
  await cluster.stop(target);
  ledgerOntoTmpfs(ledgerDir, TMPFS_HEADROOM_BYTES);
  try {
    await cluster.restart(target);
    await delay(500);
    const fault = book.faultInjected("disk-full", ctx.round, target);
    const filledBytes = fillDisk(ledgerDir);
    // While full: the node must keep answering /node/state, and the others must keep committing.
    // A probe that times out is asked once more with a longer deadline: on a loaded machine one
    // slow answer is not a wedged node, but a node that answers neither is.
    let stateAnswers = 0, stateMisses = 0, stateSlow = 0;
    while (Date.now() - fault.atMs < options.diskFullMs) {
      const probe = () => cluster.answering(target) ? cluster.clients[target]!.readJson("/node/state", PROBE_TIMEOUT_MS) : Promise.resolve(undefined);
      let state = await probe();
      if (!state && cluster.answering(target)) {
        state = await cluster.clients[target]!.readJson("/node/state", 5 * PROBE_TIMEOUT_MS);
        if (state) stateSlow++;
      }
      if (state) stateAnswers++; else stateMisses++;
      await delay(250);
    }
    const othersWrote = book.writes.some((w) => w.txid && w.viaNode !== target && w.startedMs > fault.atMs);
    const crashed = !cluster.running(target);
    freeDisk(ledgerDir);
    if (stateMisses > 0) book.violation({ kind: "wedged", round: ctx.round, node: target, detail: `with a full disk, node ${target} did not answer GET /node/state ${stateMisses} times (answered ${stateAnswers})${crashed ? "; its process exited" : ""}\n  log tail of node ${target}:\n${cluster.logTail(target)}` });
    if (!othersWrote) book.violation({ kind: "unavailable", round: ctx.round, node: target, detail: `no write through another node succeeded while node ${target}'s disk was full` });
    // Freed: checkRound (after this) requires the node to reach the network's commit again.
    await delay(1_000);
    return { node: target, detail: `ledger on tmpfs filled with ${filledBytes} bytes for ${options.diskFullMs} ms; /node/state answered ${stateAnswers} (${stateSlow} only on a second try), missed ${stateMisses}; ${crashed ? "process EXITED" : "process alive"}` };
  } finally {
    // The node's ledger goes back to the ordinary disk after the round's checks (see undo below).
    ctx.undo.push(async () => {
      await cluster.stop(target);
      ledgerOffTmpfs(ledgerDir);
      await cluster.restart(target);
    });
    ctx.cleanup.push(() => unmountQuietly(ledgerDir));
  }
}

export async function damagedFileRound(ctx: RoundContext): Promise<Injected> {
  const { cluster, book, options } = ctx;
  const damage: Damage = ctx.round.endsWith("-1") ? "cut" : "flip";
  const p = await cluster.findPrimary(options.electionTimeoutMs);
  if (p === undefined) throw new Error("no primary before the fault");
  const target = pickBackup(ctx, p);
  const ledgerDir = join(cluster.node(target).dir, "ledger");
  const backupDir = join(ctx.dir, `undamaged-${ctx.round}`);
  await cluster.stop(target);
  const done = damageLastChunk(ledgerDir, damage, ctx.random, backupDir);
  book.faultInjected(`damaged-file-${damage}`, ctx.round, target);
  try {
    await cluster.restart(target);
    return { node: target, detail: `${done.file}: ${done.detail}; node restarted (it must catch up)` };
  } catch (e) {
    const reasons = cluster.logGrep(target, /error|refus|corrupt|invalid|ledger/i, 3).map((l) => l.slice(0, 300));
    const clear = reasons.some((l) => /ledger/i.test(l) && /(corrupt|damaged|invalid|truncat|checksum|frame|refus)/i.test(l));
    if (!clear) book.violation({ kind: "unclear-refusal", round: ctx.round, node: target, detail: `node ${target} refused to start after ${done.detail} in ${done.file}, without a clear message:\n  ${(e as Error).message.slice(-1500)}` });
    // Refusing is allowed: restore the undamaged chunk so the next rounds have the whole network.
    restoreChunk(ledgerDir, backupDir, done.file);
    await cluster.restart(target);
    return { node: target, detail: `${done.file}: ${done.detail}; node REFUSED to start (${clear ? "clear" : "UNCLEAR"}: ${reasons.at(-1) ?? "no message"}); restored the chunk and restarted` };
  }
}

/** A backup loses its whole ledger (disk replaced): restarted with an empty ledger directory, it must catch up from the others. */
export async function wipedNodeRound(ctx: RoundContext): Promise<Injected> {
  const { cluster, book, options } = ctx;
  const p = await cluster.findPrimary(options.electionTimeoutMs);
  if (p === undefined) throw new Error("no primary before the fault");
  const target = pickBackup(ctx, p);
  const ledgerDir = join(cluster.node(target).dir, "ledger");
  const keptDir = join(ctx.dir, `wiped-${ctx.round}-node${target}-ledger`);
  await cluster.stop(target);
  renameSync(ledgerDir, keptDir); // kept for the post-mortem, and to put back if the node refuses
  mkdirSync(ledgerDir);
  book.faultInjected("wiped-node", ctx.round, target);
  try {
    await cluster.restart(target);
    return { node: target, detail: `ledger wiped (kept in ${keptDir}); node restarted (it must catch up)` };
  } catch (e) {
    const reason = cluster.logGrep(target, /error|refus|ledger/i, 1)[0]?.slice(0, 300) ?? "no message";
    rmSync(ledgerDir, { recursive: true, force: true });
    renameSync(keptDir, ledgerDir);
    await cluster.restart(target);
    return { node: target, detail: `ledger wiped; node REFUSED to start (${reason}); ledger put back and node restarted` };
  }
}
