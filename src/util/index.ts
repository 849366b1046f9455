export * from "./errors.js";
export * from "./txid.js";
export * from "./net.js";
export * from "./admission.js";
export * from "./workers.js";
export * from "./concurrency.js";
