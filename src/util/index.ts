export * from "./errors.js";
export * from "./txid.js";
