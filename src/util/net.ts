// A free TCP port on `host`, for tools that must write a port into a configuration before the
// server using it starts (the sandbox's joiners, tests, benchmarks). Racy by nature: another
// process may bind it in between. The port is picked outside the kernel's ephemeral range, so at
// least no outgoing connection (a node dialling its peers, a client) can be given it as its local
// port before the server binds it: with `listen(0)` that happened (CI saw AddressInUse on a port
// a peer connection had taken a moment before).
import { readFileSync } from "node:fs";
import { createServer } from "node:net";

/** The ports the kernel hands to outgoing connections: Linux's setting, or IANA's range elsewhere. */
function ephemeralRange(): { min: number; max: number } {
  try {
    const [min, max] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number);
    if (Number.isInteger(min) && Number.isInteger(max) && min! <= max!) return { min: min!, max: max! };
  } catch {
    // Not Linux: fall through.
  }
  return { min: 49_152, max: 65_535 };
}

/** Ports this process already handed out: a caller may not have bound the last one yet. */
const handedOut = new Set<number>();
const LOWEST = 10_000;

function bindable(port: number, host: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(undefined));
    server.listen(port, host, () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : undefined));
    });
  });
}

export async function freeTcpPort(host = "127.0.0.1"): Promise<number> {
  const { min, max } = ephemeralRange();
  // The larger stretch outside the ephemeral range, above the well-known and registered-by-habit ports.
  const below = { from: LOWEST, to: min - 1 };
  const above = { from: max + 1, to: 65_535 };
  const range = below.to - below.from >= above.to - above.from ? below : above;
  const size = range.to - range.from + 1;
  if (size >= 100) {
    const start = Math.floor(Math.random() * size);
    for (let i = 0; i < 200; i++) {
      const port = range.from + ((start + i * 7919) % size);
      if (handedOut.has(port)) continue;
      if ((await bindable(port, host)) !== undefined) {
        handedOut.add(port);
        return port;
      }
    }
  }
  // Nothing free outside the ephemeral range: let the kernel choose.
  const port = await bindable(0, host);
  if (port === undefined) throw new Error(`no free TCP port on ${host}`);
  return port;
}
