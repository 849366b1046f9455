// `coco evm ...`: commands for the EVM app. `coco evm gateway` serves Ethereum JSON-RPC over
// plain HTTP on loopback, forwarding to a node as one user (see evm-gateway.ts).
import { readFileSync } from "node:fs";
import { InvalidArgumentError, type Command } from "commander";
// The gateway and the address binding load the EVM libraries: imported when their command runs,
// so that every other `coco` command (a node's start above all) starts without them.

function privateKey(value: string, previous: string[]): string[] {
  if (!/^(0x)?[0-9a-fA-F]{64}$/.test(value)) throw new InvalidArgumentError("expected a 32-byte secp256k1 private key in hex (0x…).");
  return [...previous, value.startsWith("0x") ? value : `0x${value}`];
}

function chainId(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError(`'${value}' is not a chain id (a positive integer).`);
  return n;
}

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError(`'${value}' is not a port number (0-65535).`);
  return n;
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

export function registerEvmCommands(program: Command): void {
  const evm = program.command("evm").description("Work with the EVM app (Ethereum JSON-RPC at /app/evm)");
  evm.command("gateway")
    .description("Serve Ethereum JSON-RPC over plain HTTP on loopback, forwarding to a node's /app/evm over mutual TLS as one user (for Hardhat, MetaMask and tools without client certificates)")
    .option("--port <port>", "port to listen on (0: any free port)", port, 8545)
    .option("--host <address>", "loopback address to listen on (127.0.0.1, ::1 or localhost)", "127.0.0.1")
    .requiredOption("--node <url>", "the node, e.g. https://127.0.0.1:8000")
    .requiredOption("--cacert <pem>", "the service certificate (service_cert.pem)")
    .requiredOption("--user-cert <pem>", "the user's certificate (the gateway acts as this user)")
    .requiredOption("--user-key <pem>", "the user's private key")
    .option("--allow-origin <origin>", "a browser origin allowed to call the gateway (CORS), exact or \"*\"; repeatable", collect, [])
    .action(async (opts) => {
      try {
        const { startEvmGateway } = await import("./evm-gateway.js");
        const gateway = await startEvmGateway({
          host: opts.host, port: opts.port, nodeUrl: opts.node,
          caPem: readFileSync(opts.cacert), userCertPem: readFileSync(opts.userCert), userKeyPem: readFileSync(opts.userKey),
          allowedOrigins: opts.allowOrigin,
        });
        console.log(`Ethereum JSON-RPC gateway at ${gateway.url} -> ${new URL("/app/evm", opts.node).href} as user ${gateway.userId}`);
        const stop = async () => {
          await gateway.close();
          process.exit(0);
        };
        process.on("SIGINT", () => void stop());
        process.on("SIGTERM", () => void stop());
      } catch (error) {
        console.error(`coco: ${(error as Error).message}`);
        process.exit(1);
      }
    });
  evm.command("bind")
    .description("Bind Ethereum addresses to a Coco user (POST /app/evm/addresses): under the \"bound\" address policy a user sends from, calls as, and sees the transactions of its bound addresses only")
    .requiredOption("--node <url>", "the node, e.g. https://127.0.0.1:8000")
    .requiredOption("--cacert <pem>", "the service certificate (service_cert.pem)")
    .requiredOption("--user-cert <pem>", "the user's certificate (the addresses are bound to this user)")
    .requiredOption("--user-key <pem>", "the user's private key")
    .requiredOption("--chain-id <id>", "the chain id (eth_chainId): the signature names it", chainId)
    .option("--private-key <hex>", "the private key of an address to bind (signs the binding message); repeatable. It shows in the process list: prefer --private-key-file", privateKey, [])
    .option("--private-key-file <file>", "a file of private keys to bind, one 0x-hex key per line")
    .action(async (opts) => {
      try {
        const keys: string[] = [...opts.privateKey];
        if (opts.privateKeyFile !== undefined) {
          for (const line of readFileSync(opts.privateKeyFile, "utf8").split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== "")) keys.push(...privateKey(line, []));
        }
        if (keys.length === 0) throw new Error("give the keys of the addresses to bind: --private-key <hex> or --private-key-file <file>");
        const { bindAddresses } = await import("./evm-bind.js");
        const outcomes = await bindAddresses({
          nodeUrl: opts.node, chainId: opts.chainId, privateKeys: keys,
          caPem: readFileSync(opts.cacert), userCertPem: readFileSync(opts.userCert), userKeyPem: readFileSync(opts.userKey),
        });
        for (const o of outcomes) console.log(`${o.address}  ${o.status === 201 ? "bound" : o.status === 200 ? "already bound to this user" : `refused (HTTP ${o.status}): ${o.error}`}`);
        if (outcomes.some((o) => o.error !== undefined)) process.exit(1);
      } catch (error) {
        console.error(`coco: ${(error as Error).message}`);
        process.exit(1);
      }
    });
}
