// Test helper: a TCP proxy in front of one node's node-to-node port that can cut connections.
// Each node of a proxied network sends from its own loopback address (127.0.0.1x), so the proxy
// can refuse one node's traffic: isolating node k = k's proxy refuses everyone, and every other
// proxy refuses connections from k's address.
import { createServer, connect, type Server, type Socket } from "node:net";

export class FaultProxy {
  private readonly server: Server;
  private readonly sockets = new Set<{ client: Socket; upstream: Socket }>();
  private readonly blockedSources = new Set<string>();
  private blockAll = false;
  port = 0;

  constructor(private readonly target: { host: string; port: number }) {
    this.server = createServer((client) => this.accept(client));
  }

  async listen(port = 0): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(port, "127.0.0.1", () => resolve()));
    const address = this.server.address();
    this.port = typeof address === "object" && address ? address.port : 0;
    return this.port;
  }

  private accept(client: Socket): void {
    const source = client.remoteAddress?.replace(/^::ffff:/, "") ?? "";
    if (this.blockAll || this.blockedSources.has(source)) {
      client.destroy();
      return;
    }
    const upstream = connect(this.target.port, this.target.host);
    const pair = { client, upstream, source };
    this.sockets.add(pair);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(pair);
    };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
    client.pipe(upstream);
    upstream.pipe(client);
  }

  /** Refuses (and cuts) connections from `source`, or from everyone when source is undefined. */
  block(source?: string): void {
    if (source === undefined) this.blockAll = true;
    else this.blockedSources.add(source);
    for (const pair of [...this.sockets]) {
      const from = pair.client.remoteAddress?.replace(/^::ffff:/, "") ?? "";
      if (source === undefined || from === source) {
        pair.client.destroy();
        pair.upstream.destroy();
        this.sockets.delete(pair);
      }
    }
  }

  heal(): void {
    this.blockAll = false;
    this.blockedSources.clear();
  }

  close(): Promise<void> {
    for (const pair of this.sockets) { pair.client.destroy(); pair.upstream.destroy(); }
    this.sockets.clear();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
