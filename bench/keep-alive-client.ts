// One keep-alive TLS connection that sends GET requests one at a time and returns parsed JSON.
// Used for control traffic during a run (commit polling, status checks), kept off the load
// client's connections so that polling never waits behind a deep pipeline.
import * as tls from "node:tls";
import { HttpResponseParser, type ParsedResponse } from "./http-response-parser.js";
import type { TlsTarget } from "./pipelined-client.js";

export interface JsonResponse {
  readonly status: number;
  readonly json: unknown;
  readonly text: string;
}

export class KeepAliveClient {
  private readonly parser = new HttpResponseParser();
  private pending: { resolve: (r: ParsedResponse) => void; reject: (e: Error) => void } | null = null;
  private closedError: Error | null = null;

  private constructor(private readonly socket: tls.TLSSocket, private readonly hostHeader: string) {
    socket.on("data", (data: Buffer) => {
      try {
        this.parser.push(data, (response) => {
          const pending = this.pending;
          this.pending = null;
          pending?.resolve(response);
        });
      } catch (error) {
        this.fail(error as Error);
      }
    });
    socket.on("error", (error) => this.fail(error));
    socket.on("close", () => this.fail(new Error("connection closed by the server")));
  }

  static async connect(target: TlsTarget, timeoutMs = 5_000): Promise<KeepAliveClient> {
    return new KeepAliveClient(await connectTls(target, timeoutMs), `${target.host}:${target.port}`);
  }

  /** GETs `path` and parses the body as JSON (`json` is null when the body is not JSON). */
  async get(path: string, timeoutMs = 10_000): Promise<JsonResponse> {
    if (this.closedError !== null) throw this.closedError;
    if (this.pending !== null) throw new Error("KeepAliveClient sends one request at a time");
    const response = await new Promise<ParsedResponse>((resolve, reject) => {
      const timer = setTimeout(() => this.fail(new Error(`GET ${path} got no answer within ${timeoutMs} ms`)), timeoutMs);
      this.pending = {
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.socket.write(`GET ${path} HTTP/1.1\r\nHost: ${this.hostHeader}\r\n\r\n`);
    });
    const text = response.body.toString("utf8");
    let json: unknown = null;
    try {
      json = JSON.parse(text);
    } catch {
      json = null;
    }
    return { status: response.status, json, text };
  }

  close(): void {
    this.closedError ??= new Error("client closed");
    this.socket.destroy();
  }

  private fail(error: Error): void {
    this.closedError ??= error;
    const pending = this.pending;
    this.pending = null;
    pending?.reject(error);
  }
}

/** A TLS 1.3 connection with the target's client identity, verified against its CA. */
export function connectTls(target: TlsTarget, timeoutMs = 5_000): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: target.host,
      port: target.port,
      ca: target.ca,
      cert: target.cert,
      key: target.key,
      minVersion: "TLSv1.3",
      // The chain is still verified against `ca`; the host name check is skipped because
      // the benchmark connects by IP to certificates that may name a host.
      checkServerIdentity: () => undefined,
    });
    socket.setNoDelay(true);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`TLS connect to ${target.host}:${target.port} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once("secureConnect", () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}
