// A node fetches the service's newest committed snapshot by itself, as CCF 6 does: GET
// /node/snapshot (307 to /node/snapshot/<name>), then the file. A joiner does it once; a backup
// whenever its commit point is `tx_count` past its newest snapshot (snapshot-follower.ts).
//
// The file is streamed to a temporary file beside the snapshots and checked as it arrives: its
// framing (a header announcing more than SNAPSHOT_FETCH_BYTES_MAX, or bytes past its evidence
// section, stop the download there), its digest, then its receipt against the service
// certificate. Only a file that verifies gets its snapshot name; anything else is deleted. The
// node holds the header, the receipt and one network buffer at a time, never the file, so a
// large snapshot (or a hostile host serving an endless one) cannot exhaust its memory.
import { request as httpsRequest, type RequestOptions } from "node:https";
import type { IncomingMessage } from "node:http";
import { mkdir, open, unlink } from "node:fs/promises";
import { parseSnapshotName, publishSnapshotFile, temporarySnapshotPath, type SnapshotFileInfo } from "../ledger/index.js";
import { CocoError } from "../util/index.js";
import { SNAPSHOT_PATH } from "./snapshot-endpoints.js";
import { SnapshotStreamCheck, verifySnapshot } from "./snapshot-format.js";

/** A snapshot bigger than this is refused (a node loads a snapshot into one Buffer at start: 2 GiB at most). */
export const SNAPSHOT_FETCH_BYTES_MAX = 2 * 1024 * 1024 * 1024 - 1;
/** Idle time after which a download is abandoned. */
const FETCH_IDLE_TIMEOUT_MS = 60_000;
/** A download that trickles (a byte a minute) is abandoned after this long in all. */
export const SNAPSHOT_FETCH_DEADLINE_MS = 30 * 60_000;
/** A download cut part way resumes (Range) at most this many times before it fails. */
export const SNAPSHOT_FETCH_RESUMES_MAX = 3;
/** A download in progress is logged this often. */
const PROGRESS_LOG_MS = 10_000;
/** The redirect's body is an error message at most. */
const SMALL_BODY_BYTES_MAX = 64 * 1024;

interface Target { host: string; port: number }

function requestOptions(target: Target, path: string, serviceCertPem: string): RequestOptions {
  return {
    host: target.host, port: target.port, path, method: "GET", ca: serviceCertPem, minVersion: "TLSv1.3",
    // Any node endorsed by the service may answer; the snapshot's receipt is what is trusted.
    checkServerIdentity: () => undefined,
    timeout: FETCH_IDLE_TIMEOUT_MS,
  };
}

/** Sends a GET and hands over the response (whose body the caller consumes), or rejects. */
function send(options: RequestOptions, deadlineMs: number): Promise<{ res: IncomingMessage; abort: (error: Error) => void }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(options, (res) => resolve({ res, abort: (error) => req.destroy(error) }));
    const deadline = setTimeout(() => req.destroy(new Error(`gave up after ${deadlineMs} ms`)), deadlineMs);
    deadline.unref();
    req.on("close", () => clearTimeout(deadline));
    req.on("timeout", () => req.destroy(new Error(`no data for ${FETCH_IDLE_TIMEOUT_MS} ms`)));
    req.on("error", reject);
    req.end();
  });
}

async function smallBody(res: IncomingMessage, abort: (error: Error) => void): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > SMALL_BODY_BYTES_MAX) {
      abort(new Error("answer too long"));
      break;
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/**
 * Downloads `path` into a temporary file in `directory`, checking it as it arrives; once it
 * verifies against the service certificate, renames it to its snapshot name (fsync'd when
 * durable). A connection cut part way is resumed where it stopped (`Range: bytes=<n>-`, as CCF 6
 * fetches in ranges), up to SNAPSHOT_FETCH_RESUMES_MAX times, if the server answers 206 for the
 * same file length. The temporary file is removed on any failure.
 */
async function download(args: {
  target: Target; path: string; serviceCertPem: string; file: SnapshotFileInfo; directory: string; durable: boolean;
  bytesMax: number; deadlineMs: number; progressLogMs: number; logger: { info(o: object, msg: string): void };
}): Promise<number> {
  const { file } = args;
  await mkdir(args.directory, { recursive: true });
  const temporary = temporarySnapshotPath(args.directory, file.seqno);
  const handle = await open(temporary, "w", 0o600);
  let published = false;
  try {
    const check = new SnapshotStreamCheck(file.name, args.bytesMax);
    const started = Date.now();
    let progressAt = started;
    /** The file's length, from the first answer's Content-Length (a resumed answer must agree). */
    let total: number | undefined;
    for (let resumes = 0; ; resumes++) {
      const from = check.bytes;
      const options = requestOptions(args.target, args.path, args.serviceCertPem);
      if (from > 0) options.headers = { range: `bytes=${from}-` };
      const { res, abort } = await send(options, Math.max(1, args.deadlineMs - (Date.now() - started)));
      const length = Number(res.headers["content-length"]);
      if (from === 0) {
        if (res.statusCode !== 200) {
          const text = await smallBody(res, abort).catch(() => "");
          throw new CocoError("SnapshotFetchFailed", `GET ${args.path} answered ${res.statusCode ?? 0}: ${text.slice(0, 200)}`, 502);
        }
        if (Number.isFinite(length)) total = length;
      } else {
        // The rest of the same file, or nothing: a 200 (whole file) or another length is not it.
        const range = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(String(res.headers["content-range"] ?? ""));
        if (res.statusCode !== 206 || range === null || Number(range[1]) !== from || (total !== undefined && Number(range[3]) !== total)) {
          abort(new Error("not a resumption"));
          throw new CocoError("SnapshotFetchFailed",
            `GET ${args.path} from byte ${from} answered ${res.statusCode ?? 0} ${String(res.headers["content-range"] ?? "")}: not the rest of the same file; the download starts over at the next attempt.`, 502);
        }
        total = Number(range[3]);
        args.logger.info({ name: file.name, from, of_bytes: total, resumes }, "resuming the service's snapshot where the connection was cut");
      }
      if (total !== undefined && total > args.bytesMax) {
        abort(new Error("too large"));
        throw new CocoError("SnapshotTooLarge", `The snapshot ${file.name} is ${total} bytes, more than the ${args.bytesMax} accepted.`, 502);
      }
      // Errors of the file itself (framing, a full disk) end the download; a cut connection may resume.
      let fatal: unknown;
      try {
        for await (const chunk of res as AsyncIterable<Buffer>) {
          try {
            check.push(chunk);
            await handle.write(chunk);
          } catch (error) {
            fatal = error;
            throw error;
          }
          // A large snapshot takes a while: say how far it got, every PROGRESS_LOG_MS.
          const now = Date.now();
          if (now - progressAt >= args.progressLogMs) {
            progressAt = now;
            args.logger.info({
              name: file.name, bytes: check.bytes, ...(total !== undefined ? { of_bytes: total } : {}),
              mib_per_s: Math.round((check.bytes / 2 ** 20 / ((now - started) / 1000)) * 10) / 10,
            }, "fetching the service's snapshot");
          }
        }
        if (total === undefined || check.bytes >= total) break;
        // Ended early without an error (the server closed after a partial body): resume too.
        if (resumes >= SNAPSHOT_FETCH_RESUMES_MAX) throw new Error(`the connection ended after ${check.bytes} of ${total} bytes`);
      } catch (error) {
        abort(error as Error);
        if (fatal !== undefined || resumes >= SNAPSHOT_FETCH_RESUMES_MAX || check.bytes === from || Date.now() - started >= args.deadlineMs) throw error;
      }
    }
    const proof = check.finish();
    if (proof.header.seqno !== file.seqno) {
      throw new CocoError("InvalidSnapshot", `Snapshot ${file.name} refused: it holds seqno ${proof.header.seqno}, its name says ${file.seqno}.`, 400);
    }
    verifySnapshot(proof, file.name, [args.serviceCertPem], file.evidenceSeqno);
    if (args.durable) await handle.sync();
    await handle.close();
    await publishSnapshotFile(args.directory, temporary, file.name, args.durable);
    published = true;
    return check.bytes;
  } finally {
    if (!published) {
      await handle.close().catch(() => undefined);
      await unlink(temporary).catch(() => undefined);
    }
  }
}

/**
 * Fetches, verifies and stores the target's newest committed snapshot. Returns its name and
 * seqnos, or undefined when the service has none newer (the joiner then replicates the whole
 * ledger). A snapshot that does not verify is an error: the target is not serving this service's
 * history. The stored file is read again (and verified again) when the node starts from it.
 */
export async function fetchServiceSnapshot(args: {
  target: Target; serviceCertPem: string; directory: string; durable: boolean;
  logger: { info(o: object, msg: string): void; warn(o: object, msg: string): void };
  /** Fetch nothing (answer undefined) unless the service's newest snapshot is above this seqno. */
  newerThan?: number;
  /** Tests: a smaller limit than SNAPSHOT_FETCH_BYTES_MAX, a shorter deadline, progress lines more often. */
  bytesMax?: number;
  deadlineMs?: number;
  progressLogMs?: number;
}): Promise<SnapshotFileInfo | undefined> {
  const deadlineMs = args.deadlineMs ?? SNAPSHOT_FETCH_DEADLINE_MS;
  const query = args.newerThan !== undefined && args.newerThan > 0 ? `?since=${args.newerThan}` : "";
  const { res, abort } = await send(requestOptions(args.target, `${SNAPSHOT_PATH}${query}`, args.serviceCertPem), deadlineMs);
  const text = await smallBody(res, abort);
  if (res.statusCode === 404) {
    // (A backup asking for a newer one hears this until the primary's next snapshot commits: not logged.)
    if (args.newerThan === undefined) args.logger.info({ target: args.target }, "the service has no committed snapshot: replicating the whole ledger");
    return undefined;
  }
  const location = res.headers["location"];
  if (res.statusCode !== 307 || typeof location !== "string" || !location.startsWith(`${SNAPSHOT_PATH}/`)) {
    throw new CocoError("SnapshotFetchFailed", `GET ${SNAPSHOT_PATH} answered ${res.statusCode ?? 0} without a snapshot location: ${text.slice(0, 200)}`, 502);
  }
  const name = decodeURIComponent(location.slice(SNAPSHOT_PATH.length + 1));
  const file = parseSnapshotName(name);
  if (file === null || !file.committed) throw new CocoError("SnapshotFetchFailed", `The service redirected to '${name}', which is not a committed snapshot name.`, 502);
  if (args.newerThan !== undefined && file.seqno <= args.newerThan) return undefined;
  const started = Date.now();
  const bytes = await download({
    target: args.target, path: `${SNAPSHOT_PATH}/${encodeURIComponent(name)}`, serviceCertPem: args.serviceCertPem, file,
    directory: args.directory, durable: args.durable, bytesMax: args.bytesMax ?? SNAPSHOT_FETCH_BYTES_MAX, deadlineMs, logger: args.logger,
    progressLogMs: args.progressLogMs ?? PROGRESS_LOG_MS,
  });
  args.logger.info({ name, bytes, ms: Date.now() - started }, "fetched and verified the service's snapshot");
  return file;
}
