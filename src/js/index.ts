// Public face of the JS runtime: the sandbox that runs the constitution, ballots and JS apps.
export { JsRuntime, JS_MEMORY_LIMIT_MIB_DEFAULT, JS_TIME_LIMIT_MS_DEFAULT, resolveModuleName } from "./runtime.js";
export { applyWriteBatch } from "./host-functions.js";
export { checkConstitutionSource, type ConstitutionCheckLimits } from "./constitution-check.js";
export type { HistoricalState, JsBatchContext, JsBatchOutcome, JsCallContext, JsModuleSource, JsRuntimeOptions, KvAccess, NodeHooks } from "./types.js";
