// How assist's supervisor pages call their service: with the workspace key, on this origin only. A refused
// call throws an ApiError with the service's message and, for a 422, its `problems` (each names a field by its `loc`);
// an error about one field of the body (a 409 on a merge's `into`) names it as its `parameter`.

export class ApiError extends Error {
  constructor(status, message, problems = [], parameter = "") {
    super(message);
    Object.assign(this, { name: "ApiError", status, problems, parameter });
  }
}

async function errorOf(response) {
  let message = `${response.status} ${response.statusText}`.trim();
  let problems = [];
  let parameter = "";
  try {
    const { error } = await response.json();
    if (error?.message) message = error.message;
    if (Array.isArray(error?.problems)) problems = error.problems;
    if (typeof error?.parameter === "string") parameter = error.parameter;
  } catch (e) { /* not JSON: keep the status line */ }
  return new ApiError(response.status, message, problems, parameter);
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

/** pydantic's words for a problem, without its "Value error, " prefix. */
export const problemText = (problem) => String(problem.msg || "is not valid").replace(/^Value error, /, "");
