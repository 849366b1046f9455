// Certificates for the echo server: an ECDSA P-384 self-signed certificate made with the
// openssl CLI, the same key type the node uses, so both servers pay the same TLS costs.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";

export interface CertificatePair {
  readonly certPath: string;
  readonly keyPath: string;
  readonly cert: Buffer;
  readonly key: Buffer;
}

export function makeP384Certificate(dir: string, name: string): CertificatePair {
  const certPath = join(dir, `${name}_cert.pem`);
  const keyPath = join(dir, `${name}_privk.pem`);
  try {
    execFileSync(
      "openssl",
      [
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384", "-nodes",
        "-keyout", keyPath, "-out", certPath, "-days", "2", "-subj", `/CN=${name}`,
        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-sha384",
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
  } catch (error) {
    throw new Error(`Could not create a P-384 certificate with the openssl CLI (is openssl installed?): ${(error as Error).message}`);
  }
  return { certPath, keyPath, cert: readFileSync(certPath), key: readFileSync(keyPath) };
}
