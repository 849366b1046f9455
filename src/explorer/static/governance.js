// The consortium: members, users, proposals with their ballots and state, and the constitution,
// from the public /gov endpoints (api-version 2024-07-01).
import { getJson, getText, NodeError } from "./api.js";
import { badge, el, errorText, fill, fillIfChanged, shortId, table } from "./ui.js";

const API = "api-version=2024-07-01";
/** Ballots are fetched for the proposal the reader opens, one request per member: bounded. */
const BALLOT_LOOKUPS_MAX = 64;

/**
 * @typedef {object} Consortium
 * @property {any[]} members
 * @property {any[]} users
 * @property {any[]} proposals
 */

/** @returns {Promise<Consortium>} */
export async function loadConsortium() {
  const [members, users, proposals] = await Promise.all([
    getJson(`/gov/service/members?${API}`), getJson(`/gov/service/users?${API}`), getJson(`/gov/members/proposals?${API}`),
  ]);
  return { members: members.value, users: users.value, proposals: proposals.value };
}

function json(/** @type {unknown} */ value) {
  return value === null || value === undefined ? "" : el("code", { class: "wrap" }, JSON.stringify(value));
}

/** @param {Consortium} consortium */
export function renderConsortium(consortium) {
  fillIfChanged("members", JSON.stringify(consortium.members), () => [table(["Member", "Status", "Recovery role", "Member data"],
    consortium.members.map((m) => [shortId(m.memberId), badge(m.status), m.recoveryRole ?? "", json(m.memberData)]), { "data-testid": "members-table" })]);
  fillIfChanged("users", JSON.stringify(consortium.users), () => [consortium.users.length === 0 ? el("p", { class: "hint" }, "No users.") :
    table(["User", "User data"], consortium.users.map((u) => [shortId(u.userId), json(u.userData)]), { "data-testid": "users-table" })]);
  const proposals = [...consortium.proposals].sort((a, b) => (a.proposalState === "Open" ? -1 : 0) - (b.proposalState === "Open" ? -1 : 0));
  fillIfChanged("proposals", JSON.stringify([proposals, consortium.members.map((m) => m.memberId)]), () => [proposals.length === 0 ? el("p", { class: "hint" }, "No proposals.") :
    table(["Proposal", "Proposer", "State", "Ballots", ""], proposals.map((p) => [
      shortId(p.proposalId), shortId(p.proposerId), el("span", { "data-proposal-state": p.proposalId }, badge(p.proposalState)), p.ballotCount,
      el("button", { class: "small", type: "button", onclick: () => void showProposal(p, consortium.members) }, "Details"),
    ]), { "data-testid": "proposals-table" })]);
}

/** A proposal's actions, each member's ballot (if any) and the final votes once it closed. */
async function showProposal(/** @type {any} */ proposal, /** @type {any[]} */ members) {
  fill("proposal-detail", el("p", { class: "hint" }, "Loading…"));
  try {
    const actions = await getJson(`/gov/members/proposals/${proposal.proposalId}/actions?${API}`);
    const ballots = await Promise.all(members.slice(0, BALLOT_LOOKUPS_MAX).map(async (m) => {
      try {
        return { memberId: m.memberId, ballot: await getText(`/gov/members/proposals/${proposal.proposalId}/ballots/${m.memberId}?${API}`) };
      } catch (error) {
        if (error instanceof NodeError && error.status === 404) return { memberId: m.memberId, ballot: null };
        throw error;
      }
    }));
    const finalVotes = proposal.finalVotes ?? {};
    fill("proposal-detail",
      el("h3", {}, "Proposal ", el("code", { class: "wrap" }, proposal.proposalId)),
      el("p", {}, "State: ", badge(proposal.proposalState), proposal.failure ? ` — ${JSON.stringify(proposal.failure)}` : ""),
      el("pre", { "data-testid": "proposal-actions" }, JSON.stringify(actions, null, 2)),
      table(["Member", "Ballot", "Final vote"], ballots.map((b) => [
        shortId(b.memberId), b.ballot === null ? "no ballot" : el("pre", { class: "ballot" }, b.ballot),
        b.memberId in finalVotes ? (finalVotes[b.memberId] ? "for" : "against") : "",
      ])));
  } catch (error) {
    fill("proposal-detail", el("p", { class: "message-error" }, errorText(error)));
  }
}

export async function loadConstitution() {
  fill("constitution", el("pre", { "data-testid": "constitution" }, await getText("/gov/service/constitution")));
}
