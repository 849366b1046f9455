// The governance console: a member loads their certificate and private key into this page, which
// signs proposals, ballots and withdrawals with WebCrypto. The key is read from the file into a
// non-extractable CryptoKey and is never sent anywhere: requests carry only signatures. It is
// forgotten when the page closes or the member clicks "Forget key".
import { NodeError, postCose } from "./api.js";
import { importMemberIdentity, signGovernanceRequest } from "./cose.js";
import { trackSubmitted } from "./transactions.js";
import { badge, byId, el, errorText, fill, fillIfChanged, say, shortId, table } from "./ui.js";

const API = "api-version=2024-07-01";
export const ACCEPT_BALLOT = "export function vote (proposal, proposerId) { return true; }";
export const REJECT_BALLOT = "export function vote (proposal, proposerId) { return false; }";

/** @type {import("./cose.js").MemberIdentity | undefined} */
let identity;
/** Called after a request changed governance state, so the page refreshes. */
let onChange = () => {};

const nowSeconds = () => Math.floor(Date.now() / 1000);

/**
 * Signs and sends one request. A proposal identical to one made in the same second is refused as
 * a replay (created_at has one-second resolution): sign it again with the next second, as the CLI does.
 * @param {string} path @param {string} msgType @param {string} payload @param {string} [proposalId]
 */
async function send(path, msgType, payload, proposalId) {
  if (identity === undefined) throw new Error("load a member certificate and key first");
  const createdAt = nowSeconds();
  const sign = (/** @type {number} */ at) => signGovernanceRequest(/** @type {any} */ (identity), { msgType, createdAt: at, payload, ...(proposalId === undefined ? {} : { proposalId }) });
  try {
    return await postCose(path, await sign(createdAt));
  } catch (error) {
    if (!(error instanceof NodeError && error.code === "ProposalReplay" && msgType === "proposal")) throw error;
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, (createdAt + 1) * 1000 - Date.now())));
    return postCose(path, await sign(Math.max(createdAt + 1, nowSeconds())));
  }
}

async function loadIdentity() {
  const certFile = /** @type {HTMLInputElement} */ (byId("member-cert")).files?.[0];
  const keyFile = /** @type {HTMLInputElement} */ (byId("member-key")).files?.[0];
  if (certFile === undefined || keyFile === undefined) {
    say("identity-status", "Choose both your certificate (member_cert.pem) and your private key (member_privk.pem).", "error");
    return;
  }
  try {
    identity = await importMemberIdentity(await certFile.text(), await keyFile.text());
  } catch (error) {
    identity = undefined;
    say("identity-status", `Could not use this key: ${errorText(error)}`, "error");
    return;
  }
  // The file inputs keep a handle on the files, not their contents; clear them anyway.
  /** @type {HTMLInputElement} */ (byId("member-key")).value = "";
  say("identity-status", `Signing as member ${identity.memberId} (${identity.curve}). The key stays in this page.`, "ok");
  byId("member-tools").hidden = false;
  onChange();
}

function forgetIdentity() {
  identity = undefined;
  byId("member-tools").hidden = true;
  say("identity-status", "No key loaded.", "info");
}

async function propose() {
  const text = /** @type {HTMLTextAreaElement} */ (byId("proposal-text")).value;
  try {
    const parsed = JSON.parse(text);
    if (!Array.isArray(parsed?.actions)) throw new Error('a proposal is a JSON object {"actions": [{"name": ..., "args": {...}}, ...]}');
    const { body, transactionId } = await send(`/gov/members/proposals:create?${API}`, "proposal", text);
    trackSubmitted(transactionId, `proposal ${body.proposalId.slice(0, 8)}`);
    say("propose-result", `Proposal ${body.proposalId} is ${body.proposalState} (transaction ${transactionId}).`, "ok");
    byId("propose-result").dataset["proposalId"] = body.proposalId;
  } catch (error) {
    say("propose-result", errorText(error), "error");
  }
  onChange();
}

async function vote(/** @type {string} */ proposalId, /** @type {boolean} */ accept) {
  if (identity === undefined) return;
  try {
    const path = `/gov/members/proposals/${proposalId}/ballots/${identity.memberId}:submit?${API}`;
    const { body, transactionId } = await send(path, "ballot", JSON.stringify({ ballot: accept ? ACCEPT_BALLOT : REJECT_BALLOT }), proposalId);
    trackSubmitted(transactionId, `ballot on ${proposalId.slice(0, 8)}`);
    say("vote-result", `Voted ${accept ? "for" : "against"} ${proposalId.slice(0, 8)}: the proposal is now ${body.proposalState} (transaction ${transactionId}).`, "ok");
  } catch (error) {
    say("vote-result", errorText(error), "error");
  }
  onChange();
}

async function withdraw(/** @type {string} */ proposalId) {
  try {
    const { body, transactionId } = await send(`/gov/members/proposals/${proposalId}:withdraw?${API}`, "withdrawal", "", proposalId);
    trackSubmitted(transactionId, `withdrawal of ${proposalId.slice(0, 8)}`);
    say("vote-result", `Proposal ${proposalId.slice(0, 8)} is ${body?.proposalState ?? "unknown to the service"}.`, "ok");
  } catch (error) {
    say("vote-result", errorText(error), "error");
  }
  onChange();
}

/** The open proposals, with buttons to vote (and to withdraw one's own). @param {any[]} proposals */
export function renderOpenProposals(proposals) {
  if (identity === undefined) return;
  const me = identity.memberId;
  const open = proposals.filter((p) => p.proposalState === "Open");
  fillIfChanged("open-proposals", JSON.stringify([me, open]), () => [open.length === 0 ? el("p", { class: "hint" }, "No open proposals.") :
    table(["Proposal", "Proposer", "Ballots", ""], open.map((p) => [
      shortId(p.proposalId), p.proposerId === me ? "you" : shortId(p.proposerId), p.ballotCount,
      el("span", { class: "actions" },
        el("button", { type: "button", class: "small", "data-vote": `accept-${p.proposalId}`, onclick: () => void vote(p.proposalId, true) }, "Vote for"),
        el("button", { type: "button", class: "small", "data-vote": `reject-${p.proposalId}`, onclick: () => void vote(p.proposalId, false) }, "Vote against"),
        p.proposerId === me ? el("button", { type: "button", class: "small", onclick: () => void withdraw(p.proposalId) }, "Withdraw") : null),
    ]), { "data-testid": "open-proposals-table" })]);
}

/** Example proposals the member can start from. */
function templates() {
  const me = identity?.memberId ?? "<member id>";
  return {
    "set_member_data": { actions: [{ name: "set_member_data", args: { member_id: me, member_data: { name: "my organisation" } } }] },
    "set_user": { actions: [{ name: "set_user", args: { cert: "-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n", user_data: {} } }] },
    "transition_node_to_trusted": { actions: [{ name: "transition_node_to_trusted", args: { node_id: "<node id>", valid_from: new Date().toISOString() } }] },
    "set_recovery_threshold": { actions: [{ name: "set_recovery_threshold", args: { recovery_threshold: 1 } }] },
  };
}

export function setUpMemberConsole(/** @type {() => void} */ changed) {
  onChange = changed;
  byId("identity-load").addEventListener("click", () => void loadIdentity());
  byId("identity-forget").addEventListener("click", forgetIdentity);
  byId("propose-button").addEventListener("click", () => void propose());
  byId("proposal-template").addEventListener("change", (event) => {
    const name = /** @type {HTMLSelectElement} */ (event.target).value;
    const chosen = /** @type {Record<string, unknown>} */ (templates())[name];
    if (chosen !== undefined) /** @type {HTMLTextAreaElement} */ (byId("proposal-text")).value = JSON.stringify(chosen, null, 2);
  });
  fill("identity-badge", badge("Key stays in this page"));
}
