// Small DOM helpers the supervisor pages share (served at /lib/dom.js): find and build an element, and
// keep a list of keyed children in order without rebuilding it (a screen updated every second must not
// take the keyboard focus away from a button in it).

export const $ = (id) => document.getElementById(id);

/** el("li", {class: "x", dataset: {id: "a"}}, "text", child) */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

export function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

/** Show `node` only when `visible`. */
export function show(node, visible) {
  node.hidden = !visible;
}

/**
 * Make `container`'s children one per item, in the items' order, keyed by `keyOf(item)`: an existing
 * child is updated in place (and moved only if out of place), a new one made by `create(item)`, the
 * rest removed. `update(node, item)` runs on every child. Children carry their key in data-key.
 */
export function syncChildren(container, items, keyOf, create, update) {
  const existing = new Map();
  for (const child of container.children) existing.set(child.dataset.key, child);
  const wanted = new Set();
  items.forEach((item, index) => {
    const key = String(keyOf(item));
    wanted.add(key);
    let node = existing.get(key);
    if (!node) {
      node = create(item);
      node.dataset.key = key;
    }
    update(node, item);
    const here = container.children[index];
    if (here !== node) container.insertBefore(node, here || null);
  });
  for (const [key, node] of existing) if (!wanted.has(key)) node.remove();
}
