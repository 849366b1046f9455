// Refusals of attestation evidence. Each names the one check that failed, so an operator (or
// the e2e test) can tell "wrong code" from "wrong host" from "evidence for another key".
import { CocoError } from "../util/errors.js";

/** Every check an evidence can fail, in the words of docs/attestation.md. */
export type AttestationCheck =
  | "format" // not parseable: wrong size, wrong version, unknown processor
  | "endorsements" // the certificate bundle is not a VCEK/VLEK, ASK/ASVK, ARK chain
  | "root" // the chain ends at a key that is not AMD's pinned root for the processor family
  | "chain" // a certificate in the chain is not signed by the next one, or is out of its validity
  | "signature" // the report is not signed by the VCEK/VLEK
  | "signing_key" // the report names a signing key the endorsements are not
  | "policy" // debug, migration agent, host-generated report, masked chip key
  | "tcb" // the reported TCB does not match the endorsed one, or is below the governed minimum
  | "chip_id" // the report's chip id is not the one the VCEK was issued for
  | "measurement" // the measurement is not in the governance allow list
  | "host_data" // the host data is not in the governance allow list
  | "uvm_endorsements" // UVM endorsements were given but cannot be accepted
  | "report_data" // the report does not bind the key the node presents
  | "quote"; // an Intel DCAP (TDX/SGX) quote failed verification

export class AttestationError extends CocoError {
  readonly check: AttestationCheck;

  constructor(check: AttestationCheck, message: string, status = 403) {
    super("InvalidAttestation", `Attestation refused (${check}): ${message}`, status);
    this.name = "AttestationError";
    this.check = check;
  }
}

export function refuse(check: AttestationCheck, message: string): AttestationError {
  return new AttestationError(check, message);
}
