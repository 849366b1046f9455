// The fault suite's quick preset as an end-to-end test (test/faults/, docs/faults.md): real nodes on
// loopback, primary kills, pauses, a whole-network kill, a damaged ledger chunk, a wiped ledger and (where tmpfs
// mounts) a full disk, under write load. Nothing committed may be lost, no status may flip, no node may wedge.
import { test } from "node:test";
import assert from "node:assert/strict";
import { formatReport, runFaultSuite } from "../faults/suite.js";

test("quick fault suite: no committed write lost, no status flip, no wedged node", { timeout: 600_000 }, async () => {
  const report = await runFaultSuite({ preset: "quick", log: (e) => console.log(JSON.stringify(e)) });
  const summary = formatReport(report);
  console.log(summary);
  const [network] = report.networks;
  assert.ok(network, "the 3-node network ran");
  assert.equal(network.incomplete, undefined, `every round ran\n${summary}`);
  assert.equal(network.rounds, network.roundsPlanned);
  assert.ok((network.counts.committed ?? 0) > 0, "writes were committed under the faults");
  assert.equal(network.counts.lost, 0, `no Committed write lost or changed\n${summary}`);
  assert.equal(network.counts.flips, 0, `no transaction status flipped\n${summary}`);
  assert.equal(network.counts.wedged, 0, `no node wedged\n${summary}`);
  assert.deepEqual(network.violations.map((v) => `${v.kind} [${v.round}]`), [], summary);
});
