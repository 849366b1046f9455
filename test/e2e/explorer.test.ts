// End-to-end: the explorer at /explorer, in Debian's chromium (playwright-core), served by a
// backup of a real 3-node network. The page shows the nodes and the primary, verifies a receipt
// in the browser (and refuses tampered ones), and a member proposes and votes from the page with
// a key that never leaves it. Screenshots: test-output/explorer/*.png. Skips without chromium.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createPrivateKey } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { Network, type NetworkNode } from "../helpers/network.js";
import { tempWorkspace } from "../helpers/node-process.js";
import { browserSkipReason, certutilSkipReason, homeTrusting, launchChromium, screenshot } from "../helpers/browser.js";
import { certificateFingerprint, createIdentityCertificate, generateEcP384KeyPair } from "../../src/crypto/index.js";
import { EXPLORER_CONTENT_SECURITY_POLICY } from "../../src/explorer/index.js";

const skip = browserSkipReason();
const UI_TIMEOUT_MS = 20_000;

describe("explorer", { skip }, () => {
  let ws: ReturnType<typeof tempWorkspace>;
  let network: Network;
  let backup: NetworkNode;
  let origin: string;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const pageErrors: string[] = [];
  const requests: { url: string; body: Buffer | null }[] = [];

  before(async () => {
    ws = tempWorkspace("coco-explorer-test-");
    network = await Network.start(ws.dir, 3);
    await network.waitForConfiguration(3);
    const primary = await network.primary();
    backup = network.nodes.find((n) => n !== primary)!;
    origin = `https://127.0.0.1:${backup.rpcPort}`;
    browser = await launchChromium();
    // The node's certificate is issued by the service certificate, which this browser does not
    // trust (docs/explorer.md, "Trusting the service"): the test accepts it. user0's client
    // certificate is what a user would import into their browser to fetch receipts.
    context = await browser.newContext({
      ignoreHTTPSErrors: true,
      viewport: { width: 1366, height: 860 },
      clientCertificates: [{ origin, cert: readFileSync(join(ws.dir, "user0_cert.pem")), key: readFileSync(join(ws.dir, "user0_privk.pem")) }],
    });
    page = await context.newPage();
    page.on("pageerror", (error) => pageErrors.push(error.message));
    page.on("console", (message) => { if (message.type() === "error") pageErrors.push(message.text()); });
    page.on("request", (request) => requests.push({ url: request.url(), body: request.postDataBuffer() }));
  });

  after(async () => {
    await browser?.close();
    await network?.stop();
    ws?.cleanup();
  });

  test("the node serves the page with a strict Content-Security-Policy and only its own files", async () => {
    const node = backup.process!;
    const index = await node.request("GET", "/explorer", { identity: "none" });
    assert.equal(index.status, 200);
    assert.match(String(index.headers["content-type"]), /^text\/html/);
    assert.equal(index.headers["content-security-policy"], EXPLORER_CONTENT_SECURITY_POLICY);
    assert.doesNotMatch(EXPLORER_CONTENT_SECURITY_POLICY, /unsafe-inline|unsafe-eval|\*/);
    assert.equal(index.headers["x-content-type-options"], "nosniff");
    for (const path of ["/explorer/nothing.js", "/explorer/..%2Fpackage.json", "/explorer/vendor/noble-curves/..%2F..%2F..%2Fpackage.json", "/explorer/vendor/noble-curves/package.json"]) {
      const r = await node.request("GET", path, { identity: "none" });
      assert.equal(r.status, 404, `${path}: ${r.text}`);
    }
    // The explorer does not open what was closed: a receipt still needs a user's or member's certificate.
    assert.equal((await node.request("GET", "/app/receipt?transaction_id=1.1", { identity: "none" })).status, 401);
  });

  test("the page shows the service, its three nodes and which one is primary", async () => {
    const primaryId = (await backup.process!.request("GET", "/node/network", { identity: "none" })).json().primary_id as string;
    await page.goto(`${origin}/explorer`);
    const rows = page.locator("[data-testid=nodes-table] tbody tr");
    await rows.nth(2).waitFor({ timeout: UI_TIMEOUT_MS });
    assert.equal(await rows.count(), 3);
    const primaryRow = rows.filter({ has: page.locator(".badge-primary") });
    assert.equal(await primaryRow.count(), 1);
    assert.equal(await primaryRow.locator("td").first().locator("code").getAttribute("title"), primaryId);
    assert.equal(await page.locator("[data-testid=service-status]").textContent(), "Open");
    const serviceCert = readFileSync(join(ws.dir, "service_cert.pem"), "utf8");
    assert.equal(await page.locator("[data-testid=service-fingerprint]").textContent(), `SHA-256 ${certificateFingerprint(serviceCert)}`);
    await screenshot(page, "overview");
  });

  test("a receipt fetched by the page verifies in the browser, and tampered receipts do not", async () => {
    const user = backup.process!;
    const write = await user.request("POST", "/app/log/private", { body: JSON.stringify({ id: 7, msg: "seen from the explorer" }) });
    assert.equal(write.status, 200, write.text);
    const txid = String(write.headers["x-ms-ccf-transaction-id"]);
    await user.waitForStatus(txid, "Committed", 15_000);
    // A receipt needs a later signature to be committed as well.
    const deadline = Date.now() + 15_000;
    while ((await user.request("GET", `/app/receipt?transaction_id=${txid}`)).status !== 200) {
      if (Date.now() > deadline) throw new Error(`no receipt for ${txid}`);
      await new Promise((r) => setTimeout(r, 100));
    }

    await page.locator("#nav-transactions").click();
    await page.locator("[data-testid=recent-table]").waitFor({ timeout: UI_TIMEOUT_MS });
    await page.locator("#lookup-txid").fill(txid);
    await page.locator("#lookup-button").click();
    await page.locator("[data-testid=lookup-status]").filter({ hasText: "Committed" }).waitFor({ timeout: UI_TIMEOUT_MS });
    await page.locator("#receipt-fetch").click();
    const result = page.locator("#receipt-result");
    await page.locator("#receipt-result.message-ok, #receipt-result.message-error").waitFor({ timeout: UI_TIMEOUT_MS });
    assert.match(await result.textContent() ?? "", new RegExp(`^Receipt verified .* transaction ${txid.replace(".", "\\.")} is in the ledger`));
    await screenshot(page, "receipt-verified");

    const genuine = JSON.parse(await page.locator("#receipt-json").inputValue());
    const flip = (hex: string) => (hex[0] === "0" ? "1" : "0") + hex.slice(1);
    const tampered: [string, unknown, RegExp][] = [
      ["write set digest", { ...genuine, leaf_components: { ...genuine.leaf_components, write_set_digest: flip(genuine.leaf_components.write_set_digest) } }, /signature does not verify over the root/],
      ["proof step", { ...genuine, proof: genuine.proof.map((step: Record<string, string>, i: number) => (i === 0 ? Object.fromEntries(Object.entries(step).map(([k, v]) => [k, flip(v)])) : step)) }, /signature does not verify over the root/],
      ["node id", { ...genuine, node_id: flip(genuine.node_id) }, /node_id .* does not match the public key of cert/],
    ];
    for (const [what, receipt, reason] of tampered) {
      await page.locator("#receipt-json").fill(JSON.stringify(receipt, null, 2));
      await page.locator("#receipt-verify").click();
      await page.locator("#receipt-result.message-error").waitFor({ timeout: UI_TIMEOUT_MS });
      assert.match(await result.textContent() ?? "", reason, what);
    }
    await screenshot(page, "receipt-tampered");
    // The genuine one still verifies (the page did not get stuck on failure).
    await page.locator("#receipt-json").fill(JSON.stringify(genuine));
    await page.locator("#receipt-verify").click();
    await page.locator("#receipt-result.message-ok").waitFor({ timeout: UI_TIMEOUT_MS });
  });

  test("a member proposes and votes from the page, and the service accepts the proposal", async () => {
    const memberCert = readFileSync(join(ws.dir, "member0_cert.pem"));
    const memberKey = readFileSync(join(ws.dir, "member0_privk.pem"));
    const newUserKeys = generateEcP384KeyPair();
    const newUserCert = await createIdentityCertificate(newUserKeys, "explorer-user");
    const newUserId = certificateFingerprint(newUserCert);

    await page.locator("#nav-console").click();
    await page.setInputFiles("#member-cert", { name: "member0_cert.pem", mimeType: "application/x-pem-file", buffer: memberCert });
    await page.setInputFiles("#member-key", { name: "member0_privk.pem", mimeType: "application/x-pem-file", buffer: memberKey });
    await page.locator("#identity-load").click();
    await page.locator("#identity-status.message-ok").waitFor({ timeout: UI_TIMEOUT_MS });
    assert.match(await page.locator("#identity-status").textContent() ?? "", new RegExp(certificateFingerprint(memberCert.toString("utf8"))));

    const proposal = { actions: [{ name: "set_user", args: { cert: newUserCert, user_data: { added_from: "explorer" } } }] };
    await page.locator("#proposal-text").fill(JSON.stringify(proposal, null, 2));
    await page.locator("#propose-button").click();
    await page.locator("#propose-result.message-ok, #propose-result.message-error").waitFor({ timeout: UI_TIMEOUT_MS });
    assert.match(await page.locator("#propose-result").textContent() ?? "", /is Open/);
    const proposalId = await page.locator("#propose-result").getAttribute("data-proposal-id");
    assert.match(proposalId ?? "", /^[0-9a-f]{64}$/);

    await page.locator(`[data-vote="accept-${proposalId}"]`).click({ timeout: UI_TIMEOUT_MS });
    await page.locator("#vote-result.message-ok, #vote-result.message-error").waitFor({ timeout: UI_TIMEOUT_MS });
    assert.match(await page.locator("#vote-result").textContent() ?? "", /is now Accepted/);
    await screenshot(page, "member-console");

    // The service, asked directly (at the primary), agrees.
    const primary = (await network.primary()).process!;
    const state = await primary.request("GET", `/gov/members/proposals/${proposalId}?api-version=2024-07-01`, { identity: "none" });
    assert.equal(state.json().proposalState, "Accepted", state.text);
    const users = (await primary.request("GET", "/gov/service/users?api-version=2024-07-01", { identity: "none" })).json().value as { userId: string }[];
    assert.ok(users.some((u) => u.userId === newUserId), "the user the page proposed was added");

    // The governance tab shows it Accepted, with member0's ballot, the new user, and the constitution.
    await page.locator("#nav-governance").click();
    const stateCell = page.locator(`[data-proposal-state="${proposalId}"]`);
    await stateCell.filter({ hasText: "Accepted" }).waitFor({ timeout: UI_TIMEOUT_MS });
    await page.locator("tr", { has: stateCell }).locator("button", { hasText: "Details" }).click();
    await page.locator("[data-testid=proposal-actions]").waitFor({ timeout: UI_TIMEOUT_MS });
    assert.deepEqual(JSON.parse(await page.locator("[data-testid=proposal-actions]").textContent() ?? ""), proposal);
    assert.match(await page.locator("#proposal-detail pre.ballot").first().textContent() ?? "", /return true/);
    await page.locator(`[data-testid=users-table] code[title="${newUserId}"]`).waitFor({ timeout: UI_TIMEOUT_MS });
    const constitution = (await primary.request("GET", "/gov/service/constitution", { identity: "none" })).text;
    await page.locator("[data-testid=constitution]").waitFor({ timeout: UI_TIMEOUT_MS });
    assert.equal(await page.locator("[data-testid=constitution]").textContent(), constitution);
    await screenshot(page, "governance");

    // The key never left the page: no request carried it, in PEM or DER, and none left the node's origin.
    const keyPem = memberKey.toString("utf8");
    const keyDer = Buffer.from(keyPem.replace(/-----[^-]+-----|\s/g, ""), "base64");
    const scalar = Buffer.from(createPrivateKey(keyPem).export({ format: "jwk" }).d!, "base64url");
    const posted = requests.filter((r) => r.body !== null);
    assert.ok(posted.length >= 2, "the proposal and the ballot were posted");
    for (const request of requests) {
      assert.ok(request.url.startsWith(`${origin}/`), `request to another origin: ${request.url}`);
      if (request.body === null) continue;
      assert.ok(!request.body.includes(keyDer), `${request.url} carried the private key (DER)`);
      assert.ok(!request.body.includes(scalar), `${request.url} carried the private scalar`);
      assert.ok(!request.body.toString("latin1").includes("PRIVATE KEY"), `${request.url} carried a PEM private key`);
    }
  });

  test("the page lists the app's endpoints from its OpenAPI description", async () => {
    const description = (await backup.process!.request("GET", "/app/api", { identity: "none" })).json();
    await page.locator("#nav-api").click();
    const rows = page.locator("[data-testid=api-table] tbody tr");
    await rows.first().waitFor({ timeout: UI_TIMEOUT_MS });
    const operations = Object.values(description.paths as Record<string, object>).reduce((n: number, item) => n + Object.keys(item).filter((k) => k !== "parameters").length, 0);
    assert.equal(await rows.count(), operations);
    await page.locator("[data-testid=api-table] tr", { hasText: "/app/log/private" }).first().waitFor({ timeout: UI_TIMEOUT_MS });
    await screenshot(page, "app-api");
  });

  test("with the service certificate in the browser's trust store the page loads over verified TLS; without it the browser refuses", { skip: certutilSkipReason() }, async () => {
    const serviceCert = readFileSync(join(ws.dir, "service_cert.pem"), "utf8");
    const untrusting = await launchChromium({ home: join(ws.dir, "home-untrusting") });
    const trusting = await launchChromium({ home: homeTrusting(join(ws.dir, "home-trusting"), serviceCert) });
    try {
      // No ignoreHTTPSErrors here: the browser checks the node's certificate itself.
      await assert.rejects((await untrusting.newPage()).goto(`${origin}/explorer`), /ERR_CERT_AUTHORITY_INVALID/);
      for (const host of ["127.0.0.1", "localhost"]) {
        const verified = await trusting.newPage();
        await verified.goto(`https://${host}:${backup.rpcPort}/explorer`);
        await verified.locator("[data-testid=nodes-table] tbody tr").nth(2).waitFor({ timeout: UI_TIMEOUT_MS });
        if (host === "localhost") await screenshot(verified, "trusted-service-certificate");
      }
    } finally {
      await untrusting.close();
      await trusting.close();
    }
  });

  test("the page raised no script errors or Content-Security-Policy violations", () => {
    assert.deepEqual(pageErrors, []);
  });
});
