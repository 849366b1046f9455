// Stack traces of a JS app name the lines of the TypeScript it was built from. `coco app build`
// inlines a source map in each module (a `sourceMappingURL=data:` comment); the app reads them
// once per deployed bundle and rewrites the frames of an exception's trace
// (`at putItem (endpoints/items.js:40:11)` -> `at putItem (src/endpoints/items.ts:27:5)`).
// Modules without a map (bundles built elsewhere) keep their frames as they are.
import { SourceMap } from "node:module";
import type { JsModuleSource } from "../../js/index.js";

const INLINE_MAP = /\/\/# sourceMappingURL=data:application\/json;(?:charset=utf-8;)?base64,([A-Za-z0-9+/=]+)\s*$/;
/** A map larger than this is ignored (the module is bounded by the bundle size anyway). */
const SOURCE_MAP_BYTES_MAX = 8 * 1024 * 1024;
/** `name:line:column` at the end of a frame, with or without parentheses. */
const FRAME_LOCATION = /([^\s()]+):(\d+):(\d+)(\)?)$/;

export class ModuleSourceMaps {
  /** By module name as frames show it, with and without a leading "/". */
  private readonly maps = new Map<string, SourceMap>();

  constructor(modules: readonly JsModuleSource[], onProblem?: (module: string, problem: string) => void) {
    for (const module of modules) {
      const match = INLINE_MAP.exec(module.source.slice(-SOURCE_MAP_BYTES_MAX * 2));
      if (match === null) continue;
      try {
        const json = Buffer.from(match[1]!, "base64").toString("utf8");
        if (json.length > SOURCE_MAP_BYTES_MAX) throw new Error("source map too large");
        const map = new SourceMap(JSON.parse(json) as ConstructorParameters<typeof SourceMap>[0]);
        const bare = module.name.replace(/^\/+/, "");
        this.maps.set(bare, map);
        this.maps.set(`/${bare}`, map);
      } catch (error) {
        onProblem?.(module.name, error instanceof Error ? error.message : String(error));
      }
    }
  }

  get size(): number {
    return this.maps.size / 2;
  }

  /** The trace with each frame in a mapped module pointing at its source line (1-based, as V8 prints). */
  mapTrace(trace: string): string {
    if (this.maps.size === 0) return trace;
    return trace.split("\n").map((line) => this.mapFrame(line)).join("\n");
  }

  private mapFrame(line: string): string {
    const match = FRAME_LOCATION.exec(line);
    if (match === null) return line;
    const map = this.maps.get(match[1]!);
    if (map === undefined) return line;
    const entry = map.findEntry(Number(match[2]) - 1, Number(match[3]) - 1) as { originalSource?: string; originalLine?: number; originalColumn?: number };
    if (entry.originalSource === undefined || entry.originalLine === undefined || entry.originalColumn === undefined) return line;
    const source = entry.originalSource.replace(/^file:\/\//, "");
    return `${line.slice(0, match.index)}${source}:${entry.originalLine + 1}:${entry.originalColumn + 1}${match[4] ?? ""}`;
  }
}
