// Public face of the Merkle layer: the history tree and the pure proof helpers that
// receipt verification (here and in the client SDK) relies on.
export * from "./proof.js";
export * from "./tree.js";
export type { CcfReceipt, CcfReceiptLeafComponents } from "./receipt-format.js";
export * from "./cose-receipt.js";
