// `ccf.gov.validateConstitution` (CCF 6.0 LTS, called by CCF's default constitution in
// `set_constitution`'s validate): does a proposed constitution parse as an ES module that
// exports `validate`, `resolve` and `apply` with the arities CCF expects? The module is
// evaluated in a fresh, bare isolate with its own memory and time limits, so a proposal whose
// module scope loops or allocates without end cannot stall the node, and nothing it does at
// module scope touches the caller's globals (as CCF evaluates it in a separate context).
import ivm from "isolated-vm";

export interface ConstitutionCheckLimits {
  timeLimitMs: number;
  memoryLimitMiB: number;
}

/** What CCF requires of each export: required arguments, then optional ones. */
const EXPORTS: ReadonlyArray<{ name: string; required: readonly string[]; optional: readonly string[] }> = [
  { name: "apply", required: ["proposal", "proposerId"], optional: [] },
  { name: "resolve", required: ["proposal", "proposerId", "votes"], optional: ["proposalId"] },
  { name: "validate", required: ["input"], optional: [] },
];

const SOURCE_NAME = "proposed constitution";
/** isolated-vm's smallest heap. */
const CHECK_MEMORY_LIMIT_MIB_MIN = 8;

const plural = (n: number) => (n === 1 ? "arg" : "args");

/**
 * Returns true when `source` is an acceptable constitution, otherwise throws a TypeError whose
 * message names what is wrong (the export, its arity, or the parse or evaluation error).
 */
export function checkConstitutionSource(source: string, limits: ConstitutionCheckLimits): true {
  if (source.length === 0) throw new TypeError("constitution is empty");
  const isolate = new ivm.Isolate({ memoryLimit: Math.max(CHECK_MEMORY_LIMIT_MIB_MIN, limits.memoryLimitMiB) });
  try {
    let shapes: Record<string, { type: string; length: number }>;
    try {
      const context = isolate.createContextSync();
      // Made before the module runs, so its module scope cannot replace what reads its exports.
      const describeExports = context.evalSync(
        `(() => { const stringify = JSON.stringify; return (exports, names) => { const out = {};
           for (const n of names) { const v = exports[n]; out[n] = { type: typeof v, length: typeof v === "function" ? v.length : 0 }; }
           return stringify(out); }; })()`,
        { reference: true },
      ) as ivm.Reference<(exports: unknown, names: string[]) => string>;
      const module = isolate.compileModuleSync(source, { filename: SOURCE_NAME });
      module.instantiateSync(context, (specifier) => {
        throw new Error(`${SOURCE_NAME} may not import modules (it imports '${specifier}')`);
      });
      module.evaluateSync({ timeout: limits.timeLimitMs });
      const names = new ivm.ExternalCopy(EXPORTS.map((e) => e.name)).copyInto();
      shapes = JSON.parse(describeExports.applySync(undefined, [module.namespace.derefInto(), names], { timeout: limits.timeLimitMs }) as string) as Record<string, { type: string; length: number }>;
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new TypeError(`${SOURCE_NAME} cannot be loaded as a module: ${reason}`);
    }
    for (const { name, required, optional } of EXPORTS) {
      const shape = shapes[name];
      if (shape === undefined || shape.type !== "function") {
        throw new TypeError(`${SOURCE_NAME} does not export a function named ${name}`);
      }
      const length = shape.length;
      const min = required.length;
      const max = min + optional.length;
      if (length < min || length > max) {
        const actual = `${SOURCE_NAME} exports function ${name} with ${length} ${plural(length)}`;
        const expected = optional.length === 0
          ? `expected ${min} ${plural(min)} (${required.join(", ")})`
          : `expected between ${min} and ${max} args (${required.join(", ")}[, ${optional.join(", ")}])`;
        throw new TypeError(`${actual}, ${expected}`);
      }
    }
    return true;
  } finally {
    // An isolate killed by its memory limit is already disposed.
    if (!isolate.isDisposed) isolate.dispose();
  }
}
