// Escape attempts and resource exhaustion: each is stopped, the host is unharmed and the
// runtime keeps serving calls afterwards.
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { JsRuntime } from "../../../src/js/index.js";
import { CocoError } from "../../../src/util/errors.js";

// A limit that an ordinary call (or the module replay after an isolate is rebuilt) stays far
// below even on a loaded machine; the infinite loops below still end by it.
const runtime = new JsRuntime({ timeLimitMs: 1_000, memoryLimitMiB: 32 });
after(() => runtime.dispose());
runtime.loadModules([{ name: "/ok.js", source: "let calls = 0; export function ping(x) { calls++; return x; }" }]);

function assertUsable() {
  assert.equal(runtime.call("/ok.js", "ping", ["pong"]), "pong");
  assert.equal(typeof process.pid, "number");
}

function probe(name: string, body: string): unknown {
  runtime.loadModules([{ name, source: `export function f() { ${body} }` }]);
  return runtime.call(name, "f", []);
}

describe("sandbox isolation", () => {
  it("blocks this.constructor.constructor('return process')()", () => {
    const result = probe("/e1.js", "try { const p = (function () { return this.constructor.constructor('return process')(); }).call(globalThis); return typeof p; } catch (e) { return 'threw ' + e.message; }");
    assert.match(String(result), /threw process is not defined/);
    assertUsable();
  });

  it("blocks the escape through a host function's constructor", () => {
    const result = probe("/e2.js", "try { return typeof ccf.kv['m'].get.constructor.constructor('return process')(); } catch (e) { return 'threw ' + e.message; }");
    assert.match(String(result), /process is not defined/);
  });

  it("has no process, require, module, Buffer or fetch globals", () => {
    assert.deepEqual(
      probe("/e3.js", "return [typeof globalThis.process, typeof require, typeof module, typeof Buffer, typeof fetch, typeof setTimeout];"),
      ["undefined", "undefined", "undefined", "undefined", "undefined", "undefined"],
    );
  });

  it("gives Function('return this')() a global without process", () => {
    assert.equal(probe("/e4.js", "return typeof Function('return this')().process;"), "undefined");
  });

  it("refuses import('fs') and static imports of host modules", () => {
    const result = probe("/e5.js", "let out = 'pending'; import('fs').then(() => { out = 'escaped'; }, (e) => { out = 'refused'; }); return out;");
    assert.notEqual(result, "escaped");
    runtime.loadModules([{ name: "/e5b.js", source: "export async function f() { try { await import('fs'); return 'escaped'; } catch (e) { return 'refused'; } }" }]);
    assert.equal(runtime.call("/e5b.js", "f", []), "refused");
    assert.throws(
      () => runtime.loadModules([{ name: "/e6.js", source: "import fs from 'fs'; export function f() { return typeof fs; }" }]),
      (e: unknown) => e instanceof CocoError && e.code === "JsError" && /not found/.test(e.message),
    );
    assertUsable();
  });
});

describe("sandbox limits", () => {
  it("stops an infinite loop at the time limit with JsTimeout", () => {
    runtime.loadModules([{ name: "/loop.js", source: "export function f() { for (;;) {} }" }]);
    assert.throws(() => runtime.call("/loop.js", "f", []), (e: unknown) => e instanceof CocoError && e.code === "JsTimeout");
    assertUsable();
  });

  it("stops an infinite loop in module evaluation", () => {
    assert.throws(
      () => runtime.loadModules([{ name: "/loop2.js", source: "for (;;) {} export const x = 1;" }]),
      (e: unknown) => e instanceof CocoError && e.code === "JsTimeout",
    );
    assertUsable();
  });

  it("stops a 1 GiB ArrayBuffer with JsOutOfMemory", () => {
    runtime.loadModules([{ name: "/big.js", source: "export function f() { return new ArrayBuffer(1024 * 1024 * 1024).byteLength; }" }]);
    assert.throws(() => runtime.call("/big.js", "f", []), (e: unknown) => e instanceof CocoError && e.code === "JsOutOfMemory");
    assertUsable();
  });

  it("stops 1 GiB of heap objects with JsOutOfMemory and rebuilds the isolate", () => {
    runtime.loadModules([
      { name: "/heap.js", source: "export function f() { const a = []; for (let i = 0; i < 1024; i++) a.push(new Array(131072).fill(i)); return a.length; }" },
    ]);
    const before = runtime.isolatesRecreated;
    assert.throws(
      () => runtime.call("/heap.js", "f", [], { timeLimitMs: 20_000 }),
      (e: unknown) => e instanceof CocoError && e.code === "JsOutOfMemory",
    );
    assertUsable();
    assert.equal(runtime.isolatesRecreated, before + 1);
    // Modules were replayed into the new isolate, with fresh module state.
    assert.equal(runtime.call("/ok.js", "ping", [1]), 1);
    assert.ok(process.memoryUsage().rss < 900 * 1024 * 1024);
  });

  it("stops 1 GiB of typed arrays with JsOutOfMemory", () => {
    runtime.loadModules([
      { name: "/typed.js", source: "export function f() { const a = []; for (let i = 0; i < 1024; i++) a.push(new Uint8Array(1 << 20).fill(1)); return a.length; }" },
    ]);
    assert.throws(
      () => runtime.call("/typed.js", "f", [], { timeLimitMs: 20_000 }),
      (e: unknown) => e instanceof CocoError && e.code === "JsOutOfMemory",
    );
    assertUsable();
  });

  it("turns unbounded recursion into JsError", () => {
    runtime.loadModules([{ name: "/rec.js", source: "function r(n) { return r(n + 1) + 1; } export function f() { return r(0); }" }]);
    assert.throws(() => runtime.call("/rec.js", "f", []), (e: unknown) => e instanceof CocoError && e.code === "JsError" && /call stack/.test(e.message));
    assertUsable();
  });

  it("refuses results that are not copyable", () => {
    runtime.loadModules([{ name: "/fn.js", source: "export function f() { return () => 1; }" }]);
    assert.throws(() => runtime.call("/fn.js", "f", []), (e: unknown) => e instanceof CocoError && e.code === "JsError");
    assertUsable();
  });
});
