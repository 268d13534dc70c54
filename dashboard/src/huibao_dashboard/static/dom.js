// DOM helpers: elements, tables with a CSV export each, messages.

import { download, toCsv } from "./csv.js";

/** An HTML element with attributes and children (strings become text). */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "style") Object.assign(node.style, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const $ = (id) => document.getElementById(id);

/** What each CSV button exports: key -> {filename, header, rows}. */
const exports = new Map();

/** Register (or replace) the data behind a CSV export button. */
export function setExport(key, filename, header, rows) {
  exports.set(key, { filename, header, rows });
  const button = document.querySelector(`[data-export="${key}"]`) ?? $(key);
  if (button) button.disabled = false;
}

/** Forget an export (its button is disabled until data arrives). */
export function clearExport(key) {
  exports.delete(key);
  const button = document.querySelector(`[data-export="${key}"]`) ?? $(key);
  if (button) button.disabled = true;
}

/** Download the CSV registered under `key`. */
export function runExport(key) {
  const found = exports.get(key);
  if (found) download(found.filename, toCsv(found.header, found.rows));
}

/**
 * Fill <table> `table` with a header and rows of cells (strings, numbers or nodes).
 * `rowAttrs(i)` gives attributes of the i-th row; `numeric` lists right-aligned columns.
 */
export function fillTable(table, header, rows, { rowAttrs = () => ({}), numeric = [] } = {}) {
  table.replaceChildren(
    h("thead", {}, h("tr", {}, header.map((c, i) => h("th", { class: numeric.includes(i) ? "num" : null }, c)))),
    h("tbody", {}, rows.map((row, r) => h("tr", rowAttrs(r),
      row.map((c, i) => h("td", { class: numeric.includes(i) ? "num" : null }, c ?? "—"))))),
  );
}

/** Show `text` in element `id` (hidden when empty). */
export function message(id, text) {
  const node = $(id);
  node.textContent = text ?? "";
  node.hidden = !text;
}
