// Nodes: every data plane node the control plane has seen.

import { h, replace } from "../dom.js";
import { ago, dateTime, shortId } from "../format.js";
import { badge, emptyRow, pageHeader } from "../views/common.js";

const COLUMNS = ["Node", "Status", "Version", "Last seen", "Config", "Requests", "Traced", "Spans dropped", "Active sessions"];

function nodeRow(node) {
  return h(
    "tr",
    { dataset: { node: node.id } },
    h(
      "td",
      {},
      h("div", { class: "strong" }, node.id),
      h("div", { class: "muted small" }, node.hostname),
      Object.keys(node.labels).length
        ? h(
            "div",
            { class: "chips" },
            Object.entries(node.labels).map(([key, value]) => h("span", { class: "chip" }, `${key}=${value}`)),
          )
        : null,
    ),
    h("td", { class: "node-status" }, badge(node.status)),
    h("td", {}, node.version || "—"),
    h("td", { title: dateTime(node.last_seen) }, ago(node.last_seen)),
    h(
      "td",
      {},
      h("code", { title: node.config_hash }, node.config_hash ? node.config_hash.slice(0, 12) : "—"),
      h("span", { class: "muted small" }, ` v${node.config_version}`),
    ),
    h("td", { class: "num" }, node.requests.toLocaleString()),
    h("td", { class: "num" }, node.traced.toLocaleString()),
    h("td", { class: ["num", node.spans_dropped > 0 && "warn"] }, node.spans_dropped.toLocaleString()),
    h(
      "td",
      {},
      node.active_sessions.length
        ? node.active_sessions.map((id) => h("a", { class: "chip link", href: `#/sessions/${encodeURIComponent(id)}` }, shortId(id)))
        : h("span", { class: "muted" }, "none"),
    ),
  );
}

export async function nodesPage(ctx) {
  const summary = h("span", {});
  const body = h("tbody", {});
  replace(
    ctx.view,
    pageHeader({ title: "Nodes", subtitle: summary }),
    h(
      "div",
      { class: "card flush" },
      h(
        "table",
        { class: "table", id: "nodes-table" },
        h("thead", {}, h("tr", {}, COLUMNS.map((c) => h("th", {}, c)))),
        body,
      ),
    ),
  );
  const refresh = async () => {
    const nodes = await ctx.api("/api/v1/nodes");
    const connected = nodes.filter((n) => n.status === "connected").length;
    summary.textContent = `${nodes.length} node${nodes.length === 1 ? "" : "s"}, ${connected} connected`;
    replace(
      body,
      nodes.length
        ? nodes.map(nodeRow)
        : emptyRow(COLUMNS.length, "No node has connected yet. Start one with ", h("code", {}, "activetrace dataplane --control-plane HOST:8005"), "."),
    );
  };
  await refresh();
  ctx.every(5000, refresh);
}
