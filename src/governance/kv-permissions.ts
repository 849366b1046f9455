// Which KV tables constitution and ballot code may read and write, as CCF 6.0 LTS enforces it
// (src/js/permissions_checks.h; docs "audit/read_write_restrictions"). Since CCF 6.0.8 (#7088) a
// constitution's apply() may write public application tables, but not read them; private tables
// are never reachable from governance; internal tables are read-only; governance tables are
// writable only by apply(). Coco wraps the KV handed to governance JS in these rules, so a
// constitution that works on Coco behaves the same on CCF.
import type { KvAccess } from "../js/index.js";
import { CocoError } from "../util/errors.js";

/** CCF's TxAccess for governance: ballots, validate and resolve read; apply writes. */
export type GovernanceAccess = "read-only governance" | "read-write governance";

type Permission = "read-write" | "read-only" | "write-only" | "inaccessible";

const PUBLIC_PREFIX = "public:";
const INTERNAL_PREFIX = "ccf.internal.";
const GOVERNANCE_PREFIX = "ccf.gov.";
const RESERVED_PREFIX = "ccf.";
const RESTRICTIONS_URL = "https://microsoft.github.io/CCF/main/audit/read_write_restrictions.html";

/** CCF's check_kv_map_access for the two governance contexts. */
export function governanceTablePermission(map: string, access: GovernanceAccess): Permission {
  const isPublic = map.startsWith(PUBLIC_PREFIX);
  const name = isPublic ? map.slice(PUBLIC_PREFIX.length) : map;
  const category = name.startsWith(INTERNAL_PREFIX) ? "internal" : name.startsWith(GOVERNANCE_PREFIX) ? "governance"
    : name.startsWith(RESERVED_PREFIX) ? "reserved" : "application";
  if (category === "reserved") return "inaccessible"; // CCF refuses such a name outright
  if (!isPublic) return "inaccessible";
  if (category === "internal") return "read-only";
  if (category === "governance") return access === "read-write governance" ? "read-write" : "read-only";
  return access === "read-write governance" ? "write-only" : "inaccessible";
}

/** `kv` restricted to what governance code in `access` may do; a refused call throws, naming the table and why. */
export function governanceKv(kv: KvAccess, access: GovernanceAccess): KvAccess {
  const check = (map: string, operation: string, needs: "read" | "write"): void => {
    const permission = governanceTablePermission(map, access);
    const allowed = permission === "read-write" || (needs === "read" ? permission === "read-only" : permission === "write-only");
    if (!allowed) {
      throw new CocoError("KvAccessDenied",
        `Cannot call ${operation} on table named ${map}. This table is ${permission} in current (${access}) execution context. See ${RESTRICTIONS_URL} for more detail.`, 400);
    }
  };
  const restricted: KvAccess = {
    get: (map, key) => { check(map, "get", "read"); return kv.get(map, key); },
    has: (map, key) => { check(map, "has", "read"); return kv.has(map, key); },
    size: (map) => { check(map, "size", "read"); return kv.size(map); },
    forEach: (map, callback) => { check(map, "forEach", "read"); kv.forEach(map, callback); },
    set: (map, key, value) => { check(map, "set", "write"); kv.set(map, key, value); },
    delete: (map, key) => { check(map, "delete", "write"); return kv.delete(map, key); },
    clear: (map) => { check(map, "clear", "write"); kv.clear(map); },
  };
  const versionOf = kv.getVersionOfPreviousWrite?.bind(kv);
  if (versionOf !== undefined) {
    restricted.getVersionOfPreviousWrite = (map, key) => { check(map, "getVersionOfPreviousWrite", "read"); return versionOf(map, key); };
  }
  return restricted;
}
