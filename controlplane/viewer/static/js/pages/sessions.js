// Sessions: the list, with progress per node, time left, stop and delete.

import { h, replace } from "../dom.js";
import { ago, dateTime, shortId } from "../format.js";
import { button, confirmDialog, emptyRow, errorBox, pageHeader } from "../views/common.js";
import { LIVE, ruleText, scopeText, sessionStatus, targetProgress, timeLeft } from "../views/session-parts.js";

const COLUMNS = ["Session", "Status", "Scope", "Sampling rule", "Progress per node", "Time", "Created", ""];
const STATUSES = ["", "pending", "active", "completed", "stopped", "expired"];

/** Stop then refresh; shared with the session page. */
export async function stopSession(ctx, session) {
  await ctx.api(`/api/v1/tracing-sessions/${encodeURIComponent(session.id)}/stop`, { method: "POST" });
}

/** Ask, then delete the session with its traces; resolves to whether it was deleted. */
export async function deleteSession(ctx, session) {
  const confirmed = await confirmDialog({
    title: "Delete this session?",
    message: `"${session.name || shortId(session.id)}" and all its traces will be deleted. This cannot be undone.`,
    confirm: "Delete",
    danger: true,
  });
  if (!confirmed) return false;
  await ctx.api(`/api/v1/tracing-sessions/${encodeURIComponent(session.id)}`, { method: "DELETE" });
  return true;
}

function sessionRow(ctx, session, refresh, report) {
  const act = (fn) => async () => {
    try {
      await fn();
      await refresh();
    } catch (error) {
      report(error);
    }
  };
  return h(
    "tr",
    { dataset: { session: session.id } },
    h(
      "td",
      { class: "nowrap" },
      h("a", { class: "strong", href: `#/sessions/${encodeURIComponent(session.id)}` }, session.name || "(unnamed)"),
      h("div", { class: "muted small mono" }, shortId(session.id)),
    ),
    h("td", { class: "session-status" }, sessionStatus(session)),
    h("td", { class: "nowrap" }, scopeText(session.scope)),
    h("td", { class: "rule-cell" }, ruleText(session)),
    h("td", {}, targetProgress(session)),
    h("td", { class: "nowrap" }, timeLeft(session)),
    h("td", { class: "nowrap", title: dateTime(session.created_at) }, ago(session.created_at)),
    h(
      "td",
      { class: "row-actions" },
      LIVE.has(session.status) ? button("Stop", act(() => stopSession(ctx, session)), { kind: "small" }) : null,
      button("Delete", act(() => deleteSession(ctx, session)), { kind: "small danger-outline" }),
    ),
  );
}

export async function sessionsPage(ctx) {
  const status = ctx.params.get("status") ?? "";
  const body = h("tbody", {});
  const messages = h("div", {});
  const more = h("div", { class: "table-footer" });
  const filter = h(
    "select",
    {
      id: "session-status-filter",
      "aria-label": "Status",
      on: {
        change: () => {
          const params = new URLSearchParams(ctx.params);
          if (filter.value) params.set("status", filter.value);
          else params.delete("status");
          ctx.setParams(params);
          refresh();
        },
      },
    },
    STATUSES.map((s) => h("option", { value: s, selected: s === status }, s || "all statuses")),
  );
  replace(
    ctx.view,
    pageHeader({
      title: "Tracing sessions",
      subtitle: "On-demand tracing on selected nodes, for a service, a route or every request.",
      actions: [h("a", { class: "button primary", href: "#/sessions/new" }, "New session")],
    }),
    messages,
    h(
      "div",
      { class: "card flush" },
      h("div", { class: "toolbar" }, h("label", { class: "inline" }, "Status ", filter)),
      h("table", { class: "table", id: "sessions-table" }, h("thead", {}, h("tr", {}, COLUMNS.map((c) => h("th", {}, c)))), body),
      more,
    ),
  );
  let sessions = [];
  let limit = 50; // grows with "Load more"; every refresh reloads that many (API maximum 500)
  const report = (error) => replace(messages, errorBox(error));
  async function refresh() {
    const query = new URLSearchParams({ limit: String(limit) });
    if (filter.value) query.set("status", filter.value);
    const page = await ctx.api(`/api/v1/tracing-sessions?${query}`);
    sessions = page.items;
    replace(
      body,
      sessions.length
        ? sessions.map((s) => sessionRow(ctx, s, refresh, report))
        : emptyRow(COLUMNS.length, "No sessions yet. ", h("a", { href: "#/sessions/new" }, "Start one"), " to trace requests on your nodes."),
    );
    replace(
      more,
      page.next_cursor && limit < 500
        ? button("Load more", () => {
            limit = Math.min(500, limit + 50);
            refresh().catch(report);
          })
        : null,
    );
  }
  await refresh();
  ctx.every(3000, refresh);
}
