// A free TCP port on `host`, for tools that must write a port into a configuration before the
// server using it starts (the sandbox's joiners, tests, benchmarks). Racy by nature: another
// process may take it in between, so use it only where a retry by the operator is acceptable.
import { createServer } from "node:net";

export function freeTcpPort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}
