// The help center's list page (/help/{workspace}): the language first, then the articles and the search.

import { $, setText } from "/assist/dom.js";
import { listArticles, pageUrl, place } from "./api.js";
import { loadLanguage } from "./language.js";
import { ArticleList } from "./list.js";
import { wireSearch } from "./search.js";

async function start() {
  const i18n = await loadLanguage();
  const { workspace } = place();
  $("home").href = pageUrl(workspace);
  wireSearch(workspace, i18n);
  let articles;
  try {
    articles = await listArticles(workspace);
  } catch (error) {
    setText($("list-status"), i18n.t("articles.error"));
    return;
  }
  new ArticleList({ workspace, i18n, articles }).render();
}

start();
