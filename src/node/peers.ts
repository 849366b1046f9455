// Which nodes this node keeps node-to-node channels to: the other nodes of nodes.info that the
// membership rule admits (trusted, or retiring and still voting; never a retired node out of the
// configuration), plus, until its ledger names them, the peers a join response or the
// workspace's peers.json gave it. Whenever the rule's answer may change, refused peers lose their
// outbound channel and their inbound connections are closed (both directions). Their addresses
// are also kept in peers.json: a node whose ledger was wiped (or moved away after damage) has
// lost nodes.info with it, and from this file it still finds its peers and catches up from them
// rather than stay alone.
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "pino";
import type { NodeChannels } from "../channels/index.js";
import type { Store } from "../kv/index.js";
import { parseAddress } from "./config.js";
import { NODES_INFO_MAP } from "./join.js";
import type { PeerAdmission } from "./membership.js";
import { readNodes } from "./reconfiguration.js";

export interface KnownPeer {
  readonly node_id: string;
  readonly node_to_node_address: string;
  /** Its RPC address: where a node whose state is gone fetches a snapshot from it (snapshot-install.ts). */
  readonly rpc_address?: string;
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

/** Keeps the channels' peer set equal to the service's other nodes, and peers.json up to date. */
export class PeerSync {
  private scheduled = false;
  private fileText: string | undefined;

  constructor(
    private readonly options: {
      nodeId: string;
      workspace: string;
      store: Store;
      channels: NodeChannels;
      bootstrapPeers: readonly KnownPeer[];
      admission: PeerAdmission;
      logger: Logger;
    },
  ) {
    const schedule = () => {
      if (this.scheduled) return;
      this.scheduled = true;
      setImmediate(() => this.sync());
    };
    options.store.onWrite(NODES_INFO_MAP, schedule);
    options.store.onRollback(schedule);
    options.admission.onChange(schedule);
  }

  sync(): void {
    this.scheduled = false;
    const { nodeId: self, channels, logger, admission } = this.options;
    // Inbound first: a node refused now must not keep a connection it opened while accepted.
    channels.recheckInboundPeers();
    const wanted = new Set<string>();
    const known = readNodes(this.options.store);
    for (const peer of this.options.bootstrapPeers) {
      if (known.has(peer.node_id) || peer.node_id === self || !admission.accepts(peer.node_id)) continue;
      wanted.add(peer.node_id);
      channels.setPeer(peer.node_id, parseAddress(peer.node_to_node_address));
    }
    const addresses: KnownPeer[] = [];
    for (const [nodeId, node] of known) {
      // A Pending node has no channels yet (it starts them once trusted).
      if (nodeId === self || node.status === "Pending" || !node.node_to_node_interface) continue;
      if (!admission.accepts(nodeId)) continue;
      const address = node.node_to_node_interface.published_address ?? node.node_to_node_interface.bind_address;
      const rpc = Object.values(node.rpc_interfaces ?? {})[0];
      wanted.add(nodeId);
      try {
        channels.setPeer(nodeId, parseAddress(address));
        addresses.push({ node_id: nodeId, node_to_node_address: address, ...(rpc !== undefined ? { rpc_address: rpc.published_address ?? rpc.bind_address } : {}) });
      } catch (error) {
        logger.error({ node_id: nodeId, err: (error as Error).message }, "node-to-node address in nodes.info is unusable");
      }
    }
    for (const peer of Object.keys(channels.stats())) if (!wanted.has(peer)) channels.removePeer(peer);
    if (addresses.length === 0) return;
    try {
      this.fileText = writePeersFile(this.options.workspace, addresses, this.fileText);
    } catch (error) {
      logger.warn({ err: (error as Error).message }, "could not record the peers' addresses in the workspace");
    }
  }
}
