// Serves the web explorer (src/explorer/static: hand-written HTML, CSS and ES modules, no build
// step) at /explorer on the node's RPC port, and the one library the page cannot do without:
// @noble/curves, to check the node's signature over a Merkle root, which WebCrypto cannot (it
// always hashes what it verifies; CCF signs the root itself as the digest). Every answer carries
// a strict Content-Security-Policy: scripts, styles and requests from this origin only.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { CocoError } from "../util/index.js";
import { ErrorCodes, type EndpointDefinition, type EndpointRegistry, type HandlerResult } from "../rpc/index.js";

export const EXPLORER_PATH = "/explorer";

/**
 * Same origin only, no inline script or style, no plugins, no framing, no form posts, and DOM
 * sinks that take strings (innerHTML) refused outright: the page builds its DOM node by node,
 * and node data (member_data, proposal text) is only ever text.
 */
export const EXPLORER_CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "require-trusted-types-for 'script'",
].join("; ");

const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy": EXPLORER_CONTENT_SECURITY_POLICY,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
  // A node upgrade changes the page: always revalidate.
  "cache-control": "no-cache",
};

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
};

/** A file name the explorer serves: one flat segment, no dots but the extension's. */
const STATIC_FILE_NAME = /^[a-z0-9][a-z0-9-]*\.(?:html|js|css|svg)$/;
const VENDOR_FILE_NAME = /^[a-z0-9_][a-z0-9_-]*\.js$/;
/** The explorer's own files are a dozen; a bound all the same, as on every cache. */
const STATIC_FILES_MAX = 64;

interface VendorPackage {
  /** URL prefix under /explorer/vendor. */
  readonly name: string;
  /** Directory of the package's compiled ES modules. */
  readonly dir: string;
  /** Subdirectories served besides the top level. */
  readonly subdirs: readonly string[];
}

interface StaticFile {
  readonly body: Buffer;
  readonly contentType: string;
}

function staticDir(): string {
  // Compiled to dist/src/explorer/routes.js; the static files stay in the source tree.
  return join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "src", "explorer", "static");
}

function packageDir(entry: string): string {
  return dirname(fileURLToPath(import.meta.resolve(entry)));
}

function vendorPackages(): VendorPackage[] {
  return [
    { name: "noble-curves", dir: packageDir("@noble/curves/nist.js"), subdirs: ["abstract"] },
    { name: "noble-hashes", dir: packageDir("@noble/hashes/sha2.js"), subdirs: [] },
  ];
}

/**
 * noble's modules import each other by relative paths, and @noble/hashes by its bare name,
 * which a browser cannot resolve without an import map (an inline script the policy forbids):
 * point those imports at the copy served here.
 */
export function rewriteBareImports(source: string): string {
  return source.replace(/(from\s+|import\s*\(\s*)(['"])@noble\/(curves|hashes)\//g, (_m, lead: string, quote: string, pkg: string) =>
    `${lead}${quote}${EXPLORER_PATH}/vendor/noble-${pkg}/`);
}

function loadStaticFiles(dir: string): Map<string, StaticFile> {
  const files = new Map<string, StaticFile>();
  for (const name of readdirSync(dir).sort()) {
    if (!STATIC_FILE_NAME.test(name)) continue;
    if (files.size >= STATIC_FILES_MAX) throw new Error(`explorer: more than ${STATIC_FILES_MAX} static files in ${dir}`);
    const extension = name.slice(name.lastIndexOf("."));
    files.set(name, { body: readFileSync(join(dir, name)), contentType: CONTENT_TYPES[extension]! });
  }
  if (!files.has("index.html")) throw new Error(`explorer: ${dir} has no index.html`);
  return files;
}

function installMissingExplorer(registry: EndpointRegistry, dir: string): void {
  const missing = (): never => {
    throw new CocoError(ErrorCodes.ResourceNotFound, `The explorer is not installed with this node: ${dir} is missing (deploy src/explorer/static with dist/).`, 404);
  };
  for (const path of [EXPLORER_PATH, `${EXPLORER_PATH}/`]) {
    registry.install({ method: "GET", path, authPolicies: ["no_auth"], mode: "readonly", forwarding: "never", summary: "The web explorer (not installed)", handler: missing });
  }
}

function notFound(path: string): CocoError {
  return new CocoError(ErrorCodes.ResourceNotFound, `Unknown path: ${path}.`, 404);
}

function answer(file: StaticFile): HandlerResult {
  return { headers: { ...SECURITY_HEADERS, "content-type": file.contentType }, body: file.body };
}

/**
 * Installs GET /explorer (and /explorer/), /explorer/{file} and the vendored library's modules.
 * All are no_auth reads served by the node that is asked (never forwarded): the page holds no
 * secrets, and what it shows it reads from the node's public endpoints, whose own
 * authentication is unchanged.
 */
export function installExplorerEndpoints(registry: EndpointRegistry, options: { staticDir?: string } = {}): void {
  const dir = options.staticDir ?? staticDir();
  if (!existsSync(dir)) {
    // A node deployed without the source tree (say, dist/ alone in a container) still runs; the
    // page answers why it is missing rather than the node failing to start.
    installMissingExplorer(registry, dir);
    return;
  }
  const files = loadStaticFiles(dir);
  const vendorCache = new Map<string, StaticFile>();
  const packages = vendorPackages();

  const vendorFile = (pkg: VendorPackage, subdir: string | undefined, name: string, path: string): StaticFile => {
    if (!VENDOR_FILE_NAME.test(name)) throw notFound(path);
    const key = `${pkg.name}/${subdir ?? ""}/${name}`;
    let file = vendorCache.get(key);
    if (file === undefined) {
      let source: string;
      try {
        source = readFileSync(join(pkg.dir, subdir ?? "", name), "utf8");
      } catch {
        throw notFound(path);
      }
      file = { body: Buffer.from(rewriteBareImports(source)), contentType: CONTENT_TYPES[".js"]! };
      // Bounded by the files the two packages ship (a few dozen); only existing files are cached.
      vendorCache.set(key, file);
    }
    return file;
  };

  const get = (path: string, summary: string, handler: EndpointDefinition["handler"]) =>
    registry.install({ method: "GET", path, authPolicies: ["no_auth"], mode: "readonly", forwarding: "never", summary, handler });

  const index = (): HandlerResult => answer(files.get("index.html")!);
  get(EXPLORER_PATH, "The web explorer and governance console (HTML)", index);
  get(`${EXPLORER_PATH}/`, "The web explorer and governance console (HTML)", index);
  get(`${EXPLORER_PATH}/{file}`, "A static file of the web explorer", (ctx) => {
    const file = files.get(ctx.params["file"]!);
    if (file === undefined) throw notFound(ctx.request.path);
    return answer(file);
  });
  for (const pkg of packages) {
    get(`${EXPLORER_PATH}/vendor/${pkg.name}/{file}`, `The explorer's copy of ${pkg.name}`, (ctx) =>
      answer(vendorFile(pkg, undefined, ctx.params["file"]!, ctx.request.path)));
    for (const subdir of pkg.subdirs) {
      get(`${EXPLORER_PATH}/vendor/${pkg.name}/${subdir}/{file}`, `The explorer's copy of ${pkg.name}`, (ctx) =>
        answer(vendorFile(pkg, subdir, ctx.params["file"]!, ctx.request.path)));
    }
  }
}
