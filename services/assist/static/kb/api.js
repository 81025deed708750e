// The editor's calls, with the workspace key (/assist/api.js: how; an ApiError when refused).

import { callJson } from "/assist/api.js";

const ARTICLES = "/v1/kb/articles";

export const articlesApi = (token) => ({
  list: async () => (await callJson(ARTICLES, token)).articles,
  create: (article) => callJson(ARTICLES, token, { method: "POST", body: article }),
  replace: (id, article) => callJson(`${ARTICLES}/${encodeURIComponent(id)}`, token, { method: "PUT", body: article }),
  remove: (id) => callJson(`${ARTICLES}/${encodeURIComponent(id)}`, token, { method: "DELETE" }),
  preview: async (markdown) => (await callJson("/v1/kb/preview", token, { method: "POST", body: { markdown } })).html,
  helpCenter: () => callJson("/v1/kb/help", token),
});
