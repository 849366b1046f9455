#!/usr/bin/env node
// The `coco` command: run a sandbox or a node, make identities, verify receipts, audit ledgers.
import { writeFileSync } from "node:fs";
import { generateKeyPairSync } from "node:crypto";
import { Command, InvalidArgumentError, Option } from "commander";
import { CocoError } from "../util/index.js";
import { createIdentityCertificate, generateEcP384KeyPair } from "../crypto/index.js";
import { loadConfigFile } from "../node/config.js";
import { CocoNode } from "../node/node.js";
import { COCO_VERSION } from "../node/node-endpoints.js";
import { appOptions } from "./apps.js";

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError(`'${value}' is not a port number (0-65535).`);
  return n;
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`'${value}' is not a positive integer.`);
  return n;
}

function fail(error: unknown): never {
  const message = error instanceof CocoError ? `${error.code}: ${error.message}` : error instanceof Error ? error.message : String(error);
  console.error(`coco: ${message}`);
  process.exit(1);
}

const program = new Command()
  .name("coco")
  .description("Coco: a confidential consortium framework (CCF-compatible) for Node.js")
  .version(COCO_VERSION)
  .showHelpAfterError();

program.command("sandbox")
  .description("Run a local service for development: one node, or --nodes N joined through governance (creates member0/user0 identities and ledgers in the workspace)")
  .option("--workspace <dir>", "workspace directory (created if missing; a stopped service in it is recovered from its ledger)", "workspace")
  .option("--port <port>", "HTTPS port", port, 8000)
  .option("--host <address>", "address to listen on", "127.0.0.1")
  .addOption(new Option("--durability <mode>", "fsync: fdatasync the ledger before commit (safe); none: skip fsync (benchmarks only)").choices(["fsync", "none"]).default("fsync"))
  .option("--signature-interval-ms <ms>", "sign the ledger at least this often (ms)", positiveInt)
  .option("--snapshot-tx-count <n>", "transactions between snapshots (snapshots.tx_count; default the node's)", positiveInt)
  .option("--quiet", "print nothing but errors", false)
  .option("--evm-chain-id <id>", "chain id of the built-in EVM app (Hardhat's and Anvil's default)", positiveInt, 31337)
  .option("--nodes <n>", "nodes in the network: node i serves on port + i and talks to the others on port + 100 + i; nodes 1.. join through governance", positiveInt, 1)
  .option("--evm-gateway-port <port>", "port of the plain-HTTP Ethereum JSON-RPC gateway on 127.0.0.1, acting as user0 (default 8545; 0 with --port 0)", port)
  .option("--no-evm-gateway", "do not start the EVM gateway")
  .option("--no-evm", "run without the built-in EVM app (no chain, development accounts or gateway; the EVM libraries are not loaded)")
  .option("--no-access-log", "do not write the access log (access.log: one JSON line per request)")
  .option("--restart-from-disk", "restart node 0 from its own keys and ledger (a single node's restart) instead of recovering the stopped service with member0's share", false)
  .action(async (opts, command: Command) => {
    if (opts.evm === false) {
      // Options of the EVM app with the app turned off: say which, rather than ignore them.
      const conflicting = ["evmChainId", "evmGatewayPort"].filter((name) => command.getOptionValueSource(name) === "cli")
        .map((name) => (name === "evmChainId" ? "--evm-chain-id" : "--evm-gateway-port"));
      if (conflicting.length > 0) fail(new Error(`${conflicting.join(" and ")} cannot be used with --no-evm (the sandbox then runs no EVM app)`));
    }
    // Loaded here: the sandbox's own code (identities, governance client, EVM set-up) is not a node's.
    const { runSandbox } = await import("./sandbox.js");
    await runSandbox({
      evmChainId: opts.evmChainId,
      workspace: opts.workspace, port: opts.port, host: opts.host, durability: opts.durability,
      signatureDelayMs: opts.signatureIntervalMs, snapshotTxCount: opts.snapshotTxCount, quiet: opts.quiet, nodes: opts.nodes,
      evmGatewayPort: opts.evmGateway === false ? false : opts.evmGatewayPort,
      evm: opts.evm !== false,
      restartFromDisk: opts.restartFromDisk,
      accessLog: opts.accessLog !== false,
    }).catch(fail);
  });

const node = program.command("node").description("Run a Coco node");
node.command("start")
  .description("Start a node from a CCF-style JSON configuration file (command.type: Start a new service, Join an existing one, or Recover a stopped one from its ledger)")
  .requiredOption("--config <file>", "node configuration file (see docs/configuration.md)")
  .action(async (opts) => {
    try {
      const config = loadConfigFile(opts.config);
      let running = await CocoNode.start(config, await appOptions(config));
      let stopping = false;
      const stop = async () => {
        if (stopping) return;
        stopping = true;
        // (During an in-place restart the node being stopped may already be stopping.)
        await running.stop().catch(() => undefined);
        process.exit(0);
      };
      process.on("SIGINT", () => void stop());
      process.on("SIGTERM", () => void stop());
      // Started by a sandbox (an IPC channel to it): the node goes when the sandbox goes, even
      // when the sandbox was killed with SIGKILL and could not stop it (the channel closes).
      if (process.channel !== undefined) {
        process.on("disconnect", () => {
          running.logger.warn("the sandbox that started this node has exited: stopping");
          void stop();
        });
      }
      const watch = (node: CocoNode) => {
        // Crash-only: a node whose ledger failed exits (code 70, EX_SOFTWARE) rather than linger
        // half-alive; restarted, it recovers from what its ledger holds.
        node.onFatal(() => {
          node.logger.flush?.();
          setTimeout(() => process.exit(70), 100).unref();
        });
        // A node that fetched a snapshot to install (snapshot-install.ts) starts again here, on
        // the same configuration; the install happens at that start. A failed start exits (70).
        node.onRestartRequested((reason) => {
          if (stopping) return;
          node.logger.warn({ reason }, "restarting the node in place");
          void (async () => {
            await node.stop();
            if (stopping) return process.exit(0);
            running = await CocoNode.start(config, await appOptions(config));
            watch(running);
          })().catch((error: unknown) => {
            process.stderr.write(`coco node start: the restart failed: ${(error as Error).message}\n`);
            process.exit(70);
          });
        });
      };
      watch(running);
    } catch (error) {
      fail(error);
    }
  });

program.command("keygen")
  .description("Create an identity (P-384 key and self-signed certificate) as <name>_privk.pem and <name>_cert.pem, like CCF's keygenerator.sh")
  .requiredOption("--name <name>", "identity name, e.g. member1 or user1")
  .option("--gen-enc-key", "also create an RSA-2048 encryption key pair (<name>_enc_privk.pem, <name>_enc_pubk.pem) for recovery shares, as a recovery member needs", false)
  .action(async (opts) => {
    const keys = generateEcP384KeyPair();
    writeFileSync(`${opts.name}_privk.pem`, keys.privateKeyPem, { mode: 0o600 });
    writeFileSync(`${opts.name}_cert.pem`, await createIdentityCertificate(keys, opts.name));
    console.log(`Wrote ${opts.name}_privk.pem and ${opts.name}_cert.pem`);
    if (opts.genEncKey) {
      const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
      writeFileSync(`${opts.name}_enc_privk.pem`, privateKey.export({ format: "pem", type: "pkcs8" }), { mode: 0o600 });
      writeFileSync(`${opts.name}_enc_pubk.pem`, publicKey.export({ format: "pem", type: "spki" }));
      console.log(`Wrote ${opts.name}_enc_privk.pem and ${opts.name}_enc_pubk.pem`);
    }
  });

// The tools' command groups load the client (undici), esbuild, the auditor and the attestation
// verifiers: ~0.3-0.7 s of module loading that `coco node …` (a node's start, on every restart)
// does not need, so they are registered only for the other commands (and for `coco --help`).
if (process.argv[2] !== "node") {
  const [receipt, evm, gov, app, ledger, attestation] = await Promise.all([
    import("./receipt.js"), import("./evm.js"), import("./gov.js"), import("./app.js"), import("./ledger.js"), import("./attestation.js"),
  ]);
  receipt.registerReceiptCommands(program, fail);
  evm.registerEvmCommands(program);
  gov.registerGovCommands(program);
  app.registerAppCommands(program);
  ledger.registerLedgerCommands(program);
  attestation.registerAttestationCommands(program);
}

program.parseAsync(process.argv).catch(fail);
