// One traced request: summary (metrics + transaction map), waterfall, and the node's logs.

import { download } from "../api.js";
import { h, replace } from "../dom.js";
import { dateTime, ms, shortId } from "../format.js";
import { button, card, emptyRow, errorBox, pageHeader, statusBadge } from "../views/common.js";
import { summaryView } from "../views/summary.js";
import { waterfallView } from "../views/waterfall.js";

const GATEWAY = "activetrace-dataplane";
const TABS = [
  ["summary", "Summary"],
  ["waterfall", "Trace"],
  ["logs", "Logs"],
];

function rootSpan(spans) {
  return spans.find((s) => s.kind === "SERVER" && s.service_name === GATEWAY) ?? spans.find((s) => !s.parent_span_id) ?? spans[0];
}

function logsView(lines, traceStart) {
  return card(
    "Node log lines",
    h(
      "table",
      { class: "table", id: "trace-logs" },
      h("thead", {}, h("tr", {}, ["Time", "Level", "Logger", "Message", "Span"].map((c) => h("th", {}, c)))),
      h(
        "tbody",
        {},
        lines.length
          ? lines.map((line) =>
              h(
                "tr",
                {},
                h("td", { class: "mono" }, `+${ms((line.time_unix_nano - traceStart) / 1e6)}`),
                h("td", {}, h("span", { class: ["level", `level-${line.level.toLowerCase()}`] }, line.level)),
                h("td", { class: "muted" }, line.logger),
                h("td", { class: "log-message" }, line.message),
                h("td", { class: "mono small" }, line.span_id),
              ),
            )
          : emptyRow(5, "The node wrote no log lines while serving this request."),
      ),
    ),
  );
}

export async function tracePage(ctx, traceId, tab = "summary") {
  const base = `/api/v1/traces/${encodeURIComponent(traceId)}`;
  const [detail, summary, rows] = await Promise.all([
    ctx.api(base),
    ctx.api(`${base}/summary`),
    ctx.api(`${base}/waterfall`),
  ]);
  const root = rootSpan(detail.spans);
  const traceStart = detail.spans.reduce((low, s) => Math.min(low, s.start_time_unix_nano), Infinity);
  const attrs = root?.attributes ?? {};
  const messages = h("div", {});
  const tabs = h(
    "nav",
    { class: "tabs", role: "tablist" },
    TABS.map(([key, label]) =>
      h(
        "a",
        {
          role: "tab",
          class: ["tab", key === tab && "active"],
          "aria-selected": String(key === tab),
          href: `#/traces/${encodeURIComponent(detail.trace_id)}/${key}`,
          dataset: { tab: key },
        },
        label,
      ),
    ),
  );
  replace(
    ctx.view,
    pageHeader({
      title: [root?.name ?? detail.trace_id, " ", statusBadge(summary.metrics.status_code)],
      subtitle: [
        h("span", { class: "mono" }, detail.trace_id),
        ` · ${detail.node_id} · ${dateTime(traceStart / 1e6)} · ${detail.spans.length} spans · ${ms(summary.metrics.total_ms ?? root?.duration_ms)}`,
        attrs["gateway.request.id"] ? ` · request ${attrs["gateway.request.id"]}` : "",
      ],
      crumbs: [
        ["Sessions", "#/sessions"],
        [shortId(detail.session_id), `#/sessions/${encodeURIComponent(detail.session_id)}`],
        [`trace ${shortId(detail.trace_id)}`],
      ],
      actions: [
        button(
          "Download OTLP JSON",
          () => download(`${base}/otlp`, `trace-${detail.trace_id}.json`).catch((error) => replace(messages, errorBox(error))),
          { id: "download-trace" },
        ),
      ],
    }),
    messages,
    tabs,
  );
  if (tab === "summary") {
    ctx.view.append(...summaryView(summary));
  } else if (tab === "waterfall") {
    ctx.view.append(
      waterfallView({
        rows,
        spans: detail.spans,
        selected: ctx.params.get("span"),
        onSelect: (spanId) => ctx.setParams(new URLSearchParams({ span: spanId })),
      }),
    );
  } else {
    ctx.view.append(logsView(await ctx.api(`${base}/logs`), traceStart));
  }
}
