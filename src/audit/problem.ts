// What an offline audit reports when a ledger is not what it should be: one problem, located by
// file, byte offset and seqno, so that an operator can find and restore the damaged chunk.
import { CocoError } from "../util/errors.js";

export interface AuditLocation {
  /** Path of the chunk file. */
  file?: string;
  /** Byte offset in the file: the start of the frame (or 0 for a file-level problem). */
  offset?: number;
  /** The seqno expected or found at that place. */
  seqno?: number;
}

export interface AuditProblemInfo extends AuditLocation {
  /** Stable code, e.g. "MerkleRootMismatch", "CrcMismatch". */
  code: string;
  message: string;
}

/** Thrown by the audit walkers; carries a structured location besides the message. */
export class AuditProblem extends CocoError {
  readonly location: AuditLocation;

  constructor(code: string, message: string, location: AuditLocation) {
    super(code, message, 500);
    this.location = location;
  }

  toJSON(): AuditProblemInfo {
    return { code: this.code, message: this.message, ...this.location };
  }
}

/** "file F, byte offset O, seqno S: " for messages. */
export function describeLocation(location: AuditLocation): string {
  const parts: string[] = [];
  if (location.file !== undefined) parts.push(`file ${location.file}`);
  if (location.offset !== undefined) parts.push(`byte offset ${location.offset}`);
  if (location.seqno !== undefined) parts.push(`seqno ${location.seqno}`);
  return parts.join(", ");
}
