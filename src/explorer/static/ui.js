// DOM helpers. Everything the node says is put in the page as text (textContent), never as HTML:
// member data, proposals and app descriptions come from other parties.

/**
 * @param {string} tag
 * @param {Record<string, string | boolean | ((event: Event) => void)>} [attributes] "on<event>" keys add listeners
 * @param {...(Node | string | number | null | undefined)} children
 * @returns {HTMLElement}
 */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (typeof value === "function") node.addEventListener(name.slice(2), value);
    else if (value === true) node.setAttribute(name, "");
    else if (value !== false) node.setAttribute(name, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === "object" ? child : String(child));
  }
  return node;
}

/** Replaces the children of the element with id `id`. */
export function fill(/** @type {string} */ id, /** @type {(Node | string)[]} */ ...children) {
  const target = byId(id);
  target.replaceChildren(...children);
  return target;
}

/** What each refreshed element last showed, so that an unchanged refresh leaves the DOM alone. */
const shownKeys = new Map();

/**
 * Like fill, but only when `key` (e.g. the JSON of the data shown) differs from the last time:
 * the page refreshes every few seconds, and rebuilding unchanged tables would lose the reader's
 * text selection and could move a button from under their pointer.
 * @param {string} id @param {string} key @param {() => (Node | string)[]} build
 */
export function fillIfChanged(id, key, build) {
  if (shownKeys.get(id) === key) return;
  shownKeys.set(id, key);
  fill(id, ...build());
}

export function byId(/** @type {string} */ id) {
  const node = document.getElementById(id);
  if (node === null) throw new Error(`explorer: no element #${id}`);
  return node;
}

/**
 * A table with a header row.
 * @param {string[]} headings @param {(Node | string | number | null)[][]} rows @param {Record<string,string>} [attributes]
 */
export function table(headings, rows, attributes = {}) {
  return el("table", attributes,
    el("thead", {}, el("tr", {}, ...headings.map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows.map((cells) => el("tr", {}, ...cells.map((c) => el("td", {}, c))))));
}

/** An id shortened for tables, whole in its tooltip. */
export function shortId(/** @type {string} */ id) {
  return el("code", { title: id }, id.length > 16 ? `${id.slice(0, 8)}…${id.slice(-6)}` : id);
}

/** A status word styled by its value (Committed, Open, Accepted, Trusted, ...). */
export function badge(/** @type {string} */ text) {
  return el("span", { class: `badge badge-${text.toLowerCase().replace(/[^a-z]/g, "")}` }, text);
}

/** Shows a message in a status line: kind "ok", "error" or "info". */
export function say(/** @type {string} */ id, /** @type {string} */ text, kind = "info") {
  const target = byId(id);
  target.className = `message message-${kind}`;
  target.textContent = text;
}

export function errorText(/** @type {unknown} */ error) {
  return error instanceof Error ? error.message : String(error);
}
