// The quarterly feedback section: the scheduler's report through the dashboard's proxy.

import { ApiError, api } from "./api.js";
import { $, fillTable, h, setExport } from "./dom.js";
import { addQuarters, instant, metricValue, quarterOf } from "./format.js";
import { METRIC_ORDER, levelLabel, metricLabel, t } from "./i18n.js";

/** The quarterly feedback report of the node (through the proxy). */
export async function renderFeedback(ctx) {
  const box = $("feedback");
  box.replaceChildren(h("p", { class: "muted" }, t("loading")));
  const select = $("quarter");
  let quarter = ctx.quarter ?? quarterOf(ctx.month);
  const options = Array.from({ length: 8 }, (_, i) => addQuarters(quarterOf(ctx.month), -i));
  if (!options.includes(quarter)) options.unshift(quarter);
  let report = null;
  let error = null;
  const tries = ctx.quarter ? [quarter] : [quarter, addQuarters(quarter, -1)];
  for (const q of tries) {
    try {
      report = await api.feedback(ctx.id, q);
      quarter = q;
      break;
    } catch (e) {
      error = e;
      if (!(e instanceof ApiError && e.status === 404)) break;
    }
  }
  if (ctx.stale()) return;
  select.replaceChildren(...options.map((q) => h("option", { value: q, selected: q === quarter }, q)));
  if (!report) {
    const notIssued = error instanceof ApiError && error.status === 404;
    box.replaceChildren(h("p", { class: notIssued ? "muted" : "error", "data-testid": "feedback-message" },
      notIssued ? t("feedback.none", { quarter: tries[0] }) : t("feedback.unavailable", { msg: error.message })));
    return;
  }
  renderReport(box, report);
}

function subHead(title, key) {
  return h("div", { class: "sub-head" }, h("h4", {}, t(title)),
    h("button", { type: "button", class: "csv small", "data-export": key, "data-testid": key }, t("csv")));
}

function renderReport(box, report) {
  const order = (m) => (METRIC_ORDER.includes(m) ? METRIC_ORDER.indexOf(m) : METRIC_ORDER.length);
  const metrics = Object.keys(report.metrics)
    .filter((m) => report.metrics[m] !== null || report.previous[m] !== null)
    .sort((a, b) => order(a) - order(b));
  const metricsTable = h("table", { "data-testid": "feedback-metrics" });
  fillTable(metricsTable, [t("col.metric"), `${t("col.value")} ${report.quarter}`,
    `${t("col.previous")} ${report.previous_quarter}`, t("col.change")],
  metrics.map((m) => [metricLabel(m), metricValue(m, report.metrics[m]), metricValue(m, report.previous[m]),
    report.change[m] === null ? "—" : `${report.change[m] > 0 ? "+" : ""}${metricValue(m, report.change[m])}`]),
  { numeric: [1, 2, 3], rowAttrs: (i) => ({ "data-testid": `feedback-metric-${metrics[i]}` }) });
  const ranksTable = h("table", { "data-testid": "feedback-ranks" });
  fillTable(ranksTable, [t("col.metric"), t("col.rank"), t("col.of")],
    report.ranks.map((r) => [metricLabel(r.metric), r.rank ?? "—", r.of]), { numeric: [1, 2] });
  const monthsTable = h("table", { "data-testid": "feedback-months" });
  fillTable(monthsTable, [t("col.period"), t("col.expected"), t("col.held"), t("col.on_time"), t("col.late"), t("col.missing")],
    report.months.map((m) => [m.period, m.expected, m.held, m.on_time, m.late, m.missing]), { numeric: [1, 2, 3, 4, 5] });
  const attention = report.attention.length
    ? h("table", { "data-testid": "feedback-attention" })
    : h("p", { class: "muted" }, t("feedback.noattention"));
  if (report.attention.length) {
    fillTable(attention, [t("col.name"), t("col.missing"), t("col.late"), t("col.reasons")],
      report.attention.map((a) => [a.name, a.missing, a.late, a.reasons.join("；")]), { numeric: [1, 2] });
  }
  box.replaceChildren(
    h("p", { class: "muted" }, `${report.name} · ${levelLabel(report.level)} · ${report.quarter} · `,
      t("feedback.issued", { at: instant(report.issued_at) })),
    h("div", { class: "feedback-grid" },
      h("div", {}, subHead("feedback.metrics", "feedback-metrics-csv"), h("div", { class: "table-wrap" }, metricsTable)),
      h("div", {},
        subHead("feedback.ranks", "feedback-ranks-csv"), ranksTable,
        subHead("feedback.months", "feedback-months-csv"), monthsTable,
        subHead("feedback.attention", "feedback-attention-csv"), attention)),
  );
  const base = `feedback-${report.unit}-${report.quarter}`;
  setExport("feedback-metrics-csv", `${base}-metrics.csv`,
    [t("col.metric"), "metric", report.quarter, report.previous_quarter, t("col.change")],
    metrics.map((m) => [metricLabel(m), m, report.metrics[m] ?? "", report.previous[m] ?? "", report.change[m] ?? ""]));
  setExport("feedback-ranks-csv", `${base}-ranks.csv`, [t("col.metric"), "metric", t("col.rank"), t("col.of")],
    report.ranks.map((r) => [metricLabel(r.metric), r.metric, r.rank ?? "", r.of]));
  setExport("feedback-months-csv", `${base}-months.csv`,
    [t("col.period"), t("col.expected"), t("col.held"), t("col.on_time"), t("col.late"), t("col.missing")],
    report.months.map((m) => [m.period, m.expected, m.held, m.on_time, m.late, m.missing]));
  setExport("feedback-attention-csv", `${base}-attention.csv`,
    [t("col.id"), t("col.name"), t("col.missing"), t("col.late"), t("col.reasons")],
    report.attention.map((a) => [a.id, a.name, a.missing, a.late, a.reasons.join("；")]));
}
