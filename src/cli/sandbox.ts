// `coco sandbox`: a local service for development, in the shape of CCF's sandbox.sh. It makes
// a workspace with member0/user0 identities (CCF's file names), a CCF-style node config, starts
// the node, and prints commands that work as printed. Running it again on the same workspace
// restarts the node from its ledger with all its data. As on a real service, governance sets the
// EVM chain: member0 proposes set_evm_genesis (chain id, funded development accounts) and votes.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { pino } from "pino";
import { createIdentityCertificate, generateEcP384KeyPair } from "../crypto/index.js";
import { resolveConfig, type Durability, type NodeConfigFile } from "../node/config.js";
import { CocoNode } from "../node/node.js";
import { appOptions } from "./apps.js";
import { DEV_MNEMONIC, devAccounts, EVM_CONFIG_KEY, EVM_CONFIG_MAP, parseEvmConfig } from "../apps/evm/index.js";
import { GovernanceClient, openServiceAsMember } from "../client/index.js";

/** 10,000 ether, as Hardhat and Anvil fund their development accounts. */
const DEV_BALANCE_WEI = (10_000n * 10n ** 18n).toString();

export interface SandboxOptions {
  evmChainId: number;
  workspace: string;
  port: number;
  host: string;
  durability: Durability;
  signatureDelayMs?: number;
  quiet: boolean;
}

async function ensureIdentity(workspace: string, name: string): Promise<void> {
  const certFile = join(workspace, `${name}_cert.pem`);
  const keyFile = join(workspace, `${name}_privk.pem`);
  if (existsSync(certFile) && existsSync(keyFile)) return;
  const keys = generateEcP384KeyPair();
  writeFileSync(keyFile, keys.privateKeyPem, { mode: 0o600 });
  writeFileSync(certFile, await createIdentityCertificate(keys, name));
}

export function sandboxConfig(options: SandboxOptions): NodeConfigFile {
  return {
    enclave: { platform: "Virtual" },
    network: { rpc_interfaces: { primary_rpc_interface: { bind_address: `${options.host}:${options.port}` } } },
    node_certificate: { subject_alt_names: ["iPAddress:127.0.0.1", "dNSName:localhost"] },
    command: {
      type: "Start",
      service_certificate_file: "service_cert.pem",
      start: {
        members: [{ certificate_file: "member0_cert.pem" }],
      },
    },
    ledger: { directory: "ledger" },
    snapshots: { directory: "snapshots" },
    ledger_signatures: { tx_count: 5000, delay: `${options.signatureDelayMs ?? 25}ms` },
    logging: { level: "info", file: "node.log" },
    coco: {
      workspace: ".",
      durability: options.durability,
      evm: {},
    },
  };
}

interface MemberFiles { url: string; serviceCertPem: string; memberCertPem: string; memberKeyPem: string }

/**
 * The set_evm_genesis proposal the sandbox makes: its chain id, and 10,000 ether for each
 * development account (as Hardhat and Anvil fund them). Accepted at once by member0's ballot.
 */
async function configureEvmChain(member: MemberFiles, chainId: number): Promise<void> {
  const client = new GovernanceClient(member);
  try {
    const alloc = Object.fromEntries(devAccounts(10).map((a) => [a.address, DEV_BALANCE_WEI]));
    let proposal = await client.propose({ actions: [{ name: "set_evm_genesis", args: { chain_id: chainId, alloc } }] });
    if (proposal.proposalState === "Open") proposal = await client.accept(proposal.proposalId);
    if (proposal.proposalState !== "Accepted") {
      throw new Error(`the set_evm_genesis proposal is ${proposal.proposalState}, not Accepted: ${proposal.failure?.reason ?? JSON.stringify(proposal)}`);
    }
    if (proposal.transactionId) await client.waitForCommit(proposal.transactionId, { timeoutMs: 30_000 });
  } finally {
    await client.close();
  }
}

export async function runSandbox(options: SandboxOptions): Promise<void> {
  const workspace = resolve(options.workspace);
  mkdirSync(workspace, { recursive: true });
  const restarting = existsSync(join(workspace, "ledger"));
  await ensureIdentity(workspace, "member0");
  await ensureIdentity(workspace, "user0");
  const configFile = join(workspace, "config.json");
  const file = sandboxConfig(options);
  writeFileSync(configFile, JSON.stringify(file, null, 2) + "\n");
  const config = resolveConfig(file, workspace);
  const logger = pino({ level: "info" }, pino.destination({ dest: join(workspace, "node.log"), mkdir: true, sync: false }));
  const node = await CocoNode.start(config, { ...appOptions(config), logger });
  const url = `https://${options.host}:${node.address.port}`;
  // Open a new service the governed way, as CCF's sandbox does: member0 acknowledges the
  // service state, then proposes user0 and transition_service_to_open, accepted at once.
  const member: MemberFiles = {
    url,
    serviceCertPem: readFileSync(join(workspace, "service_cert.pem"), "utf8"),
    memberCertPem: readFileSync(join(workspace, "member0_cert.pem"), "utf8"),
    memberKeyPem: readFileSync(join(workspace, "member0_privk.pem"), "utf8"),
  };
  let opened = false;
  if (!node.engine.store.get("public:ccf.gov.service.info", Buffer.alloc(8))?.toString().includes('"Open"')) {
    await openServiceAsMember({ ...member, userCertPems: [readFileSync(join(workspace, "user0_cert.pem"), "utf8")] });
    opened = true;
  }
  // A restarted workspace keeps the chain it was given: its chain id wins over --evm-chain-id.
  let evmConfigured = false;
  const existingEvmConfig = node.engine.store.get(EVM_CONFIG_MAP, EVM_CONFIG_KEY);
  if (existingEvmConfig === undefined) {
    await configureEvmChain(member, options.evmChainId);
    evmConfigured = true;
  }
  const chainId = existingEvmConfig === undefined ? options.evmChainId : Number(parseEvmConfig(existingEvmConfig).chainId);

  const ws = relative(process.cwd(), workspace) || ".";
  const user = `--cacert ${ws}/service_cert.pem --cert ${ws}/user0_cert.pem --key ${ws}/user0_privk.pem`;
  if (!options.quiet) {
    const commit = node.engine.commitTxId;
    console.log(`
Coco sandbox is running at ${url} (${restarting ? `restarted from its ledger, committed up to ${commit.view}.${commit.seqno}` : "new service"})${opened ? "\n  governance    member0 acknowledged, proposed user0 + transition_service_to_open: accepted, service Open" : ""}${evmConfigured ? `\n  governance    member0 proposed set_evm_genesis (chain id ${chainId}, 10 funded accounts): accepted` : ""}
  node id       ${node.identity.nodeId}
  workspace     ${ws}/  (service_cert.pem, member0_*.pem, user0_*.pem, config.json, ledger/, node.log)
  durability    ${options.durability}

Ethereum JSON-RPC (chain id ${chainId}) at ${url}/app/evm for user0 (mutual TLS); funded development
accounts of "${DEV_MNEMONIC}" (10,000 ETH each):
${devAccounts(10).map((a, i) => `  (${i}) ${a.address}  ${a.privateKey}`).join("\n")}

Try it (from this directory):
  curl ${url}/node/network --cacert ${ws}/service_cert.pem
  curl -X POST ${url}/app/log/private ${user} -H "content-type: application/json" -d '{"id": 42, "msg": "hello, confidential world"}' -i
  curl "${url}/app/log/private?id=42" ${user}
  curl "${url}/node/tx?transaction_id=<view.seqno from x-ms-ccf-transaction-id>" --cacert ${ws}/service_cert.pem
  curl "${url}/app/receipt?transaction_id=<view.seqno>" ${user} > receipt.json
  npx coco receipt verify receipt.json --service-cert ${ws}/service_cert.pem

Press Ctrl-C to stop; run the same command again to restart from the ledger.`);
  }
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    if (!options.quiet) console.log(`\n${signal}: stopping the node (committing pending transactions)...`);
    await node.stop();
    if (!options.quiet) console.log("Stopped.");
    process.exit(0);
  };
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGTERM", () => void stop("SIGTERM"));
}
