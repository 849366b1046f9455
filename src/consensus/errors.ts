// Errors the consensus layer hands back to its shell. Proposals are refused with a value
// (not thrown) because "not the primary" is ordinary control flow for the shell.

export type ConsensusErrorCode =
  | "NotPrimary"
  | "TooManyUncommitted"
  | "ReconfigurationPending"
  | "ReconfigurationNotReady"
  | "InvalidConfiguration";

export class ConsensusError extends Error {
  override readonly name = "ConsensusError";
  constructor(
    readonly code: ConsensusErrorCode,
    message: string,
    /** The primary this node knows of, so the shell can forward the request. */
    readonly leaderId?: string,
  ) {
    super(message);
  }
}

/** An invariant broke: the node's state is corrupt and it must stop rather than limp on. */
export class ConsensusInvariantError extends Error {
  override readonly name = "ConsensusInvariantError";
}

export function invariant(condition: boolean, message: string | (() => string)): asserts condition {
  if (!condition) throw new ConsensusInvariantError(typeof message === "string" ? message : message());
}
