// Installs CCF's governance REST API (api-version 2024-07-01) on an endpoint registry. All
// endpoints use the `no_auth` policy: members sign request bodies (COSE Sign1) and the
// handlers authenticate them against the member tables of the same transaction.
import type { EndpointRegistry } from "../rpc/index.js";
import { installAckEndpoints } from "./acks.js";
import type { GovernanceDeps } from "./common.js";
import { installProposalEndpoints } from "./proposals.js";
import { installServiceViewEndpoints } from "./service-views.js";

export function installGovernanceEndpoints(registry: EndpointRegistry, deps: GovernanceDeps): void {
  installProposalEndpoints(registry, deps);
  installAckEndpoints(registry, deps);
  installServiceViewEndpoints(registry, deps);
}
