// `coco evm ...`: commands for the EVM app. `coco evm gateway` serves Ethereum JSON-RPC over
// plain HTTP on loopback, forwarding to a node as one user (see evm-gateway.ts).
import { readFileSync } from "node:fs";
import { InvalidArgumentError, type Command } from "commander";
import { startEvmGateway } from "./evm-gateway.js";

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
}
