// The deployment files (deploy/) and the configurations docs/deployment.md shows are real: each
// passes the node's own validation, names in its certificate the address clients dial, and the
// container and systemd files refer to files that exist. Run from the repository root.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { loadConfigFile, resolveConfig, type NodeConfigFile, type ResolvedConfig } from "../../../src/node/config.js";

const DEPLOY = resolve("deploy");
const configFiles = readdirSync(join(DEPLOY, "config")).filter((f) => f.endsWith(".json")).map((f) => join(DEPLOY, "config", f));

/** The address clients are told to dial for this node's RPC interface. */
const dialled = (c: ResolvedConfig) => c.rpc.publishedAddress ?? `${c.rpc.host}:${c.rpc.port}`;
const hostOf = (address: string) => address.slice(0, address.lastIndexOf(":"));

test("every example node configuration in deploy/config passes the node's validation", () => {
  assert.ok(configFiles.length >= 3, "a start node and two joiners");
  const resolved = configFiles.map((f) => loadConfigFile(f));
  const starts = resolved.filter((c) => c.command === "Start");
  assert.equal(starts.length, 1, "exactly one node starts the service");
  const start = starts[0]!;
  for (const c of resolved) {
    // The certificate names the host clients dial, or they refuse it (docs/deployment.md).
    assert.ok(c.nodeCertificate.ipAddresses.includes(hostOf(dialled(c))), `${dialled(c)} is in the certificate's SANs`);
    assert.ok(c.nodeToNode !== undefined, "every node of a multi-node service has a node-to-node interface");
    assert.equal(c.workspace, "/var/lib/coco");
    assert.ok(c.ledgerDirectory.startsWith("/var/lib/coco/") && c.snapshots.directory.startsWith("/var/lib/coco/"));
    assert.equal(c.serviceCertificateFile, "/var/lib/coco/service_cert.pem");
    assert.equal(c.durability, "fsync");
    if (c.command === "Join") assert.equal(`${c.join!.targetHost}:${c.join!.targetPort}`, dialled(start), "joiners ask the first node");
  }
  const addresses = resolved.map(dialled);
  assert.equal(new Set(addresses).size, addresses.length, "one address per node");
});

test("every node configuration in docs/deployment.md passes the node's validation", () => {
  const doc = readFileSync(resolve("docs/deployment.md"), "utf8");
  const blocks = [...doc.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => JSON.parse(m[1]!) as NodeConfigFile);
  assert.ok(blocks.length >= 1);
  for (const block of blocks) {
    const c = resolveConfig(block, "/etc/coco");
    assert.ok(c.rpc.publishedAddress === undefined || !c.rpc.publishedAddress.startsWith("0.0.0.0"));
  }
});

test("the container file uses only Dockerfile instructions, copies files that exist, and runs as a user with a volume", () => {
  const text = readFileSync(join(DEPLOY, "Containerfile"), "utf8");
  const ignored = readFileSync(resolve(".dockerignore"), "utf8").split("\n").map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("#"));
  const known = new Set(["FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"]);
  // Logical lines: comments dropped, backslash continuations joined.
  const lines = text.split("\n").filter((l) => !l.trimStart().startsWith("#")).join("\n").replace(/\\\n/g, " ").split("\n").filter((l) => l.trim() !== "");
  const instructions = lines.map((l) => l.trim().split(/\s+/));
  for (const [keyword] of instructions) assert.ok(known.has(keyword!), `unknown instruction ${keyword}`);
  assert.equal(instructions.filter(([k]) => k === "FROM").length, 2, "a build stage and a run stage");
  for (const words of instructions.filter(([k]) => k === "COPY")) {
    if (words.some((w) => w.startsWith("--from"))) continue;
    for (const source of words.slice(1, -1)) {
      if (source === ".") continue;
      assert.ok(existsSync(resolve(source)), `COPY source ${source} exists`);
      assert.ok(!ignored.includes(source), `COPY source ${source} is not excluded by .dockerignore`);
    }
  }
  const runStage = instructions.slice(instructions.findLastIndex(([k]) => k === "FROM"));
  const user = runStage.find(([k]) => k === "USER")?.[1];
  assert.ok(user !== undefined && user !== "root" && user !== "0", "the node does not run as root");
  assert.ok(runStage.some(([k, v]) => k === "VOLUME" && v!.includes("/var/lib/coco")));
  const entrypoint = JSON.parse(runStage.find(([k]) => k === "ENTRYPOINT")!.slice(1).join(" ")) as string[];
  assert.equal(entrypoint[1], "/opt/coco/dist/src/cli/main.js");
  assert.ok(existsSync(resolve("src/cli/main.ts")));
});

test("the systemd unit starts the CLI's node command as a non-root user, hardened, restarting on failure", () => {
  const text = readFileSync(join(DEPLOY, "systemd", "coco-node.service"), "utf8");
  const settings = new Map<string, string[]>();
  let section = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const header = /^\[(\w+)\]$/.exec(line);
    if (header) { section = header[1]!; continue; }
    const [key, ...value] = line.split("=");
    const name = `${section}.${key}`;
    settings.set(name, [...(settings.get(name) ?? []), value.join("=")]);
  }
  const one = (name: string) => settings.get(name)?.at(-1);
  assert.match(one("Service.ExecStart")!, /^\/usr\/bin\/node \/opt\/coco\/dist\/src\/cli\/main\.js node start --config \/etc\/coco\/node\.json$/);
  assert.equal(one("Service.User"), "coco");
  assert.ok(readFileSync(join(DEPLOY, "systemd", "coco.sysusers.conf"), "utf8").includes("u coco "));
  assert.equal(one("Service.ProtectSystem"), "strict");
  assert.equal(one("Service.ReadWritePaths"), "/var/lib/coco");
  assert.equal(one("Service.Restart"), "on-failure");
  assert.ok(Number(one("Service.LimitNOFILE")) >= 4096);
  assert.equal(one("Service.MemoryDenyWriteExecute"), undefined, "V8 needs writable executable memory");
  assert.equal(one("Install.WantedBy"), "multi-user.target");
});
