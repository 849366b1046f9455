// The node's start configuration, in the shape of CCF's `cchost` JSON config wherever CCF has
// an equivalent (network.rpc_interfaces, node_certificate, command.type/start, ledger,
// ledger_signatures), with Coco's own settings under `coco`. Validation names the field at
// fault so that an operator can fix the file at once.
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { CocoError } from "../util/index.js";

export type Durability = "fsync" | "none";

export interface RpcInterfaceConfig {
  bind_address: string;
  published_address?: string;
  max_open_sessions_hard?: number;
  http_configuration?: { max_body_size?: number | string };
}

export interface NodeConfigFile {
  enclave?: { platform?: string; type?: string };
  network: {
    rpc_interfaces: Record<string, RpcInterfaceConfig>;
    node_to_node_interface?: { bind_address: string; published_address?: string };
  };
  node_certificate?: { subject_name?: string; subject_alt_names?: string[] };
  command: {
    type: "Start" | "Join" | "Recover";
    service_certificate_file?: string;
    join?: { target_rpc_address: string; retry_timeout?: string | number };
    /** Disaster recovery (CCF's command.recover): the service whose ledger is in ledger.directory. */
    recover?: { previous_service_identity_file?: string };
    start?: {
      members: { certificate_file: string; encryption_public_key_file?: string; data_json_file?: string }[];
      constitution_files?: string[];
      service_configuration?: { recovery_threshold?: number };
    };
  };
  ledger?: { directory?: string; chunk_size?: number | string };
  snapshots?: { directory?: string };
  ledger_signatures?: { tx_count?: number; delay?: string | number };
  logging?: { level?: string; file?: string };
  coco?: {
    workspace?: string;
    durability?: Durability;
    pending_transactions_max?: number;
    /**
     * The built-in EVM app (Ethereum JSON-RPC at /app/evm): `{}` installs it, absent = not
     * installed. Its chain id and genesis allocation are set by governance (set_evm_genesis).
     */
    evm?: Record<string, never>;
    /** Per-call limits of the sandboxed JavaScript runtime (constitution, ballots). */
    js_time_limit_ms?: number;
    js_memory_limit_mib?: number;
    /** Consensus timing: a primary is presumed dead after election_timeout of silence. */
    consensus?: { tick?: string | number; election_timeout?: string | number; heartbeat?: string | number };
    /** Requests a backup forwards to the primary: how long it waits for an answer, how many it holds. */
    forwarding?: { timeout?: string | number; pending_requests_max?: number };
    /** Virtual platform only: the host data this node reports (hex; default: SHA-256 of ""). */
    virtual_host_data?: string;
    /** Attestation format this node claims; anything but "Insecure_Virtual" cannot be produced here (tests use it). */
    attestation_format?: string;
  };
}

export interface ResolvedConfig {
  configDirectory: string;
  workspace: string;
  rpc: { name: string; host: string; port: number; bodyBytesMax: number; connectionsMax: number };
  nodeCertificate: { subjectName: string; ipAddresses: string[]; dnsNames: string[] };
  command: NodeConfigFile["command"]["type"];
  serviceCertificateFile: string;
  /** Node-to-node channel address (needed by every node of a multi-node service). */
  nodeToNode: { host: string; port: number; publishedAddress?: string } | undefined;
  join: { targetHost: string; targetPort: number; retryMs: number } | undefined;
  /** Recover only: the certificate of the service whose ledger this node recovers. */
  recover: { previousServiceIdentityFile: string } | undefined;
  consensus: { tickMs: number; electionTimeoutMs: number; heartbeatMs: number };
  /** Absent fields take the forwarder's defaults (FORWARDING_DEFAULTS in forwarding.ts). */
  forwarding: { responseTimeoutMs?: number; pendingRequestsMax?: number };
  virtualHostData: string;
  attestationFormat: string;
  genesis: {
    members: { certificateFile: string; encryptionPublicKeyFile?: string; dataJsonFile?: string }[];
    constitutionFiles: string[];
    recoveryThreshold?: number;
  };
  jsTimeLimitMs: number;
  jsMemoryLimitMiB: number;
  /** Whether the EVM app is installed (`coco.evm` present). */
  evm: Record<string, never> | undefined;
  ledgerDirectory: string;
  ledgerChunkBytes: number;
  signatureTxCount: number;
  signatureDelayMs: number;
  durability: Durability;
  pendingTransactionsMax: number;
  logLevel: string;
  logFile: string | undefined;
}

function invalid(field: string, message: string): CocoError {
  return new CocoError("InvalidConfiguration", `Invalid configuration: ${field}: ${message}`, 400);
}

/** "1MB", "5MiB", "512KB", or a number of bytes. */
export function parseSize(value: number | string, field: string): number {
  if (typeof value === "number" && Number.isInteger(value) && value > 0) return value;
  const match = typeof value === "string" ? /^(\d+)\s*(B|KB|KiB|MB|MiB|GB|GiB)?$/i.exec(value.trim()) : null;
  if (!match) throw invalid(field, `expected a size such as 1048576, "1MB" or "5MiB", got ${JSON.stringify(value)}`);
  const units: Record<string, number> = { b: 1, kb: 1024, kib: 1024, mb: 1024 ** 2, mib: 1024 ** 2, gb: 1024 ** 3, gib: 1024 ** 3 };
  return Number(match[1]) * units[(match[2] ?? "b").toLowerCase()]!;
}

/** "1000ms", "1s", "25ms", or a number of milliseconds. */
export function parseDuration(value: number | string, field: string): number {
  if (typeof value === "number" && value > 0) return value;
  const match = typeof value === "string" ? /^(\d+(?:\.\d+)?)\s*(ms|s|min)?$/.exec(value.trim()) : null;
  if (!match) throw invalid(field, `expected a duration such as "25ms" or "1s", got ${JSON.stringify(value)}`);
  const units: Record<string, number> = { ms: 1, s: 1000, min: 60_000 };
  return Number(match[1]) * units[match[2] ?? "ms"]!;
}

export function parseAddress(address: string, field = "address"): { host: string; port: number } {
  const match = /^(.+):(\d{1,5})$/.exec(address);
  if (!match) throw invalid(field, `expected "host:port", got ${JSON.stringify(address)}`);
  const port = Number(match[2]);
  if (port > 65535) throw invalid(field, `port ${port} is out of range`);
  return { host: match[1]!.replace(/^\[(.*)\]$/, "$1"), port };
}

/** Defaults, with the reason for each: see docs/configuration.md. */
export const DEFAULTS = {
  // CCF signs every 5000 tx or 1000 ms, so a client waits up to a second for Committed.
  // Coco signs every 25 ms (or 5000 tx): p99 commit latency stays well under 50 ms, while
  // a P-384 signature (~1.6 ms) every 25 ms costs under 7% of one core at full load.
  signatureTxCount: 5000,
  signatureDelayMs: 25,
  bodyBytesMax: 1024 * 1024,
  connectionsMax: 1000,
  ledgerChunkBytes: 5 * 1024 * 1024,
  pendingTransactionsMax: 200_000,
  jsTimeLimitMs: 1000,
  jsMemoryLimitMiB: 100,
} as const;

export function resolveConfig(file: NodeConfigFile, configDirectory: string): ResolvedConfig {
  const at = (p: string) => resolve(configDirectory, p);
  if (!file || typeof file !== "object") throw invalid("(root)", "expected a JSON object");
  const interfaces = file.network?.rpc_interfaces;
  if (!interfaces || Object.keys(interfaces).length === 0) {
    throw invalid("network.rpc_interfaces", "at least one interface with a bind_address is required");
  }
  const [name, rpc] = Object.entries(interfaces)[0]!;
  if (typeof rpc.bind_address !== "string") throw invalid(`network.rpc_interfaces.${name}.bind_address`, "missing");
  const { host, port } = parseAddress(rpc.bind_address, `network.rpc_interfaces.${name}.bind_address`);
  const type = file.command?.type;
  if (type !== "Start" && type !== "Join" && type !== "Recover") {
    throw invalid("command.type", `expected "Start", "Join" or "Recover", got ${JSON.stringify(type)}`);
  }
  let recover: ResolvedConfig["recover"];
  if (type === "Recover") {
    const previous = file.command.recover?.previous_service_identity_file;
    if (typeof previous !== "string") {
      throw invalid("command.recover.previous_service_identity_file", "a recovering node needs the certificate of the service whose ledger it recovers");
    }
    recover = { previousServiceIdentityFile: at(previous) };
  }
  const members = file.command.start?.members ?? [];
  if (type === "Start" && members.length === 0) throw invalid("command.start.members", "a new service needs at least one member certificate");
  let join: ResolvedConfig["join"];
  if (type === "Join") {
    const target = file.command.join?.target_rpc_address;
    if (typeof target !== "string") throw invalid("command.join.target_rpc_address", "a joining node needs the address of a node of the service");
    const { host: targetHost, port: targetPort } = parseAddress(target, "command.join.target_rpc_address");
    const retryMs = file.command.join?.retry_timeout !== undefined ? parseDuration(file.command.join.retry_timeout, "command.join.retry_timeout") : 1000;
    join = { targetHost, targetPort, retryMs };
    if (file.command.service_certificate_file === undefined) {
      throw invalid("command.service_certificate_file", "a joining node needs the certificate of the service it joins");
    }
  }
  const n2n = file.network?.node_to_node_interface?.bind_address;
  if (type === "Join" && n2n === undefined) throw invalid("network.node_to_node_interface.bind_address", "a joining node needs a node-to-node address");
  const n2nPublished = file.network?.node_to_node_interface?.published_address;
  if (n2nPublished !== undefined) parseAddress(n2nPublished, "network.node_to_node_interface.published_address");
  const nodeToNode = n2n !== undefined
    ? { ...parseAddress(n2n, "network.node_to_node_interface.bind_address"), ...(n2nPublished !== undefined ? { publishedAddress: n2nPublished } : {}) }
    : undefined;
  const c = file.coco?.consensus ?? {};
  const consensus = {
    tickMs: c.tick !== undefined ? parseDuration(c.tick, "coco.consensus.tick") : 20,
    electionTimeoutMs: c.election_timeout !== undefined ? parseDuration(c.election_timeout, "coco.consensus.election_timeout") : 1000,
    heartbeatMs: c.heartbeat !== undefined ? parseDuration(c.heartbeat, "coco.consensus.heartbeat") : 100,
  };
  if (consensus.heartbeatMs < consensus.tickMs || consensus.electionTimeoutMs < 2 * consensus.heartbeatMs) {
    throw invalid("coco.consensus", "expected tick <= heartbeat and election_timeout >= 2 × heartbeat");
  }
  const f = file.coco?.forwarding ?? {};
  if (f.pending_requests_max !== undefined && !(Number.isInteger(f.pending_requests_max) && f.pending_requests_max > 0)) {
    throw invalid("coco.forwarding.pending_requests_max", `expected a positive integer, got ${JSON.stringify(f.pending_requests_max)}`);
  }
  const forwarding = {
    ...(f.timeout !== undefined ? { responseTimeoutMs: parseDuration(f.timeout, "coco.forwarding.timeout") } : {}),
    ...(f.pending_requests_max !== undefined ? { pendingRequestsMax: f.pending_requests_max } : {}),
  };
  const virtualHostData = file.coco?.virtual_host_data ?? "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
  if (!/^[0-9a-f]{64}$/.test(virtualHostData)) throw invalid("coco.virtual_host_data", "expected 64 lowercase hex characters (a SHA-256)");
  const sans = file.node_certificate?.subject_alt_names ?? ["iPAddress:127.0.0.1", "dNSName:localhost"];
  const ipAddresses: string[] = [];
  const dnsNames: string[] = [];
  for (const san of sans) {
    if (san.startsWith("iPAddress:")) ipAddresses.push(san.slice("iPAddress:".length));
    else if (san.startsWith("dNSName:")) dnsNames.push(san.slice("dNSName:".length));
    else throw invalid("node_certificate.subject_alt_names", `"${san}" must start with "iPAddress:" or "dNSName:"`);
  }
  const logLevel = file.logging?.level ?? "info";
  if (!["fatal", "error", "warn", "info", "debug", "trace", "silent"].includes(logLevel)) {
    throw invalid("logging.level", `expected one of fatal, error, warn, info, debug, trace, silent; got ${JSON.stringify(logLevel)}`);
  }
  const durability = file.coco?.durability ?? "fsync";
  if (durability !== "fsync" && durability !== "none") throw invalid("coco.durability", `expected "fsync" or "none"`);
  const workspace = at(file.coco?.workspace ?? ".");
  const txCount = file.ledger_signatures?.tx_count ?? DEFAULTS.signatureTxCount;
  if (!Number.isInteger(txCount) || txCount < 1) throw invalid("ledger_signatures.tx_count", "expected a positive integer");
  return {
    configDirectory,
    workspace,
    rpc: {
      name,
      host,
      port,
      bodyBytesMax: rpc.http_configuration?.max_body_size !== undefined
        ? parseSize(rpc.http_configuration.max_body_size, `network.rpc_interfaces.${name}.http_configuration.max_body_size`)
        : DEFAULTS.bodyBytesMax,
      connectionsMax: rpc.max_open_sessions_hard ?? DEFAULTS.connectionsMax,
    },
    nodeCertificate: { subjectName: file.node_certificate?.subject_name ?? "CN=CCF Node", ipAddresses, dnsNames },
    command: type,
    serviceCertificateFile: at(file.command.service_certificate_file ?? "service_cert.pem"),
    nodeToNode,
    join,
    recover,
    consensus,
    forwarding,
    virtualHostData,
    attestationFormat: file.coco?.attestation_format ?? "Insecure_Virtual",
    genesis: {
      members: members.map((m, i) => {
        if (typeof m.certificate_file !== "string") throw invalid(`command.start.members[${i}].certificate_file`, "missing");
        return {
          certificateFile: at(m.certificate_file),
          ...(m.encryption_public_key_file ? { encryptionPublicKeyFile: at(m.encryption_public_key_file) } : {}),
          ...(m.data_json_file ? { dataJsonFile: at(m.data_json_file) } : {}),
        };
      }),
      constitutionFiles: (file.command.start?.constitution_files ?? []).map((f) => at(f)),
      ...(file.command.start?.service_configuration?.recovery_threshold !== undefined
        ? { recoveryThreshold: file.command.start.service_configuration.recovery_threshold } : {}),
    },
    evm: resolveEvm(file.coco?.evm),
    jsTimeLimitMs: file.coco?.js_time_limit_ms ?? DEFAULTS.jsTimeLimitMs,
    jsMemoryLimitMiB: file.coco?.js_memory_limit_mib ?? DEFAULTS.jsMemoryLimitMiB,
    ledgerDirectory: at(file.ledger?.directory ?? "ledger"),
    ledgerChunkBytes: file.ledger?.chunk_size !== undefined ? parseSize(file.ledger.chunk_size, "ledger.chunk_size") : DEFAULTS.ledgerChunkBytes,
    signatureTxCount: txCount,
    signatureDelayMs: file.ledger_signatures?.delay !== undefined
      ? parseDuration(file.ledger_signatures.delay, "ledger_signatures.delay")
      : DEFAULTS.signatureDelayMs,
    durability,
    pendingTransactionsMax: file.coco?.pending_transactions_max ?? DEFAULTS.pendingTransactionsMax,
    logLevel,
    logFile: file.logging?.file !== undefined ? at(file.logging.file) : undefined,
  };
}

function resolveEvm(evm: unknown): ResolvedConfig["evm"] {
  if (evm === undefined) return undefined;
  if (typeof evm !== "object" || evm === null || Array.isArray(evm)) throw invalid("coco.evm", "expected an object ({} installs the EVM app)");
  for (const field of Object.keys(evm)) {
    if (field === "chain_id" || field === "genesis") {
      throw invalid(`coco.evm.${field}`, "the chain id and genesis allocation are set by governance now: remove them here and have "
        + "the consortium accept a set_evm_genesis proposal (docs/evm.md)");
    }
    throw invalid(`coco.evm.${field}`, "unknown setting ({} installs the EVM app)");
  }
  return {};
}

export function loadConfigFile(path: string): ResolvedConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new CocoError("InvalidConfiguration", `Cannot read configuration file '${path}': ${(error as Error).message}`, 400);
  }
  let parsed: NodeConfigFile;
  try {
    parsed = JSON.parse(text) as NodeConfigFile;
  } catch (error) {
    throw new CocoError("InvalidConfiguration", `Configuration file '${path}' is not valid JSON: ${(error as Error).message}`, 400);
  }
  return resolveConfig(parsed, dirname(resolve(path)));
}
