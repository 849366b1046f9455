// The primary moves the consensus configuration towards the nodes governance trusts, one node
// at a time (Raft's single-server changes): what `public:ccf.gov.nodes.info` says is the
// target; the voter set follows it. Used by the node and by the deterministic simulator.
import type { Store } from "../kv/index.js";
import { NODES_INFO_MAP, type NodeInfo } from "./join.js";
import { RAFT_CONFIGURATION_MAP, type TransactionEngine } from "./engine.js";
import { SINGLETON_KEY } from "./signatures.js";

/** Every node of nodes.info, by id. */
export function readNodes(store: Store): Map<string, NodeInfo> {
  const tx = store.begin();
  const nodes = new Map<string, NodeInfo>();
  tx.forEach(NODES_INFO_MAP, (value, key) => {
    nodes.set(key.toString("utf8"), JSON.parse(value.toString("utf8")) as NodeInfo);
  });
  return nodes;
}

export interface VoterSet {
  readonly configuration: readonly string[];
  canReconfigure(): boolean;
}

/** The next single-node step from the current voters towards the Trusted nodes, if any. */
export function nextConfiguration(store: Store, current: readonly string[]): { voters: string[]; added?: string; removed?: string } | undefined {
  const trusted = [...readNodes(store)].filter(([, n]) => n.status === "Trusted").map(([id]) => id).sort();
  const toAdd = trusted.find((id) => !current.includes(id));
  if (toAdd !== undefined) return { voters: [...current, toAdd].sort(), added: toAdd };
  const toRemove = current.find((id) => !trusted.includes(id));
  if (toRemove !== undefined && current.length > 1) return { voters: current.filter((id) => id !== toRemove), removed: toRemove };
  return undefined;
}

/** On the primary, proposes the next step if consensus can take one now. */
export function reconcileConfiguration(
  engine: TransactionEngine,
  voters: VoterSet,
  logger: { info(o: object, msg: string): void; warn(o: object, msg: string): void },
): void {
  if (!engine.isPrimary || !voters.canReconfigure()) return;
  const next = nextConfiguration(engine.store, voters.configuration);
  if (next === undefined) return;
  const tx = engine.store.begin();
  tx.set(RAFT_CONFIGURATION_MAP, SINGLETON_KEY, Buffer.from(JSON.stringify(next.voters)));
  try {
    const id = engine.commitReconfiguration(tx, next.voters);
    logger.info({ seqno: id.seqno, voters: next.voters, added: next.added, removed: next.removed }, "reconfiguration proposed");
  } catch (error) {
    logger.warn({ err: error }, "reconfiguration not proposed");
  }
}
