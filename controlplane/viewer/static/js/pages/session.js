// A session: its definition and progress, the latency histogram, and its traces (filterable,
// sortable, refreshed while the session runs).

import { download } from "../api.js";
import { h, redraw, replace } from "../dom.js";
import { clock, dateTime, ms, shortId } from "../format.js";
import { badge, button, card, emptyRow, errorBox, pageHeader, statusBadge } from "../views/common.js";
import { latencyHistogram } from "../views/histogram.js";
import { LIVE, ruleText, scopeText, targetProgress, timeLeft } from "../views/session-parts.js";
import { deleteSession, stopSession } from "./sessions.js";

const POLL_MS = 2000;
const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
const STATUS_CLASSES = ["2xx", "3xx", "4xx", "5xx"];
const FILTERS = ["status_code", "min_duration_ms", "node_id", "method", "path", "error", "sort"];

function definition(session) {
  const item = (label, value) => h("div", { class: "def" }, h("dt", {}, label), h("dd", {}, value));
  return h(
    "dl",
    { class: "defs" },
    item("Scope", scopeText(session.scope)),
    item("Sampling rule", [ruleText(session), session.tail ? h("span", { class: "chip" }, "tail") : null]),
    item("Max samples", `${session.max_samples} per node`),
    item("Duration", `${session.duration_secs} s`),
    item("Capture", session.capture.length ? session.capture.join(", ") : "none"),
    item("Created", dateTime(session.created_at)),
    item("Time", timeLeft(session)),
  );
}

function traceRow(trace, slowest) {
  const href = `#/traces/${encodeURIComponent(trace.trace_id)}`;
  return h(
    "tr",
    { class: ["trace-row", trace.error && "is-error"], dataset: { trace: trace.trace_id } },
    h("td", { class: "mono", title: dateTime(trace.start_time) }, h("a", { href }, clock(trace.start_time))),
    h("td", {}, trace.node_id),
    h("td", {}, h("span", { class: "method" }, trace.method)),
    h("td", { class: "path" }, h("a", { href }, trace.path), trace.route ? h("span", { class: "muted small" }, ` ${trace.route}`) : null),
    h("td", {}, statusBadge(trace.status_code)),
    h(
      "td",
      { class: "num duration-cell" },
      h("span", { class: "inline-bar", style: { width: `${Math.max(2, (100 * trace.duration_ms) / slowest)}%` } }),
      h("span", { class: "duration" }, ms(trace.duration_ms)),
    ),
    h("td", { class: "num" }, trace.span_count),
    h("td", {}, trace.error ? badge("error") : null),
  );
}

export async function sessionPage(ctx, sessionId) {
  const base = `/api/v1/tracing-sessions/${encodeURIComponent(sessionId)}`;
  const messages = h("div", {});
  const header = h("div", {});
  const overview = h("div", { class: "overview" });
  const chart = h("div", { id: "latency-chart" });
  const body = h("tbody", {});
  const footer = h("div", { class: "table-footer" });
  const live = h("span", { class: "live", hidden: true }, h("span", { class: "live-dot" }), `Live: refreshing every ${POLL_MS / 1000} s`);
  const params = ctx.params;
  let session = null;
  let limit = 100;

  const input = (id, props) =>
    h("input", { id, value: params.get(id.replace("filter-", "")) ?? "", on: { input: ctx.debounce(applyFilters, 300) }, ...props });
  const select = (id, label, options) =>
    h(
      "select",
      { id, "aria-label": label, on: { change: applyFilters } },
      h("option", { value: "" }, `any ${label.toLowerCase()}`),
      options.map((o) => h("option", { value: o, selected: params.get(id.replace("filter-", "")) === o }, o)),
    );
  const statusFilter = select("filter-status_code", "Status", STATUS_CLASSES);
  const minDuration = input("filter-min_duration_ms", { type: "number", min: 0, step: "any", placeholder: "min ms", "aria-label": "Minimum duration (ms)" });
  const nodeFilter = select("filter-node_id", "Node", []);
  const methodFilter = select("filter-method", "Method", METHODS);
  const pathFilter = input("filter-path", { type: "search", placeholder: "/path prefix", "aria-label": "Path prefix" });
  const errorFilter = h("input", { type: "checkbox", id: "filter-error", checked: params.get("error") === "true", on: { change: applyFilters } });
  const sortButton = (key, label) =>
    h(
      "button",
      { type: "button", class: "sort", dataset: { sort: key }, on: { click: () => setSort(key) } },
      label,
    );
  const sortTime = sortButton("time", "Time");
  const sortDuration = sortButton("duration", "Duration");

  function filterValues() {
    return {
      status_code: statusFilter.value,
      min_duration_ms: minDuration.value,
      node_id: nodeFilter.value,
      method: methodFilter.value,
      path: pathFilter.value,
      error: errorFilter.checked ? "true" : "",
      sort: ctx.params.get("sort") ?? "",
    };
  }

  function applyFilters() {
    const next = new URLSearchParams();
    for (const [key, value] of Object.entries(filterValues())) if (value) next.set(key, value);
    ctx.setParams(next);
    limit = 100;
    refreshTraces().catch(report);
  }

  function setSort(key) {
    const next = new URLSearchParams(ctx.params);
    if (key === "time") next.delete("sort");
    else next.set("sort", key);
    ctx.setParams(next);
    refreshTraces().catch(report);
  }

  const report = (error) => replace(messages, errorBox(error));

  replace(
    ctx.view,
    header,
    messages,
    overview,
    card("Latency distribution", chart),
    h(
      "section",
      { class: "card flush" },
      h(
        "div",
        { class: "toolbar" },
        h("h2", { class: "card-title" }, "Traces"),
        live,
        h(
          "div",
          { class: "filters", role: "search" },
          statusFilter,
          minDuration,
          nodeFilter,
          methodFilter,
          pathFilter,
          h("label", { class: "inline" }, errorFilter, " errors only"),
          button("Clear", () => {
            for (const el of [statusFilter, minDuration, nodeFilter, methodFilter, pathFilter]) el.value = "";
            errorFilter.checked = false;
            applyFilters();
          }, { kind: "small" }),
        ),
      ),
      h(
        "table",
        { class: "table traces", id: "traces-table" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            h("th", { class: "sortable" }, sortTime),
            h("th", {}, "Node"),
            h("th", {}, "Method"),
            h("th", {}, "Path"),
            h("th", {}, "Status"),
            h("th", { class: "sortable num" }, sortDuration),
            h("th", { class: "num" }, "Spans"),
            h("th", {}, "Error"),
          ),
        ),
        body,
      ),
      footer,
    ),
  );

  function drawSession() {
    const actions = [
      LIVE.has(session.status)
        ? button("Stop", async () => {
            try {
              await stopSession(ctx, session);
              await refreshSession();
            } catch (error) {
              report(error);
            }
          }, { id: "stop-session" })
        : null,
      button("Download OTLP JSON", () => download(`${base}/otlp`, `session-${session.id}.json`).catch(report), { id: "download-session" }),
      button("Delete", async () => {
        try {
          if (await deleteSession(ctx, session)) location.hash = "#/sessions";
        } catch (error) {
          report(error);
        }
      }, { kind: "danger-outline", id: "delete-session" }),
    ];
    replace(
      header,
      pageHeader({
        title: [session.name || "(unnamed session)", " ", h("span", { id: "session-status" }, badge(session.status))],
        subtitle: h("span", { class: "mono" }, session.id),
        crumbs: [["Sessions", "#/sessions"], [session.name || shortId(session.id)]],
        actions,
      }),
    );
    replace(overview, card(null, h("div", { class: "overview-grid" }, definition(session), h("div", {}, h("h3", { class: "minor" }, "Progress per node"), targetProgress(session)))));
    live.hidden = !LIVE.has(session.status);
    const nodes = session.targets.map((t) => t.node_id);
    if (nodeFilter.dataset.nodes !== nodes.join(" ")) {
      // Rebuilt only when the targets change: a refresh must not close an open dropdown.
      const chosen = nodeFilter.value || params.get("node_id") || "";
      nodeFilter.dataset.nodes = nodes.join(" ");
      replace(
        nodeFilter,
        h("option", { value: "" }, "any node"),
        nodes.map((node) => h("option", { value: node, selected: node === chosen }, node)),
      );
    }
  }

  async function refreshSession() {
    session = await ctx.api(base);
    drawSession();
    const histogram = await ctx.api(`${base}/latency`);
    redraw(chart, JSON.stringify(histogram), () =>
      latencyHistogram(histogram, {
        onPick: (bucket) => {
          minDuration.value = String(bucket.low_ms);
          applyFilters();
        },
      }),
    );
  }

  async function refreshTraces() {
    const sort = ctx.params.get("sort") === "duration" ? "duration" : "time";
    sortTime.setAttribute("aria-pressed", String(sort === "time"));
    sortDuration.setAttribute("aria-pressed", String(sort === "duration"));
    const query = new URLSearchParams({ limit: String(limit), sort });
    for (const [key, value] of Object.entries(filterValues())) if (value && key !== "sort") query.set(key, value);
    const page = await ctx.api(`${base}/traces?${query}`);
    const slowest = Math.max(1e-9, ...page.items.map((t) => t.duration_ms));
    const key = JSON.stringify([page, limit, LIVE.has(session.status)]);
    redraw(body, key, () =>
      page.items.length
        ? page.items.map((t) => traceRow(t, slowest))
        : emptyRow(8, LIVE.has(session.status) ? "No traces yet: send traffic that matches the session." : "No trace matches."),
    );
    redraw(footer, key, () => [
      h("span", { class: "muted", id: "trace-count" }, `${page.items.length} trace${page.items.length === 1 ? "" : "s"} shown`),
      page.next_cursor && limit < 1000
        ? button("Load more", () => {
            limit = Math.min(1000, limit + 100);
            refreshTraces().catch(report);
          }, { kind: "small" })
        : null,
    ]);
  }

  await refreshSession();
  await refreshTraces();
  if (LIVE.has(session.status)) {
    ctx.every(POLL_MS, async () => {
      await refreshSession();
      await refreshTraces();
      return LIVE.has(session.status); // the refresh that saw it end was the last
    });
  }
}
