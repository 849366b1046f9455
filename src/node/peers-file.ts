// The node-to-node addresses of the service's other nodes, kept in the workspace. A node whose
// ledger was wiped (or moved away after damage) has lost nodes.info with it; from this file it
// still finds its peers, and catches up from them rather than stay alone forever.
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface KnownPeer {
  readonly node_id: string;
  readonly node_to_node_address: string;
}

const PEERS_FILE = "peers.json";

export function readPeersFile(workspace: string): KnownPeer[] {
  const path = join(workspace, PEERS_FILE);
  if (!existsSync(path)) return [];
  try {
    const parsed = JSON.parse(readFileSync(path, "utf8")) as unknown;
    if (!Array.isArray(parsed)) return [];
    return parsed.filter((p): p is KnownPeer => typeof p?.node_id === "string" && typeof p?.node_to_node_address === "string");
  } catch {
    return []; // a damaged hint file only costs the hint
  }
}

/** Rewrites the file when the set changed (atomically: a crash leaves the old or the new list). */
export function writePeersFile(workspace: string, peers: readonly KnownPeer[], previous: string | undefined): string {
  const text = JSON.stringify([...peers].sort((a, b) => (a.node_id < b.node_id ? -1 : 1)));
  if (text === previous) return text;
  const path = join(workspace, PEERS_FILE);
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
  return text;
}
