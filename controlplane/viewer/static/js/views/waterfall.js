// The span waterfall: the rows computed by the control plane (depth, offset, width, critical
// path) drawn as an indented, collapsible tree with bars on one time axis, and the details of
// the selected span beside it.

import { h, replace } from "../dom.js";
import { attributeText, ms } from "../format.js";
import { badge, button } from "./common.js";

const GATEWAY = "activetrace-dataplane";
const HEADER_PREFIXES = [
  ["http.request.header.", "Request headers"],
  ["http.response.header.", "Response headers"],
];
const BODIES = [
  ["gateway.request.body", "Request body", "gateway.request.body.truncated"],
  ["gateway.response.body", "Response body", "gateway.response.body.truncated"],
];

/** Round tick spacing for the time axis: 1, 2 or 5 x 10^k ms, about five ticks. */
function tickStep(totalMs) {
  const raw = totalMs / 5 || 1;
  const power = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * power).find((step) => step >= raw);
}

function axis(totalMs, step) {
  const ticks = [];
  for (let at = 0; at <= totalMs * 1.0001; at += step) ticks.push(at);
  return h(
    "div",
    { class: "wf-axis", "aria-hidden": "true" },
    h("div", { class: "wf-name-head" }, "Span"),
    h(
      "div",
      { class: "wf-ticks" },
      ticks.map((at) => h("span", { class: "wf-tick", style: { left: `${(100 * at) / totalMs}%` } }, ms(at))),
    ),
  );
}

/** Where a bar's duration label goes: after a short bar, inside a long one, else before. */
function labelPlacement(row) {
  const end = row.offset_pct + row.width_pct;
  if (end < 80) return ["after", { left: `calc(${end}% + 4px)` }];
  if (row.width_pct > 14) return ["inside", { right: `calc(${100 - end}% + 5px)` }];
  return ["before", { right: `calc(${100 - row.offset_pct}% + 4px)` }];
}

function keyValues(entries, { id } = {}) {
  return h(
    "table",
    { class: "kv", id },
    h(
      "tbody",
      {},
      entries.map(([key, value]) => h("tr", {}, h("th", { scope: "row" }, key), h("td", {}, attributeText(value)))),
    ),
  );
}

function section(title, ...content) {
  return h("section", { class: "detail-section" }, h("h3", {}, title), content);
}

/** Everything about one span: timing, status, captured headers and bodies, attributes, events. */
export function spanDetail(span, row, traceStart) {
  const attributes = { ...span.attributes };
  const captured = HEADER_PREFIXES.map(([prefix, title]) => {
    const entries = Object.keys(attributes)
      .filter((key) => key.startsWith(prefix))
      .sort()
      .map((key) => {
        const value = attributes[key];
        delete attributes[key];
        return [key.slice(prefix.length), value];
      });
    return entries.length ? section(title, keyValues(entries, { id: `${prefix.split(".")[1]}-headers` })) : null;
  });
  const bodies = BODIES.map(([key, title, truncatedKey]) => {
    if (!(key in attributes)) return null;
    const value = attributes[key];
    const truncated = attributes[truncatedKey] === true;
    delete attributes[key];
    return section(title, h("pre", { class: "body-capture" }, attributeText(value)), truncated ? h("div", { class: "muted small" }, "truncated") : null);
  });
  const rest = Object.keys(attributes)
    .sort()
    .map((key) => [key, attributes[key]]);
  return h(
    "div",
    { class: "span-detail", dataset: { span: span.span_id } },
    h("h2", { class: "detail-title" }, span.name),
    h(
      "div",
      { class: "detail-sub" },
      h("span", { class: ["service-tag", span.service_name === GATEWAY ? "gateway" : "external"] }, span.service_name),
      h("span", { class: "chip" }, span.kind),
      span.status.code === "ERROR" ? badge("ERROR", "error") : h("span", { class: "chip" }, span.status.code),
      row?.critical ? h("span", { class: "chip critical-chip" }, "critical path") : null,
    ),
    span.status.message ? h("div", { class: "alert alert-error small" }, span.status.message) : null,
    keyValues(
      [
        ["duration", ms(span.duration_ms)],
        ["start", `+${ms((span.start_time_unix_nano - traceStart) / 1e6)}`],
        ["span id", span.span_id],
        ["parent id", span.parent_span_id ?? "(root)"],
        ["node", span.node_id ?? "—"],
      ],
      { id: "span-facts" },
    ),
    captured,
    bodies,
    section(`Attributes (${rest.length})`, rest.length ? keyValues(rest, { id: "span-attributes" }) : h("div", { class: "muted" }, "none")),
    section(
      `Events (${span.events.length})`,
      span.events.length
        ? h(
            "ol",
            { class: "events" },
            span.events.map((event) =>
              h(
                "li",
                {},
                h("div", {}, h("strong", {}, event.name), h("span", { class: "muted small" }, ` +${ms((event.time_unix_nano - traceStart) / 1e6)}`)),
                Object.keys(event.attributes).length ? keyValues(Object.entries(event.attributes)) : null,
              ),
            ),
          )
        : h("div", { class: "muted" }, "none"),
    ),
  );
}

/**
 * The waterfall and its detail panel. rows: from /waterfall; spans: from the trace.
 * selected: a span ID to open first (from the URL).
 */
export function waterfallView({ rows, spans, selected, onSelect }) {
  const byId = new Map(spans.map((span) => [span.span_id, span]));
  // reduce, not Math.min(...spread): a trace can have more spans than a call has arguments.
  const traceStart = spans.reduce((low, span) => Math.min(low, span.start_time_unix_nano), Infinity);
  const traceEnd = spans.reduce((high, span) => Math.max(high, span.end_time_unix_nano), -Infinity);
  const totalMs = Math.max((traceEnd - traceStart) / 1e6, 1e-6);
  const step = tickStep(totalMs);
  const collapsed = new Set();
  const elements = new Map();
  const detail = h("aside", { class: "wf-detail", id: "span-detail", "aria-live": "polite" }, h("div", { class: "muted" }, "Select a span to see its attributes, events and captured content."));
  let current = null;

  function select(spanId, { scroll = false } = {}) {
    const span = byId.get(spanId);
    if (!span) return;
    elements.get(current)?.classList.remove("selected");
    current = spanId;
    const element = elements.get(spanId);
    element.classList.add("selected");
    // Reveal a span hidden under a collapsed ancestor.
    for (let parent = span.parent_span_id; parent; parent = byId.get(parent)?.parent_span_id) collapsed.delete(parent);
    applyCollapse();
    if (scroll) element.scrollIntoView({ block: "center" });
    replace(detail, spanDetail(span, rows.find((r) => r.span_id === spanId), traceStart));
    onSelect?.(spanId);
  }

  function applyCollapse() {
    let hiddenBelow = null; // depth of a collapsed row whose subtree is being skipped
    for (const row of rows) {
      const element = elements.get(row.span_id);
      if (hiddenBelow !== null && row.depth > hiddenBelow) {
        element.hidden = true;
        continue;
      }
      hiddenBelow = collapsed.has(row.span_id) ? row.depth : null;
      element.hidden = false;
      const toggle = element.querySelector(".wf-toggle");
      if (toggle) {
        const open = !collapsed.has(row.span_id);
        toggle.setAttribute("aria-expanded", String(open));
        toggle.textContent = open ? "▾" : "▸";
      }
    }
  }

  function toggle(spanId) {
    if (collapsed.has(spanId)) collapsed.delete(spanId);
    else collapsed.add(spanId);
    applyCollapse();
  }

  const list = h(
    "div",
    { class: "wf-rows", role: "tree", "aria-label": "Spans", style: { "--grid-step": `${(100 * step) / totalMs}%` } },
    rows.map((row) => {
      const span = byId.get(row.span_id);
      const external = row.service_name !== GATEWAY;
      const [placement, labelStyle] = labelPlacement(row);
      const element = h(
        "div",
        {
          class: ["wf-row", row.critical && "critical", row.error && "error", external && "external"],
          role: "treeitem",
          tabindex: 0,
          "aria-level": row.depth + 1,
          dataset: { spanId: row.span_id, depth: row.depth, name: row.name },
          on: {
            click: () => select(row.span_id),
            keydown: (event) => {
              if (event.key === "Enter") select(row.span_id);
            },
          },
        },
        h(
          "div",
          { class: "wf-name", style: { "padding-left": `${row.depth * 16 + 6}px` } },
          row.has_children
            ? h(
                "button",
                {
                  type: "button",
                  class: "wf-toggle",
                  "aria-expanded": "true",
                  "aria-label": `collapse or expand ${row.name}`,
                  on: {
                    click: (event) => {
                      event.stopPropagation();
                      toggle(row.span_id);
                    },
                  },
                },
                "▾",
              )
            : h("span", { class: "wf-toggle-space" }),
          external ? h("span", { class: "service-tag external" }, row.service_name) : null,
          h("span", { class: "wf-label", title: row.name }, row.name),
        ),
        h(
          "div",
          { class: "wf-timeline" },
          h("span", {
            class: "wf-bar",
            style: { left: `${row.offset_pct}%`, width: `max(2px, ${row.width_pct}%)` },
            title: `${row.name}: ${ms(row.duration_ms)} at +${ms(row.start_ms)}${span?.status.code === "ERROR" ? " (error)" : ""}`,
          }),
          h("span", { class: ["wf-duration", placement], style: labelStyle }, ms(row.duration_ms)),
        ),
      );
      elements.set(row.span_id, element);
      return element;
    }),
  );

  const toolbar = h(
    "div",
    { class: "wf-toolbar" },
    h(
      "div",
      { class: "legend" },
      h("span", { class: "legend-item" }, h("span", { class: "swatch wf-swatch" }), "span"),
      h("span", { class: "legend-item" }, h("span", { class: "swatch wf-swatch critical" }), "critical path"),
      h("span", { class: "legend-item" }, h("span", { class: "swatch wf-swatch error" }), "error"),
      h("span", { class: "legend-item" }, h("span", { class: "swatch wf-swatch external" }), "upstream service"),
    ),
    h(
      "div",
      { class: "wf-buttons" },
      button("Expand all", () => {
        collapsed.clear();
        applyCollapse();
      }, { kind: "small", id: "expand-all" }),
      button("Collapse all", () => {
        for (const row of rows) if (row.has_children && row.depth > 0) collapsed.add(row.span_id);
        applyCollapse();
      }, { kind: "small", id: "collapse-all" }),
    ),
  );

  const view = h(
    "div",
    { class: "waterfall-layout" },
    h("div", { class: "card flush waterfall", id: "waterfall" }, toolbar, axis(totalMs, step), list),
    detail,
  );
  if (selected && byId.has(selected)) queueMicrotask(() => select(selected, { scroll: true }));
  return view;
}
