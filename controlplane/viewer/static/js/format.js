// Formatting of durations, sizes and times for display.

/** Milliseconds as a short human string: 850 µs, 3.42 ms, 120 ms, 1.25 s. */
export function ms(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "—";
  const abs = Math.abs(value);
  if (abs >= 10000) return `${(value / 1000).toFixed(1)} s`;
  if (abs >= 1000) return `${(value / 1000).toFixed(2)} s`;
  if (abs >= 100) return `${value.toFixed(0)} ms`;
  if (abs >= 10) return `${value.toFixed(1)} ms`;
  if (abs >= 1) return `${value.toFixed(2)} ms`;
  if (abs > 0) return `${(value * 1000).toFixed(0)} µs`;
  return "0 ms";
}

/** A byte count: 512 B, 4.0 KiB, 1.2 MiB. */
export function bytes(value) {
  if (value === null || value === undefined) return "—";
  if (value < 1024) return `${value} B`;
  if (value < 1024 * 1024) return `${(value / 1024).toFixed(1)} KiB`;
  return `${(value / 1024 / 1024).toFixed(1)} MiB`;
}

const pad = (n, width = 2) => String(n).padStart(width, "0");

/** Local wall-clock time with milliseconds: 14:03:27.518. */
export function clock(value) {
  const d = new Date(value);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** Local date and time: 2026-11-24 14:03:27. */
export function dateTime(value) {
  if (!value) return "—";
  const d = new Date(value);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** A span of seconds: 45 s, 4 min 20 s, 2 h 5 min. */
export function seconds(total) {
  const secs = Math.max(0, Math.round(total));
  if (secs < 60) return `${secs} s`;
  if (secs < 3600) {
    const rest = secs % 60;
    return `${Math.floor(secs / 60)} min${rest ? ` ${rest} s` : ""}`;
  }
  const minutes = Math.floor((secs % 3600) / 60);
  return `${Math.floor(secs / 3600)} h${minutes ? ` ${minutes} min` : ""}`;
}

/** How long ago: "just now", "12 s ago", "3 min ago". */
export function ago(value, now = Date.now()) {
  if (!value) return "never";
  const secs = (now - new Date(value).getTime()) / 1000;
  return secs < 2 ? "just now" : `${seconds(secs)} ago`;
}

/** The first characters of an ID, enough to tell IDs apart on screen. */
export function shortId(id, length = 8) {
  return String(id ?? "").slice(0, length);
}

/** "2xx" .. "5xx" for a status code, "none" without one. */
export function statusClass(code) {
  return code ? `${String(code)[0]}xx` : "none";
}

/** An attribute value as text: arrays joined, objects as JSON. */
export function attributeText(value) {
  if (Array.isArray(value)) return value.map(attributeText).join(", ");
  if (value !== null && typeof value === "object") return JSON.stringify(value);
  return String(value);
}
