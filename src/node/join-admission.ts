// Admission control for POST /node/join, which anyone holding any key pair may call and whose
// success writes a Pending node to the public ledger. Cheap checks come first (sizes, then
// the certificate's shape), then a token bucket per address and one for everyone, and only
// then the expensive ones (signature, CSR, attestation) and the ledger write (join.ts).
import { X509Certificate } from "node:crypto";
import { CocoError, RateLimiter, type TokenBucketOptions } from "../util/index.js";
import { ErrorCodes } from "../rpc/index.js";

export interface JoinLimits {
  /** Largest join request body (JSON), checked before it is parsed. */
  bodyBytesMax: number;
  /** Largest node_data, as JSON: it is stored in the public ledger as it is. */
  nodeDataBytesMax: number;
  /** Largest TLS client certificate (DER) a joining node may present. */
  certificateBytesMax: number;
  /** Largest quote_info (format, quote, endorsements), as JSON. */
  quoteBytesMax: number;
  /** Join requests from nodes the service does not know yet, per client address. */
  perAddress: TokenBucketOptions;
  /** The same, all addresses together: what a flood from many addresses gets. */
  global: TokenBucketOptions;
  /** Addresses whose bucket is remembered (bounded memory under a flood from many addresses). */
  addressesMax: number;
}

/** Defaults: see docs/configuration.md ("Admission control"). */
export const JOIN_LIMITS_DEFAULTS: JoinLimits = {
  // A real join body is ~3 KiB with virtual evidence, ~15 KiB with SEV-SNP evidence and endorsements.
  bodyBytesMax: 64 * 1024,
  nodeDataBytesMax: 4 * 1024,
  certificateBytesMax: 4 * 1024,
  quoteBytesMax: 48 * 1024,
  // A node joins once; joins from a new address come in bursts of a few (an operator adding nodes).
  perAddress: { refillPerSecond: 0.5, capacity: 5 },
  global: { refillPerSecond: 2, capacity: 20 },
  addressesMax: 4096,
};

/** The curve of the node identity keys Coco creates and endorses (crypto/keys.ts). */
const NODE_KEY_CURVE = "secp384r1";

function tooLarge(what: string, bytes: number, max: number, setting: string): CocoError {
  return new CocoError(ErrorCodes.RequestBodyTooLarge,
    `The join request's ${what} is ${bytes} bytes; at most ${max} are accepted (${setting}).`, 413);
}

export class JoinAdmission {
  private readonly limiter: RateLimiter;

  constructor(readonly limits: JoinLimits, private readonly nowMs: () => number = Date.now) {
    this.limiter = new RateLimiter({ perAddress: limits.perAddress, global: limits.global, addressesMax: limits.addressesMax }, nowMs());
  }

  checkBodySize(bytes: number): void {
    if (bytes > this.limits.bodyBytesMax) throw tooLarge("body", bytes, this.limits.bodyBytesMax, "coco.admission.join.body_size_max");
  }

  /**
   * The caller's TLS certificate must be small, well formed, and certify an EC P-384 key (the
   * only kind the service endorses for nodes). Returns it parsed.
   */
  checkCertificate(der: Buffer): X509Certificate {
    if (der.length > this.limits.certificateBytesMax) {
      throw tooLarge("TLS client certificate", der.length, this.limits.certificateBytesMax, "coco.admission.join.certificate_size_max");
    }
    return checkNodeCertificateShape(der);
  }

  /** Charges one new join to `address`; 429 with Retry-After when its bucket or the global one is empty. */
  admitNewNode(address: string): void {
    const decision = this.limiter.take(address, this.nowMs());
    if (decision.allowed) return;
    const who = decision.scope === "address" ? `from ${address}` : "from all addresses together";
    throw new CocoError(ErrorCodes.TooManyRequests,
      `Too many join requests ${who}; retry after ${decision.retryAfterSeconds} s (coco.admission.join).`, 429,
      { headers: { "retry-after": String(decision.retryAfterSeconds) } });
  }

  checkBodyFields(nodeData: unknown, quoteInfo: unknown): void {
    const nodeDataBytes = Buffer.byteLength(JSON.stringify(nodeData ?? null));
    if (nodeDataBytes > this.limits.nodeDataBytesMax) {
      throw tooLarge("node_data", nodeDataBytes, this.limits.nodeDataBytesMax, "coco.admission.join.node_data_size_max");
    }
    const quoteBytes = Buffer.byteLength(JSON.stringify(quoteInfo ?? null));
    if (quoteBytes > this.limits.quoteBytesMax) {
      throw tooLarge("quote_info", quoteBytes, this.limits.quoteBytesMax, "coco.admission.join.quote_size_max");
    }
  }
}

/** A well-formed X.509 certificate for an EC P-384 key; anything else is a 400 before any other work. */
export function checkNodeCertificateShape(der: Buffer): X509Certificate {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(der);
  } catch (error) {
    throw new CocoError("InvalidInput", `The joining node's TLS certificate is not a well-formed X.509 certificate: ${(error as Error).message}.`, 400);
  }
  const key = cert.publicKey;
  const curve = key.asymmetricKeyType === "ec" ? key.asymmetricKeyDetails?.namedCurve : undefined;
  if (curve !== NODE_KEY_CURVE) {
    const kind = key.asymmetricKeyType === "ec" ? `EC ${String(curve)}` : String(key.asymmetricKeyType);
    throw new CocoError("InvalidInput", `The joining node's TLS certificate certifies a ${kind} key; node keys must be EC P-384 (secp384r1).`, 400);
  }
  return cert;
}
