// Calls to the rollup query API (relative URLs, same origin) and the feedback proxy.
// The token lives in sessionStorage and goes out as `Authorization: Bearer`.

const TOKEN_KEY = "huibao.token";

/** An answer other than 2xx: `status` and the first error message of the body. */
export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

export function getToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function clearToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

function messageOf(status, body) {
  const first = body && Array.isArray(body.errors) ? body.errors[0] : null;
  if (first && first.message) return `${status}: ${first.message}`;
  if (body && typeof body.detail === "string") return `${status}: ${body.detail}`;
  return `HTTP ${status}`;
}

/** GET `path` (with `params`) as JSON, with the given token or the stored one. */
export async function getJson(path, params = {}, token = getToken()) {
  const query = new URLSearchParams(
    Object.entries(params).filter(([, v]) => v !== undefined && v !== null),
  ).toString();
  const url = query ? `${path}?${query}` : path;
  let response;
  try {
    response = await fetch(url, {
      headers: { Accept: "application/json", Authorization: `Bearer ${token ?? ""}` },
    });
  } catch (e) {
    throw new ApiError(0, `network error: ${e.message}`, null);
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) throw new ApiError(response.status, messageOf(response.status, body), body);
  return body;
}

const enc = encodeURIComponent;

export const api = {
  roots: (token) => getJson("/v1/roots", {}, token),
  whoami: () => getJson("/v1/whoami"),
  node: (id) => getJson(`/v1/nodes/${enc(id)}`),
  summary: (id, period) => getJson(`/v1/nodes/${enc(id)}/summary`, { period }),
  children: (id, period, metric = "party_day.held", limit = 1000, offset = 0) =>
    getJson(`/v1/nodes/${enc(id)}/children`, { period, metric, limit, offset }),
  completeness: (id, period, limit = 1000, offset = 0) =>
    getJson(`/v1/nodes/${enc(id)}/completeness`, { cycle: "party_day", period, limit, offset }),
  series: (id, metric, from, to) => getJson(`/v1/nodes/${enc(id)}/series`, { metric, from, to }),
  feedback: (id, quarter) => getJson(`/ui/api/feedback/${enc(id)}`, { quarter }),
};

/** Every child of a node in a period, following the pages. */
export async function allChildren(id, period, metric) {
  const first = await api.children(id, period, metric);
  const items = [...first.items];
  while (items.length < first.total) {
    const next = await api.children(id, period, metric, first.limit, items.length);
    if (!next.items.length) break;
    items.push(...next.items);
  }
  return { ...first, items };
}

/** The completeness of a month with the full missing and late lists, following the pages. */
export async function fullCompleteness(id, period) {
  const first = await api.completeness(id, period);
  const missing = [...first.missing_units.items];
  const late = [...first.late_units.items];
  let offset = first.missing_units.limit;
  while (missing.length < first.missing_units.total || late.length < first.late_units.total) {
    const next = await api.completeness(id, period, first.missing_units.limit, offset);
    if (!next.missing_units.items.length && !next.late_units.items.length) break;
    if (missing.length < first.missing_units.total) missing.push(...next.missing_units.items);
    if (late.length < first.late_units.total) late.push(...next.late_units.items);
    offset += first.missing_units.limit;
  }
  return { ...first, missingAll: missing, lateAll: late };
}
