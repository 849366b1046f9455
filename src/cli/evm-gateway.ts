// `coco evm gateway`: a plain-HTTP Ethereum JSON-RPC endpoint on loopback that forwards every
// request to a node's /app/evm over mutual TLS, acting as one Coco user. For development tools
// that cannot present a client certificate or trust the service's CA (Hardhat, MetaMask's
// "add network"). It has no authentication of its own, so whoever can reach it acts as that
// user: it listens on loopback only, and refuses requests whose Host header is not a loopback
// name (a web page that rebinds its DNS name to 127.0.0.1 must not reach it).
import http from "node:http";
import https from "node:https";
import { createHash, X509Certificate } from "node:crypto";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import { rejectUpgrade } from "../rpc/index.js";

/** The node's own default (CCF's max_body_size). */
export const GATEWAY_BODY_BYTES_MAX = 1024 * 1024;
/** Connections the gateway keeps to the node. */
export const GATEWAY_NODE_SOCKETS_MAX = 16;
/** How long the gateway waits for the node's answer (a call may take its 5 s limit, a queue more). */
export const GATEWAY_NODE_TIMEOUT_MS = 60_000;
/** WebSocket connections relayed at once (the node also caps each user's). */
export const GATEWAY_WEBSOCKETS_MAX = 64;
const LOOPBACK_HOSTS: ReadonlySet<string> = new Set(["127.0.0.1", "localhost", "::1"]);

export interface EvmGatewayOptions {
  /** Loopback address to listen on (127.0.0.1, ::1 or localhost). */
  readonly host: string;
  /** 0 lets the OS choose. */
  readonly port: number;
  /** The node, e.g. https://127.0.0.1:8000 (the gateway posts to <node>/app/evm). */
  readonly nodeUrl: string;
  readonly caPem: string | Buffer;
  readonly userCertPem: string | Buffer;
  readonly userKeyPem: string | Buffer;
  /** Browser origins allowed to call the gateway (CORS), exact or "*"; none by default. */
  readonly allowedOrigins?: readonly string[];
}

export interface EvmGateway {
  readonly url: string;
  readonly port: number;
  /** The Coco user id it acts as (SHA-256 of the certificate's DER). */
  readonly userId: string;
  close(): Promise<void>;
}

function hostName(hostHeader: string | undefined): string | undefined {
  if (hostHeader === undefined) return undefined;
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(hostHeader);
  if (bracketed) return bracketed[1];
  return hostHeader.replace(/:\d+$/, "");
}

function answerError(res: http.ServerResponse, status: number, code: number, message: string, headers: Record<string, string> = {}): void {
  const body = JSON.stringify({ jsonrpc: "2.0", id: null, error: { code, message } });
  res.writeHead(status, { ...headers, "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

export async function startEvmGateway(options: EvmGatewayOptions): Promise<EvmGateway> {
  if (!LOOPBACK_HOSTS.has(options.host)) {
    throw new Error(`the EVM gateway listens on loopback only (127.0.0.1, ::1, localhost), not ${options.host}: it acts as a Coco user for whoever reaches it`);
  }
  const target = new URL("/app/evm", options.nodeUrl);
  if (target.protocol !== "https:") throw new Error(`--node must be an https:// URL, got ${options.nodeUrl}`);
  const userId = createHash("sha256").update(new X509Certificate(options.userCertPem).raw).digest("hex");
  const agent = new https.Agent({
    keepAlive: true, maxSockets: GATEWAY_NODE_SOCKETS_MAX,
    ca: options.caPem, cert: options.userCertPem, key: options.userKeyPem,
  });
  const allowed = options.allowedOrigins ?? [];
  const cors = (origin: string | undefined): Record<string, string> => {
    if (origin === undefined) return {};
    if (allowed.includes("*")) return { "access-control-allow-origin": "*" };
    return allowed.includes(origin) ? { "access-control-allow-origin": origin, vary: "Origin" } : {};
  };

  const server = http.createServer((req, res) => {
    const corsHeaders = cors(req.headers.origin);
    const name = hostName(req.headers.host);
    if (name === undefined || !LOOPBACK_HOSTS.has(name)) {
      req.resume();
      answerError(res, 403, -32003, `forbidden: the gateway answers only requests addressed to a loopback name (Host: ${req.headers.host ?? "none"})`);
      return;
    }
    if (req.method === "OPTIONS") {
      req.resume();
      if (corsHeaders["access-control-allow-origin"] === undefined) {
        answerError(res, 403, -32003, `forbidden: origin ${req.headers.origin ?? "none"} is not allowed (coco evm gateway --allow-origin)`);
        return;
      }
      res.writeHead(204, { ...corsHeaders, "access-control-allow-methods": "POST, OPTIONS", "access-control-allow-headers": "content-type", "access-control-max-age": "600" });
      res.end();
      return;
    }
    if (req.method !== "POST") {
      req.resume();
      answerError(res, 405, -32600, "the gateway takes JSON-RPC requests as POST", { ...corsHeaders, allow: "POST, OPTIONS" });
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > GATEWAY_BODY_BYTES_MAX) tooLarge = true;
      else chunks.push(chunk);
    });
    req.on("end", () => {
      if (tooLarge) {
        answerError(res, 413, -32600, `request body exceeds ${GATEWAY_BODY_BYTES_MAX} bytes`, corsHeaders);
        return;
      }
      const body = Buffer.concat(chunks);
      const forward = https.request(target, {
        method: "POST", agent, timeout: GATEWAY_NODE_TIMEOUT_MS,
        headers: { "content-type": "application/json", "content-length": body.length },
      }, (answer) => {
        const headers: Record<string, string> = { ...corsHeaders, "content-type": answer.headers["content-type"] ?? "application/json" };
        const retryAfter = answer.headers["retry-after"];
        if (typeof retryAfter === "string") headers["retry-after"] = retryAfter;
        res.writeHead(answer.statusCode ?? 502, headers);
        answer.pipe(res);
      });
      forward.on("timeout", () => forward.destroy(new Error(`no answer within ${GATEWAY_NODE_TIMEOUT_MS} ms`)));
      forward.on("error", (error) => {
        if (!res.headersSent) answerError(res, 502, -32603, `the gateway could not reach the node at ${target.href}: ${error.message}`, corsHeaders);
        else res.destroy();
      });
      forward.end(body);
    });
  });
  // JSON-RPC over WebSocket (eth_subscribe): the handshake is replayed to the node's /app/evm
  // over mutual TLS as the gateway's user, then bytes are relayed both ways unchanged.
  const relayed = new Set<Duplex>();
  server.on("upgrade", (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    const refuse = (status: number, code: number, message: string): void =>
      rejectUpgrade(socket, status, JSON.stringify({ jsonrpc: "2.0", id: null, error: { code, message } }));
    const name = hostName(req.headers.host);
    if (name === undefined || !LOOPBACK_HOSTS.has(name)) {
      refuse(403, -32003, `forbidden: the gateway answers only requests addressed to a loopback name (Host: ${req.headers.host ?? "none"})`);
      return;
    }
    // Any web page may open a WebSocket to 127.0.0.1 (no CORS preflight): only allowed origins get through.
    if (req.headers.origin !== undefined && cors(req.headers.origin)["access-control-allow-origin"] === undefined) {
      refuse(403, -32003, `forbidden: origin ${req.headers.origin} is not allowed (coco evm gateway --allow-origin)`);
      return;
    }
    if (relayed.size >= GATEWAY_WEBSOCKETS_MAX) {
      refuse(429, -32005, `too many WebSocket connections through the gateway (${GATEWAY_WEBSOCKETS_MAX})`);
      return;
    }
    relayWebSocket(req, socket, head, relayed);
  });
  const relayWebSocket = (req: http.IncomingMessage, socket: Duplex, head: Buffer, open: Set<Duplex>): void => {
    const headers: Record<string, string> = { connection: "Upgrade", upgrade: "websocket" };
    for (const name of ["sec-websocket-key", "sec-websocket-version", "sec-websocket-protocol"]) {
      const value = req.headers[name];
      if (typeof value === "string") headers[name] = value;
    }
    const upstream = https.request(target, {
      method: "GET", agent: false, ca: options.caPem, cert: options.userCertPem, key: options.userKeyPem, headers, timeout: GATEWAY_NODE_TIMEOUT_MS,
    });
    upstream.on("timeout", () => upstream.destroy(new Error(`no answer within ${GATEWAY_NODE_TIMEOUT_MS} ms`)));
    upstream.on("error", (error) => rejectUpgrade(socket, 502, JSON.stringify({ jsonrpc: "2.0", id: null, error: { code: -32603, message: `the gateway could not reach the node at ${target.href}: ${error.message}` } })));
    // The node refused the handshake (401, 429, ...): relay its answer.
    upstream.on("response", (answer) => {
      const chunks: Buffer[] = [];
      answer.on("data", (chunk: Buffer) => chunks.push(chunk));
      answer.on("end", () => rejectUpgrade(socket, answer.statusCode ?? 502, Buffer.concat(chunks).toString("utf8")));
    });
    upstream.on("upgrade", (answer, nodeSocket, nodeHead) => {
      const lines = ["HTTP/1.1 101 Switching Protocols"];
      for (let i = 0; i + 1 < answer.rawHeaders.length; i += 2) lines.push(`${answer.rawHeaders[i]}: ${answer.rawHeaders[i + 1]}`);
      socket.write(`${lines.join("\r\n")}\r\n\r\n`);
      if (nodeHead.length > 0) socket.write(nodeHead);
      if (head.length > 0) nodeSocket.write(head);
      open.add(socket);
      const end = (): void => {
        open.delete(socket);
        socket.destroy();
        nodeSocket.destroy();
      };
      for (const side of [socket, nodeSocket]) {
        side.on("error", end);
        side.on("close", end);
      }
      nodeSocket.pipe(socket);
      socket.pipe(nodeSocket);
    });
    upstream.end();
  };
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const shownHost = options.host === "::1" ? "[::1]" : options.host;
  return {
    url: `http://${shownHost}:${port}`,
    port,
    userId,
    close: () => new Promise<void>((resolve) => {
      agent.destroy();
      for (const socket of relayed) socket.destroy();
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

/** What `coco sandbox` starts: the gateway as user0 on `port`, and the lines it prints about it. */
export async function startSandboxEvmGateway(input: {
  readonly workspace: string;
  readonly nodeUrl: string;
  readonly port: number;
  readonly chainId: number;
  readonly accounts: readonly { readonly privateKey: string }[];
}): Promise<{ gateway: EvmGateway | undefined; banner: string }> {
  const { readFileSync } = await import("node:fs");
  const { join } = await import("node:path");
  // A node listening on every address is reached, and its certificate checked, as 127.0.0.1.
  const nodeUrl = new URL(input.nodeUrl);
  if (nodeUrl.hostname === "0.0.0.0" || nodeUrl.hostname === "[::]") nodeUrl.hostname = "127.0.0.1";
  let gateway: EvmGateway;
  try {
    gateway = await startEvmGateway({
      host: "127.0.0.1", port: input.port, nodeUrl: nodeUrl.href,
      caPem: readFileSync(join(input.workspace, "service_cert.pem")),
      userCertPem: readFileSync(join(input.workspace, "user0_cert.pem")),
      userKeyPem: readFileSync(join(input.workspace, "user0_privk.pem")),
    });
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === "EADDRINUSE" ? `port ${input.port} is in use` : (error as Error).message;
    return { gateway: undefined, banner: `\nEVM gateway not started: ${reason} (choose another with --evm-gateway-port, or --no-evm-gateway).` };
  }
  const keys = input.accounts.slice(0, 3).map((a) => `"${a.privateKey}"`).join(", ");
  const banner = `
Ethereum JSON-RPC without client certificates at ${gateway.url} (plain HTTP, loopback only):
a gateway acting as user0, for Hardhat, MetaMask and other tools (whoever reaches it acts as user0).
  MetaMask   Add a network manually: RPC URL ${gateway.url}, chain ID ${input.chainId}, currency symbol ETH
  Hardhat    networks: { coco: { url: "${gateway.url}", chainId: ${input.chainId}, accounts: [${keys}] } }
  API keys   for other users or remote clients: POST /app/evm/keys as the user, then use <node>/app/evm/<key> (docs/evm.md)`;
  return { gateway, banner };
}
