// HTTP calls with the workspace key; a failed call throws an ApiError carrying the service's own message.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
}

/** The message of a JSON error document ({"error": {"message"}}), else the status line. */
async function errorOf(response) {
  let message = `${response.status} ${response.statusText}`.trim();
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) message = body.error.message;
  } catch (e) { /* not JSON: keep the status line */ }
  return new ApiError(response.status, message);
}

/** fetch with `Authorization: Bearer <token>`; a network failure becomes an ApiError too. */
export async function call(url, token, { method = "GET", body, accept = "application/json" } = {}) {
  const headers = { Authorization: `Bearer ${token}`, Accept: accept };
  const init = { method, headers, cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (e) {
    throw new ApiError(0, `could not reach ${new URL(url, location.href).origin}: ${e.message}`);
  }
  if (!response.ok) throw await errorOf(response);
  return response;
}

export async function callJson(url, token, options) {
  const response = await call(url, token, options);
  return response.status === 204 ? null : response.json();
}

/** A URL on `base` with the query `params` (empty values left out). */
export function urlWith(base, path, params = {}) {
  const url = new URL(path, base);
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  return url.toString();
}
