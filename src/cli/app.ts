// `coco app`: the developer's loop for CCF JavaScript apps written in TypeScript. `init` writes a
// project from templates/ts-app, `build` bundles each module app.json names with esbuild into
// CCF's bundle JSON, `deploy` proposes `set_js_app` (and votes for it with --vote), `--watch`
// redeploys on change. Exit codes as `coco gov`: 1 the build or the service failed, 2 usage.
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, watch, writeFileSync, type FSWatcher } from "node:fs";
import { createRequire } from "node:module";
import { basename, dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { Command, CommanderError } from "commander";
import { build as esbuild, type Plugin } from "esbuild";
import { GovernanceClient, type ProposalInfo } from "../client/index.js";
import { CocoError } from "../util/index.js";
import { EXIT_SERVICE_ERROR, EXIT_USAGE_ERROR, describeProposal } from "./gov.js";
import { typeCheckProject } from "./app-typecheck.js";
import { addContextOptions, cocoCommand, resolveContext, type ContextFlags } from "./context.js";

const TEMPLATE_DIR = fileURLToPath(new URL("../../../templates/ts-app/", import.meta.url));
/** This Coco's package directory: the template's scripts depend on it (`"coco": "file:..."`). */
const COCO_ROOT = fileURLToPath(new URL("../../../", import.meta.url)).replace(/[\\/]$/, "");
const CCF_APP_PACKAGE = "@microsoft/ccf-app";
const DEFAULT_BUNDLE = join("dist", "bundle.json");
const SOURCE_EXTENSIONS = [".ts", ".mts", ".js", ".mjs"];
const WATCH_DEBOUNCE_MS = 300;
const HTTP_METHODS = new Set(["get", "put", "post", "delete", "patch", "head", "options"]);

/** CCF's app bundle: what `set_js_app` takes as `args.bundle`. */
export interface AppBundle {
  metadata: { endpoints: Record<string, Record<string, EndpointMetadata>> };
  modules: { name: string; module: string }[];
}

interface EndpointMetadata {
  js_module: string;
  js_function: string;
  [property: string]: unknown;
}

/** The developer's mistake (exit 2 outside --watch); the message says what to change. */
export class AppUsageError extends Error {}
/** The app's code does not build (exit 1). */
export class AppBuildError extends Error {}

// ---------------------------------------------------------------------------------------------
// init

export function initProject(dir: string): string[] {
  const target = resolve(dir);
  if (existsSync(target) && (!statSync(target).isDirectory() || readdirSync(target).length > 0)) {
    throw new AppUsageError(`'${dir}' already exists and is not an empty directory; choose a new directory.`);
  }
  mkdirSync(target, { recursive: true });
  cpSync(TEMPLATE_DIR, target, { recursive: true });
  // npm drops files named .gitignore from packages: the template ships it as `gitignore`.
  if (existsSync(join(target, "gitignore"))) renameSync(join(target, "gitignore"), join(target, ".gitignore"));
  const name = basename(target).toLowerCase().replace(/[^a-z0-9._-]+/g, "-") || "ccf-app";
  const written: string[] = [];
  const visit = (d: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const file = join(d, entry.name);
      if (entry.isDirectory()) {
        visit(file);
        continue;
      }
      const text = readFileSync(file, "utf8");
      if (text.includes("{{name}}") || text.includes("{{cocoRoot}}")) {
        writeFileSync(file, text.replaceAll("{{name}}", name).replaceAll("{{cocoRoot}}", COCO_ROOT));
      }
      written.push(relative(target, file));
    }
  };
  visit(target);
  return written.sort();
}

// ---------------------------------------------------------------------------------------------
// build

function readAppJson(dir: string): AppBundle["metadata"] {
  const file = join(dir, "app.json");
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, "utf8"));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new AppUsageError(`no app.json in '${dir}': is it an app project? (create one with 'coco app init DIR')`);
    throw new AppUsageError(`${file}: ${(error as Error).message}`);
  }
  const endpoints = (parsed as { endpoints?: unknown } | null)?.endpoints;
  if (typeof endpoints !== "object" || endpoints === null || Array.isArray(endpoints)) {
    throw new AppUsageError(`${file}: expected {"endpoints": {"/path": {"get": {"js_module": ..., "js_function": ...}}}}`);
  }
  for (const [path, methods] of Object.entries(endpoints)) {
    if (!path.startsWith("/")) throw new AppUsageError(`${file}: endpoint path '${path}' must start with '/' (it is relative to /app)`);
    for (const [method, endpoint] of Object.entries(methods as Record<string, unknown>)) {
      const where = `${file}: ${method.toUpperCase()} ${path}`;
      if (!HTTP_METHODS.has(method.toLowerCase())) throw new AppUsageError(`${where}: '${method}' is not an HTTP method`);
      const e = endpoint as Partial<EndpointMetadata> | null;
      if (typeof e?.js_module !== "string" || typeof e.js_function !== "string") {
        throw new AppUsageError(`${where}: needs "js_module" (e.g. "endpoints/items.js") and "js_function" strings`);
      }
    }
  }
  return parsed as AppBundle["metadata"];
}

/** `endpoints/items.js` → the first of src/endpoints/items.{ts,mts,js,mjs}, then the same from the project root. */
function findSource(dir: string, moduleName: string): string {
  const stem = moduleName.replace(/\.(m?js|m?ts)$/, "");
  const candidates = ["src", "."].flatMap((root) => SOURCE_EXTENSIONS.map((ext) => join(dir, root, stem + ext)));
  const found = candidates.find((file) => existsSync(file));
  if (found === undefined) {
    throw new AppUsageError(`app.json names js_module '${moduleName}', but none of ${candidates.slice(0, 2).map((c) => relative(dir, c)).join(", ")}, ... exists`);
  }
  return found;
}

/** Directory of @microsoft/ccf-app: the project's own copy if installed, else the one Coco ships with. */
function ccfAppDirectory(projectDir: string): string {
  for (const base of [join(projectDir, "package.json"), fileURLToPath(import.meta.url)]) {
    try {
      return dirname(createRequire(base).resolve(`${CCF_APP_PACKAGE}/package.json`));
    } catch {
      // try the next place
    }
  }
  throw new AppBuildError(`cannot find ${CCF_APP_PACKAGE}: run 'npm install' in the project`);
}

/**
 * Resolves @microsoft/ccf-app without the project's node_modules and marks its files free of
 * side effects, so only the helpers an app uses are bundled (its `historical` module reads
 * `ccf.historical` at load time; unused, it is left out).
 */
function ccfAppPlugin(projectDir: string): Plugin {
  return {
    name: "coco-ccf-app",
    setup(build) {
      let packageDir: string | undefined;
      const dir = () => (packageDir ??= ccfAppDirectory(projectDir));
      build.onResolve({ filter: /^@microsoft\/ccf-app(\/.*)?$/ }, (args) => {
        const sub = args.path.slice(CCF_APP_PACKAGE.length).replace(/^\//, "");
        const file = sub === "" ? "index.js" : sub.endsWith(".js") ? sub : `${sub}.js`;
        return { path: join(dir(), file), sideEffects: false };
      });
      build.onResolve({ filter: /^\.\.?\// }, (args) => {
        if (packageDir === undefined || !args.importer.startsWith(packageDir + sep)) return undefined;
        return { path: resolve(args.resolveDir, args.path), sideEffects: false };
      });
    },
  };
}

/** Where build warnings go (stderr, as `coco: warning: ...`). */
export type WarningSink = (message: string) => void;
const warnOnStderr: WarningSink = (message) => console.error(`coco: warning: ${message}`);

/**
 * Bundles one module: ES2020, everything it imports inlined. A function app.json names but the
 * module does not export is a warning, not an error: CCF deploys such a bundle and answers 500
 * only when that endpoint is called (CCF's own samples have shipped that way).
 */
async function bundleModule(projectDir: string, moduleName: string, functions: ReadonlySet<string>, warn: WarningSink, sourceMap: boolean): Promise<string> {
  const entry = findSource(projectDir, moduleName);
  let result;
  try {
    result = await esbuild({
      entryPoints: [entry], bundle: true, write: false, format: "esm", target: "es2020", platform: "neutral",
      mainFields: ["module", "main"], outfile: "module.js", metafile: true, logLevel: "silent", legalComments: "none",
      absWorkingDir: projectDir, plugins: [ccfAppPlugin(projectDir)],
      // Inline, without the sources' text: the map travels with the module into the ledger, and
      // the node uses it to name source lines in stack traces (src/apps/js/source-maps.ts).
      ...(sourceMap ? { sourcemap: "inline" as const, sourcesContent: false, sourceRoot: "" } : {}),
    });
  } catch (error) {
    const errors = (error as { errors?: { text: string; location?: { file: string; line: number; column: number } | null }[] }).errors ?? [];
    const lines = errors.map((e) => (e.location ? `${e.location.file}:${e.location.line}:${e.location.column}: ${e.text}` : e.text));
    throw new AppBuildError(`${moduleName} does not build:\n  ${lines.join("\n  ") || (error as Error).message}`);
  }
  const exported = new Set(Object.values(result.metafile.outputs)[0]?.exports ?? []);
  const missing = [...functions].filter((f) => !exported.has(f));
  if (missing.length > 0) {
    warn(`${relative(projectDir, entry)} does not export ${missing.join(", ")}, named as js_function in app.json: those endpoints will answer 500 when called`);
  }
  return result.outputFiles[0]!.text;
}

export interface BuildOptions {
  /** Type-check the project first (default true); a type error fails the build. */
  typeCheck?: boolean;
  /** Inline source maps in each module (default true): the node maps JS stack traces back to the sources. */
  sourceMaps?: boolean;
}

/** Builds CCF's bundle JSON from a project directory. */
export async function buildBundle(dir: string, warn: WarningSink = warnOnStderr, options: BuildOptions = {}): Promise<AppBundle> {
  const projectDir = resolve(dir);
  const metadata = readAppJson(projectDir);
  if (options.typeCheck !== false) {
    const checked = await typeCheckProject(projectDir, ccfAppDirectory(projectDir));
    if (checked === undefined) warn("TypeScript is not installed: the project was bundled without a type check");
    else if (checked.errorCount > 0) {
      const more = checked.errorCount - checked.errors.length;
      throw new AppBuildError(`type errors (${checked.errorCount}; --no-typecheck to bundle anyway):\n  ${checked.errors.join("\n  ")}${more > 0 ? `\n  ... and ${more} more` : ""}`);
    }
  }
  const functionsByModule = new Map<string, Set<string>>();
  for (const methods of Object.values(metadata.endpoints)) {
    for (const endpoint of Object.values(methods)) {
      let set = functionsByModule.get(endpoint.js_module);
      if (set === undefined) functionsByModule.set(endpoint.js_module, (set = new Set()));
      set.add(endpoint.js_function);
    }
  }
  const modules = await Promise.all([...functionsByModule].map(async ([name, functions]) => ({
    name, module: await bundleModule(projectDir, name, functions, warn, options.sourceMaps !== false),
  })));
  return { metadata, modules };
}

// ---------------------------------------------------------------------------------------------
// deploy

interface DeployOptions extends ContextFlags {
  vote: boolean;
  typecheck: boolean;
  sourceMaps: boolean;
  watch: boolean;
}

function readFile(file: string, what: string, option: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (error) {
    throw new AppUsageError(`cannot read ${what} '${file}': ${(error as NodeJS.ErrnoException).code ?? (error as Error).message} (use ${option})`);
  }
}

/** A directory is built first; a file is taken as bundle JSON ({ metadata, modules }). */
async function loadBundle(source: string, options: BuildOptions): Promise<AppBundle> {
  if (existsSync(source) && statSync(source).isDirectory()) return buildBundle(source, undefined, options);
  const bundle = JSON.parse(readFile(source, "bundle", "a project DIR or a bundle.json")) as Partial<AppBundle>;
  if (typeof bundle.metadata?.endpoints !== "object" || !Array.isArray(bundle.modules)) {
    throw new AppUsageError(`'${source}' is not a CCF app bundle: expected {"metadata": {"endpoints": ...}, "modules": [{"name", "module"}]}`);
  }
  return bundle as AppBundle;
}

/** Proposes set_js_app, votes for it if asked, waits for commit; returns the final proposal state. */
export async function deployBundle(client: GovernanceClient, bundle: AppBundle, vote: boolean): Promise<ProposalInfo> {
  let info = await client.propose({ actions: [{ name: "set_js_app", args: { bundle, disable_bytecode_cache: false } }] });
  if (info.proposalState === "Open" && vote) info = await client.accept(info.proposalId);
  if (info.proposalState === "Failed" || info.proposalState === "Rejected") {
    throw new CocoError("ProposalNotAccepted", describeProposal(info), 400);
  }
  if (info.transactionId !== undefined) await client.waitForCommit(info.transactionId);
  return info;
}

function describeDeploy(info: ProposalInfo, bundle: AppBundle): string {
  const endpoints = Object.values(bundle.metadata.endpoints).reduce((n, methods) => n + Object.keys(methods).length, 0);
  const what = `${endpoints} endpoint${endpoints === 1 ? "" : "s"} in ${bundle.modules.length} module${bundle.modules.length === 1 ? "" : "s"}`;
  if (info.proposalState === "Accepted") return `Deployed ${what}: proposal ${info.proposalId} accepted, committed at ${info.transactionId ?? "?"}.`;
  return `Proposed ${what}: proposal ${info.proposalId} is ${info.proposalState}; other members vote with 'coco gov vote ${info.proposalId} --accept' (or pass --vote to vote as this member).`;
}

function report(error: unknown): number {
  if (error instanceof AppUsageError) {
    console.error(`coco: ${error.message}`);
    return EXIT_USAGE_ERROR;
  }
  if (error instanceof CocoError) console.error(`coco: ${error.code}: ${error.message}`);
  else console.error(`coco: ${error instanceof Error ? error.message : String(error)}`);
  return EXIT_SERVICE_ERROR;
}

/** Rebuilds and redeploys after each burst of changes in src/ or app.json; one deploy at a time. */
function watchAndRedeploy(dir: string, redeploy: () => Promise<void>): void {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let again = false;
  const trigger = () => {
    if (running !== undefined) {
      again = true;
      return;
    }
    running = redeploy().finally(() => {
      running = undefined;
      if (again) {
        again = false;
        trigger();
      }
    });
  };
  const schedule = () => {
    clearTimeout(timer);
    timer = setTimeout(trigger, WATCH_DEBOUNCE_MS);
  };
  // One non-recursive watcher per directory: a recursive fs.watch loses a file that an editor
  // saves by renaming a temporary file over it. New directories are picked up on each event.
  const watchers = new Map<string, FSWatcher>();
  const watchTree = (d: string): void => {
    if (!watchers.has(d)) {
      const watcher = watch(d, () => {
        watchTree(d);
        schedule();
      });
      watcher.on("error", () => {
        watcher.close();
        watchers.delete(d);
      });
      watchers.set(d, watcher);
    }
    try {
      for (const entry of readdirSync(d, { withFileTypes: true })) {
        if (entry.isDirectory() && entry.name !== "node_modules" && entry.name !== "dist") watchTree(join(d, entry.name));
      }
    } catch {
      // removed while we looked: its watcher reports an error and is dropped
    }
  };
  watchers.set(dir, watch(dir, (_event, file) => {
    if (file !== null && String(file) === "app.json") schedule();
  }));
  if (existsSync(join(dir, "src"))) watchTree(join(dir, "src"));
  console.log(`Watching ${relative(process.cwd(), dir) || "."} (app.json, src/) for changes; Ctrl-C to stop.`);
  process.on("SIGINT", () => {
    for (const w of watchers.values()) w.close();
    process.exit(0);
  });
}

async function runDeploy(source: string, opts: DeployOptions): Promise<void> {
  if (opts.watch && !(existsSync(source) && statSync(source).isDirectory())) {
    throw new AppUsageError("--watch needs a project directory to watch, not a bundle file");
  }
  const context = resolveContext(opts);
  const client = new GovernanceClient({
    url: context.url,
    serviceCertPem: readFile(context.serviceCert, "service certificate", "--service-cert, COCO_SERVICE_CERT or --workspace"),
    memberCertPem: readFile(context.memberCert, "member certificate", "--member-cert, COCO_MEMBER_CERT or --workspace"),
    memberKeyPem: readFile(context.memberKey, "member private key", "--member-key, COCO_MEMBER_KEY or --workspace"),
  });
  const once = async () => {
    const bundle = await loadBundle(source, { typeCheck: opts.typecheck, sourceMaps: opts.sourceMaps });
    console.log(describeDeploy(await deployBundle(client, bundle, opts.vote), bundle));
  };
  if (!opts.watch) {
    try {
      await once();
    } finally {
      await client.close();
    }
    return;
  }
  // In watch mode a failed build or deploy is reported and the watch goes on.
  await once().catch(report);
  watchAndRedeploy(resolve(source), () => once().catch((error) => void report(error)));
}

// ---------------------------------------------------------------------------------------------
// commands

/** Adds `coco app ...` to the program. */
export function registerAppCommands(program: Command): void {
  const app = program
    .command("app")
    .description("Write, build and deploy a CCF JavaScript app in TypeScript: init, build, deploy [--watch]")
    .exitOverride((error: CommanderError) => process.exit(error.exitCode === 0 ? 0 : EXIT_USAGE_ERROR));

  app.command("init")
    .description("Create a TypeScript app project in DIR (app.json, src/endpoints/*.ts typed against @microsoft/ccf-app)")
    .argument("<dir>", "new project directory (must not exist or be empty)")
    .action((dir: string) => {
      try {
        const files = initProject(dir);
        console.log(`Created ${dir}/: ${files.join(", ")}\nNext, with a sandbox running here ('${cocoCommand()} sandbox'): ${cocoCommand()} app build ${dir} && ${cocoCommand()} app deploy ${dir} --vote\n(or 'npm install' in ${dir}, then 'npm run build' and 'npm run deploy')`);
      } catch (error) {
        process.exitCode = report(error);
      }
    });

  app.command("build")
    .description("Bundle each module app.json names (esbuild, ES2020) into CCF's bundle JSON {metadata, modules}")
    .argument("[dir]", "project directory", ".")
    .option("--out <file>", `where to write the bundle (default DIR/${DEFAULT_BUNDLE})`)
    .option("--no-typecheck", "bundle without type-checking the project first")
    .option("--no-source-maps", "leave inline source maps out of the modules (smaller bundle; stack traces name bundled lines)")
    .action(async (dir: string, opts: { out?: string; typecheck: boolean; sourceMaps: boolean }) => {
      try {
        const bundle = await buildBundle(dir, undefined, { typeCheck: opts.typecheck, sourceMaps: opts.sourceMaps });
        const out = opts.out ?? join(dir, DEFAULT_BUNDLE);
        mkdirSync(dirname(resolve(out)), { recursive: true });
        writeFileSync(out, `${JSON.stringify(bundle, null, 2)}\n`);
        const bytes = bundle.modules.reduce((n, m) => n + m.module.length, 0);
        console.log(`Built ${out}: ${bundle.modules.map((m) => m.name).join(", ")} (${bytes} bytes of JS)`);
      } catch (error) {
        process.exitCode = report(error);
      }
    });

  addContextOptions(app.command("deploy")
    .description("Propose set_js_app with the app (built from DIR, or a bundle.json) and, with --vote, vote for it")
    .argument("[source]", "project directory or bundle JSON file", "."), { member: true })
    .option("--vote", "also vote for the proposal as this member (enough in the one-member sandbox)", false)
    .option("--watch", "keep running: rebuild and redeploy whenever app.json or src/ changes", false)
    .option("--no-typecheck", "build without type-checking the project first")
    .option("--no-source-maps", "build without inline source maps")
    .action(async (source: string, opts: DeployOptions) => {
      try {
        await runDeploy(source, opts);
      } catch (error) {
        process.exitCode = report(error);
      }
    });
}
