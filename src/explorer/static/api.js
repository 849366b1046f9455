// Requests to the node that served the page (same origin: the Content-Security-Policy allows no
// other). Errors carry CCF's {"error":{"code","message"}} when the node sent one.

export class NodeError extends Error {
  constructor(/** @type {number} */ status, /** @type {string} */ code, /** @type {string} */ message) {
    super(`${status} ${code}: ${message}`);
    this.name = "NodeError";
    this.status = status;
    this.code = code;
  }
}

async function check(/** @type {Response} */ response) {
  if (response.ok) return response;
  const text = await response.text();
  let code = "HttpError";
  let message = text;
  try {
    const body = JSON.parse(text);
    code = body?.error?.code ?? code;
    message = body?.error?.message ?? text;
  } catch {
    // not CCF's error body: keep the text
  }
  throw new NodeError(response.status, code, message);
}

/** GET a JSON endpoint. @param {string} path @returns {Promise<any>} */
export async function getJson(path) {
  const response = await check(await fetch(path, { headers: { accept: "application/json" }, cache: "no-store" }));
  return response.json();
}

/** GET a text endpoint (the constitution). @param {string} path */
export async function getText(path) {
  const response = await check(await fetch(path, { cache: "no-store" }));
  return response.text();
}

/**
 * POST a signed governance request. Resolves to the JSON answer (undefined for 204) and the
 * transaction id the node gave it.
 * @param {string} path @param {import("./bytes.js").Bytes} body
 * @returns {Promise<{ body: any, transactionId: string | null }>}
 */
export async function postCose(path, body) {
  const response = await check(await fetch(path, { method: "POST", headers: { "content-type": "application/cose" }, body }));
  const text = await response.text();
  return { body: text.length === 0 ? undefined : JSON.parse(text), transactionId: response.headers.get("x-ms-ccf-transaction-id") };
}
