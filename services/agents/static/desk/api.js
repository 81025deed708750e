// The desk's REST calls: the agent's key in Authorization, JSON in and out, the service's error message
// as the Error's message (its HTTP status as .status, 0 when the server could not be reached).

import { state } from "./state.js";
import { t } from "./i18n.js";

export const enc = encodeURIComponent;

export function serverNow() { return Date.now() + state.clockSkew; }

export async function api(method, path, body) {
  const headers = { Authorization: "Bearer " + state.token, Accept: "application/json" };
  const init = { method, headers, cache: "no-store" };
  if (body instanceof FormData) init.body = body;  // multipart: the browser writes its Content-Type
  else if (body !== undefined) { headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
  let resp;
  try { resp = await fetch(path, init); }
  catch (e) { const err = new Error(t("api.unreachable")); err.status = 0; throw err; }
  const date = Date.parse(resp.headers.get("Date") || "");
  if (!isNaN(date)) {
    const skew = date - Date.now();  // Date has whole seconds: only a clearly wrong clock counts
    state.clockSkew = Math.abs(skew) > 2000 ? skew : 0;
  }
  const raw = await resp.text();
  let data = null;
  if (raw) { try { data = JSON.parse(raw); } catch (e) { data = null; } }
  if (!resp.ok) {
    const message = data && data.error && data.error.message ? data.error.message : t("api.failed", { status: resp.status });
    const err = new Error(message); err.status = resp.status; throw err;
  }
  return data;
}
