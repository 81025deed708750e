// The incidents page's calls, with the workspace key (/assist/api.js: how; an ApiError when refused).

import { callJson } from "/assist/api.js";

const BASE = "/v1/incidents";
const one = (id) => `${BASE}/${encodeURIComponent(id)}`;

export const incidentsApi = (token) => ({
  /** Newest first; `status` "" for every state, "active" for open or confirmed. */
  list: async (status) => (await callJson(status ? `${BASE}?status=${encodeURIComponent(status)}` : BASE, token))
    .incidents,
  get: (id) => callJson(one(id), token),
  confirm: (id) => callJson(`${one(id)}/confirm`, token, { method: "POST" }),
  dismiss: (id) => callJson(`${one(id)}/dismiss`, token, { method: "POST" }),
  /** The answer is the incident merged into, with the conversations added up. */
  merge: (id, into) => callJson(`${one(id)}/merge`, token, { method: "POST", body: { into } }),
  resolve: (id, body) => callJson(`${one(id)}/resolve`, token, { method: "POST", body }),
});
