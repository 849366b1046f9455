// The sandbox's `ccf` global against the types apps are written with: a TypeScript app
// (test/fixtures/ccf-typed-app/app.ts) using @microsoft/ccf-app 6.0.1's declarations and CCF 6.0
// LTS's additions typechecks under strict settings, and, transpiled as an app bundle would be,
// runs in the sandbox with the results the types promise.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import ts from "typescript";
import { defaultConstitutionSource } from "../../../src/governance/constitution.js";
import { checkConstitutionSource, JsRuntime } from "../../../src/js/index.js";
import { MemoryKv } from "./helpers.js";

const APP = join(process.cwd(), "test", "fixtures", "ccf-typed-app", "app.ts");

describe("a TypeScript app written against @microsoft/ccf-app's types", () => {
  it("typechecks under strict settings with no diagnostics", () => {
    const program = ts.createProgram([APP], {
      strict: true, noEmit: true, target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext, skipLibCheck: false, types: [],
    });
    const diagnostics = ts.getPreEmitDiagnostics(program).filter((d) => d.file === undefined || !d.file.fileName.includes("/node_modules/"));
    const text = diagnostics.map((d) => ts.flattenDiagnosticMessageText(d.messageText, "\n")).join("\n");
    assert.equal(diagnostics.length, 0, text);
  });

  const runtime = new JsRuntime({ timeLimitMs: 10_000, memoryLimitMiB: 64 });
  after(() => runtime.dispose());

  it("runs in the sandbox with the results its types promise", () => {
    const source = ts.transpileModule(readFileSync(APP, "utf8"), { compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ES2022 } }).outputText;
    assert.doesNotMatch(source, /\bimport\b/, "type-only imports vanish, as in a bundled app");
    runtime.loadModules([{ name: "/app.js", source }]);
    const kv = new MemoryKv();
    const hooks = { validateConstitution: (s: string) => checkConstitutionSource(s, { timeLimitMs: 2000, memoryLimitMiB: 32 }) };
    const report = runtime.call("/app.js", "run", [defaultConstitutionSource()], { kv, hooks }) as any;
    assert.deepEqual(report.kv, { size: 1, read: "alpha", deleted: true, keys: ["a"] });
    assert.deepEqual(report.json, { n: 3, list: ["x", "y"] });
    assert.equal(report.digestBytes, 32);
    assert.equal(report.signatureVerifies, true);
    assert.ok(report.wrappedBytes > 0);
    assert.equal(report.validConstitution, true);
    assert.match(report.refusedConstitution, /does not export a function named apply/);
    assert.deepEqual(report.tcb, { hexstring: "d315000000000004", snp: 0x15 });
  });
});
