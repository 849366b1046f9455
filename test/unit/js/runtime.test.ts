// Round trips through the sandbox: modules, arguments and results, errors, time and randomness.
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { JsRuntime, resolveModuleName } from "../../../src/js/index.js";
import { CocoError } from "../../../src/util/errors.js";

const runtime = new JsRuntime({ timeLimitMs: 500, memoryLimitMiB: 32 });
after(() => runtime.dispose());

function jsError(code: string, pattern: RegExp) {
  return (error: unknown) => error instanceof CocoError && error.code === code && pattern.test(error.message);
}

describe("JsRuntime calls", () => {
  it("calls an exported function with JSON-compatible arguments and returns its result", () => {
    runtime.loadModules([{ name: "/echo.js", source: "export function echo(a, b) { return { a, b, sum: a.n + b.length }; }" }]);
    assert.deepEqual(runtime.call("/echo.js", "echo", [{ n: 1 }, [1, 2]]), { a: { n: 1 }, b: [1, 2], sum: 3 });
  });

  it("keeps module state between calls", () => {
    runtime.loadModules([{ name: "/counter.js", source: "let n = 0; export function next() { return ++n; }" }]);
    runtime.call("/counter.js", "next", []);
    assert.equal(runtime.call("/counter.js", "next", []), 2);
  });

  it("resolves relative imports inside a bundle", () => {
    runtime.loadModules([
      { name: "/lib/util.js", source: "export const twice = (x) => 2 * x;" },
      { name: "/lib/app.js", source: "import { twice } from './util.js'; export function handler(r) { return twice(r.x); }" },
    ]);
    assert.equal(runtime.call("/lib/app.js", "handler", [{ x: 21 }]), 42);
    assert.equal(resolveModuleName("../a.js", "/x/y/b.js"), "/x/a.js");
  });

  it("turns a thrown error into JsError carrying the message and the stack", () => {
    runtime.loadModules([{ name: "/throws.js", source: "export function f() { throw new TypeError('bad input here'); }" }]);
    assert.throws(() => runtime.call("/throws.js", "f", []), jsError("JsError", /TypeError: bad input here[\s\S]*\/throws\.js/));
  });

  it("keeps the host's frames and paths out of a JsError's stack", () => {
    runtime.loadModules([{ name: "/throws2.js", source: "export function f() { throw new Error('oops'); }" }]);
    assert.throws(() => runtime.call("/throws2.js", "f", []), (e: unknown) => {
      assert.ok(e instanceof CocoError && e.code === "JsError", String(e));
      assert.match(e.message, /Error: oops\n\s+at f \(\/throws2\.js:1:/);
      assert.doesNotMatch(e.message, /isolated-vm boundary|file:\/\/|coco:prelude|runtime\.js/);
      return true;
    });
  });

  it("reports a missing export or module as JsError", () => {
    assert.throws(() => runtime.call("/echo.js", "nope", []), jsError("JsError", /no exported function nope/));
    assert.throws(() => runtime.call("/missing.js", "f", []), jsError("JsError", /not loaded/));
  });

  it("rejects a module with a syntax error and stays usable", () => {
    assert.throws(() => runtime.loadModules([{ name: "/broken.js", source: "export function (" }]), jsError("JsError", /SyntaxError/));
    assert.equal(runtime.hasModule("/broken.js"), false);
    assert.equal(runtime.call("/lib/app.js", "handler", [{ x: 1 }]), 2);
  });

  it("awaits an async export that settles without I/O", () => {
    runtime.loadModules([{ name: "/async.js", source: "export async function f(x) { await null; return x + 1; } export async function g() { throw new Error('async boom'); }" }]);
    assert.equal(runtime.call("/async.js", "f", [1]), 2);
    assert.throws(() => runtime.call("/async.js", "g", []), jsError("JsError", /async boom/));
  });

  it("returns 0 from Date.now() until ccf.enableUntrustedDateTime(true), then the host time", () => {
    runtime.loadModules([
      {
        name: "/time.js",
        source: "export function f() { const before = Date.now(); const prev = ccf.enableUntrustedDateTime(true); return [before, prev, Date.now(), new Date().getTime()]; }",
      },
    ]);
    assert.deepEqual(runtime.call("/time.js", "f", [], { nowMs: 1_700_000_000_000 }), [0, false, 1_700_000_000_000, 1_700_000_000_000]);
    // Reset at the start of each call.
    assert.equal((runtime.call("/time.js", "f", [], { nowMs: 5 }) as number[])[1], false);
  });

  it("draws Math.random from the host-supplied seed", () => {
    runtime.loadModules([{ name: "/rand.js", source: "export function f() { return [Math.random(), Math.random()]; }" }]);
    const seed = [1, 2, 3, 4] as const;
    const a = runtime.call("/rand.js", "f", [], { randomSeed: seed }) as number[];
    assert.deepEqual(runtime.call("/rand.js", "f", [], { randomSeed: seed }), a);
    assert.notDeepEqual(runtime.call("/rand.js", "f", [], { randomSeed: [5, 6, 7, 8] }), a);
    assert.ok(a.every((x) => x >= 0 && x < 1));
  });

  it("passes ArrayBuffers both ways", () => {
    runtime.loadModules([{ name: "/bytes.js", source: "export function f(b) { return new Uint8Array(b).reverse().buffer; }" }]);
    const out = runtime.call("/bytes.js", "f", [new Uint8Array([1, 2, 3]).buffer]) as ArrayBuffer;
    assert.deepEqual([...new Uint8Array(out)], [3, 2, 1]);
  });
});
