// The sections of a node's page; each loads its own data and renders or shows its error.

import { ApiError, allChildren, api, fullCompleteness } from "./api.js";
import { chart, heatColour } from "./charts.js";
import { $, clearExport, fillTable, h, setExport } from "./dom.js";
import {
  addMonths, completeness, instant, isRatio, metricValue, monthsOfYear, num, pct, ratio4,
} from "./format.js";
import { metricLabel, t } from "./i18n.js";

export const RANK_METRICS = [
  "party_day.on_time", "party_day.held", "party_day.attendance_rate", "lesson.delivered",
  "training.participants", "outreach.audience", "volunteer.volunteers", "feedback.resolution_rate",
];

export const TREND_METRICS = [
  "party_day.attendance_rate", "lesson.delivered", "training.participants",
  "outreach.audience", "volunteer.volunteers", "feedback.resolution_rate",
];

const LIST_SHOWN = 300;

function drillLink(id, name, month) {
  return h("a", { href: `#/n/${encodeURIComponent(id)}?month=${month}`, "data-testid": `drill-${id}`,
    class: "drill" }, name);
}

function failure(container, e) {
  container.replaceChildren(h("p", { class: "error" }, t("load.failed", { msg: e.message })));
}

/** Party Day counts of one child item of the children endpoint. The rollup counts as held
 * only branches it expected (docs/architecture.md, "Party Day completeness"), so expected −
 * held is exactly the completeness list's missing count; reports of units not expected are
 * `party_day.unexpected`. */
export function partyDay(metrics) {
  const expected = metrics["party_day.expected"] ?? 0;
  const held = metrics["party_day.held"] ?? 0;
  return {
    expected, held, on_time: metrics["party_day.on_time"] ?? 0, late: metrics["party_day.late"] ?? 0,
    unexpected: metrics["party_day.unexpected"] ?? 0,
    missing: Math.max(expected - held, 0), ratio: completeness(held, expected),
    attendance: metrics["party_day.attendance_rate"] ?? null,
  };
}

/** Key figures of the node in the month. */
export async function renderKpis(ctx) {
  const box = $("kpis");
  box.replaceChildren(h("p", { class: "muted" }, t("loading")));
  try {
    const summary = await api.summary(ctx.id, ctx.month);
    if (ctx.stale()) return;
    const m = summary.metrics;
    const pd = partyDay(m);
    const cards = [
      ["party_day.expected", num(pd.expected)], ["party_day.held", num(pd.held)],
      ["party_day.on_time", num(pd.on_time)], ["party_day.late", num(pd.late)],
      ["missing", num(pd.missing), t("col.missing")], ["ratio", pct(pd.ratio), t("col.ratio")],
      ["party_day.attendance_rate", pct(m["party_day.attendance_rate"])],
      ["members.total", num(m["members.total"])],
    ];
    if (pd.unexpected) cards.splice(4, 0, ["party_day.unexpected", num(pd.unexpected)]);
    box.replaceChildren(...cards.map(([key, value, label]) => h("div", { class: "kpi", "data-testid": `kpi-${key}` },
      h("div", { class: "kpi-value" }, value), h("div", { class: "kpi-label" }, label ?? metricLabel(key)))));
  } catch (e) {
    if (!ctx.stale()) failure(box, e);
  }
}

/** The children's Party Day completeness for the month, and the heatmap of the year. */
export async function renderChildren(ctx) {
  const table = $("children-table");
  clearExport("children-csv");
  table.replaceChildren(h("caption", { class: "muted" }, t("loading")));
  let children;
  try {
    children = await allChildren(ctx.id, ctx.month, "party_day.held");
  } catch (e) {
    if (!ctx.stale()) {
      table.replaceChildren(h("caption", { class: "error" }, t("load.failed", { msg: e.message })));
      $("heatmap").replaceChildren();
    }
    return;
  }
  if (ctx.stale()) return;
  const items = children.items;
  const header = [t("col.name"), t("col.expected"), t("col.held"), t("col.on_time"), t("col.late"),
    t("col.missing"), t("col.ratio"), t("col.attendance")];
  const rows = items.map((c) => {
    const pd = partyDay(c.metrics);
    return [drillLink(c.id, c.name, ctx.month), num(pd.expected), num(pd.held), num(pd.on_time),
      num(pd.late), num(pd.missing), pct(pd.ratio), pct(pd.attendance)];
  });
  if (!items.length) {
    table.replaceChildren(h("caption", { class: "muted" }, t("children.none")));
  } else {
    fillTable(table, header, rows, {
      numeric: [1, 2, 3, 4, 5, 6, 7],
      rowAttrs: (i) => ({ "data-testid": `child-row-${items[i].id}`, "data-id": items[i].id }),
    });
  }
  setExport("children-csv", `party-day-${ctx.id}-${ctx.month}.csv`,
    [t("col.id"), t("col.name"), "level", t("col.expected"), t("col.held"), t("col.on_time"),
      t("col.late"), t("col.missing"), t("col.ratio"), t("col.attendance")],
    items.map((c) => {
      const pd = partyDay(c.metrics);
      return [c.id, c.name, c.level, pd.expected, pd.held, pd.on_time, pd.late, pd.missing,
        ratio4(pd.ratio), ratio4(pd.attendance)];
    }));
  await renderHeatmap(ctx, items);
}

async function renderHeatmap(ctx, items) {
  const box = $("heatmap");
  clearExport("heatmap-csv");
  const year = ctx.month.slice(0, 4);
  $("heatmap-year").textContent = `(${year})`;
  if (!items.length) {
    box.replaceChildren(h("p", { class: "muted" }, t("children.none")));
    return;
  }
  const months = monthsOfYear(year);
  const known = months.filter((m) => m <= ctx.month);
  box.replaceChildren(h("p", { class: "muted" }, t("loading")));
  let answers;
  try {
    answers = await Promise.all(known.map((m) => allChildren(ctx.id, m, "party_day.held")));
  } catch (e) {
    if (!ctx.stale()) failure(box, e);
    return;
  }
  if (ctx.stale()) return;
  const cells = new Map(); // `${child}|${month}` -> party day counts
  answers.forEach((answer, i) => {
    for (const c of answer.items) cells.set(`${c.id}|${known[i]}`, partyDay(c.metrics));
  });
  const table = h("table", { class: "heat", "data-testid": "heatmap-table" },
    h("thead", {}, h("tr", {}, h("th", {}, t("col.name")), months.map((m) => h("th", {}, m.slice(5))))),
    h("tbody", {}, items.map((c) => h("tr", {},
      h("th", { scope: "row" }, drillLink(c.id, c.name, ctx.month)),
      months.map((m) => {
        const pd = cells.get(`${c.id}|${m}`);
        const ratio = pd ? pd.ratio : null;
        const title = pd ? `${c.name} ${m}: ${pd.held}/${pd.expected}` : `${c.name} ${m}: —`;
        return h("td", { "data-testid": `heat-${c.id}-${m}`, title, "data-ratio": ratio ?? "",
          style: { background: heatColour(ratio) } }, ratio === null ? "" : `${Math.round(ratio * 100)}`);
      })))));
  box.replaceChildren(table);
  setExport("heatmap-csv", `party-day-heatmap-${ctx.id}-${year}.csv`,
    [t("col.id"), t("col.name"), ...months],
    items.map((c) => [c.id, c.name, ...months.map((m) => {
      const pd = cells.get(`${c.id}|${m}`);
      return pd ? ratio4(pd.ratio) : "";
    })]));
}

/** The missing and late units of the month. */
export async function renderLists(ctx) {
  clearExport("missing-csv");
  clearExport("late-csv");
  const missingTable = $("missing-table"), lateTable = $("late-table");
  missingTable.replaceChildren(h("caption", { class: "muted" }, t("loading")));
  lateTable.replaceChildren();
  let comp;
  try {
    comp = await fullCompleteness(ctx.id, ctx.month);
  } catch (e) {
    if (!ctx.stale()) {
      missingTable.replaceChildren(h("caption", { class: "error" }, t("load.failed", { msg: e.message })));
    }
    return;
  }
  if (ctx.stale()) return;
  const parentName = (u) => u.parent ?? "";
  $("missing-count").textContent = String(comp.missing);
  $("late-count").textContent = String(comp.late);
  const show = (table, items, header, row, key) => {
    if (!items.length) {
      table.replaceChildren(h("caption", { class: "muted" }, t("list.none")));
      return;
    }
    fillTable(table, header, items.slice(0, LIST_SHOWN).map(row),
      { rowAttrs: (i) => ({ "data-testid": `${key}-row-${items[i].id}` }) });
    if (items.length > LIST_SHOWN) {
      table.append(h("caption", { class: "muted small" }, t("list.more", { shown: LIST_SHOWN, total: items.length })));
    }
  };
  show(missingTable, comp.missingAll, [t("col.name"), t("col.id"), t("col.parent")],
    (u) => [u.name, u.id, parentName(u)], "missing");
  show(lateTable, comp.lateAll, [t("col.name"), t("col.id"), t("col.reported_at")],
    (u) => [u.name, u.id, instant(u.reported_at)], "late");
  setExport("missing-csv", `party-day-missing-${ctx.id}-${ctx.month}.csv`,
    [t("col.id"), t("col.name"), t("col.parent"), t("col.path")],
    comp.missingAll.map((u) => [u.id, u.name, parentName(u), (u.path ?? []).join("/")]));
  setExport("late-csv", `party-day-late-${ctx.id}-${ctx.month}.csv`,
    [t("col.id"), t("col.name"), t("col.parent"), t("col.reported_at")],
    comp.lateAll.map((u) => [u.id, u.name, parentName(u), u.reported_at]));
}

/** Key metrics month by month over the twelve months ending with the chosen one. */
export async function renderTrends(ctx) {
  const box = $("charts");
  clearExport("trends-csv");
  box.replaceChildren(h("p", { class: "muted" }, t("loading")));
  const from = addMonths(ctx.month, -11);
  let series;
  try {
    series = await Promise.all(TREND_METRICS.map((m) => api.series(ctx.id, m, from, ctx.month)));
  } catch (e) {
    if (!ctx.stale()) failure(box, e);
    return;
  }
  if (ctx.stale()) return;
  box.replaceChildren(...series.map((s, i) => {
    const metric = TREND_METRICS[i];
    const ratio = isRatio(metric);
    const last = s.points.at(-1);
    return h("figure", { class: "chart-card", "data-testid": `chart-${metric}` },
      h("figcaption", {}, h("span", {}, metricLabel(metric)),
        h("strong", { "data-testid": `chart-${metric}-latest` }, metricValue(metric, last ? last.value : null))),
      chart(s.points, { kind: ratio ? "line" : "bar", ratio, label: metricLabel(metric),
        format: ratio ? (v) => `${Math.round(v * 100)}%` : num }));
  }));
  const periods = series[0].points.map((p) => p.period);
  setExport("trends-csv", `trends-${ctx.id}-${from}-${ctx.month}.csv`,
    [t("col.period"), ...TREND_METRICS.map(metricLabel)],
    periods.map((p, row) => [p, ...series.map((s) => s.points[row].value ?? "")]));
}

/** The node's rank among its siblings (from its parent's children endpoint). */
export async function renderRank(ctx) {
  const box = $("node-rank");
  box.textContent = "";
  const metric = ctx.rankMetric;
  if (!ctx.info.parent) {
    box.textContent = t("rank.root");
    return;
  }
  try {
    const siblings = await allChildren(ctx.info.parent, ctx.month, metric);
    if (ctx.stale()) return;
    const me = siblings.items.find((c) => c.id === ctx.id);
    const vars = { parent: siblings.node.name, of: siblings.total, metric: metricLabel(metric) };
    box.textContent = me && me.value !== null
      ? t("rank.text", { ...vars, rank: me.rank, value: metricValue(metric, me.value) })
      : t("rank.none", vars);
    box.dataset.rank = me ? me.rank : "";
  } catch (e) {
    if (ctx.stale()) return;
    box.textContent = e instanceof ApiError && (e.status === 403 || e.status === 404)
      ? t("rank.hidden") : t("load.failed", { msg: e.message });
  }
}
