// The editor's calls, with the workspace key; a refused call throws an ApiError with the service's
// message and, for a 422, its `problems` (each names a field by its `loc`).

export class ApiError extends Error {
  constructor(status, message, problems = []) {
    super(message);
    Object.assign(this, { name: "ApiError", status, problems });
  }
}

async function errorOf(response) {
  let message = `${response.status} ${response.statusText}`.trim();
  let problems = [];
  try {
    const { error } = await response.json();
    if (error?.message) message = error.message;
    if (Array.isArray(error?.problems)) problems = error.problems;
  } catch (e) { /* not JSON: keep the status line */ }
  return new ApiError(response.status, message, problems);
}

/** fetch on this origin with `Authorization: Bearer <token>`: the JSON answer, null for a 204. */
export async function callJson(path, token, { method = "GET", body } = {}) {
  const headers = { Authorization: `Bearer ${token}`, Accept: "application/json" };
  const init = { method, headers, cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, `the service could not be reached: ${e.message}`);
  }
  if (!response.ok) throw await errorOf(response);
  return response.status === 204 ? null : response.json();
}

const ARTICLES = "/v1/kb/articles";

export const articlesApi = (token) => ({
  list: async () => (await callJson(ARTICLES, token)).articles,
  create: (article) => callJson(ARTICLES, token, { method: "POST", body: article }),
  replace: (id, article) => callJson(`${ARTICLES}/${encodeURIComponent(id)}`, token, { method: "PUT", body: article }),
  remove: (id) => callJson(`${ARTICLES}/${encodeURIComponent(id)}`, token, { method: "DELETE" }),
  preview: async (markdown) => (await callJson("/v1/kb/preview", token, { method: "POST", body: { markdown } })).html,
  helpCenter: () => callJson("/v1/kb/help", token),
});
