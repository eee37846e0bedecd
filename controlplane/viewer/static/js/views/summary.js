// The summary of one traced request: the critical latency figures and the transaction map
// (client -> request plugins -> upstream -> response plugins -> client), slowest step marked.

import { h } from "../dom.js";
import { bytes, ms } from "../format.js";
import { card, durationMetric, metric, statusBadge } from "./common.js";

const SIDES = [
  ["request", "Request · access", "access phase: router and access plugins"],
  ["upstream", "Upstream", "balancer, connect, send, wait, read"],
  ["response", "Response · filters", "header_filter and body_filter plugins"],
];

function metrics(m) {
  return h(
    "div",
    { class: "metrics", id: "trace-metrics" },
    durationMetric("Total latency", m.total_ms, { id: "total", kind: "primary", hint: "first byte in to last byte out" }),
    durationMetric("Gateway latency", m.gateway_ms, { id: "gateway", hint: "total minus upstream" }),
    durationMetric("Upstream latency", m.upstream_ms, { id: "upstream", hint: m.tries > 1 ? `${m.tries} tries` : null }),
    durationMetric("Time to first byte", m.ttfb_ms, { id: "ttfb", hint: "waiting for response headers" }),
    durationMetric("DNS", m.dns_ms, { id: "dns" }),
    durationMetric("Connect", m.connect_ms, { id: "connect", hint: m.connect_ms === null ? "pooled connection" : null }),
    durationMetric("TLS", m.tls_ms, { id: "tls" }),
    metric("Status", statusBadge(m.status_code), { id: "status", hint: m.error_type ? `error: ${m.error_type}` : null }),
    metric("Request size", bytes(m.request_bytes), { id: "request-size" }),
    metric("Response size", bytes(m.response_bytes), { id: "response-size" }),
  );
}

/** Gateway vs upstream share of the total, as one stacked bar. */
function breakdown(m) {
  if (!m.total_ms || m.upstream_ms === null || m.gateway_ms === null) return null;
  const share = (value) => `${Math.max(0, Math.min(100, (100 * value) / m.total_ms))}%`;
  return h(
    "div",
    { class: "breakdown" },
    h(
      "div",
      { class: "breakdown-bar" },
      h("span", { class: "seg seg-gateway", style: { width: share(m.gateway_ms) }, title: `gateway ${ms(m.gateway_ms)}` }),
      h("span", { class: "seg seg-upstream", style: { width: share(m.upstream_ms) }, title: `upstream ${ms(m.upstream_ms)}` }),
    ),
    h(
      "div",
      { class: "legend" },
      h("span", { class: "legend-item" }, h("span", { class: "swatch seg-gateway" }), `gateway ${ms(m.gateway_ms)}`),
      h("span", { class: "legend-item" }, h("span", { class: "swatch seg-upstream" }), `upstream ${ms(m.upstream_ms)}`),
    ),
  );
}

function step(traceId, item, total) {
  const target = item.span_id ? `#/traces/${encodeURIComponent(traceId)}/waterfall?span=${encodeURIComponent(item.span_id)}` : null;
  return h(
    target ? "a" : "div",
    {
      class: ["map-step", `map-${item.kind}`, item.slowest && "slowest", item.error && "error"],
      href: target,
      dataset: { side: item.side, phase: item.phase, name: item.name },
      title: `${item.name} (${item.phase}): ${ms(item.duration_ms)}`,
    },
    h("span", { class: "step-phase" }, item.kind === "upstream" ? "upstream" : item.phase.replace("_", " ")),
    h("span", { class: "step-name" }, item.name),
    h("span", { class: "step-time" }, ms(item.duration_ms)),
    h("span", { class: "step-share" }, h("span", { style: { width: `${total ? Math.min(100, (100 * item.duration_ms) / total) : 0}%` } })),
    item.status ? h("span", { class: "step-status" }, statusBadge(item.status)) : null,
    item.slowest ? h("span", { class: "slowest-badge" }, "slowest") : null,
  );
}

const arrow = () => h("span", { class: "map-arrow", "aria-hidden": "true" });

function endpoint(label, note) {
  return h("div", { class: "map-endpoint" }, h("span", { class: "endpoint-name" }, label), h("span", { class: "step-phase" }, note));
}

/** The transaction map as a left-to-right flow; the log phase runs after, below it. */
export function transactionMap(summary) {
  const total = summary.metrics.total_ms;
  const groups = SIDES.map(([side, title, note]) => {
    const steps = summary.steps.filter((s) => s.side === side);
    return h(
      "div",
      // Groups share the width by how many steps they hold.
      { class: ["map-group", `map-group-${side}`], dataset: { side }, style: { "flex-grow": Math.max(1, steps.length) } },
      h("div", { class: "map-group-title", title: note }, title),
      h(
        "div",
        { class: "map-steps" },
        steps.length
          ? steps.map((item, index) => [index ? arrow() : null, step(summary.trace_id, item, total)])
          : h("div", { class: "map-none" }, side === "upstream" ? "not called" : "no plugins"),
      ),
    );
  });
  const logSteps = summary.steps.filter((s) => s.side === "log");
  return h(
    "div",
    { class: "transaction-map", id: "transaction-map" },
    h(
      "div",
      { class: "map-flow" },
      endpoint("Client", "request"),
      arrow(),
      groups[0],
      arrow(),
      groups[1],
      arrow(),
      groups[2],
      arrow(),
      endpoint("Client", "response"),
    ),
    h(
      "div",
      { class: "map-log" },
      h("div", { class: "map-group-title" }, "After the response", h("span", { class: "muted small" }, " log phase")),
      h(
        "div",
        { class: "map-steps" },
        logSteps.length ? logSteps.map((item) => step(summary.trace_id, item, total)) : h("div", { class: "map-none" }, "no log plugins"),
      ),
    ),
  );
}

export function summaryView(summary) {
  return [
    card("Latency", metrics(summary.metrics), breakdown(summary.metrics)),
    card(
      "Transaction map",
      h("p", { class: "muted small" }, "Each step with its time; the slowest is highlighted. Click a step to see its span."),
      transactionMap(summary),
    ),
  ];
}
