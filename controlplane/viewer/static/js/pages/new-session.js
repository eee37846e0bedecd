// New session: targets, scope, sampling rule (validated live), limits and capture options.

import { ApiError, isAbort } from "../api.js";
import { h, replace } from "../dom.js";
import { errorBox, pageHeader } from "../views/common.js";
import { ruleEditor } from "../views/rule-editor.js";

const UNITS = [
  ["seconds", 1],
  ["minutes", 60],
  ["hours", 3600],
];

function field(label, control, hint, { id } = {}) {
  return h(
    "div",
    { class: "field", id },
    h("div", { class: "field-label" }, label),
    control,
    hint ? h("div", { class: "field-hint" }, hint) : null,
  );
}

function nodePicker(nodes) {
  if (!nodes.length) {
    return h("div", { class: "muted" }, "No node has connected yet: a session needs at least one target.");
  }
  return h(
    "div",
    { class: "node-picker", role: "group", "aria-label": "Target nodes" },
    nodes.map((node) =>
      h(
        "label",
        { class: ["node-option", node.status !== "connected" && "offline"] },
        h("input", { type: "checkbox", name: "targets", value: node.id, disabled: node.status !== "connected" }),
        h("span", { class: "strong" }, node.id),
        h("span", { class: "muted small" }, node.status === "connected" ? node.hostname : "disconnected"),
      ),
    ),
  );
}

function scopePicker(services, routes, onChange) {
  const kind = (value, label) =>
    h("label", { class: "radio" }, h("input", { type: "radio", name: "scope-kind", value, checked: value === "all", on: { change: onChange } }), label);
  const serviceSelect = h(
    "select",
    { id: "scope-service", "aria-label": "Service to trace", hidden: true },
    services.map((s) => h("option", { value: s.name ?? s.id }, s.name ?? s.id)),
  );
  const names = Object.fromEntries(services.map((s) => [s.id, s.name ?? s.id]));
  const routeSelect = h(
    "select",
    { id: "scope-route", "aria-label": "Route to trace", hidden: true },
    routes.map((r) =>
      h(
        "option",
        { value: r.name ?? r.id },
        `${r.name ?? r.id}${r.paths?.length ? ` — ${r.paths.join(", ")}` : ""}${r.service ? ` (${names[r.service.id] ?? "service"})` : ""}`,
      ),
    ),
  );
  return {
    element: h(
      "div",
      { class: "scope-picker" },
      h("div", { class: "radios" }, kind("all", "All traffic"), kind("service", "Service"), kind("route", "Route")),
      serviceSelect,
      routeSelect,
    ),
    sync(form) {
      const chosen = form.querySelector("input[name=scope-kind]:checked").value;
      serviceSelect.hidden = chosen !== "service";
      routeSelect.hidden = chosen !== "route";
    },
    value(form) {
      const chosen = form.querySelector("input[name=scope-kind]:checked").value;
      if (chosen === "service") return { service: serviceSelect.value };
      if (chosen === "route") return { route: routeSelect.value };
      return {};
    },
  };
}

const FIELDS = [
  ["http.method, http.host, http.path", "strings"],
  ["http.path.segments.0, http.path.segments.len", "path parts and count"],
  ["http.headers.x_tenant, http.queries.page", "headers (lowercase, - as _) and query arguments"],
  ["net.src.ip, net.dst.port, net.protocol, tls.sni", "connection"],
  ["http.response.status, http.response.headers.x, latency.total_ms", "after the response (tail sampling)"],
];
const EXAMPLES = [
  'http.method == "POST" && http.path ^= "/checkout"',
  "http.response.status >= 500 || latency.total_ms > 250",
  'net.src.ip in 10.0.0.0/8 || any(http.headers.x_debug) == "1"',
];

function ruleHelp() {
  return h(
    "details",
    { class: "rule-help" },
    h("summary", {}, "Fields and examples"),
    h(
      "dl",
      {},
      FIELDS.map(([names, what]) => [h("dt", {}, h("code", {}, names)), h("dd", {}, what)]),
    ),
    h("div", { class: "field-hint" }, "Operators: == != ~ ^= =^ contains > >= < <= in, not in; && and || (mixing them needs parentheses), !( ... )."),
    h("ul", { class: "examples" }, EXAMPLES.map((e) => h("li", {}, h("code", {}, e)))),
  );
}

export async function newSessionPage(ctx) {
  const [nodes, services, routes] = await Promise.all([
    ctx.api("/api/v1/nodes"),
    ctx.api("/api/v1/services?size=1000").then((page) => page.data),
    ctx.api("/api/v1/routes?size=1000").then((page) => page.data),
  ]);
  const messages = h("div", {});
  const submit = h("button", { type: "submit", class: "button primary", id: "create-session" }, "Start session");
  let form = null; // built below, after the rule editor whose checks call update()
  const update = () => {
    if (!form) return;
    const targets = form.querySelectorAll("input[name=targets]:checked").length;
    submit.disabled = targets === 0 || !rule.isValid();
  };
  const rule = ruleEditor(ctx, { onChange: update });
  const scope = scopePicker(services, routes, () => scope.sync(form));
  const bodyLimit = h("input", { type: "number", id: "body-max-bytes", min: 0, max: 65536, value: 4096, disabled: true });
  form = h(
    "form",
    { class: "card form", id: "session-form", novalidate: true, on: { submit: (event) => create(event) } },
    field("Name", h("input", { type: "text", id: "session-name", maxlength: 255, placeholder: "slow checkout" }), "Optional, to recognise the session later."),
    field("Target nodes", nodePicker(nodes), "Each node traces up to the sample limit on its own.", { id: "targets-field" }),
    field("Scope", scope.element, "Trace a whole service (all its routes), one route, or every request."),
    field("Sampling rule", [rule.element, ruleHelp()], "Which requests in scope to trace (Kong's expressions language). Empty traces every request."),
    h(
      "div",
      { class: "field-row" },
      field("Max samples per node", h("input", { type: "number", id: "max-samples", min: 1, max: 10000, value: 100 }), "1 to 10 000."),
      field(
        "Duration",
        h(
          "div",
          { class: "input-group" },
          h("input", { type: "number", id: "duration", min: 1, value: 5 }),
          h("select", { id: "duration-unit", "aria-label": "Duration unit" }, UNITS.map(([name]) => h("option", { value: name, selected: name === "minutes" }, name))),
        ),
        "At most 24 hours.",
      ),
    ),
    field(
      "Capture",
      h(
        "div",
        { class: "radios" },
        h("label", { class: "radio" }, h("input", { type: "checkbox", name: "capture", value: "headers" }), "Headers"),
        h(
          "label",
          { class: "radio" },
          h("input", { type: "checkbox", name: "capture", value: "body", on: { change: (e) => (bodyLimit.disabled = !e.target.checked) } }),
          "Bodies, up to ",
          bodyLimit,
          " bytes",
        ),
      ),
      "Secrets (authorization, cookies, API keys) are always redacted.",
    ),
    h("div", { class: "form-actions" }, h("a", { class: "button", href: "#/sessions" }, "Cancel"), submit),
  );
  form.addEventListener("change", update);
  replace(
    ctx.view,
    pageHeader({
      title: "New tracing session",
      crumbs: [["Sessions", "#/sessions"], ["New"]],
      subtitle: "The selected nodes record every phase of matching requests and stream the spans here.",
    }),
    messages,
    form,
  );
  update();

  async function create(event) {
    event.preventDefault();
    const unit = Object.fromEntries(UNITS)[form.querySelector("#duration-unit").value];
    const capture = [...form.querySelectorAll("input[name=capture]:checked")].map((c) => c.value);
    const body = {
      name: form.querySelector("#session-name").value.trim(),
      targets: [...form.querySelectorAll("input[name=targets]:checked")].map((c) => c.value),
      scope: scope.value(form),
      sampling_rule: rule.value(),
      max_samples: Number(form.querySelector("#max-samples").value),
      duration_secs: Math.round(Number(form.querySelector("#duration").value) * unit),
      capture,
      ...(capture.includes("body") ? { body_max_bytes: Number(bodyLimit.value) } : {}),
    };
    submit.disabled = true;
    try {
      const session = await ctx.api("/api/v1/tracing-sessions", { method: "POST", body });
      location.hash = `#/sessions/${encodeURIComponent(session.id)}`;
    } catch (error) {
      if (isAbort(error)) return;
      replace(messages, errorBox(error));
      const ruleErrors = (error instanceof ApiError ? error.errors : []).filter((e) => e.loc?.includes("sampling_rule") && e.start !== undefined && e.start !== null);
      if (ruleErrors.length) rule.showErrors(ruleErrors);
      update();
    }
  }
}
