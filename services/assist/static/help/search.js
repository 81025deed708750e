// The search box: asks GET /v1/help/{workspace}/search; when the search is not there (a 404) or fails
// (a 5xx, no answer), says so and leaves the list of articles as it is.

import { $, el, setText, show } from "/assist/dom.js";
import { pageUrl, search } from "./api.js";

function hitItem(hit, workspace) {
  return el("li", { dataset: { id: hit.id } },
    el("h3", { class: "article-title" }, el("a", { href: pageUrl(workspace, hit.id) }, hit.title)),
    hit.excerpt ? el("p", { class: "excerpt" }, hit.excerpt) : null);
}

async function runSearch(query, workspace, i18n) {
  const status = $("search-status");
  status.classList.remove("warning");
  if (!query) {
    show($("results"), false);
    setText(status, "");
    return;
  }
  setText(status, i18n.t("search.searching"));
  let answer;
  try {
    answer = await search(workspace, query, i18n.lang);
  } catch (error) {
    show($("results"), false);
    status.classList.add("warning");
    setText(status, i18n.t("search.unavailable"));
    return;
  }
  const hits = Array.isArray(answer.hits) ? answer.hits : [];
  $("results-list").replaceChildren(...hits.map((hit) => hitItem(hit, workspace)));
  show($("results"), hits.length > 0);
  setText(status, hits.length ? i18n.t("search.count", { count: hits.length }) : i18n.t("search.none", { query }));
}

export function wireSearch(workspace, i18n) {
  $("search").addEventListener("submit", (event) => {
    event.preventDefault();
    runSearch($("q").value.trim(), workspace, i18n);
  });
}
