// The dashboard: sign-in, the tree (roots, drill-down, breadcrumbs) and the node's page.
// Routes live in the URL hash: #/n/{id}?month=YYYY-MM&quarter=YYYY-Qn

import { ApiError, api, clearToken, getToken, setToken } from "./api.js";
import { $, h, message, runExport } from "./dom.js";
import { isMonth, monthOf } from "./format.js";
import { applyStatic, language, levelLabel, metricLabel, setLanguage, t } from "./i18n.js";
import { renderFeedback } from "./feedback.js";
import {
  RANK_METRICS, renderChildren, renderKpis, renderLists, renderRank, renderTrends,
} from "./sections.js";

const state = {
  roots: [],          // [{id, name, level}] the token may see
  scopes: [],         // what the token may do (GET /v1/whoami), shown after sign-in
  nodes: new Map(),   // id -> /v1/nodes/{id} answer
  generation: 0,      // bumps on every navigation; late answers of older ones are dropped
  rankMetric: "party_day.on_time",
};

function parseHash() {
  const match = /^#\/n\/([^?]+)(?:\?(.*))?$/.exec(location.hash);
  if (!match) return { id: null, params: new URLSearchParams(location.hash.split("?")[1] ?? "") };
  return { id: decodeURIComponent(match[1]), params: new URLSearchParams(match[2] ?? "") };
}

function hashFor(id, month, quarter) {
  const params = new URLSearchParams({ month });
  if (quarter) params.set("quarter", quarter);
  return `#/n/${encodeURIComponent(id)}?${params}`;
}

async function nodeInfo(id) {
  if (!state.nodes.has(id)) state.nodes.set(id, await api.node(id));
  return state.nodes.get(id);
}

function showSignIn(error) {
  $("app").hidden = true;
  $("signin").hidden = false;
  $("signout").hidden = true;
  $("whoami").textContent = "";
  $("whoami-scopes").textContent = "";
  message("signin-error", error);
  $("token-input").focus();
}

async function signIn(token) {
  message("signin-error", "");
  let roots;
  try {
    roots = await api.roots(token);
  } catch (e) {
    message("signin-error", signInError(e));
    return;
  }
  if (!roots.items.length) {
    message("signin-error", t("signin.empty"));
    return;
  }
  setToken(token);
  start(roots.items);
}

function signInError(e) {
  if (!(e instanceof ApiError)) return t("signin.failed", { msg: e.message });
  if (e.status === 401) return t("signin.bad");
  if (e.body?.errors?.[0]?.reason === "missing_scope") return t("signin.noread");
  return t("signin.failed", { msg: e.message });
}

/** The token's scopes next to its units, in the page's language. */
function renderScopes() {
  const list = state.scopes.map((s) => t(`scope.${s}`)).join(language() === "zh" ? "、" : ", ");
  $("whoami-scopes").textContent = list ? t("scopes", { list }) : "";
  $("whoami-scopes").dataset.scopes = state.scopes.join(",");
}

async function loadScopes() {
  try {
    state.scopes = (await api.whoami()).scopes ?? [];
  } catch {
    state.scopes = [];
  }
  renderScopes();
}

function signOut(error) {
  clearToken();
  state.roots = [];
  state.scopes = [];
  state.nodes.clear();
  state.generation += 1;
  history.replaceState(null, "", location.pathname);
  showSignIn(error);
}

function start(roots) {
  state.roots = roots;
  $("signin").hidden = true;
  $("app").hidden = false;
  $("signout").hidden = false;
  $("token-input").value = "";
  $("whoami").textContent = roots.map((r) => r.name).join("、");
  loadScopes();
  route();
}

function month() {
  const { params } = parseHash();
  const m = params.get("month");
  return isMonth(m) ? m : monthOf(new Date());
}

async function breadcrumbs(info, monthText) {
  const nav = $("breadcrumbs");
  const rootIds = new Set(state.roots.map((r) => r.id));
  const path = info.path ?? [info.id];
  const from = Math.max(path.findIndex((p) => rootIds.has(p)), 0);
  const visible = path.slice(from);
  const names = await Promise.all(visible.map(async (id) => {
    try {
      return (await nodeInfo(id)).name;
    } catch {
      return id;
    }
  }));
  const crumbs = [];
  if (state.roots.length > 1) {
    crumbs.push(h("a", { href: "#/", "data-testid": "crumb-all" }, t("all")));
  }
  visible.forEach((id, i) => {
    const last = i === visible.length - 1;
    crumbs.push(last
      ? h("span", { class: "current", "data-testid": `crumb-${id}`, "aria-current": "page" }, names[i])
      : h("a", { href: hashFor(id, monthText), "data-testid": `crumb-${id}` }, names[i]));
  });
  nav.replaceChildren(...crumbs.flatMap((c, i) => (i ? [h("span", { class: "sep" }, "›"), c] : [c])));
}

function showRoots() {
  $("node-view").hidden = true;
  $("roots").hidden = false;
  $("breadcrumbs").replaceChildren(h("span", { class: "current", "data-testid": "crumb-all" }, t("all")));
  const m = month();
  $("roots-list").replaceChildren(...state.roots.map((r) => h("li", {},
    h("a", { href: hashFor(r.id, m), "data-testid": `drill-${r.id}` }, r.name),
    h("span", { class: "muted" }, ` ${levelLabel(r.level)} · ${r.id}`))));
}

async function route() {
  if (!getToken()) {
    showSignIn();
    return;
  }
  const { id, params } = parseHash();
  if (!id) {
    if (state.roots.length === 1) {
      location.replace(hashFor(state.roots[0].id, month()));
      return;
    }
    showRoots();
    return;
  }
  const generation = ++state.generation;
  delete document.body.dataset.loaded;
  const monthText = month();
  $("roots").hidden = true;
  $("node-view").hidden = false;
  $("month").value = monthText;
  message("load-error", "");
  $("load-error-box").hidden = true;
  $("node-sections").hidden = false;
  let info;
  try {
    info = await nodeInfo(id);
  } catch (e) {
    if (generation !== state.generation) return;
    if (e instanceof ApiError && e.status === 401) {
      signOut(t("signin.bad"));
      return;
    }
    $("node-title").textContent = id;
    $("node-level").textContent = "";
    $("node-id").textContent = id;
    message("load-error", t("load.failed", { msg: e.message }));
    $("load-error-box").hidden = false;
    $("node-sections").hidden = true;
    $("node-rank").textContent = "";
    $("breadcrumbs").replaceChildren();
    return;
  }
  if (generation !== state.generation) return;
  $("node-title").textContent = info.name;
  $("node-level").textContent = levelLabel(info.level);
  $("node-id").textContent = info.id;
  const quarter = params.get("quarter");
  const ctx = {
    id, info, month: monthText, quarter: /^\d{4}-Q[1-4]$/.test(quarter ?? "") ? quarter : null,
    rankMetric: state.rankMetric, stale: () => generation !== state.generation,
  };
  await Promise.all([
    breadcrumbs(info, monthText), renderKpis(ctx), renderChildren(ctx), renderLists(ctx),
    renderTrends(ctx), renderRank(ctx), renderFeedback(ctx),
  ]);
  if (!ctx.stale()) document.body.dataset.loaded = `${id}|${monthText}`;
}

function fillRankMetrics() {
  $("rank-metric").replaceChildren(...RANK_METRICS.map((m) => h("option",
    { value: m, selected: m === state.rankMetric }, metricLabel(m))));
}

function bind() {
  $("signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token-input").value.trim();
    if (token) signIn(token);
  });
  $("signout").addEventListener("click", () => signOut());
  $("lang-toggle").addEventListener("click", () => {
    setLanguage(language() === "zh" ? "en" : "zh");
    fillRankMetrics();
    renderScopes();
    if (getToken() && !$("app").hidden) route();
  });
  $("month").addEventListener("change", () => {
    const { id } = parseHash();
    const value = $("month").value;
    if (id && isMonth(value)) location.hash = hashFor(id, value);
  });
  $("quarter").addEventListener("change", () => {
    const { id } = parseHash();
    if (id) location.hash = hashFor(id, month(), $("quarter").value);
  });
  $("rank-metric").addEventListener("change", () => {
    state.rankMetric = $("rank-metric").value;
    route();
  });
  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-export]");
    if (button) runExport(button.dataset.export);
  });
  window.addEventListener("hashchange", route);
  window.addEventListener("unhandledrejection", (event) => {
    const e = event.reason;
    if (e instanceof ApiError && e.status === 401) signOut(t("signin.bad"));
  });
}

async function boot() {
  applyStatic();
  fillRankMetrics();
  bind();
  const token = getToken();
  if (!token) {
    showSignIn();
    return;
  }
  try {
    const roots = await api.roots(token);
    start(roots.items);
  } catch (e) {
    signOut(signInError(e));
  }
}

boot();
