// `coco gov`: a member's governance commands (propose, vote, withdraw, list, show, members, ack,
// and the disaster-recovery steps under `coco gov recovery`) over CCF's governance REST API.
// Exit codes: 0 done, 1 the service refused or could not be reached (printed as
// `coco: <code>: <message>`), 2 the command line itself was wrong.
import { readFileSync } from "node:fs";
import { Command, CommanderError } from "commander";
import {
  ACCEPT_BALLOT,
  GovernanceClient,
  REJECT_BALLOT,
  submitMemberRecoveryShare,
  type MemberInfo,
  type Proposal,
  type ProposalInfo,
} from "../client/index.js";
import { CocoError } from "../util/index.js";
import { addContextOptions, resolveContext, type ContextFlags } from "./context.js";

export const EXIT_SERVICE_ERROR = 1;
export const EXIT_USAGE_ERROR = 2;

/** As parsed, then resolved (flag, environment, workspace: context.ts) before any use. */
interface CommonOptions extends ContextFlags {
  url: string;
  serviceCert: string;
  memberCert: string;
  memberKey: string;
  json: boolean;
  wait: boolean;
}

/** A mistake on the command line (exit 2), as opposed to a refusal by the service (exit 1). */
class UsageError extends Error {}

function addCommonOptions(command: Command, opts: { wait?: boolean } = {}): Command {
  addContextOptions(command, { member: true })
    .option("--json", "print the service's answer as JSON (for scripts)", false);
  if (opts.wait) command.option("--wait", "wait until the transaction is committed before returning", false);
  return command;
}

function readText(file: string, what: string, hint: string): string {
  try {
    return file === "-" ? readFileSync(0, "utf8") : readFileSync(file, "utf8");
  } catch (error) {
    throw new UsageError(`cannot read ${what} '${file}': ${(error as NodeJS.ErrnoException).code ?? (error as Error).message} (${hint})`);
  }
}

function parseJsonText(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new UsageError(`${what} is not valid JSON: ${(error as Error).message}`);
  }
}

/** Builds a client; member files are loaded only for commands that sign. */
function makeClient(opts: CommonOptions, signs: boolean): GovernanceClient {
  const serviceCertPem = readText(opts.serviceCert, "service certificate", "use --service-cert");
  let memberCertPem: string | undefined;
  let memberKeyPem: string | undefined;
  if (signs) {
    memberCertPem = readText(opts.memberCert, "member certificate", "use --member-cert");
    memberKeyPem = readText(opts.memberKey, "member private key", "use --member-key");
  } else {
    // Read-only commands work without a member identity; with one, `members` marks "you".
    try {
      memberCertPem = readFileSync(opts.memberCert, "utf8");
    } catch {
      memberCertPem = undefined;
    }
  }
  try {
    return new GovernanceClient({
      url: opts.url,
      serviceCertPem,
      ...(memberCertPem === undefined ? {} : { memberCertPem }),
      ...(memberKeyPem === undefined ? {} : { memberKeyPem }),
    });
  } catch (error) {
    if (error instanceof CocoError && error.code === "InvalidInput") throw new UsageError(error.message);
    throw new UsageError(`cannot use the member identity: ${(error as Error).message}`);
  }
}

/** Runs one command: usage errors exit 2, service errors exit 1, the client is always closed. */
async function run(opts: CommonOptions, signs: boolean, body: (client: GovernanceClient) => Promise<void>): Promise<void> {
  let client: GovernanceClient | undefined;
  try {
    const context = resolveContext(opts);
    Object.assign(opts, { url: context.url, serviceCert: context.serviceCert, memberCert: context.memberCert, memberKey: context.memberKey });
    client = makeClient(opts, signs);
    await body(client);
  } catch (error) {
    process.exitCode = report(error);
  } finally {
    await client?.close();
  }
}

function report(error: unknown): number {
  if (error instanceof UsageError) {
    console.error(`coco: ${error.message}`);
    return EXIT_USAGE_ERROR;
  }
  if (error instanceof CocoError) console.error(`coco: ${error.code}: ${error.message}`);
  else console.error(`coco: ${error instanceof Error ? error.message : String(error)}`);
  return EXIT_SERVICE_ERROR;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

export function describeProposal(info: ProposalInfo): string {
  const lines = [`Proposal ${info.proposalId} is ${info.proposalState} (${plural(info.ballotCount, "ballot")}).`];
  if (info.finalVotes !== undefined) {
    const votes = Object.entries(info.finalVotes).map(([member, vote]) => `${member.slice(0, 12)}… ${vote ? "for" : "against"}`);
    if (votes.length > 0) lines.push(`  votes: ${votes.join(", ")}`);
  }
  for (const [member, failure] of Object.entries(info.voteFailures ?? {})) {
    lines.push(`  ballot of ${member.slice(0, 12)}… failed: ${failure.reason}`);
  }
  if (info.failure !== undefined) lines.push(`  failure: ${info.failure.reason}`);
  if (info.transactionId !== undefined) lines.push(`  transaction ${info.transactionId}`);
  return lines.join("\n");
}

async function printWrite(client: GovernanceClient, info: ProposalInfo, opts: CommonOptions): Promise<void> {
  if (opts.wait && info.transactionId !== undefined) await client.waitForCommit(info.transactionId);
  if (opts.json) console.log(JSON.stringify(info, null, 2));
  else console.log(describeProposal(info) + (opts.wait && info.transactionId !== undefined ? " (committed)" : ""));
}

function proposalFromOptions(file: string | undefined, action: string | undefined, args: string | undefined): Proposal {
  if (file !== undefined && action !== undefined) throw new UsageError("give either a proposal FILE or --action, not both");
  if (file === undefined && action === undefined) {
    throw new UsageError("nothing to propose: give a proposal FILE ({\"actions\":[...]}) or --action NAME [--args JSON]");
  }
  if (action !== undefined) {
    const parsedArgs = args === undefined ? {} : parseJsonText(args, "--args");
    return { actions: [{ name: action, args: parsedArgs }] };
  }
  if (args !== undefined) throw new UsageError("--args goes with --action; a proposal FILE carries its own args");
  const proposal = parseJsonText(readText(file!, "proposal file", "expected a JSON file"), `proposal file '${file}'`);
  const actions = (proposal as { actions?: unknown } | null)?.actions;
  if (!Array.isArray(actions) || actions.some((a) => typeof (a as { name?: unknown } | null)?.name !== "string")) {
    throw new UsageError(`proposal file '${file}' must be {"actions":[{"name":"...","args":{...}}, ...]}`);
  }
  return proposal as Proposal;
}

function ballotFromOptions(opts: { ballot?: string; accept?: boolean; reject?: boolean }): string {
  const chosen = [opts.ballot !== undefined, opts.accept === true, opts.reject === true].filter(Boolean).length;
  if (chosen === 0) throw new UsageError("say how to vote: --accept, --reject or --ballot FILE");
  if (chosen > 1) throw new UsageError("give only one of --accept, --reject and --ballot FILE");
  if (opts.accept) return ACCEPT_BALLOT;
  if (opts.reject) return REJECT_BALLOT;
  const text = readText(opts.ballot!, "ballot file", "expected a JS module exporting vote(proposal, proposerId), or CCF's {\"ballot\": \"...\"} JSON");
  // Accept both a bare JS module and CCF's ballot JSON ({"ballot": "<js>"}), as ccf tooling writes.
  if (text.trimStart().startsWith("{")) {
    const parsed = parseJsonText(text, `ballot file '${opts.ballot}'`) as { ballot?: unknown };
    if (typeof parsed.ballot !== "string") throw new UsageError(`ballot file '${opts.ballot}' is JSON but has no string "ballot" field`);
    return parsed.ballot;
  }
  return text;
}

function describeMember(member: MemberInfo, self: string | undefined): string {
  const you = member.memberId === self ? "  (you)" : "";
  return `${member.memberId}  ${member.status.padEnd(8)}  ${member.recoveryRole ?? "NonParticipant"}${you}`;
}

/** Adds `coco gov ...` to the program. */
export function registerGovCommands(program: Command): void {
  const gov = program
    .command("gov")
    .description("Govern the service as a member: propose, vote, withdraw, list proposals and members, activate (ack)")
    // Commander's own parse errors (unknown option, missing argument) are usage errors too: exit 2.
    .exitOverride((error: CommanderError) => {
      process.exit(error.exitCode === 0 ? 0 : EXIT_USAGE_ERROR);
    });

  addCommonOptions(
    gov.command("propose")
      .description("Submit a proposal from FILE ({\"actions\":[{\"name\",\"args\"}...]}, '-' for stdin) or from one --action")
      .argument("[file]", "proposal JSON file")
      .option("--action <name>", "propose one action by name, e.g. set_user or transition_service_to_open")
      .option("--args <json>", "the action's args as a JSON object (with --action; default {})"),
    { wait: true },
  ).action(async (file: string | undefined, opts: CommonOptions & { action?: string; args?: string }) => {
    await run(opts, true, async (client) => {
      const proposal = proposalFromOptions(file, opts.action, opts.args);
      await printWrite(client, await client.propose(proposal), opts);
    });
  });

  addCommonOptions(
    gov.command("vote")
      .description("Submit this member's ballot on proposal ID: --accept, --reject, or a JS ballot --ballot FILE")
      .argument("<id>", "proposal id")
      .option("--ballot <file>", "JS module exporting vote(proposal, proposerId), or {\"ballot\": \"...\"} JSON")
      .option("--accept", "vote for the proposal unconditionally")
      .option("--reject", "vote against the proposal unconditionally"),
    { wait: true },
  ).action(async (id: string, opts: CommonOptions & { ballot?: string; accept?: boolean; reject?: boolean }) => {
    await run(opts, true, async (client) => {
      const ballot = ballotFromOptions(opts);
      await printWrite(client, await client.vote(id, ballot), opts);
    });
  });

  addCommonOptions(
    gov.command("withdraw")
      .description("Withdraw proposal ID (only its proposer can, and only while it is Open)")
      .argument("<id>", "proposal id"),
    { wait: true },
  ).action(async (id: string, opts: CommonOptions) => {
    await run(opts, true, async (client) => {
      const info = await client.withdraw(id);
      if (info !== undefined) return printWrite(client, info, opts);
      if (opts.json) console.log(JSON.stringify({ proposalId: id, known: false }));
      else console.log(`Proposal ${id} is not known to the service (never existed or already removed); nothing to withdraw.`);
    });
  });

  addCommonOptions(
    gov.command("list").description("List the proposals the service holds, with their state and ballot count"),
  ).action(async (opts: CommonOptions) => {
    await run(opts, false, async (client) => {
      const proposals = await client.list();
      if (opts.json) return console.log(JSON.stringify(proposals, null, 2));
      if (proposals.length === 0) return console.log("No proposals.");
      for (const p of proposals) {
        console.log(`${p.proposalId}  ${p.proposalState.padEnd(9)}  ${plural(p.ballotCount, "ballot").padEnd(10)}  by ${p.proposerId.slice(0, 12)}…`);
      }
    });
  });

  addCommonOptions(
    gov.command("show").description("Show proposal ID: its state, votes and actions").argument("<id>", "proposal id"),
  ).action(async (id: string, opts: CommonOptions) => {
    await run(opts, false, async (client) => {
      const [info, proposal] = await Promise.all([client.get(id), client.actions(id)]);
      if (opts.json) return console.log(JSON.stringify({ ...info, actions: proposal.actions }, null, 2));
      console.log(describeProposal(info));
      console.log(`  proposer: ${info.proposerId}`);
      console.log("  actions:");
      for (const action of proposal.actions ?? []) {
        console.log(`    ${action.name} ${action.args === undefined ? "" : JSON.stringify(action.args)}`.trimEnd());
      }
    });
  });

  addCommonOptions(
    gov.command("members").description("List the consortium's members with their status (Accepted or Active) and recovery role"),
  ).action(async (opts: CommonOptions) => {
    await run(opts, false, async (client) => {
      const members = await client.members();
      if (opts.json) return console.log(JSON.stringify(members, null, 2));
      for (const m of members) console.log(describeMember(m, client.memberId));
    });
  });

  addCommonOptions(
    gov.command("ack").description("Activate this member: fetch a fresh state digest and sign it (turns an Accepted member Active)"),
  ).action(async (opts: CommonOptions) => {
    await run(opts, true, async (client) => {
      const digest = await client.updateStateDigest();
      await client.ack(digest.stateDigest);
      if (opts.json) console.log(JSON.stringify({ memberId: digest.memberId, stateDigest: digest.stateDigest, acked: true }, null, 2));
      else console.log(`Member ${digest.memberId} acknowledged state digest ${digest.stateDigest}; it is now Active.`);
    });
  });

  registerRecoveryCommands(gov);
}

/** `coco gov recovery ...`: a member's steps in a disaster recovery (docs/recovery.md). */
function registerRecoveryCommands(gov: Command): void {
  const recovery = gov.command("recovery")
    .description("Disaster recovery: open a recovered service (transition_service_to_open) and submit this member's recovery share");

  addCommonOptions(
    recovery.command("open")
      .description("Propose and vote for transition_service_to_open on a recovered service: --previous-service-cert names the service it "
        + "recovered, --service-cert (the new service's certificate) the next identity; the service then waits for recovery shares")
      .requiredOption("--previous-service-cert <file>", "certificate of the service whose ledger was recovered"),
    { wait: true },
  ).action(async (opts: CommonOptions & { previousServiceCert: string }) => {
    await run(opts, true, async (client) => {
      const previous = readText(opts.previousServiceCert, "previous service certificate", "use --previous-service-cert");
      const next = readText(opts.serviceCert, "service certificate", "use --service-cert");
      let info = await client.propose({
        actions: [{ name: "transition_service_to_open", args: { previous_service_identity: previous, next_service_identity: next } }],
      });
      if (info.proposalState === "Open") info = await client.accept(info.proposalId);
      await printWrite(client, info, opts);
    });
  });

  addCommonOptions(
    recovery.command("share")
      .description("Fetch this member's encrypted recovery share from the recovering service, decrypt it with --member-enc-key "
        + "and submit it (COSE-signed with --member-key); at the threshold the service restores its private state and opens")
      .requiredOption("--member-enc-key <file>", "this member's encryption private key (PEM, e.g. member0_enc_privk.pem)"),
  ).action(async (opts: CommonOptions & { memberEncKey: string }) => {
    await run(opts, true, async (client) => {
      const encryptionKeyPem = readText(opts.memberEncKey, "member encryption private key", "use --member-enc-key");
      const result = await submitMemberRecoveryShare(client, encryptionKeyPem);
      if (opts.json) console.log(JSON.stringify(result, null, 2));
      else console.log(result.message);
    });
  });

  addCommonOptions(
    recovery.command("status")
      .description("Show the service's status (Recovering, WaitingForRecoveryShares, Open) and recovery count"),
  ).action(async (opts: CommonOptions) => {
    await run(opts, false, async (client) => {
      const info = await client.serviceInfo();
      if (opts.json) return console.log(JSON.stringify(info, null, 2));
      console.log(`Service is ${info.status} (recovery count ${info.recoveryCount ?? 0}).`);
    });
  });
}
