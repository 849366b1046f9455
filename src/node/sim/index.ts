// Public face of the shell simulator: the real node shell on simulated time, network and disks.
export { ShellSimulation, runShellSeed, type ShellSimulationOptions, type ShellSimulationResult } from "./cluster.js";
export { makeSimIdentities, type SimIdentities } from "./identities.js";
export { ShellViolation } from "./checker.js";
