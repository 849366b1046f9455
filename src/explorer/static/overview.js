// The service at a glance: its status, identity, view and commit point, and its nodes with the
// primary marked. Everything comes from the public /node and /gov/service endpoints.
import { getJson } from "./api.js";
import { toHex } from "./bytes.js";
import { parseCertificatePem } from "./der.js";
import { badge, el, fill, fillIfChanged, shortId, table } from "./ui.js";

/**
 * @typedef {object} ServiceSnapshot
 * @property {any} network /node/network
 * @property {any[]} nodes /node/network/nodes
 * @property {string} commit the committed transaction id
 * @property {string} answeringNodeId /node/state's node_id
 * @property {string} serviceCertificateFingerprint hex SHA-256 of the service certificate DER
 */

/** @returns {Promise<ServiceSnapshot>} */
export async function loadService() {
  const [network, nodes, commit, state] = await Promise.all([
    getJson("/node/network"), getJson("/node/network/nodes"), getJson("/node/commit"), getJson("/node/state"),
  ]);
  const der = parseCertificatePem(network.service_certificate).der;
  const fingerprint = toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", der)));
  return { network, nodes: nodes.nodes, commit: commit.transaction_id, answeringNodeId: state.node_id, serviceCertificateFingerprint: fingerprint };
}

function rpcAddress(/** @type {any} */ node) {
  const first = Object.values(node.rpc_interfaces ?? {})[0];
  return first?.published_address ?? "";
}

/** @param {ServiceSnapshot} service */
export function renderOverview(service) {
  const { network } = service;
  fill("header-status", badge(network.service_status));
  fill("service-summary", el("dl", { class: "facts" },
    el("dt", {}, "Status"), el("dd", { "data-testid": "service-status" }, badge(network.service_status)),
    el("dt", {}, "Current view"), el("dd", {}, network.current_view),
    el("dt", {}, "Committed"), el("dd", { "data-testid": "commit-txid" }, el("code", {}, service.commit)),
    el("dt", {}, "Primary"), el("dd", { "data-testid": "primary-id" }, network.primary_id === null ? "none (election under way)" : shortId(network.primary_id)),
    el("dt", {}, "Created at"), el("dd", {}, el("code", {}, network.current_service_create_txid)),
    el("dt", {}, "Recoveries"), el("dd", {}, network.recovery_count),
    el("dt", {}, "Page served by"), el("dd", {}, shortId(service.answeringNodeId)),
    el("dt", {}, "Service certificate"), el("dd", {}, el("code", { class: "wrap", "data-testid": "service-fingerprint" }, `SHA-256 ${service.serviceCertificateFingerprint}`)),
  ));
  fillIfChanged("nodes", JSON.stringify([service.nodes, service.answeringNodeId]), () => [nodesTable(service)]);
}

/** @param {ServiceSnapshot} service */
function nodesTable(service) {
  const rows = service.nodes.map((node) => [
    shortId(node.node_id),
    badge(node.status),
    node.primary ? badge("Primary") : node.status === "Trusted" ? "backup" : "",
    node.in_configuration ? "yes" : "no",
    el("code", {}, rpcAddress(node)),
    node.node_id === service.answeringNodeId ? "this page's node" : "",
  ]);
  return table(["Node", "Status", "Role", "Voter", "RPC address", ""], rows, { "data-testid": "nodes-table" });
}
