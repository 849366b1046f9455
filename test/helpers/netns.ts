// Test helper: "hosts" on one Linux machine. Each host is a network namespace with its own
// address on a /24, linked by a veth pair to a bridge in the root namespace, which also gets an
// address so the test process reaches every host. Needs root and iproute2; `unavailableReason`
// says why not otherwise. Names carry the creating process id, so leftovers of a run that died
// (SIGKILL, power loss) never collide with a new run and are removed by the next one.
import { spawnSync } from "node:child_process";
import { randomInt } from "node:crypto";

/** Every namespace and link this helper makes is named `coco<pid base 36><2 hex>` and a suffix (15 characters at most). */
const NAME_PREFIX = "coco";
const HOSTS_MAX = 9;
const SUBNET_ATTEMPTS_MAX = 32;
/** The root namespace's address on the bridge (the hosts are .1, .2, ...). */
const ROOT_HOST_OCTET = 254;

export interface NamespaceHost {
  index: number;
  namespace: string;
  address: string;
  /** Runs a command inside this host's namespace: prefix it with these words. */
  commandPrefix: string[];
}

function ip(args: string[]): { ok: boolean; stdout: string; stderr: string } {
  const r = spawnSync("ip", args, { encoding: "utf8", timeout: 10_000 });
  return { ok: r.status === 0 && r.error === undefined, stdout: r.stdout ?? "", stderr: (r.stderr ?? "") + (r.error ? String(r.error.message) : "") };
}

function mustIp(args: string[]): string {
  const r = ip(args);
  if (!r.ok) throw new Error(`ip ${args.join(" ")} failed: ${r.stderr.trim()}`);
  return r.stdout;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Why network namespaces cannot be used here (undefined: they can). Tries one, and removes it. */
export function unavailableReason(): string | undefined {
  if (process.platform !== "linux") return `network namespaces need Linux (this is ${process.platform})`;
  if (typeof process.getuid === "function" && process.getuid() !== 0) return "creating network namespaces needs root (run as root, or in a container with CAP_SYS_ADMIN and CAP_NET_ADMIN)";
  const version = spawnSync("ip", ["-V"], { encoding: "utf8" });
  if (version.error !== undefined) return `the 'ip' command (iproute2) is missing: ${version.error.message}`;
  const probe = `${NAME_PREFIX}${process.pid.toString(36)}probe`;
  const added = ip(["netns", "add", probe]);
  if (!added.ok) return `'ip netns add' is not allowed here: ${added.stderr.trim()}`;
  ip(["netns", "del", probe]);
  // The lab also needs a bridge and veth pairs (kernel modules a container host may lack).
  for (const type of ["bridge", "veth"]) {
    const link = ip(["link", "add", probe, "type", type]);
    if (!link.ok) return `cannot create a ${type} link ('ip link add … type ${type}'): ${link.stderr.trim()}`;
    ip(["link", "del", probe]);
  }
  return undefined;
}

/** Deletes namespaces and links a previous run left behind, when the process that made them is gone. */
function removeLeftovers(): void {
  const owner = (name: string): number | undefined => {
    const match = new RegExp(`^${NAME_PREFIX}([0-9a-z]+?)(?:[0-9a-f]{2}(?:n\\d|br|h\\d)|probe)$`).exec(name);
    return match ? parseInt(match[1]!, 36) : undefined;
  };
  for (const line of ip(["netns", "list"]).stdout.split("\n")) {
    const name = line.split(" ")[0] ?? "";
    const pid = owner(name);
    if (pid !== undefined && pid !== process.pid && !processAlive(pid)) ip(["netns", "del", name]);
  }
  for (const line of ip(["-o", "link", "show"]).stdout.split("\n")) {
    const name = /^\d+: ([^:@]+)[@:]/.exec(line)?.[1] ?? "";
    const pid = owner(name);
    if (pid !== undefined && pid !== process.pid && !processAlive(pid)) ip(["link", "del", name]);
  }
}

/** A /24 in 10.0.0.0/8 that no address or route of this machine uses yet. */
function freeSubnet(): string {
  const used = mustIp(["-4", "-o", "addr", "show"]) + mustIp(["-4", "route", "show"]);
  for (let attempt = 0; attempt < SUBNET_ATTEMPTS_MAX; attempt++) {
    const subnet = `10.${randomInt(64, 192)}.${randomInt(0, 256)}`;
    if (!used.includes(`${subnet}.`)) return subnet;
  }
  throw new Error(`no free 10.x.y.0/24 found in ${SUBNET_ATTEMPTS_MAX} attempts`);
}

export class NamespaceLab {
  readonly hosts: NamespaceHost[] = [];
  private readonly links: string[] = [];
  private readonly namespaces: string[] = [];

  private constructor(readonly prefix: string, readonly subnet: string) {}

  /** The address the test process (root namespace) has on the hosts' network. */
  get rootAddress(): string {
    return `${this.subnet}.${ROOT_HOST_OCTET}`;
  }

  /** Makes `count` hosts on a fresh subnet. On failure, removes whatever it made, then throws. */
  static create(count: number): NamespaceLab {
    if (!(Number.isInteger(count) && count >= 1 && count <= HOSTS_MAX)) throw new Error(`1 to ${HOSTS_MAX} hosts, not ${count}`);
    removeLeftovers();
    const lab = new NamespaceLab(`${NAME_PREFIX}${process.pid.toString(36)}${randomInt(0, 256).toString(16).padStart(2, "0")}`, freeSubnet());
    try {
      lab.build(count);
    } catch (error) {
      lab.destroy();
      throw error;
    }
    return lab;
  }

  private build(count: number): void {
    const bridge = `${this.prefix}br`;
    mustIp(["link", "add", bridge, "type", "bridge"]);
    this.links.push(bridge);
    mustIp(["addr", "add", `${this.rootAddress}/24`, "dev", bridge]);
    mustIp(["link", "set", bridge, "up"]);
    for (let i = 1; i <= count; i++) {
      const namespace = `${this.prefix}n${i}`;
      const hostSide = `${this.prefix}h${i}`;
      const inside = `${this.prefix}p${i}`;
      mustIp(["netns", "add", namespace]);
      this.namespaces.push(namespace);
      mustIp(["link", "add", hostSide, "type", "veth", "peer", "name", inside]);
      this.links.push(hostSide);
      mustIp(["link", "set", inside, "netns", namespace]);
      mustIp(["link", "set", hostSide, "master", bridge]);
      mustIp(["link", "set", hostSide, "up"]);
      const address = `${this.subnet}.${i}`;
      mustIp(["-n", namespace, "addr", "add", `${address}/24`, "dev", inside]);
      mustIp(["-n", namespace, "link", "set", inside, "up"]);
      mustIp(["-n", namespace, "link", "set", "lo", "up"]);
      this.hosts.push({ index: i, namespace, address, commandPrefix: ["ip", "netns", "exec", namespace] });
    }
  }

  /** Removes every namespace and link this lab made (idempotent; errors are ignored, leftovers named). */
  destroy(): string[] {
    const left: string[] = [];
    for (const namespace of this.namespaces.splice(0)) if (!ip(["netns", "del", namespace]).ok) left.push(namespace);
    // A veth pair goes with its namespace end; deleting the host end too makes that immediate.
    for (const link of this.links.splice(0).reverse()) {
      const r = ip(["link", "del", link]);
      if (!r.ok && !/Cannot find device|does not exist/.test(r.stderr)) left.push(link);
    }
    return left;
  }

  /** Names of this lab's namespaces and links the kernel still lists (for the test's cleanup check). */
  remaining(): string[] {
    const names = [
      ...ip(["netns", "list"]).stdout.split("\n").map((l) => l.split(" ")[0] ?? ""),
      ...ip(["-o", "link", "show"]).stdout.split("\n").map((l) => /^\d+: ([^:@]+)[@:]/.exec(l)?.[1] ?? ""),
    ];
    return names.filter((n) => n.startsWith(this.prefix));
  }
}
