// The sandbox's globals against @microsoft/ccf-app's declarations: every member that
// global.d.ts declares on `ccf` (and its namespaces, KvMap, `snp_attestation`) must exist in
// the sandbox, unless docs/apps.md lists it as "not implemented"; and docs/apps.md must list
// every declared member, so the compatibility table cannot silently fall behind the package.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { describe, it } from "node:test";
import ts from "typescript";
import { JsRuntime } from "../../../src/js/index.js";

const require = createRequire(import.meta.url);
const packageDir = dirname(require.resolve("@microsoft/ccf-app/package.json"));
const repoRoot = join(packageDir, "..", "..", "..");

/** Interfaces whose members are namespaces of `ccf` (walked recursively). */
const NAMESPACE_INTERFACES = new Set(["CCFCrypto", "CCFRpc", "CCFConsensus", "CCFHistorical"]);

/** Declared member paths, e.g. `ccf.crypto.sign`, `ccf.kv[map].get`, `snp_attestation.verifySnpAttestation`. */
function declaredMembers(): string[] {
  const source = ts.createSourceFile("global.d.ts", readFileSync(join(packageDir, "global.d.ts"), "utf8"), ts.ScriptTarget.ES2022, true);
  const interfaces = new Map<string, ts.InterfaceDeclaration>();
  source.forEachChild((node) => {
    if (ts.isInterfaceDeclaration(node)) interfaces.set(node.name.text, node);
  });
  const out: string[] = [];
  const walk = (name: string, prefix: string) => {
    const declaration = interfaces.get(name);
    assert.ok(declaration, `global.d.ts declares interface ${name}`);
    for (const member of declaration.members) {
      if (member.name === undefined || !ts.isIdentifier(member.name)) continue;
      const path = `${prefix}.${member.name.text}`;
      const type = ts.isPropertySignature(member) ? member.type : undefined;
      const typeName = type !== undefined && ts.isTypeReferenceNode(type) && ts.isIdentifier(type.typeName) ? type.typeName.text : undefined;
      if (typeName !== undefined && NAMESPACE_INTERFACES.has(typeName)) walk(typeName, path);
      else if (typeName === "KvMaps") walk("KvMap", `${path}[map]`);
      else out.push(path);
    }
  };
  walk("CCF", "ccf");
  walk("SnpAttestation", "snp_attestation");
  return out.sort();
}

/** Member paths present in the sandbox, found by walking the globals inside it. */
function sandboxMembers(): string[] {
  const runtime = new JsRuntime({ memoryLimitMiB: 16 });
  try {
    runtime.loadModules([{
      name: "/walk.js",
      source: `export function walk() {
        const out = [];
        const visit = (o, prefix, depth) => {
          for (const k of Object.getOwnPropertyNames(o)) {
            const v = o[k];
            out.push(prefix + "." + k);
            if (depth < 2 && v !== null && typeof v === "object" && k !== "kv") visit(v, prefix + "." + k, depth + 1);
          }
        };
        visit(ccf, "ccf", 0);
        visit(snp_attestation, "snp_attestation", 0);
        for (const k of Object.getOwnPropertyNames(Object.getPrototypeOf(ccf.kv["probe"]))) if (k !== "constructor") out.push("ccf.kv[map]." + k);
        return out;
      }`,
    }]);
    return runtime.call("/walk.js", "walk", []) as string[];
  } finally {
    runtime.dispose();
  }
}

/** Rows of docs/apps.md's tables: `| \`name\` | status | ... |` → name → status cell. */
function documentedStatus(): Map<string, string> {
  const rows = new Map<string, string>();
  for (const line of readFileSync(join(repoRoot, "docs", "apps.md"), "utf8").split("\n")) {
    const match = /^\|\s*`([^`]+)`\s*\|\s*([^|]+)\|/.exec(line);
    if (match) rows.set(match[1]!.replace(/\(.*\)$/, ""), match[2]!.trim().toLowerCase());
  }
  return rows;
}

describe("the ccf global against @microsoft/ccf-app 6.x global.d.ts", () => {
  const declared = declaredMembers();
  const present = new Set(sandboxMembers());
  const documented = documentedStatus();

  it("parses a plausible number of declared members", () => {
    assert.ok(declared.length > 40, `found ${declared.length} members`);
    assert.ok(declared.includes("ccf.crypto.sign") && declared.includes("ccf.kv[map].getVersionOfPreviousWrite"));
  });

  it("provides every declared member, except those docs/apps.md lists as not implemented", () => {
    const missing = declared.filter((name) => !present.has(name) && !(documented.get(name) ?? "").startsWith("not implemented"));
    assert.deepEqual(missing, [], `missing from the sandbox (implement, or list as "not implemented" in docs/apps.md): ${missing.join(", ")}`);
  });

  it("documents the status of every declared member in docs/apps.md", () => {
    const undocumented = declared.filter((name) => !documented.has(name));
    assert.deepEqual(undocumented, [], `add rows to docs/apps.md for: ${undocumented.join(", ")}`);
  });

  it("does not document as implemented a member the sandbox lacks", () => {
    const wrong = declared.filter((name) => !present.has(name) && (documented.get(name) ?? "").startsWith("implemented"));
    assert.deepEqual(wrong, []);
  });
});
