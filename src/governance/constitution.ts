// Loading the constitution's source: CCF-style constitutions ship as several JS files that the
// node concatenates into one ES module (exporting validate, resolve and apply). Coco's own
// default lives in `constitution/default/` at the package root.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { CocoError } from "../util/errors.js";

/** The KV table holding the active constitution (a JSON string at the 8-zero-byte singleton key). */
export const CONSTITUTION_MAP = "public:ccf.gov.constitution";

/** CCF's order: helpers and the actions map first, then the functions that use them. */
export const DEFAULT_CONSTITUTION_FILES = ["actions.js", "validate.js", "resolve.js", "apply.js"] as const;

/** Concatenates constitution files (in the given order) into one module source. */
export function loadConstitutionFiles(paths: readonly string[]): string {
  if (paths.length === 0) {
    throw new CocoError("InvalidConstitution", "no constitution files given: list at least one JS file (e.g. actions.js, validate.js, resolve.js, apply.js)", 400);
  }
  const sources = paths.map((path) => {
    if (!existsSync(path)) {
      throw new CocoError("InvalidConstitution", `constitution file ${path} does not exist: check constitution_files in the configuration`, 400);
    }
    return readFileSync(path, "utf8");
  });
  return sources.join("\n");
}

/**
 * The directory of the default constitution. From the compiled `dist/src/governance/` it is
 * three levels up; from another build directory (or `src/` itself) walk up to the package root.
 */
function defaultConstitutionDirectory(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const guess = fileURLToPath(new URL("../../../constitution/default/", import.meta.url));
  if (existsSync(join(guess, DEFAULT_CONSTITUTION_FILES[0]))) return guess;
  for (let directory = here; ; directory = dirname(directory)) {
    const candidate = join(directory, "constitution", "default");
    if (existsSync(join(directory, "package.json")) && existsSync(candidate)) return candidate;
    if (dirname(directory) === directory) break;
  }
  throw new CocoError("InvalidConstitution", `cannot find constitution/default/ above ${here}: is the Coco package installed whole?`);
}

/** The source of Coco's default constitution, ready for `JsRuntime.loadModules`. */
export function defaultConstitutionSource(): string {
  const directory = defaultConstitutionDirectory();
  return loadConstitutionFiles(DEFAULT_CONSTITUTION_FILES.map((file) => join(directory, file)));
}
