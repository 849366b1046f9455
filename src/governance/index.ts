// Public face of governance: CCF's gov REST API (proposals, ballots, acks, service views),
// proposal resolution against the constitution, member COSE authentication, and the
// constitution's source.
export { installGovernanceEndpoints } from "./endpoints.js";
export { authenticateMember, checkApiVersion, GOV_API_VERSIONS, splitAction, unknownPath, type CreatedAtWindow, type GovernanceDeps } from "./common.js";
export { proposalIdFor, proposalToApi } from "./proposals.js";
export { failureOf, kvOnlyHooks, loadConstitution, resolveProposal, type GovernanceHooks, type ResolveContext } from "./resolve.js";
export { OverlayKv, readOnlyKv } from "./overlay-kv.js";
export { governanceKv, governanceTablePermission, type GovernanceAccess } from "./kv-permissions.js";
export {
  TABLES, SINGLETON_KEY, RECENT_COSE_PROPOSALS_WINDOW_SIZE_DEFAULT,
  type Failure, type MemberAck, type MemberInfo, type MemberStatus, type ProposalInfo, type ProposalState, type ServiceInfo,
} from "./tables.js";
export * from "./cose-auth.js";
export * from "./constitution.js";
