// The governed opening of a new service, as an operator runs it once the first node is up:
// the genesis member acknowledges the service state (Accepted -> Active), then proposes the
// initial users and `transition_service_to_open` and votes for it; with one member its ballot
// accepts the proposal. Used by the sandbox and by tests; CCF's sandbox does the same steps.
import { GovernanceClient, type ProposalInfo } from "./gov.js";

export interface OpenServiceOptions {
  url: string;
  serviceCertPem: string;
  memberCertPem: string;
  memberKeyPem: string;
  userCertPems: string[];
  timeoutMs?: number;
  /** Other Active members who vote for the proposal too (a consortium whose majority is more than one). */
  coVoters?: { memberCertPem: string; memberKeyPem: string }[];
}

export async function openServiceAsMember(options: OpenServiceOptions): Promise<ProposalInfo | undefined> {
  const client = new GovernanceClient({
    url: options.url,
    serviceCertPem: options.serviceCertPem,
    memberCertPem: options.memberCertPem,
    memberKeyPem: options.memberKeyPem,
  });
  try {
    const info = await client.serviceInfo();
    if (info.status === "Open") return undefined;
    const me = (await client.members()).find((m) => m.memberId === client.memberId);
    if (me?.status !== "Active") await client.ack();
    let proposal = await client.propose({
      actions: [
        ...options.userCertPems.map((cert) => ({ name: "set_user", args: { cert } })),
        { name: "transition_service_to_open", args: { next_service_identity: options.serviceCertPem } },
      ],
    });
    // As in CCF, the proposer votes like any member; with one member its ballot decides.
    if (proposal.proposalState === "Open") proposal = await client.accept(proposal.proposalId);
    for (const voter of options.coVoters ?? []) {
      if (proposal.proposalState !== "Open") break;
      const other = new GovernanceClient({ url: options.url, serviceCertPem: options.serviceCertPem, ...voter });
      try {
        proposal = await other.accept(proposal.proposalId);
      } finally {
        await other.close();
      }
    }
    if (proposal.proposalState !== "Accepted") {
      throw new Error(`the proposal to open the service is ${proposal.proposalState}, not Accepted: ${JSON.stringify(proposal)}`);
    }
    if (proposal.transactionId) await client.waitForCommit(proposal.transactionId, { timeoutMs: options.timeoutMs ?? 30_000 });
    return proposal;
  } finally {
    await client.close();
  }
}
