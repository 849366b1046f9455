// The app's endpoints, from its OpenAPI description (GET /app/api).
import { getJson } from "./api.js";
import { el, fill, table } from "./ui.js";

const METHODS = ["get", "put", "post", "delete", "patch", "head", "options"];

/** @param {any} operation */
function authentication(operation) {
  const schemes = (operation.security ?? []).flatMap((/** @type {object} */ s) => Object.keys(s));
  return schemes.length === 0 ? "none" : schemes.join(", ");
}

export async function loadAppApi() {
  const description = await getJson("/app/api");
  // Paths are relative to the server URL ("/app"): show them as callers write them.
  const base = typeof description.servers?.[0]?.url === "string" ? description.servers[0].url.replace(/\/$/, "") : "";
  const rows = [];
  for (const [path, item] of Object.entries(description.paths ?? {})) {
    for (const method of METHODS) {
      const operation = /** @type {any} */ (item)[method];
      if (operation === undefined) continue;
      rows.push([el("code", {}, method.toUpperCase()), el("code", {}, `${base}${path}`), operation.summary ?? operation.description ?? "", authentication(operation)]);
    }
  }
  fill("app-api",
    el("p", {}, `${description.info?.title ?? "App"} ${description.info?.version ?? ""} — ${rows.length} operations (OpenAPI ${description.openapi ?? "?"}).`),
    table(["Method", "Path", "Summary", "Authentication"], rows, { "data-testid": "api-table" }));
}
