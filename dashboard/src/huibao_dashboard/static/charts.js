// Small inline SVG charts: a bar chart for counts, a line chart for rates, heat colours.

const NS = "http://www.w3.org/2000/svg";

function el(name, attrs = {}, text) {
  const node = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (value <= step * power) return step * power;
  }
  return 10 * power;
}

/**
 * A chart of monthly points `[{period, value}]` as an <svg>.
 * kind: "bar" or "line"; format: value -> label; ratio: the y axis is 0..1.
 */
export function chart(points, { kind = "bar", format = String, ratio = false, label = "" } = {}) {
  const width = 320, height = 150, left = 40, right = 8, top = 12, bottom = 24;
  const plotW = width - left - right, plotH = height - top - bottom;
  const values = points.map((p) => p.value);
  // counts get an even maximum of at least 2, so the middle grid line is a whole number
  const top_ = Math.max(0, ...values.filter((v) => v !== null));
  const max = ratio ? 1 : Math.max(2, Math.ceil(niceMax(top_) / 2) * 2);
  const svg = el("svg", {
    viewBox: `0 0 ${width} ${height}`, class: `chart chart-${kind}`, role: "img",
    "aria-label": label,
  });
  svg.appendChild(el("title", {}, label));
  for (const frac of [0, 0.5, 1]) {
    const y = top + plotH - frac * plotH;
    svg.appendChild(el("line", { x1: left, x2: width - right, y1: y, y2: y, class: "grid" }));
    svg.appendChild(el("text", { x: left - 4, y: y + 3, class: "axis", "text-anchor": "end" },
      format(frac * max)));
  }
  const step = plotW / Math.max(points.length, 1);
  const x = (i) => left + step * i + step / 2;
  const y = (v) => top + plotH - (Math.min(v, max) / max) * plotH;
  points.forEach((p, i) => {
    if (i % 2 === (points.length - 1) % 2) {
      svg.appendChild(el("text", { x: x(i), y: height - 8, class: "axis", "text-anchor": "middle" },
        p.period.slice(2).replace("-", "/")));
    }
  });
  if (kind === "bar") {
    points.forEach((p, i) => {
      if (p.value === null) return;
      const h = top + plotH - y(p.value);
      const bar = el("rect", {
        x: x(i) - step * 0.35, y: y(p.value), width: step * 0.7, height: Math.max(h, p.value > 0 ? 1 : 0),
        class: "bar", "data-period": p.period, "data-value": p.value,
      });
      bar.appendChild(el("title", {}, `${p.period}: ${format(p.value)}`));
      svg.appendChild(bar);
    });
  } else {
    let d = "";
    points.forEach((p, i) => {
      if (p.value === null) return;
      d += `${d && points[i - 1]?.value !== null ? "L" : "M"}${x(i).toFixed(1)},${y(p.value).toFixed(1)} `;
    });
    svg.appendChild(el("path", { d: d.trim(), class: "line" }));
    points.forEach((p, i) => {
      if (p.value === null) return;
      const dot = el("circle", { cx: x(i), cy: y(p.value), r: 3, class: "dot",
        "data-period": p.period, "data-value": p.value });
      dot.appendChild(el("title", {}, `${p.period}: ${format(p.value)}`));
      svg.appendChild(dot);
    });
  }
  return svg;
}

/** A background colour for a completeness ratio 0..1 (red → amber → green); grey for none. */
export function heatColour(ratio) {
  if (ratio === null || ratio === undefined || Number.isNaN(ratio)) return "#eceff1";
  const r = Math.max(0, Math.min(1, ratio));
  const hue = r * 120; // 0 red … 120 green
  return `hsl(${hue.toFixed(0)}, 65%, ${(88 - r * 30).toFixed(0)}%)`;
}
