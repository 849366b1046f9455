// Public face of the consensus layer: Raft with CCF's rules as a pure state machine.
export { RaftNode, type Proposed } from "./raft.js";
export { transactionStatus, type StatusLog } from "./status.js";
export { ConsensusError, ConsensusInvariantError } from "./errors.js";
export { LogPrefixBuilder, type TxId, type LogPrefix, type LogWindow } from "./log.js";
export type * from "./types.js";
