// `coco app build` type-checks the project before bundling it: esbuild strips types without
// checking them, so a handler that misuses the `ccf` API would otherwise deploy and fail at run
// time. The check uses the project's tsconfig.json (the template's: strict, ES2020) and resolves
// @microsoft/ccf-app to the project's copy if installed, else to the one Coco ships with.
import { existsSync } from "node:fs";
import { join, relative } from "node:path";

const CCF_APP = "@microsoft/ccf-app";
/** At most this many diagnostics are printed; the rest are counted. */
const DIAGNOSTICS_SHOWN_MAX = 20;

export interface TypeCheckResult {
  /** Files checked (the project's own). */
  files: number;
  /** "file:line:col: message", at most DIAGNOSTICS_SHOWN_MAX of them. */
  errors: string[];
  errorCount: number;
}

/** Type-checks the project's TypeScript sources; undefined when TypeScript is not available. */
export async function typeCheckProject(projectDir: string, ccfAppDir: string): Promise<TypeCheckResult | undefined> {
  let ts: typeof import("typescript");
  try {
    ts = (await import("typescript")).default;
  } catch {
    return undefined;
  }
  const configFile = join(projectDir, "tsconfig.json");
  const raw = existsSync(configFile)
    ? ts.readConfigFile(configFile, (path) => ts.sys.readFile(path))
    : { config: { compilerOptions: { target: "ES2020", module: "ES2020", moduleResolution: "bundler", lib: ["ES2020"], types: [], strict: true, skipLibCheck: true }, include: ["src/**/*.ts"] } };
  if (raw.error !== undefined) return { files: 0, errors: [format(ts, raw.error, projectDir)], errorCount: 1 };
  const parsed = ts.parseJsonConfigFileContent(raw.config, ts.sys, projectDir, undefined, existsSync(configFile) ? configFile : undefined);
  const options = { ...parsed.options, noEmit: true };
  // Without the project's own node_modules, the types come from Coco's copy of the package.
  if (!existsSync(join(projectDir, "node_modules", ...CCF_APP.split("/")))) {
    options.paths = { ...options.paths, [CCF_APP]: [ccfAppDir], [`${CCF_APP}/*`]: [`${ccfAppDir}/*`] };
  }
  const program = ts.createProgram(parsed.fileNames, options);
  const diagnostics = [...parsed.errors, ...ts.getPreEmitDiagnostics(program)].filter((d) => d.category === ts.DiagnosticCategory.Error);
  return {
    files: parsed.fileNames.length,
    errors: diagnostics.slice(0, DIAGNOSTICS_SHOWN_MAX).map((d) => format(ts, d, projectDir)),
    errorCount: diagnostics.length,
  };
}

function format(ts: typeof import("typescript"), diagnostic: import("typescript").Diagnostic, projectDir: string): string {
  const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n");
  if (diagnostic.file === undefined || diagnostic.start === undefined) return message;
  const { line, character } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start);
  return `${relative(projectDir, diagnostic.file.fileName)}:${line + 1}:${character + 1}: ${message}`;
}
