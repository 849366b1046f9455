// Which service a `coco gov`, `coco app` or `coco receipt` command talks to, and as whom. Each
// setting comes from its flag, else its environment variable, else the workspace (--workspace,
// else COCO_WORKSPACE, else ./workspace, the sandbox's default): the node's address from
// rpc_addresses.json (written once it listens, so a port the OS chose is known) or config.json,
// and service_cert.pem, member0_*.pem and user0_*.pem as the sandbox names them.
import { existsSync, readFileSync, realpathSync } from "node:fs";
import { delimiter, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Command } from "commander";

/** The environment variables, documented in docs/cli.md ("Which service, as whom"). */
export const CONTEXT_ENV = {
  workspace: "COCO_WORKSPACE",
  url: "COCO_URL",
  serviceCert: "COCO_SERVICE_CERT",
  memberCert: "COCO_MEMBER_CERT",
  memberKey: "COCO_MEMBER_KEY",
  userCert: "COCO_USER_CERT",
  userKey: "COCO_USER_KEY",
} as const;

const DEFAULT_WORKSPACE = "workspace";
const DEFAULT_URL = "https://127.0.0.1:8000";

/** The flags as commander parses them (each optional: absent means "not given"). */
export interface ContextFlags {
  workspace?: string;
  url?: string;
  serviceCert?: string;
  memberCert?: string;
  memberKey?: string;
  userCert?: string;
  userKey?: string;
}

export interface ServiceContext {
  workspace: string;
  url: string;
  serviceCert: string;
  memberCert: string;
  memberKey: string;
  userCert: string;
  userKey: string;
}

/** Adds --workspace, --url, --service-cert and the identity flags (member and/or user) to a command. */
export function addContextOptions(command: Command, identities: { member?: boolean; user?: boolean; url?: boolean } = { member: true }): Command {
  command.option("--workspace <dir>", `a sandbox-style workspace to read the node's address, service certificate and identities from (env ${CONTEXT_ENV.workspace}; default ./${DEFAULT_WORKSPACE})`);
  if (identities.url !== false) {
    command.option("--url <url>", `address of any node of the service (env ${CONTEXT_ENV.url}; default: from the workspace's rpc_addresses.json or config.json)`);
  }
  command
    .option("--service-cert <file>", `service certificate to trust (env ${CONTEXT_ENV.serviceCert}; default WORKSPACE/service_cert.pem)`);
  if (identities.member === true) {
    command
      .option("--member-cert <file>", `this member's certificate (env ${CONTEXT_ENV.memberCert}; default WORKSPACE/member0_cert.pem)`)
      .option("--member-key <file>", `this member's private key (env ${CONTEXT_ENV.memberKey}; default WORKSPACE/member0_privk.pem)`);
  }
  if (identities.user === true) {
    command
      .option("--user-cert <file>", `this user's certificate (env ${CONTEXT_ENV.userCert}; default WORKSPACE/user0_cert.pem)`)
      .option("--user-key <file>", `this user's private key (env ${CONTEXT_ENV.userKey}; default WORKSPACE/user0_privk.pem)`);
  }
  return command;
}

/** Resolves every setting: flag, else environment variable, else the workspace. */
export function resolveContext(flags: ContextFlags, env: NodeJS.ProcessEnv = process.env): ServiceContext {
  const workspace = resolve(flags.workspace ?? nonEmpty(env[CONTEXT_ENV.workspace]) ?? DEFAULT_WORKSPACE);
  const pick = (flag: string | undefined, name: keyof typeof CONTEXT_ENV, file: string): string =>
    flag ?? nonEmpty(env[CONTEXT_ENV[name]]) ?? join(workspace, file);
  return {
    workspace,
    url: flags.url ?? nonEmpty(env[CONTEXT_ENV.url]) ?? workspaceUrl(workspace) ?? DEFAULT_URL,
    serviceCert: pick(flags.serviceCert, "serviceCert", "service_cert.pem"),
    memberCert: pick(flags.memberCert, "memberCert", "member0_cert.pem"),
    memberKey: pick(flags.memberKey, "memberKey", "member0_privk.pem"),
    userCert: pick(flags.userCert, "userCert", "user0_cert.pem"),
    userKey: pick(flags.userKey, "userKey", "user0_privk.pem"),
  };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === "" ? undefined : value;
}

/**
 * The URL of the workspace's node: its first RPC address as written once listening
 * (rpc_addresses.json, CCF's output_files.rpc_addresses_file), else as configured (config.json,
 * unless port 0). A wildcard bind address is reached on loopback.
 */
export function workspaceUrl(workspace: string): string | undefined {
  const fromAddresses = readJson(join(workspace, "rpc_addresses.json")) as Record<string, unknown> | undefined;
  const written = fromAddresses === undefined ? undefined : Object.values(fromAddresses).find((v): v is string => typeof v === "string");
  if (written !== undefined) return urlOf(written);
  const config = readJson(join(workspace, "config.json")) as { network?: { rpc_interfaces?: Record<string, { bind_address?: string }> } } | undefined;
  const configured = Object.values(config?.network?.rpc_interfaces ?? {})[0]?.bind_address;
  if (configured === undefined || configured.endsWith(":0")) return undefined;
  return urlOf(configured);
}

function urlOf(address: string): string {
  const colon = address.lastIndexOf(":");
  let host = address.slice(0, colon);
  if (host === "0.0.0.0" || host === "" || host === "::" || host === "[::]") host = "127.0.0.1";
  return `https://${host}:${address.slice(colon + 1)}`;
}

function readJson(file: string): unknown {
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, "utf8")) as unknown;
  } catch {
    return undefined;
  }
}

/**
 * How to run this `coco` from anywhere: `coco` if that name on PATH is this very CLI (npm link),
 * else `node <absolute path of main.js>`. Never `npx coco`: outside this repository npx fetches
 * an unrelated npm package of that name.
 */
export function cocoCommand(): string {
  const main = fileURLToPath(new URL("./main.js", import.meta.url));
  for (const dir of (process.env["PATH"] ?? "").split(delimiter)) {
    if (dir === "") continue;
    try {
      if (realpathSync(join(dir, "coco")) === realpathSync(main)) return "coco";
    } catch {
      continue;
    }
  }
  return `node ${main}`;
}
