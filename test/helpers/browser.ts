// Test helper: Debian's chromium driven by playwright-core, for the explorer's browser tests.
// scripts/ensure-chromium.mjs installs it when it can; where it is missing the tests skip with
// browserSkipReason() rather than fail. Screenshots go to test-output/explorer/ (gitignored).
import { existsSync, mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";

export const CHROMIUM_PATH = process.env["COCO_CHROMIUM"] ?? "/usr/bin/chromium";
export const SCREENSHOT_DIR = resolve("test-output", "explorer");

/** Why browser tests cannot run here, or undefined when they can. */
export function browserSkipReason(): string | undefined {
  if (existsSync(CHROMIUM_PATH)) return undefined;
  return `no browser: ${CHROMIUM_PATH} is missing (install Debian's chromium: apt-get install chromium, or set COCO_CHROMIUM); the explorer's browser tests are skipped`;
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM_PATH, headless: true });
}

/** Saves a full-page screenshot as test-output/explorer/<name>.png and returns its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const path = join(SCREENSHOT_DIR, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}
