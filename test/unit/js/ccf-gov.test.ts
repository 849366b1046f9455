// `ccf.gov.validateConstitution` (CCF 6.0 LTS): the check itself, the JS binding's argument
// errors, and that it is reachable only where governance supplies it (the constitution's validate).
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { defaultConstitutionSource, loadConstitutionFiles } from "../../../src/governance/constitution.js";
import { checkConstitutionSource, JsRuntime } from "../../../src/js/index.js";

const LIMITS = { timeLimitMs: 500, memoryLimitMiB: 16 };
const GOOD = "export function validate(input) {}\nexport function resolve(proposal, proposerId, votes) {}\nexport function apply(proposal, proposerId) {}";
const check = (source: string) => checkConstitutionSource(source, LIMITS);

describe("checkConstitutionSource", () => {
  it("accepts Coco's default constitution and CCF's", () => {
    assert.equal(check(defaultConstitutionSource()), true);
    const ccf = loadConstitutionFiles(["actions.js", "validate.js", "resolve.js", "apply.js"].map((f) => join(process.cwd(), "test", "fixtures", "ccf-constitution-6.x", f)));
    assert.equal(check(ccf), true);
  });

  it("accepts resolve with the optional proposalId", () => {
    assert.equal(check(GOOD.replace("votes)", "votes, proposalId)")), true);
  });

  const refused: Array<[string, string, RegExp]> = [
    ["an empty source", "", /constitution is empty/],
    ["a syntax error", "export function validate(", /cannot be loaded as a module/],
    ["a missing export", GOOD.replace("export function apply", "function apply"), /does not export a function named apply/],
    ["an export that is not a function", GOOD.replace("export function apply(proposal, proposerId) {}", "export const apply = 1;"), /does not export a function named apply/],
    ["apply with one argument", GOOD.replace("apply(proposal, proposerId)", "apply(proposal)"), /exports function apply with 1 arg, expected 2 args \(proposal, proposerId\)/],
    ["resolve with five arguments", GOOD.replace("votes)", "votes, a, b)"), /exports function resolve with 5 args, expected between 3 and 4 args/],
    ["an import", `import { x } from "./other.js";\n${GOOD}`, /may not import modules/],
    ["a module scope that throws", `throw new Error("boom");\n${GOOD}`, /cannot be loaded as a module: boom/],
    ["a module scope that never ends", `for (;;) {}\n${GOOD}`, /cannot be loaded as a module/],
  ];
  for (const [what, source, message] of refused) {
    it(`refuses ${what} with a TypeError saying why`, () => {
      assert.throws(() => check(source), (error: unknown) => error instanceof TypeError && message.test(error.message));
    });
  }

  it("a module scope that allocates without end is stopped by the memory limit", () => {
    const source = `const hoard = []; for (;;) hoard.push(new Array(1e6).fill(1));\n${GOOD}`;
    assert.throws(() => checkConstitutionSource(source, { timeLimitMs: 20_000, memoryLimitMiB: 16 }), TypeError);
  });

  it("cannot fake its exports by replacing JSON at module scope", () => {
    const source = `JSON.stringify = () => '{"validate":{"type":"function","length":1},"resolve":{"type":"function","length":3},"apply":{"type":"function","length":2}}';\nexport function validate(input) {}`;
    assert.throws(() => check(source), /does not export a function named apply/);
  });
});

describe("ccf.gov.validateConstitution in the sandbox", () => {
  const runtime = new JsRuntime({ timeLimitMs: 2000, memoryLimitMiB: 32 });
  after(() => runtime.dispose());
  runtime.loadModules([{ name: "/gov.js", source: "export function f(args) { return ccf.gov.validateConstitution(...args); }" }]);
  const hooks = { validateConstitution: (source: string) => checkConstitutionSource(source, LIMITS) };
  const call = (args: unknown[], withHook = true) => runtime.call("/gov.js", "f", [args], withHook ? { hooks } : {});

  it("returns true for a good constitution", () => {
    assert.equal(call([GOOD]), true);
  });

  it("throws CCF's TypeErrors for bad arguments", () => {
    assert.throws(() => call([]), /TypeError: Passed 0 arguments, but expected 1/);
    assert.throws(() => call([GOOD, GOOD]), /TypeError: Passed 2 arguments, but expected 1/);
    assert.throws(() => call([42]), /TypeError: constitution is not a string/);
    assert.throws(() => call([""]), /TypeError: constitution is empty/);
  });

  it("throws a TypeError naming the problem for a bad constitution", () => {
    assert.throws(() => call([GOOD.replace("export function validate", "function validate")]), /TypeError: proposed constitution does not export a function named validate/);
  });

  it("is unavailable where governance does not supply it (apps, ballots, apply)", () => {
    assert.throws(() => call([GOOD], false), /TypeError: validateConstitution is not available in this context/);
  });
});
