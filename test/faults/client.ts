// HTTPS client of the fault suite: every request has a deadline (a paused node must never hang the
// suite). Writes and reads use separate connection pools, because a backup that has forwarded one
// request of a connection forwards all later ones: reads on the read pool are served locally.
import https from "node:https";
import { readFileSync } from "node:fs";
import { join } from "node:path";

export interface Reply {
  status: number;
  text: string;
  transactionId: string | undefined;
  json: () => any;
}

export class NodeClient {
  private writeAgent: https.Agent;
  private readAgent: https.Agent;
  private readonly ca: Buffer;
  private readonly cert: Buffer;
  private readonly key: Buffer;

  constructor(readonly port: number, workspace: string, private readonly connectionsMax = 8) {
    this.ca = readFileSync(join(workspace, "service_cert.pem"));
    this.cert = readFileSync(join(workspace, "user0_cert.pem"));
    this.key = readFileSync(join(workspace, "user0_privk.pem"));
    this.writeAgent = this.newAgent();
    this.readAgent = this.newAgent();
  }

  private newAgent(): https.Agent {
    return new https.Agent({ keepAlive: true, ca: this.ca, cert: this.cert, key: this.key, maxSockets: this.connectionsMax });
  }

  /** Drops every pooled connection (after the node restarts, or was paused). */
  reset(): void {
    this.writeAgent.destroy();
    this.readAgent.destroy();
    this.writeAgent = this.newAgent();
    this.readAgent = this.newAgent();
  }

  write(path: string, body: unknown, timeoutMs: number): Promise<Reply> {
    return this.request("POST", path, this.writeAgent, timeoutMs, JSON.stringify(body));
  }

  read(path: string, timeoutMs: number): Promise<Reply> {
    return this.request("GET", path, this.readAgent, timeoutMs);
  }

  /** GET returning the parsed body of a 200, or undefined on any error or timeout. */
  async readJson(path: string, timeoutMs: number): Promise<any | undefined> {
    try {
      const r = await this.read(path, timeoutMs);
      return r.status === 200 ? r.json() : undefined;
    } catch {
      return undefined;
    }
  }

  private request(method: string, path: string, agent: https.Agent, timeoutMs: number, body?: string): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const req = https.request({
        host: "127.0.0.1", port: this.port, method, path, agent, servername: "localhost",
        headers: body !== undefined ? { "content-type": "application/json" } : {},
      }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          clearTimeout(timer);
          const text = Buffer.concat(chunks).toString("utf8");
          const header = res.headers["x-ms-ccf-transaction-id"];
          resolve({ status: res.statusCode ?? 0, text, transactionId: typeof header === "string" ? header : undefined, json: () => JSON.parse(text) });
        });
        res.on("error", (e) => { clearTimeout(timer); reject(e); });
      });
      const timer = setTimeout(() => req.destroy(new Error(`timeout after ${timeoutMs} ms: ${method} ${path} on port ${this.port}`)), timeoutMs);
      req.on("error", (e) => { clearTimeout(timer); reject(e); });
      req.end(body);
    });
  }
}
