// Test fixtures for channels: a service certificate, node identities it endorses, running
// NodeChannels on loopback that record what they receive and what they log.
import {
  createNodeCertificate,
  createServiceCertificate,
  generateEcP384KeyPair,
  nodeIdFromPublicKey,
  type KeyPairPem,
} from "../../../src/crypto/index.js";
import { NodeChannels, type ChannelIdentity, type ChannelOptions, type PeerAddress } from "../../../src/channels/index.js";

export interface Service {
  keys: KeyPairPem;
  certPem: string;
}

export async function createService(commonName = "CN=CCF Service"): Promise<Service> {
  const keys = generateEcP384KeyPair();
  return { keys, certPem: await createServiceCertificate(keys, { commonName }) };
}

/** A node identity endorsed by `issuer`, presented as belonging to `trusted` (normally the same service). */
export async function createNodeIdentity(issuer: Service, trusted: Service = issuer): Promise<ChannelIdentity> {
  const keys = generateEcP384KeyPair();
  const certPem = await createNodeCertificate({ nodePublicKeyPem: keys.publicKeyPem, serviceKeys: issuer.keys, serviceCertPem: issuer.certPem });
  return { nodeId: nodeIdFromPublicKey(keys.publicKeyPem), privateKeyPem: keys.privateKeyPem, certPem, serviceCertPem: trusted.certPem };
}

export interface Received {
  from: string;
  type: number;
  payload: Buffer;
}

export interface LogLine {
  level: string;
  fields: Record<string, unknown>;
  message: string;
}

export interface TestNode {
  identity: ChannelIdentity;
  channels: NodeChannels;
  address: PeerAddress;
  received: Received[];
  logs: LogLine[];
}

export const FAST_BACKOFF = { initialMs: 10, maxMs: 100 };

export async function startNode(
  identity: ChannelIdentity,
  options: Partial<Omit<ChannelOptions, "identity" | "onMessage" | "logger">> = {},
): Promise<TestNode> {
  const received: Received[] = [];
  const logs: LogLine[] = [];
  const record = (level: string) => (fields: object, message: string) => logs.push({ level, fields: fields as Record<string, unknown>, message });
  const channels = new NodeChannels({
    identity,
    listen: { host: "127.0.0.1", port: 0 },
    backoff: FAST_BACKOFF,
    ...options,
    onMessage: (from, type, payload) => received.push({ from, type, payload: Buffer.from(payload) }),
    logger: { info: record("info"), warn: record("warn"), debug: record("debug") },
  });
  const address = await channels.listen();
  return { identity, channels, address, received, logs };
}

/** Polls `condition` every few milliseconds; rejects with `what` after `timeoutMs`. */
export async function waitUntil(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function hasLog(node: TestNode, level: string, text: string, fieldValue?: string): boolean {
  return node.logs.some(
    (line) =>
      line.level === level &&
      line.message.includes(text) &&
      (fieldValue === undefined || Object.values(line.fields).some((value) => typeof value === "string" && value.includes(fieldValue))),
  );
}
