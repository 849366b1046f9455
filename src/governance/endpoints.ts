// Installs CCF's governance REST API (api-version 2024-07-01) on an endpoint registry. All
// endpoints use the `no_auth` policy: members sign request bodies (COSE Sign1) and the
// handlers authenticate them against the member tables of the same transaction.
import { buildOpenApiDocument, type EndpointRegistry } from "../rpc/index.js";
import { installAckEndpoints } from "./acks.js";
import { govHandler, type GovernanceDeps } from "./common.js";
import { installProposalEndpoints } from "./proposals.js";
import { installServiceViewEndpoints } from "./service-views.js";

export function installGovernanceEndpoints(registry: EndpointRegistry, deps: GovernanceDeps): void {
  installProposalEndpoints(registry, deps);
  installAckEndpoints(registry, deps);
  installServiceViewEndpoints(registry, deps);
  // Generated on each call from the registry, so endpoints installed later (recovery, node
  // effects) appear too. CCF answers the 2024-07-01 API with a fixed TypeSpec (Swagger 2.0)
  // document; Coco describes what it actually routes, in the node frontend's OpenAPI 3 shape.
  registry.install({
    method: "GET", path: "/gov/api", authPolicies: ["no_auth"], mode: "readonly",
    summary: "OpenAPI schema of the governance endpoints",
    handler: govHandler(() => ({
      body: buildOpenApiDocument({
        title: "CCF Governance API",
        description: "This API is used to submit and query proposals which affect CCF's public governance tables.",
        version: GOV_OPENAPI_DOCUMENT_VERSION,
      }, registry.list(), "/gov/"),
    })),
  });
}

/**
 * Version of the /gov/api document: CCF 6.0 LTS's governance frontend's `document_version`
 * (release/6.x at 4fda3f504, CCF 6.0.16: 4.7.4, was 4.7.2 in 6.0.1). The endpoints it describes
 * are those of the 2024-07-01 governance API.
 */
export const GOV_OPENAPI_DOCUMENT_VERSION = "4.7.4";
