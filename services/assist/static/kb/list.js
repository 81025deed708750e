// The workspace's articles as a table: title (opens it), status, language, last change, public page.

import { $, el, formatDate, setText } from "/assist/dom.js";

const LANGUAGE_NAMES = { en: "English", ru: "Russian", uk: "Ukrainian" };

/** The public page of a published article, on the help center at `helpPath`. */
export const publicUrl = (helpPath, id) => `${helpPath}/articles/${encodeURIComponent(id)}`;

function row(article, helpPath, onOpen) {
  const published = article.status === "published";
  return el("tr", { dataset: { id: article.id } },
    el("td", {}, el("button", { type: "button", class: "link", onclick: () => onOpen(article) }, article.title)),
    el("td", {}, el("span", { class: `badge ${article.status}` }, published ? "Published" : "Draft")),
    el("td", {}, LANGUAGE_NAMES[article.language] || article.language),
    el("td", {}, el("time", { datetime: article.updated_at }, formatDate(article.updated_at, "en-GB"))),
    el("td", {}, published
      ? el("a", { href: publicUrl(helpPath, article.id), target: "_blank", rel: "noopener",
                  "aria-label": `View “${article.title}” in the help center` }, "View")
      : "—"));
}

export function renderList(articles, helpPath, onOpen) {
  $("article-table").tBodies[0].replaceChildren(...articles.map((article) => row(article, helpPath, onOpen)));
  setText($("list-status"), articles.length ? `${articles.length} article${articles.length === 1 ? "" : "s"}.`
    : "No articles yet: write the first one.");
}
