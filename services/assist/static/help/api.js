// The help center's public JSON (no key): the workspace's published articles, one article, and the search.

/** The workspace and the article of the page's address: /help/{workspace}[/articles/{id}]. */
export function place(pathname = location.pathname) {
  const [, help, workspace, articles, articleId] = pathname.split("/").map(decodeURIComponent);
  if (help !== "help" || !workspace) return { workspace: "", articleId: "" };
  return { workspace, articleId: articles === "articles" ? articleId || "" : "" };
}

export class HelpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;  // 0: the service could not be reached, or did not answer JSON
  }
}

async function getJson(path, params = {}) {
  const url = new URL(path, location.origin);
  for (const [name, value] of Object.entries(params)) if (value) url.searchParams.set(name, value);
  let response;
  try {
    response = await fetch(url, { cache: "no-cache", headers: { Accept: "application/json" } });
  } catch (e) {
    throw new HelpError(0, e.message);
  }
  if (!response.ok) throw new HelpError(response.status, response.statusText);
  try {
    return await response.json();
  } catch (e) {
    throw new HelpError(0, "not JSON");
  }
}

const base = (workspace) => `/v1/help/${encodeURIComponent(workspace)}`;

export const listArticles = async (workspace) => (await getJson(`${base(workspace)}/articles`)).articles;

export const getArticle = (workspace, id) => getJson(`${base(workspace)}/articles/${encodeURIComponent(id)}`);

/** {hits: [{id, title, excerpt, score}]}, from the search the assist service answers at /search. */
export const search = (workspace, q, language) => getJson(`${base(workspace)}/search`, { q, language });

/** A page of this help center with the query `extra`, keeping the customer's ?lang= (the widget passes it on). */
export function pageUrl(workspace, articleId = "", extra = {}) {
  let path = `/help/${encodeURIComponent(workspace)}`;
  if (articleId) path += `/articles/${encodeURIComponent(articleId)}`;
  const params = new URLSearchParams();
  const lang = new URLSearchParams(location.search).get("lang");
  if (lang) params.set("lang", lang);
  for (const [name, value] of Object.entries(extra)) if (value) params.set(name, value);
  const query = params.toString();
  return query ? `${path}?${query}` : path;
}
