// Errors the KV layer raises to its callers. A conflict is expected under concurrency:
// the caller (the node) re-executes the handler in a fresh transaction.

import { CocoError } from "../util/errors.js";

export class ConflictError extends CocoError {
  constructor(message: string) {
    super("TransactionConflict", `${message}; re-execute the transaction`, 409);
    this.name = "ConflictError";
  }
}
