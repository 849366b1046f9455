// Public face of the consensus simulator: run seeded schedules and report the first violation.
import { Simulation, type SimulationOptions, type SimulationResult } from "./simulation.js";

export { Simulation, describe, type SimulationOptions, type SimulationResult } from "./simulation.js";
export { SafetyChecker, SafetyViolation, identity } from "./checker.js";
export { Prng } from "./prng.js";
export { TraceRecorder } from "./trace.js";

export function runSeed(options: SimulationOptions): SimulationResult {
  return new Simulation(options).run();
}

export interface SeedRange {
  readonly start: number;
  readonly count: number;
  readonly nodes: number;
  readonly steps: number;
  readonly unsafe?: SimulationOptions["unsafe"];
  /** Called every so often with seeds done, so a CLI can print progress. */
  readonly onProgress?: (done: number) => void;
}

/** Runs seeds in order; stops at the first failing one. */
export function runSeeds(range: SeedRange): { runs: number; failure?: SimulationResult; committed: number; elections: number } {
  let committed = 0;
  let elections = 0;
  for (let i = 0; i < range.count; i++) {
    const result = runSeed({ seed: range.start + i, nodes: range.nodes, steps: range.steps, ...(range.unsafe ? { unsafe: range.unsafe } : {}) });
    committed += result.stats.committed;
    elections += result.stats.elections;
    if (!result.ok) return { runs: i + 1, failure: result, committed, elections };
    if (range.onProgress && (i + 1) % 500 === 0) range.onProgress(i + 1);
  }
  return { runs: range.count, committed, elections };
}
