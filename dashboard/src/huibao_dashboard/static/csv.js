// CSV export of any table the page shows, generated in the browser (RFC 4180, UTF-8 with BOM
// so that spreadsheet programs read Chinese correctly).

// The same rule as the services' CSV answers (huibao_platform/spreadsheet.py, OWASP's
// CSV-injection guidance): a text cell starting with = + - @ tab or CR gets a leading ',
// unless it is a plain number.
const RISKY = /^[=+\-@\t\r]/;
const NUMBER = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;

function cell(value) {
  if (value === null || value === undefined) return "";
  let text = String(value);
  // A text cell that starts like a formula is neutralised (numbers, even negative, are kept).
  if (typeof value === "string" && RISKY.test(text) && !NUMBER.test(text)) {
    text = `'${text}`;
  }
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** CSV text of a header row and data rows. */
export function toCsv(header, rows) {
  return [header, ...rows].map((row) => row.map(cell).join(",")).join("\r\n") + "\r\n";
}

/** Offer `text` as a download named `filename`. */
export function download(filename, text) {
  const blob = new Blob(["\ufeff", text], { type: "text/csv;charset=utf-8" });
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  a.hidden = true;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
