// A trivial HTTPS server with the node's TLS settings (TLS 1.3, ECDSA P-384 certificate,
// client certificate requested but not required). It reads each request body and answers
// 200 with a small JSON body. The benchmark runs it as its own process, like the node, and
// divides the node's committed writes/s by this server's requests/s on the same machine.
//
// Usage: node echo-server.js --port <port> --cert <pem> --key <pem>
// Prints one line `{"port":<port>}` on stdout once listening; stops on SIGINT/SIGTERM.
// COCO_ECHO_COALESCE=1 gives it the node's response-write coalescing (src/rpc/http-server.ts),
// to compare against a baseline that writes responses as cheaply as the node does; the
// default is plain node:https, the ceiling the goals are stated against.
import * as https from "node:https";
import { readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { coalesceWrites } from "../src/rpc/http-server.js";

function argument(name: string): string {
  const index = process.argv.indexOf(`--${name}`);
  const value = index >= 0 ? process.argv[index + 1] : undefined;
  if (value === undefined) throw new Error(`echo-server: missing --${name} <value>`);
  return value;
}

const server = https.createServer(
  {
    cert: readFileSync(argument("cert")),
    key: readFileSync(argument("key")),
    minVersion: "TLSv1.3",
    maxVersion: "TLSv1.3",
    requestCert: true,
    rejectUnauthorized: false,
    keepAlive: true,
    keepAliveTimeout: 60_000,
  },
  (request, response) => {
    let bytes = 0;
    request.on("data", (chunk: Buffer) => (bytes += chunk.length));
    request.on("end", () => {
      const body = `{"echo":true,"bytes":${bytes}}`;
      response.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
      response.end(body);
    });
  },
);

if (process.env["COCO_ECHO_COALESCE"] === "1") server.on("secureConnection", coalesceWrites);

server.listen(Number(argument("port")), "127.0.0.1", () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
});

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  });
}
