// Who is at the other end of a channel: a node id is the hex SHA-256 of the SPKI DER of the key
// in its certificate, and a node certificate counts only if the service certificate issued it.
// Also the TLS settings both ends share (TLS 1.3 only, mutual authentication).
import type { ConnectionOptions, PeerCertificate, TlsOptions } from "node:tls";
import { isCertificateIssuedBy, nodeIdFromPublicKey } from "../crypto/index.js";
import { CocoError } from "../util/index.js";

export interface ChannelIdentity {
  /** This node's id: hex SHA-256 of the SPKI DER of its public key. */
  nodeId: string;
  /** PEM private key matching `certPem`. */
  privateKeyPem: string;
  /** This node's certificate, issued by the service certificate. */
  certPem: string;
  /** The service certificate: the only issuer accepted for peers' certificates. */
  serviceCertPem: string;
}

/** The node id a DER certificate names (through its public key). */
export function nodeIdFromCertificateDer(der: Uint8Array): string {
  const base64 = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString("base64");
  const lines = base64.match(/.{1,64}/g) ?? [];
  return nodeIdFromPublicKey(`-----BEGIN CERTIFICATE-----\n${lines.join("\n")}\n-----END CERTIFICATE-----\n`);
}

/** Throws a CocoError explaining what to fix when the identity cannot work on a channel. */
export function checkChannelIdentity(identity: ChannelIdentity): void {
  let certNodeId: string;
  try {
    certNodeId = nodeIdFromPublicKey(identity.certPem);
  } catch (cause) {
    throw new CocoError("InvalidInput", "Channel identity: certPem is not a valid PEM certificate.", 400, { cause });
  }
  if (certNodeId !== identity.nodeId) {
    throw new CocoError(
      "InvalidInput",
      `Channel identity: nodeId ${identity.nodeId} does not match the key in certPem (node id ${certNodeId}).`,
      400,
    );
  }
  if (!isCertificateIssuedBy(identity.certPem, identity.serviceCertPem)) {
    throw new CocoError(
      "InvalidInput",
      "Channel identity: certPem was not issued by serviceCertPem; peers would refuse this node. Use the node certificate the service endorsed.",
      400,
    );
  }
}

const TLS_VERSIONS = { minVersion: "TLSv1.3", maxVersion: "TLSv1.3" } as const;

/** Acceptor side: present our certificate, demand one issued by the service. */
export function serverTlsOptions(identity: ChannelIdentity, handshakeTimeoutMs: number): TlsOptions {
  return {
    ...TLS_VERSIONS,
    key: identity.privateKeyPem,
    cert: identity.certPem,
    ca: identity.serviceCertPem,
    requestCert: true,
    rejectUnauthorized: true,
    handshakeTimeout: handshakeTimeoutMs,
  };
}

/** Shared material for outbound connections (the secure context is built once, not per dial). */
export function clientTlsBaseOptions(identity: ChannelIdentity): Pick<ConnectionOptions, "key" | "cert" | "ca" | "minVersion" | "maxVersion"> {
  return { ...TLS_VERSIONS, key: identity.privateKeyPem, cert: identity.certPem, ca: identity.serviceCertPem };
}

/**
 * Replaces the hostname check: the server must hold the key of the node we meant to reach.
 * Called by node:tls after the chain was verified against the service certificate.
 */
export function expectNodeId(expectedNodeId: string): (host: string, cert: PeerCertificate) => Error | undefined {
  return (_host, cert) => {
    let actual: string;
    try {
      actual = nodeIdFromCertificateDer(cert.raw);
    } catch {
      return new CocoError("ChannelPeerRefused", "The server's certificate has no readable public key.", 403);
    }
    if (actual === expectedNodeId) return undefined;
    return new CocoError(
      "ChannelPeerRefused",
      `The server is node ${actual}, not the expected node ${expectedNodeId}; check the peer address.`,
      403,
    );
  };
}
