// The explorer's entry point: tabs, and a refresh loop that reads the node's public endpoints
// every REFRESH_INTERVAL_MS for the tab in view (one round of requests at a time).
import { loadAppApi } from "./app-api.js";
import { loadConstitution, loadConsortium, renderConsortium } from "./governance.js";
import { renderOpenProposals, setUpMemberConsole } from "./member-console.js";
import { loadService, renderOverview } from "./overview.js";
import { refreshTransactions, setNodeServiceCertificate, setUpTransactions } from "./transactions.js";
import { byId, errorText, say } from "./ui.js";

const REFRESH_INTERVAL_MS = 2000;
const TABS = ["overview", "transactions", "governance", "console", "api"];

let currentTab = "overview";
let refreshing = false;
let refreshAgain = false;

function showTab(/** @type {string} */ name) {
  if (!TABS.includes(name)) name = "overview";
  currentTab = name;
  for (const tab of TABS) {
    byId(`tab-${tab}`).hidden = tab !== name;
    byId(`nav-${tab}`).setAttribute("aria-current", tab === name ? "page" : "false");
  }
  if (name === "governance") void loadConstitution().catch((error) => say("page-status", errorText(error), "error"));
  if (name === "api") void loadAppApi().catch((error) => say("page-status", `App API: ${errorText(error)}`, "error"));
  void refresh();
}

async function refresh() {
  if (refreshing) {
    refreshAgain = true;
    return;
  }
  refreshing = true;
  try {
    const service = await loadService();
    renderOverview(service);
    setNodeServiceCertificate(service.network.service_certificate);
    if (currentTab === "transactions") await refreshTransactions(service.commit);
    if (currentTab === "governance" || currentTab === "console") {
      const consortium = await loadConsortium();
      renderConsortium(consortium);
      renderOpenProposals(consortium.proposals);
    }
    say("page-status", `Updated ${new Date().toLocaleTimeString()}`, "info");
  } catch (error) {
    say("page-status", `Cannot read the node: ${errorText(error)}`, "error");
  } finally {
    refreshing = false;
  }
  if (refreshAgain) {
    refreshAgain = false;
    void refresh();
  }
}

function start() {
  for (const tab of TABS) byId(`nav-${tab}`).addEventListener("click", () => { location.hash = tab; });
  window.addEventListener("hashchange", () => showTab(location.hash.slice(1)));
  byId("refresh").addEventListener("click", () => void refresh());
  setUpTransactions();
  setUpMemberConsole(() => void refresh());
  showTab(location.hash.slice(1) || "overview");
  setInterval(() => void refresh(), REFRESH_INTERVAL_MS);
}

start();
