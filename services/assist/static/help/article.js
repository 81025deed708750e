// One article's page (/help/{workspace}/articles/{id}): its body comes as HTML the service rendered
// from Markdown with raw HTML escaped, so it is set as it is.

import { $, el, formatDate, setText, show } from "/assist/dom.js";
import { getArticle, pageUrl, place } from "./api.js";
import { loadLanguage } from "./language.js";

function showArticle(article, i18n) {
  const node = $("article");
  node.lang = article.language;  // the article may be in another language than the page around it
  setText($("article-title"), article.title);
  document.title = `${article.title} — ${i18n.t("help.title")}`;
  const meta = $("meta");
  meta.lang = i18n.lang;
  const tagLinks = article.tags.flatMap((tag, index) =>
    [index ? ", " : "", el("a", { href: pageUrl(place().workspace, "", { tag }) }, tag)]);
  meta.replaceChildren(i18n.t("article.updated", { date: formatDate(article.updated_at, i18n.lang) }),
    ...(tagLinks.length ? [" · ", i18n.t("article.tags"), " ", ...tagLinks] : []));
  $("body").innerHTML = article.html;
  setText($("status"), "");
  show(node, true);
}

async function start() {
  const i18n = await loadLanguage();
  const { workspace, articleId } = place();
  $("home").href = $("back").href = pageUrl(workspace);
  try {
    showArticle(await getArticle(workspace, articleId), i18n);
  } catch (error) {
    setText($("status"), i18n.t(error.status === 404 ? "article.missing" : "articles.error"));
  }
}

start();
