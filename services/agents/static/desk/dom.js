// The few DOM and storage helpers every pane uses.

export const $ = (id) => document.getElementById(id);

export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = String(v);
    else node.setAttribute(k, String(v));
  }
  for (const child of children) if (child != null) node.append(child); // strings become text nodes
  return node;
}

export function store(key, value) {
  try { value == null ? localStorage.removeItem(key) : localStorage.setItem(key, value); } catch (e) { /* storage off */ }
}

export function load(key) {
  try { return localStorage.getItem(key) || ""; } catch (e) { return ""; }
}
