// The web explorer and governance console served by the node at /explorer (docs/explorer.md).
export { EXPLORER_CONTENT_SECURITY_POLICY, EXPLORER_PATH, installExplorerEndpoints, rewriteBareImports } from "./routes.js";
