// CCF 6's snapshot endpoints, from which a joining node fetches a snapshot by itself:
//   GET|HEAD /node/snapshot[?since=<seqno>]  -> 307 to /node/snapshot/<name> of the newest
//            committed snapshot (newer than `since`), or 404 when there is none;
//   GET|HEAD /node/snapshot/{snapshot_name}  -> the file's bytes; `Range: bytes=a-b` gives 206.
// The files are public (their private maps are sealed with the ledger secret), as in CCF.
import type { FileHandle } from "node:fs/promises";
import { listSnapshots, openSnapshotFile, parseSnapshotName } from "../ledger/index.js";
import { ErrorCodes, FileRangeBody, parseQuery, type EndpointRegistry, type HandlerResult } from "../rpc/index.js";
import { CocoError } from "../util/index.js";

export const SNAPSHOT_PATH = "/node/snapshot";

export function installSnapshotEndpoints(registry: EndpointRegistry, directory: string): void {
  for (const method of ["GET", "HEAD"]) {
    registry.install({
      method, path: SNAPSHOT_PATH, mode: "readonly", authPolicies: ["no_auth"], forwarding: "never",
      summary: "Redirects to the newest committed snapshot of this node",
      handler: async (ctx): Promise<HandlerResult> => {
        const sinceText = parseQuery(ctx.request.query)["since"];
        const since = sinceText === undefined ? 0 : Number(sinceText);
        if (!Number.isSafeInteger(since) || since < 0) {
          throw new CocoError(ErrorCodes.InvalidQueryParameterValue, `Query parameter 'since' must be a seqno, got '${sinceText}'.`, 400);
        }
        const latest = (await listSnapshots(directory)).find((f) => f.committed && f.seqno > since);
        if (latest === undefined) {
          throw new CocoError(ErrorCodes.ResourceNotFound, `This node has no committed snapshot${since > 0 ? ` after seqno ${since}` : ""}.`, 404);
        }
        return { status: 307, headers: { location: `${SNAPSHOT_PATH}/${latest.name}` }, body: "" };
      },
    });
    registry.install({
      method, path: `${SNAPSHOT_PATH}/{snapshot_name}`, mode: "readonly", authPolicies: ["no_auth"], forwarding: "never",
      summary: "One snapshot file of this node (supports Range: bytes=a-b)",
      handler: async (ctx): Promise<HandlerResult> => {
        const name = ctx.params["snapshot_name"] ?? "";
        if (parseSnapshotName(name) === null) {
          throw new CocoError(ErrorCodes.ResourceNotFound, `'${name}' is not a snapshot name (snapshot_<seqno>_<evidence_seqno>[.committed]).`, 404);
        }
        // Sent from the open file as the client reads it: a download holds one read buffer, not
        // the file (an unauthenticated client could otherwise make the node read a large
        // snapshot into memory once per request).
        let handle: FileHandle;
        try {
          handle = await openSnapshotFile(directory, name);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === "ENOENT") throw new CocoError(ErrorCodes.ResourceNotFound, `This node has no snapshot ${name} (it may have been pruned).`, 404);
          throw error;
        }
        try {
          const size = (await handle.stat()).size;
          const headers: Record<string, string> = { "content-type": "application/octet-stream", "accept-ranges": "bytes" };
          const range = rangeOf(ctx.request.headers["range"], size);
          if (range !== undefined) headers["content-range"] = `bytes ${range.start}-${range.end}/${size}`;
          const body = range === undefined ? new FileRangeBody(handle, 0, size) : new FileRangeBody(handle, range.start, range.end + 1);
          if (method === "HEAD") headers["content-length"] = String(body.length);
          return { status: range === undefined ? 200 : 206, headers, body };
        } catch (error) {
          await handle.close().catch(() => undefined);
          throw error;
        }
      },
    });
  }
}

/** One `bytes=a-b`, `bytes=a-` or `bytes=-n` range; undefined without a Range header. */
function rangeOf(header: string | string[] | undefined, size: number): { start: number; end: number } | undefined {
  if (header === undefined) return undefined;
  const match = typeof header === "string" ? /^bytes=(\d*)-(\d*)$/.exec(header.trim()) : null;
  const unsatisfiable = () => new CocoError("RangeNotSatisfiable", `Range '${String(header)}' is not one satisfiable byte range of a ${size}-byte file.`, 416);
  if (match === null || (match[1] === "" && match[2] === "")) throw unsatisfiable();
  let start: number;
  let end: number;
  if (match[1] === "") {
    start = Math.max(0, size - Number(match[2]));
    end = size - 1;
  } else {
    start = Number(match[1]);
    end = match[2] === "" ? size - 1 : Math.min(Number(match[2]), size - 1);
  }
  if (start > end || start >= size) throw unsatisfiable();
  return { start, end };
}
