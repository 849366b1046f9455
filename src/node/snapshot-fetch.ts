// A joining node fetches the service's newest committed snapshot by itself, as CCF 6 does:
// GET /node/snapshot (307 to /node/snapshot/<name>), then the file. The file is verified
// (receipt against the service certificate) before it is kept; an operator copies nothing.
import { request as httpsRequest } from "node:https";
import { parseSnapshotName, writeFileAtomic } from "../ledger/index.js";
import { CocoError } from "../util/index.js";
import { SNAPSHOT_PATH } from "./snapshot-endpoints.js";
import { verifiedSnapshotBytes, type StartupSnapshot } from "./snapshot-load.js";

/** A snapshot bigger than this is refused rather than held in memory (a Buffer's practical limit is 2 GiB). */
export const SNAPSHOT_FETCH_BYTES_MAX = 2 * 1024 * 1024 * 1024 - 1;
const FETCH_TIMEOUT_MS = 60_000;

interface Target { host: string; port: number }

function get(target: Target, path: string, serviceCertPem: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({
      host: target.host, port: target.port, path, method: "GET", ca: serviceCertPem, minVersion: "TLSv1.3",
      // Any node endorsed by the service may answer; the snapshot's receipt is what is trusted.
      checkServerIdentity: () => undefined,
      timeout: FETCH_TIMEOUT_MS,
    }, (res) => {
      const chunks: Buffer[] = [];
      let total = 0;
      res.on("data", (chunk: Buffer) => {
        total += chunk.length;
        if (total > SNAPSHOT_FETCH_BYTES_MAX) req.destroy(new CocoError("SnapshotTooLarge", `The snapshot at ${path} exceeds ${SNAPSHOT_FETCH_BYTES_MAX} bytes.`, 502));
        else chunks.push(chunk);
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`timed out after ${FETCH_TIMEOUT_MS} ms`)));
    req.on("error", reject);
    req.end();
  });
}

/**
 * Fetches, verifies and stores the target's newest committed snapshot. Returns it, or undefined
 * when the service has none (the joiner then replicates the whole ledger). A snapshot that does
 * not verify is an error: the target is not serving this service's history.
 */
export async function fetchServiceSnapshot(args: {
  target: Target; serviceCertPem: string; directory: string; durable: boolean;
  logger: { info(o: object, msg: string): void; warn(o: object, msg: string): void };
  /** Fetch nothing (answer undefined) unless the service's newest snapshot is above this seqno. */
  newerThan?: number;
}): Promise<StartupSnapshot | undefined> {
  const redirect = await get(args.target, SNAPSHOT_PATH, args.serviceCertPem);
  if (redirect.status === 404) {
    args.logger.info({ target: args.target }, "the service has no committed snapshot: replicating the whole ledger");
    return undefined;
  }
  const location = redirect.headers["location"];
  if (redirect.status !== 307 || typeof location !== "string" || !location.startsWith(`${SNAPSHOT_PATH}/`)) {
    throw new CocoError("SnapshotFetchFailed", `GET ${SNAPSHOT_PATH} answered ${redirect.status} without a snapshot location: ${redirect.body.toString("utf8").slice(0, 200)}`, 502);
  }
  const name = decodeURIComponent(location.slice(SNAPSHOT_PATH.length + 1));
  const file = parseSnapshotName(name);
  if (file === null || !file.committed) throw new CocoError("SnapshotFetchFailed", `The service redirected to '${name}', which is not a committed snapshot name.`, 502);
  if (args.newerThan !== undefined && file.seqno <= args.newerThan) return undefined;
  const started = Date.now();
  const answer = await get(args.target, location, args.serviceCertPem);
  if (answer.status !== 200) throw new CocoError("SnapshotFetchFailed", `GET ${location} answered ${answer.status}.`, 502);
  const snapshot = verifiedSnapshotBytes(answer.body, file, [args.serviceCertPem]);
  await writeFileAtomic(args.directory, name, [answer.body], args.durable);
  args.logger.info({ name, bytes: answer.body.length, ms: Date.now() - started }, "fetched and verified the service's snapshot");
  return snapshot;
}
