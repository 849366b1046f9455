// Loads the explorer's browser modules (src/explorer/static, plain ES modules) into Node, whose
// global WebCrypto is the same API the browser gives them, so the unit tests run the shipped code.
import { fileURLToPath } from "node:url";
import { join, resolve } from "node:path";

// Compiled to dist/test/unit/explorer/: the sources stay in the repository's src/.
const STATIC_DIR = resolve(fileURLToPath(import.meta.url), "..", "..", "..", "..", "..", "src", "explorer", "static");

export function staticModule<T = any>(name: string): Promise<T> {
  return import(join(STATIC_DIR, name)) as Promise<T>;
}

export { STATIC_DIR };
