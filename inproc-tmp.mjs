import { resolveConfig } from "/work/main/dist/src/node/config.js";
import { CocoNode } from "/work/main/dist/src/node/node.js";
import { installLoggingApp } from "/work/main/dist/src/apps/logging/index.js";
import { sandboxConfig } from "/work/main/dist/src/cli/sandbox.js";
import { Frontend } from "/work/main/dist/src/node/frontend.js";
import { pino } from "pino";
import fs from "node:fs"; import crypto from "node:crypto";
fs.rmSync("/tmp/ip", { recursive: true, force: true });
fs.mkdirSync("/tmp/ip");
for (const f of ["member0_cert.pem", "user0_cert.pem"]) fs.copyFileSync("/tmp/sb/" + f, "/tmp/ip/" + f);
const file = sandboxConfig({ workspace: "/tmp/ip", port: 0, host: "127.0.0.1", durability: process.argv[2] ?? "fsync", quiet: true });
const config = resolveConfig(file, "/tmp/ip");
const node = await CocoNode.start(config, { installApps: installLoggingApp, logger: pino({ level: "warn" }) });
const frontend = new Frontend(node.registry, node.engine);
const der = new crypto.X509Certificate(fs.readFileSync("/tmp/ip/user0_cert.pem")).raw;
const fp = crypto.createHash("sha256").update(der).digest("hex"); const callerCert = { der, fingerprint: fp, idKey: Buffer.from(fp) };
const N = 100000;
const bodies = []; for (let i = 0; i < 1000; i++) bodies.push(Buffer.from(JSON.stringify({ id: i, msg: "hello world this is a private message of moderate size" })));
const t0 = performance.now(); const c0 = process.cpuUsage();
for (let i = 0; i < N; i++) {
  frontend.dispatch({ method: "POST", path: "/app/log/private", query: "", headers: {}, body: bodies[i % 1000], callerCert });
  if (i % 1000 === 999) await new Promise(r => setImmediate(r));
}
const t1 = performance.now(); const c1 = process.cpuUsage(c0);
console.log("µs/tx wall", ((t1 - t0) * 1000 / N).toFixed(2), "cpu", ((c1.user + c1.system) / N).toFixed(2));
await node.stop();
