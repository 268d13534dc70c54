// Numbers, percentages, months and quarters as the page shows them.

/** "2026-07" for a Date, in the browser's local time. */
export function monthOf(date) {
  return `${date.getFullYear()}-${String(date.getMonth() + 1).padStart(2, "0")}`;
}

/** The month `delta` months after "YYYY-MM". */
export function addMonths(month, delta) {
  const [y, m] = month.split("-").map(Number);
  const index = y * 12 + (m - 1) + delta;
  return `${Math.floor(index / 12)}-${String((index % 12) + 1).padStart(2, "0")}`;
}

/** The twelve months "YYYY-01" … "YYYY-12" of a year. */
export function monthsOfYear(year) {
  return Array.from({ length: 12 }, (_, i) => `${year}-${String(i + 1).padStart(2, "0")}`);
}

/** "2026-Q3" for "2026-08". */
export function quarterOf(month) {
  const [y, m] = month.split("-").map(Number);
  return `${y}-Q${Math.floor((m - 1) / 3) + 1}`;
}

/** The quarter `delta` quarters after "YYYY-Qn". */
export function addQuarters(quarter, delta) {
  const [y, q] = quarter.split("-Q").map(Number);
  const index = y * 4 + (q - 1) + delta;
  return `${Math.floor(index / 4)}-Q${(index % 4) + 1}`;
}

/** True for "YYYY-MM". */
export function isMonth(text) {
  return /^\d{4}-(0[1-9]|1[0-2])$/.test(text ?? "");
}

/** A count with thousands separators, "—" for none. */
export function num(value) {
  if (value === null || value === undefined) return "—";
  return Number(value).toLocaleString("zh-CN", { maximumFractionDigits: 2 });
}

/** A ratio 0..1 as a percentage with one decimal, "—" for none. */
export function pct(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "—";
  return `${(value * 100).toFixed(1)}%`;
}

/** A ratio rounded for CSV, empty for none. */
export function ratio4(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "";
  return Math.round(value * 10000) / 10000;
}

/** held / expected, or null when nothing was expected. */
export function completeness(held, expected) {
  return expected ? held / expected : null;
}

/** Whether a metric is a ratio (shown as a percentage). */
export function isRatio(metric) {
  return metric.endsWith("_rate");
}

/** A metric's value formatted by its kind. */
export function metricValue(metric, value) {
  return isRatio(metric) ? pct(value) : num(value);
}

/** An instant (ISO 8601) as local date and time in the calendar's zone (Asia/Shanghai). */
export function instant(text) {
  if (!text) return "—";
  const date = new Date(text);
  if (Number.isNaN(date.getTime())) return text;
  return date.toLocaleString("zh-CN", { timeZone: TIME_ZONE, hour12: false });
}

/** The zone the calendar runs in (Huibao's default, HUIBAO_TIMEZONE). */
export const TIME_ZONE = "Asia/Shanghai";
