// Which transactions are recent, and their ids. The node names a transaction by view.seqno but
// publishes only its commit point (/node/commit) and a status lookup (/node/tx): the page learns
// each seqno's view from those. Views never decrease along the ledger, so a seqno between two
// commit points of the same view has that view; otherwise the page asks /node/tx, trying views
// downwards from the next known one (a wrong view answers Invalid).
import { getJson } from "./api.js";

/** How many of the latest committed seqnos the page lists. */
export const RECENT_TRANSACTIONS_MAX = 20;
/** Views tried for one seqno before the page gives up on naming it. */
const VIEW_PROBES_PER_SEQNO_MAX = 4;
/** Seqnos whose view the page remembers (older ones are dropped first). */
const KNOWN_VIEWS_MAX = 1000;

export function parseTxId(/** @type {string} */ text) {
  const match = /^(\d{1,15})\.(\d{1,15})$/.exec(text.trim());
  if (match === null) throw new Error(`"${text}" is not a transaction id (view.seqno, e.g. 2.17)`);
  return { view: Number(match[1]), seqno: Number(match[2]) };
}

export class RecentTransactions {
  constructor(getStatus = defaultStatus) {
    /** @type {Map<number, number>} seqno -> view */
    this.views = new Map();
    /** @type {{view:number, seqno:number} | undefined} */
    this.lastCommit = undefined;
    this.getStatus = getStatus;
  }

  /**
   * The latest committed transactions, newest first, after the commit point `commitTxId`.
   * @param {string} commitTxId @returns {Promise<{ transactionId: string | null, seqno: number }[]>}
   */
  async update(commitTxId) {
    const commit = parseTxId(commitTxId);
    const previous = this.lastCommit;
    if (previous !== undefined && previous.view === commit.view) {
      for (let seqno = previous.seqno + 1; seqno < commit.seqno; seqno++) this.views.set(seqno, commit.view);
    }
    this.views.set(commit.seqno, commit.view);
    this.lastCommit = commit;
    const out = [];
    let nextView = commit.view;
    for (let seqno = commit.seqno; seqno >= 1 && out.length < RECENT_TRANSACTIONS_MAX; seqno--) {
      let view = this.views.get(seqno);
      if (view === undefined) view = await this.probe(seqno, nextView);
      if (view !== undefined) nextView = view;
      out.push({ transactionId: view === undefined ? null : `${view}.${seqno}`, seqno });
    }
    this.forgetOld();
    return out;
  }

  /** @param {number} seqno @param {number} highestView */
  async probe(seqno, highestView) {
    for (let view = highestView, tries = 0; view >= 1 && tries < VIEW_PROBES_PER_SEQNO_MAX; view--, tries++) {
      if ((await this.getStatus(`${view}.${seqno}`)) === "Committed") {
        this.views.set(seqno, view);
        return view;
      }
    }
    return undefined;
  }

  forgetOld() {
    if (this.views.size <= KNOWN_VIEWS_MAX) return;
    const seqnos = [...this.views.keys()].sort((a, b) => a - b);
    for (const seqno of seqnos.slice(0, seqnos.length - KNOWN_VIEWS_MAX)) this.views.delete(seqno);
  }
}

async function defaultStatus(/** @type {string} */ transactionId) {
  return (await getJson(`/node/tx?transaction_id=${encodeURIComponent(transactionId)}`)).status;
}
