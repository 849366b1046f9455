// The node's start configuration, in the shape of CCF's `cchost` JSON config wherever CCF has
// an equivalent (network.rpc_interfaces, node_certificate, command.type/start, ledger,
// ledger_signatures), with Coco's own settings under `coco`. Validation names the field at
// fault so that an operator can fix the file at once.
import { resolveMemory, type MemoryConfigFile, type MemorySettings } from "./memory-config.js";
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { CocoError } from "../util/index.js";
import { TSM_REPORT_DIRECTORY_DEFAULT, type PlatformConfig } from "./platform.js";
import { ADMISSION_DEFAULTS, type HttpAdmissionOptions } from "../rpc/index.js";
import { CHANNEL_DEFAULTS } from "../channels/index.js";
import { JOIN_LIMITS_DEFAULTS, type JoinLimits } from "./join-admission.js";
import { resolveEvm, type EvmConfigFile, type EvmSettings } from "./evm-config.js";

export type Durability = "fsync" | "none";

export interface RpcInterfaceConfig {
  /** Where the node listens ("host:port"; "0.0.0.0:8000" for every address of the host). */
  bind_address: string;
  /** What clients and other nodes are told to dial (nodes.info, /node/network/nodes, /node/primary redirects). */
  published_address?: string;
  max_open_sessions_hard?: number;
  http_configuration?: { max_body_size?: number | string };
}

export interface NodeConfigFile {
  /** CCF's platform selection: "Virtual" (default) or "SNP" (an AMD SEV-SNP guest); Coco's own "TDX" (an Intel TDX guest). */
  enclave?: { platform?: string; type?: string };
  /** CCF's attestation section. Coco reads the endorsements from a file or directory only. */
  attestation?: {
    snp_endorsements_file?: string;
    snp_endorsements_servers?: unknown[];
    snp_security_policy_file?: string;
    snp_uvm_endorsements_file?: string;
    /** TDX (Coco's own): Intel's collateral (PCCS v4 JSON) for this node's quote. */
    tdx_collateral_file?: string;
    /** TDX (Coco's own, development without TDX hardware): a quote made beforehand, instead of configfs-tsm. */
    tdx_quote_file?: string;
  };
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
  /**
   * CCF's snapshots section: where snapshot files go and how often the primary takes one.
   * `keep_max` (Coco's): how many committed snapshots stay on disk.
   */
  snapshots?: { directory?: string; tx_count?: number; keep_max?: number };
  /** CCF's output_files: `rpc_addresses_file` gets `{ "<interface>": "host:port" }` once the node listens (port 0 resolved). */
  output_files?: { rpc_addresses_file?: string };
  ledger_signatures?: { tx_count?: number; delay?: string | number };
  logging?: {
    level?: string;
    file?: string;
    /** Coco: one JSON line per answered request (docs/operations.md); off unless `enabled`. */
    access_log?: { enabled?: boolean; file?: string };
  };
  coco?: {
    workspace?: string;
    durability?: Durability;
    pending_transactions_max?: number;
    /**
     * The built-in EVM app (Ethereum JSON-RPC at /app/evm): `{}` installs it, absent = not
     * installed. Its chain id and genesis allocation are set by governance (set_evm_genesis).
     */
    evm?: EvmConfigFile;
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
    /** SNP only: where configfs-tsm is mounted (default /sys/kernel/config/tsm/report). */
    snp_tsm_report_directory?: string;
    /** TDX only: where configfs-tsm is mounted (default /sys/kernel/config/tsm/report). */
    tdx_tsm_report_directory?: string;
    /** Governance requests: how far ccf.gov.msg.created_at may lie from this node's clock. */
    governance?: { created_at_max_age?: string | number; created_at_max_future?: string | number };
    /** Admission control on both ports and on /node/join (docs/configuration.md, "Admission control"). */
    admission?: AdmissionConfigFile;
    /** What of a long ledger stays in memory (memory-config.ts; docs/configuration.md, "Memory"). */
    memory?: MemoryConfigFile;
  };
}

export interface AdmissionConfigFile {
  tls_handshake_timeout?: string | number;
  idle_timeout?: string | number;
  connections_per_address_max?: number;
  member_connections_reserved?: number;
  node_to_node?: { tls_handshake_timeout?: string | number; connections_per_address_max?: number; connections_max?: number };
  join?: {
    body_size_max?: string | number;
    node_data_size_max?: string | number;
    certificate_size_max?: string | number;
    quote_size_max?: string | number;
    per_address_rate?: number;
    per_address_burst?: number;
    global_rate?: number;
    global_burst?: number;
  };
}

export interface ResolvedAdmission {
  /** Client port (HttpServer). */
  rpc: HttpAdmissionOptions;
  nodeToNode: { handshakeTimeoutMs: number; connectionsPerAddressMax: number; connectionsMax: number };
  join: JoinLimits;
}

export interface ResolvedConfig {
  configDirectory: string;
  workspace: string;
  /** publishedAddress: what other parties dial, when it is not the bind address (docs/deployment.md). */
  rpc: { name: string; host: string; port: number; publishedAddress?: string; bodyBytesMax: number; connectionsMax: number };
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
  platform: PlatformConfig;
  genesis: {
    members: { certificateFile: string; encryptionPublicKeyFile?: string; dataJsonFile?: string }[];
    constitutionFiles: string[];
    recoveryThreshold?: number;
  };
  jsTimeLimitMs: number;
  jsMemoryLimitMiB: number;
  /** Whether the EVM app is installed (`coco.evm` present). */
  evm: EvmSettings | undefined;
  ledgerDirectory: string;
  ledgerChunkBytes: number;
  /** Snapshot files (docs/snapshots.md): directory, transactions between snapshots, committed files kept. */
  snapshots: { directory: string; txCount: number; keepMax: number };
  signatureTxCount: number;
  signatureDelayMs: number;
  durability: Durability;
  pendingTransactionsMax: number;
  logLevel: string;
  logFile: string | undefined;
  /** Where the node writes its RPC addresses once listening (CCF's output_files.rpc_addresses_file). */
  rpcAddressesFile: string | undefined;
  /** The access log, when enabled: its own file, or (file undefined) the node log's destination. */
  accessLog: { file: string | undefined } | undefined;
  /** Seconds ccf.gov.msg.created_at may lie before / after the node's clock. */
  governance: { createdAtMaxAgeSeconds: number; createdAtMaxFutureSeconds: number };
  admission: ResolvedAdmission;
  memory: MemorySettings;
}

function resolvePlatform(file: NodeConfigFile, at: (p: string) => string): PlatformConfig {
  const platform = file.enclave?.platform ?? "Virtual";
  const attestation = file.attestation ?? {};
  if (platform === "Virtual") return { kind: "virtual" };
  if (platform === "TDX") {
    if (attestation.tdx_collateral_file === undefined) {
      throw invalid("attestation.tdx_collateral_file", "a TDX node needs Intel's collateral for its quote (PCCS v4 JSON, fetched beforehand from Intel's PCS or a PCCS)");
    }
    return {
      kind: "tdx",
      collateralPath: at(attestation.tdx_collateral_file),
      tsmReportDirectory: file.coco?.tdx_tsm_report_directory ?? TSM_REPORT_DIRECTORY_DEFAULT,
      ...(attestation.tdx_quote_file !== undefined ? { quoteFile: at(attestation.tdx_quote_file) } : {}),
    };
  }
  if (platform !== "SNP") throw invalid("enclave.platform", `expected "Virtual", "SNP" or "TDX", got ${JSON.stringify(platform)}`);
  if (attestation.snp_security_policy_file !== undefined) {
    throw invalid("attestation", "snp_security_policy_file is not supported by Coco (members allow the policy's digest with add_snp_host_data); remove it");
  }
  if (attestation.snp_endorsements_file === undefined) {
    throw invalid("attestation.snp_endorsements_file", "an SNP node needs its VCEK/VLEK chain (a PEM bundle or a directory with vcek.pem, ask.pem, ark.pem): "
      + "Coco does not fetch endorsements from snp_endorsements_servers; fetch them with snpguest or from AMD's KDS beforehand");
  }
  return {
    kind: "snp",
    endorsementsPath: at(attestation.snp_endorsements_file),
    tsmReportDirectory: file.coco?.snp_tsm_report_directory ?? TSM_REPORT_DIRECTORY_DEFAULT,
    ...(attestation.snp_uvm_endorsements_file !== undefined ? { uvmEndorsementsPath: at(attestation.snp_uvm_endorsements_file) } : {}),
  };
}

function resolveSnapshots(file: NodeConfigFile, at: (p: string) => string, workspace: string): ResolvedConfig["snapshots"] {
  const txCount = file.snapshots?.tx_count ?? DEFAULTS.snapshotTxCount;
  if (!Number.isSafeInteger(txCount) || txCount < 1) throw invalid("snapshots.tx_count", "expected a positive integer");
  const keepMax = file.snapshots?.keep_max ?? DEFAULTS.snapshotKeepMax;
  if (!Number.isSafeInteger(keepMax) || keepMax < 1) throw invalid("snapshots.keep_max", "expected a positive integer (at least one snapshot is kept)");
  const directory = file.snapshots?.directory !== undefined ? at(file.snapshots.directory) : resolve(workspace, "snapshots");
  return { directory, txCount, keepMax };
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

/** A bind address that means "every address of this host", which no other host can dial. */
export function isWildcardHost(host: string): boolean {
  return host === "0.0.0.0" || host === "::" || host === "";
}

/**
 * A published address: what other nodes or clients dial to reach this node, so it must name one
 * host and one port (no wildcard, no port 0, which only mean something to the node's own bind).
 */
function publishedAddress(value: unknown, field: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "string") throw invalid(field, `expected "host:port", got ${JSON.stringify(value)}`);
  const { host, port } = parseAddress(value, field);
  if (isWildcardHost(host)) throw invalid(field, `${JSON.stringify(value)} is a wildcard: publish the address other hosts reach this node at`);
  if (port === 0) throw invalid(field, `${JSON.stringify(value)} has port 0: publish the port other hosts reach this node at`);
  return value;
}

/** This node's RPC interface as recorded in nodes.info (CCF's shape), its published address when set. */
export function rpcInterfacesRecord(config: ResolvedConfig): Record<string, { bind_address: string; published_address?: string }> {
  const { name, host, port, publishedAddress: published } = config.rpc;
  return { [name]: { bind_address: `${host}:${port}`, ...(published !== undefined ? { published_address: published } : {}) } };
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
  // created_at is stamped when a member signs; CCF's tools sign and send at once. 5 minutes
  // covers a slow HSM approval and transit; 1 minute ahead covers clock skew between the
  // signer's machine and the node. See docs/governance.md ("Replay protection").
  createdAtMaxAgeSeconds: 300,
  createdAtMaxFutureSeconds: 60,
  // CCF's default is 10,000. Coco commits 20-30k tx/s on two cores, so that would mean a snapshot
  // (a copy and encoding of the whole state) every half second at full load. Restart and join
  // replay at most this many entries after the snapshot, about a second at Coco's replay rate:
  // 100,000 keeps that well inside the 5 s restart goal at a fifth of the snapshot work.
  snapshotTxCount: 100_000,
  snapshotKeepMax: 3,
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
  const n2nPublished = publishedAddress(file.network?.node_to_node_interface?.published_address, "network.node_to_node_interface.published_address");
  const nodeToNode = n2n !== undefined
    ? { ...parseAddress(n2n, "network.node_to_node_interface.bind_address"), ...(n2nPublished !== undefined ? { publishedAddress: n2nPublished } : {}) }
    : undefined;
  // Other nodes dial the recorded address: a wildcard there would have each of them dial itself.
  if (nodeToNode !== undefined && n2nPublished === undefined && isWildcardHost(nodeToNode.host)) {
    throw invalid("network.node_to_node_interface.published_address",
      `required when bind_address is a wildcard (${JSON.stringify(n2n)}): other nodes dial the published address, so give the one they reach this node at, e.g. "10.0.0.1:8001"`);
  }
  const rpcPublished = publishedAddress(rpc.published_address, `network.rpc_interfaces.${name}.published_address`);
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
      ...(rpcPublished !== undefined ? { publishedAddress: rpcPublished } : {}),
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
    platform: resolvePlatform(file, at),
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
    snapshots: resolveSnapshots(file, at, workspace),
    ledgerChunkBytes: file.ledger?.chunk_size !== undefined ? parseSize(file.ledger.chunk_size, "ledger.chunk_size") : DEFAULTS.ledgerChunkBytes,
    signatureTxCount: txCount,
    signatureDelayMs: file.ledger_signatures?.delay !== undefined
      ? parseDuration(file.ledger_signatures.delay, "ledger_signatures.delay")
      : DEFAULTS.signatureDelayMs,
    durability,
    pendingTransactionsMax: file.coco?.pending_transactions_max ?? DEFAULTS.pendingTransactionsMax,
    logLevel,
    logFile: file.logging?.file !== undefined ? at(file.logging.file) : undefined,
    accessLog: resolveAccessLog(file.logging?.access_log, at),
    rpcAddressesFile: file.output_files?.rpc_addresses_file !== undefined ? at(file.output_files.rpc_addresses_file) : undefined,
    governance: resolveGovernance(file.coco?.governance),
    admission: resolveAdmission(file.coco?.admission, rpc.max_open_sessions_hard ?? DEFAULTS.connectionsMax),
    memory: resolveMemory(file.coco?.memory, parseSize),
  };
}

function durationSeconds(value: string | number | undefined, field: string, fallback: number): number {
  if (value === undefined) return fallback;
  const seconds = Math.floor(parseDuration(value, field) / 1000);
  if (seconds < 1) throw invalid(field, "expected at least 1s");
  return seconds;
}

function resolveGovernance(governance: NonNullable<NodeConfigFile["coco"]>["governance"]): ResolvedConfig["governance"] {
  return {
    createdAtMaxAgeSeconds: durationSeconds(governance?.created_at_max_age, "coco.governance.created_at_max_age", DEFAULTS.createdAtMaxAgeSeconds),
    createdAtMaxFutureSeconds: durationSeconds(governance?.created_at_max_future, "coco.governance.created_at_max_future", DEFAULTS.createdAtMaxFutureSeconds),
  };
}

function count(value: number | undefined, field: string, fallback: number, minimum = 1): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < minimum) throw invalid(field, `expected an integer of at least ${minimum}, got ${JSON.stringify(value)}`);
  return value;
}

function rate(value: number | undefined, field: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) throw invalid(field, `expected a positive number (per second), got ${JSON.stringify(value)}`);
  return value;
}

function resolveAdmission(admission: AdmissionConfigFile | undefined, connectionsMax: number): ResolvedAdmission {
  const a = admission ?? {};
  const duration = (value: string | number | undefined, field: string, fallback: number) =>
    value === undefined ? fallback : Math.ceil(parseDuration(value, field));
  const size = (value: string | number | undefined, field: string, fallback: number) => value === undefined ? fallback : parseSize(value, field);
  const rpc: HttpAdmissionOptions = {
    handshakeTimeoutMs: duration(a.tls_handshake_timeout, "coco.admission.tls_handshake_timeout", ADMISSION_DEFAULTS.handshakeTimeoutMs),
    idleTimeoutMs: duration(a.idle_timeout, "coco.admission.idle_timeout", ADMISSION_DEFAULTS.idleTimeoutMs),
    connectionsPerAddressMax: count(a.connections_per_address_max, "coco.admission.connections_per_address_max", ADMISSION_DEFAULTS.connectionsPerAddressMax),
    privilegedConnectionsReserved: count(a.member_connections_reserved, "coco.admission.member_connections_reserved",
      Math.min(ADMISSION_DEFAULTS.privilegedConnectionsReserved, connectionsMax - 1), 0),
  };
  if (rpc.privilegedConnectionsReserved >= connectionsMax) {
    throw invalid("coco.admission.member_connections_reserved", `must be below max_open_sessions_hard (${connectionsMax})`);
  }
  const n = a.node_to_node ?? {};
  const j = a.join ?? {};
  const d = JOIN_LIMITS_DEFAULTS;
  return {
    rpc,
    nodeToNode: {
      handshakeTimeoutMs: duration(n.tls_handshake_timeout, "coco.admission.node_to_node.tls_handshake_timeout", CHANNEL_DEFAULTS.connectTimeoutMs),
      connectionsPerAddressMax: count(n.connections_per_address_max, "coco.admission.node_to_node.connections_per_address_max", CHANNEL_DEFAULTS.inboundConnectionsPerAddressMax),
      connectionsMax: count(n.connections_max, "coco.admission.node_to_node.connections_max", CHANNEL_DEFAULTS.inboundConnectionsMax),
    },
    join: {
      bodyBytesMax: size(j.body_size_max, "coco.admission.join.body_size_max", d.bodyBytesMax),
      nodeDataBytesMax: size(j.node_data_size_max, "coco.admission.join.node_data_size_max", d.nodeDataBytesMax),
      certificateBytesMax: size(j.certificate_size_max, "coco.admission.join.certificate_size_max", d.certificateBytesMax),
      quoteBytesMax: size(j.quote_size_max, "coco.admission.join.quote_size_max", d.quoteBytesMax),
      perAddress: {
        refillPerSecond: rate(j.per_address_rate, "coco.admission.join.per_address_rate", d.perAddress.refillPerSecond),
        capacity: count(j.per_address_burst, "coco.admission.join.per_address_burst", d.perAddress.capacity),
      },
      global: {
        refillPerSecond: rate(j.global_rate, "coco.admission.join.global_rate", d.global.refillPerSecond),
        capacity: count(j.global_burst, "coco.admission.join.global_burst", d.global.capacity),
      },
      addressesMax: d.addressesMax,
    },
  };
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

function resolveAccessLog(settings: { enabled?: boolean; file?: string } | undefined, at: (p: string) => string): ResolvedConfig["accessLog"] {
  if (settings === undefined) return undefined;
  if (settings.enabled !== undefined && typeof settings.enabled !== "boolean") throw invalid("logging.access_log.enabled", "expected true or false");
  if (settings.file !== undefined && typeof settings.file !== "string") throw invalid("logging.access_log.file", "expected a file path");
  if (settings.enabled !== true) return undefined;
  return { file: settings.file !== undefined ? at(settings.file) : undefined };
}
