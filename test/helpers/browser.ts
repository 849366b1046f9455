// Test helper: Debian's chromium driven by playwright-core, for the explorer's browser tests.
// scripts/ensure-chromium.mjs installs it when it can; where it is missing the tests skip with
// browserSkipReason() rather than fail. Screenshots go to test-output/explorer/ (gitignored).
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";

export const CHROMIUM_PATH = process.env["COCO_CHROMIUM"] ?? "/usr/bin/chromium";
export const SCREENSHOT_DIR = resolve("test-output", "explorer");

/** Why browser tests cannot run here, or undefined when they can. */
export function browserSkipReason(): string | undefined {
  if (existsSync(CHROMIUM_PATH)) return undefined;
  return `no browser: ${CHROMIUM_PATH} is missing (install Debian's chromium: apt-get install chromium, or set COCO_CHROMIUM); the explorer's browser tests are skipped`;
}

export const CERTUTIL_PATH = "/usr/bin/certutil";

/** Why the test of a trusted service certificate cannot run here (no NSS certutil), or undefined. */
export function certutilSkipReason(): string | undefined {
  return existsSync(CERTUTIL_PATH) ? undefined : `${CERTUTIL_PATH} is missing (apt-get install libnss3-tools): cannot add the service certificate to a browser's trust store`;
}

/**
 * A home directory whose NSS database (the store Chromium on Linux trusts) holds `caPem` as a
 * certificate authority: what a user does once to trust a service (docs/explorer.md).
 */
export function homeTrusting(home: string, caPem: string): string {
  const database = `sql:${join(home, ".pki", "nssdb")}`;
  mkdirSync(join(home, ".pki", "nssdb"), { recursive: true });
  const caFile = join(home, "service_cert.pem");
  writeFileSync(caFile, caPem);
  execFileSync(CERTUTIL_PATH, ["-d", database, "-N", "--empty-password"]);
  execFileSync(CERTUTIL_PATH, ["-d", database, "-A", "-t", "C,,", "-n", "coco service", "-i", caFile]);
  return home;
}

/** Headless chromium; with `home`, using that home's NSS trust store. */
export function launchChromium(options: { home?: string } = {}): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH, headless: true,
    ...(options.home === undefined ? {} : { env: { ...process.env, HOME: options.home } }),
  });
}

/** Saves a full-page screenshot as test-output/explorer/<name>.png and returns its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const path = join(SCREENSHOT_DIR, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}
