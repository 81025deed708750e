// The list of articles: in the reader's language first, the others under their own heading, and the
// topics (tags) as filters over both.

import { $, el, formatDate, setText, show } from "/assist/dom.js";
import { pageUrl } from "./api.js";
import { byLanguage, languageName } from "./language.js";

/** One article in a list: its title as a link, its excerpt, its language when not the reader's, its date. */
export function articleItem(article, workspace, i18n) {
  const foreign = article.language && article.language !== i18n.lang;
  const meta = [foreign ? languageName(article.language, i18n.lang) : null,
    article.updated_at ? i18n.t("article.updated", { date: formatDate(article.updated_at, i18n.lang) }) : null]
    .filter(Boolean).join(" · ");
  return el("li", { lang: foreign ? article.language : null, dataset: { id: article.id } },
    el("h3", { class: "article-title" }, el("a", { href: pageUrl(workspace, article.id) }, article.title)),
    article.excerpt ? el("p", { class: "excerpt" }, article.excerpt) : null,
    meta ? el("p", { class: "meta", lang: i18n.lang }, meta) : null);
}

export class ArticleList {
  constructor({ workspace, i18n, articles }) {
    Object.assign(this, { workspace, i18n, articles, tag: new URLSearchParams(location.search).get("tag") || "" });
  }

  tags() {
    return [...new Set(this.articles.flatMap((a) => a.tags))].sort((a, b) => a.localeCompare(b, this.i18n.lang));
  }

  render() {
    this.renderTags();
    const shown = this.tag ? this.articles.filter((a) => a.tags.includes(this.tag)) : this.articles;
    const { mine, others } = byLanguage(shown, this.i18n.lang);
    const item = (article) => articleItem(article, this.workspace, this.i18n);
    $("articles").replaceChildren(...mine.map(item));
    $("other-articles").replaceChildren(...others.map(item));
    show($("others"), others.length > 0);
    setText($("list-status"), this.emptiness(shown, mine));
  }

  /** What to say when there is nothing to list (in the reader's language); "" when there is something. */
  emptiness(shown, mine) {
    if (this.articles.length === 0) return this.i18n.t("articles.empty");
    if (shown.length === 0) return this.i18n.t("articles.none_tagged");
    return mine.length === 0 ? this.i18n.t("articles.none_in_language") : "";
  }

  renderTags() {
    const tags = this.tags();
    if (this.tag && !tags.includes(this.tag)) this.tag = "";
    show($("topics"), tags.length > 0);
    const button = (tag, label) => el("button", {
      type: "button", class: "tag", "aria-pressed": String(this.tag === tag), onclick: () => this.choose(tag),
    }, label);
    $("tags").replaceChildren(button("", this.i18n.t("tags.all")), ...tags.map((tag) => button(tag, tag)));
  }

  choose(tag) {
    this.tag = tag;
    const url = new URL(location.href);
    if (tag) url.searchParams.set("tag", tag);
    else url.searchParams.delete("tag");
    history.replaceState(null, "", url);
    this.render();
    $("tags").querySelector("[aria-pressed='true']")?.focus();
  }
}
