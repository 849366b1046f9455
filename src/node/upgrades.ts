// Which app serves a WebSocket handshake: apps claim a path (and the paths below it) when they
// are installed; the node's HTTPS listener hands every upgrade request here. A path nobody
// claimed answers CCF's 404, and /app/* answers FrontendNotOpen until the service is open,
// exactly as plain HTTP requests to the same paths do.
import { ErrorCodes, errorBody, rejectUpgrade, type UpgradeHandler, type UpgradeRequest } from "../rpc/index.js";

/** Apps that take WebSockets: a handful (one per built-in app at most). */
const UPGRADE_ROUTES_MAX = 16;

export class UpgradeRouter {
  private readonly routes: { prefix: string; handler: UpgradeHandler }[] = [];

  constructor(private readonly isOpen: () => boolean) {}

  /** Serves upgrades of `prefix` and of paths below it (`prefix/...`). */
  register(prefix: string, handler: UpgradeHandler): void {
    if (!prefix.startsWith("/") || prefix.endsWith("/")) throw new Error(`an upgrade prefix is a path without a trailing '/': ${prefix}`);
    if (this.routes.some((r) => r.prefix === prefix)) throw new Error(`upgrades of ${prefix} are served twice`);
    if (this.routes.length >= UPGRADE_ROUTES_MAX) throw new Error(`at most ${UPGRADE_ROUTES_MAX} upgrade routes`);
    this.routes.push({ prefix, handler });
  }

  readonly handle = (upgrade: UpgradeRequest): void => {
    const { path } = upgrade.request;
    const route = this.routes.find((r) => path === r.prefix || path.startsWith(`${r.prefix}/`));
    if (route === undefined) {
      rejectUpgrade(upgrade.socket, 404, errorBody(ErrorCodes.ResourceNotFound, `Unknown path for a WebSocket: ${path}.`));
      return;
    }
    if (path.startsWith("/app/") && !this.isOpen()) {
      rejectUpgrade(upgrade.socket, 404, errorBody(ErrorCodes.FrontendNotOpen,
        "Frontend is not open: the service opens once members accept a transition_service_to_open proposal."));
      return;
    }
    route.handler(upgrade);
  };
}
