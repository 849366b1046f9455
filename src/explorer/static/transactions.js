// Transactions: the latest committed ones, those this page submitted, a look-up by id, and a
// receipt verified here in the browser against the service certificate the reader trusts.
import { getJson, NodeError } from "./api.js";
import { toHex } from "./bytes.js";
import { parseCertificatePem } from "./der.js";
import { parseTxId, RecentTransactions } from "./recent.js";
import { sameCertificate, verifyReceipt } from "./receipt.js";
import { badge, byId, el, errorText, fill, fillIfChanged, say, table } from "./ui.js";
import { verifyPrehashed } from "./noble.js";

/** Transactions this page submitted whose status it follows until Committed or Invalid. */
const SUBMITTED_MAX = 20;

const recent = new RecentTransactions();
/** @type {{ transactionId: string, what: string, status: string }[]} */
const submitted = [];
/** The service certificate from the node (unverified) and, if the reader loaded one, theirs. */
const trust = { nodePem: "", loadedPem: "" };

export function setNodeServiceCertificate(/** @type {string} */ pem) {
  trust.nodePem = pem;
  renderTrust();
}

/** Follows a transaction the page submitted (a proposal, a ballot). */
export function trackSubmitted(/** @type {string | null} */ transactionId, /** @type {string} */ what) {
  if (transactionId === null) return;
  submitted.unshift({ transactionId, what, status: "Pending" });
  submitted.length = Math.min(submitted.length, SUBMITTED_MAX);
}

async function status(/** @type {string} */ transactionId) {
  return (await getJson(`/node/tx?transaction_id=${encodeURIComponent(transactionId)}`)).status;
}

function inspectButton(/** @type {string | null} */ transactionId) {
  if (transactionId === null) return "";
  return el("button", { class: "small", type: "button", "data-txid": transactionId, onclick: () => inspect(transactionId) }, "Inspect");
}

/** @param {string} commitTxId */
export async function refreshTransactions(commitTxId) {
  const latest = await recent.update(commitTxId);
  fillIfChanged("recent-transactions", JSON.stringify(latest), () => [table(["Transaction", "Status", ""],
    latest.map((t) => [t.transactionId === null ? `?.${t.seqno}` : el("code", {}, t.transactionId), t.transactionId === null ? "view unknown" : badge("Committed"), inspectButton(t.transactionId)]),
    { "data-testid": "recent-table" })]);
  for (const entry of submitted) {
    if (entry.status === "Committed" || entry.status === "Invalid") continue;
    try {
      entry.status = await status(entry.transactionId);
    } catch {
      // the node may be electing a primary; try again at the next refresh
    }
  }
  fillIfChanged("submitted-transactions", JSON.stringify(submitted), () => [submitted.length === 0 ? el("p", { class: "hint" }, "Proposals and ballots sent from this page appear here.") :
    table(["Transaction", "What", "Status", ""], submitted.map((t) => [el("code", {}, t.transactionId), t.what, badge(t.status), inspectButton(t.transactionId)]))]);
}

async function inspect(/** @type {string} */ transactionId) {
  /** @type {HTMLInputElement} */ (byId("lookup-txid")).value = transactionId;
  await lookup();
}

async function lookup() {
  const text = /** @type {HTMLInputElement} */ (byId("lookup-txid")).value;
  try {
    const { view, seqno } = parseTxId(text);
    const answer = await status(`${view}.${seqno}`);
    fill("lookup-result", "Status of ", el("code", {}, `${view}.${seqno}`), ": ", el("span", { "data-testid": "lookup-status" }, badge(answer)));
  } catch (error) {
    fill("lookup-result", el("span", { class: "message-error" }, errorText(error)));
  }
}

async function fetchReceipt() {
  const text = /** @type {HTMLInputElement} */ (byId("lookup-txid")).value;
  try {
    const { view, seqno } = parseTxId(text);
    const receipt = await getJson(`/app/receipt?transaction_id=${view}.${seqno}`);
    /** @type {HTMLTextAreaElement} */ (byId("receipt-json")).value = JSON.stringify(receipt, null, 2);
    await verifyShown();
  } catch (error) {
    const hint = error instanceof NodeError && error.status === 401
      ? " — the node gives receipts to users and members who present their TLS client certificate; import yours into the browser, or paste a receipt from `coco receipt` or your app."
      : "";
    say("receipt-result", `${errorText(error)}${hint}`, "error");
  }
}

async function verifyShown() {
  const text = /** @type {HTMLTextAreaElement} */ (byId("receipt-json")).value;
  const anchor = trust.loadedPem || trust.nodePem;
  const source = trust.loadedPem ? "the service certificate you loaded" : "the service certificate this node announced";
  try {
    const result = await verifyReceipt(JSON.parse(text), anchor, verifyPrehashed);
    say("receipt-result", `Receipt verified against ${source}: transaction ${result.transactionId} is in the ledger under root ${result.root}, signed by node ${result.nodeId}.`, "ok");
  } catch (error) {
    say("receipt-result", errorText(error), "error");
  }
}

async function loadServiceCertificate(/** @type {Event} */ event) {
  const file = /** @type {HTMLInputElement} */ (event.target).files?.[0];
  if (file === undefined) return;
  const pem = await file.text();
  try {
    parseCertificatePem(pem);
    trust.loadedPem = pem;
  } catch (error) {
    say("trust-status", `Not a PEM certificate: ${errorText(error)}`, "error");
    return;
  }
  renderTrust();
}

async function fingerprint(/** @type {string} */ pem) {
  return toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", parseCertificatePem(pem).der)));
}

async function renderTrust() {
  if (trust.loadedPem === "") {
    say("trust-status", "Receipts are checked against the service certificate this node announced. Load your copy of service_cert.pem to check against a certificate you trust.", "info");
  } else if (trust.nodePem !== "" && !sameCertificate(trust.loadedPem, trust.nodePem)) {
    say("trust-status", `Your service certificate (SHA-256 ${await fingerprint(trust.loadedPem)}) differs from the one this node announces: this is not the service you trust, or it was recovered with a new identity.`, "error");
  } else {
    say("trust-status", `Receipts are checked against your service certificate (SHA-256 ${await fingerprint(trust.loadedPem)}), which this node also announces.`, "ok");
  }
}

export function setUpTransactions() {
  byId("lookup-button").addEventListener("click", () => void lookup());
  byId("receipt-fetch").addEventListener("click", () => void fetchReceipt());
  byId("receipt-verify").addEventListener("click", () => void verifyShown());
  byId("trust-file").addEventListener("change", (event) => void loadServiceCertificate(event));
  byId("lookup-form").addEventListener("submit", (event) => {
    event.preventDefault();
    void lookup();
  });
}
