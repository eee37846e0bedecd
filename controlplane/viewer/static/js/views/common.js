// Small pieces every page uses: headers, badges, empty states, errors, confirmation.

import { h, replace } from "../dom.js";
import { ms, statusClass } from "../format.js";

/** The title block of a page, with optional actions on the right. */
export function pageHeader({ title, subtitle, crumbs = [], actions = [] }) {
  return h(
    "header",
    { class: "page-header" },
    crumbs.length
      ? h(
          "nav",
          { class: "crumbs", "aria-label": "Breadcrumb" },
          crumbs.map(([label, href], index) => [
            index ? h("span", { class: "crumb-sep", "aria-hidden": "true" }, "/") : null,
            href ? h("a", { href }, label) : h("span", {}, label),
          ]),
        )
      : null,
    h(
      "div",
      { class: "page-title-row" },
      h("div", {}, h("h1", {}, title), subtitle ? h("p", { class: "subtitle" }, subtitle) : null),
      h("div", { class: "page-actions" }, actions),
    ),
  );
}

/** A coloured status pill: connected, active, completed, 503, ... */
export function badge(text, kind = text) {
  return h("span", { class: ["badge", `badge-${kind}`] }, text);
}

/** An HTTP status code as a pill coloured by class. */
export function statusBadge(code) {
  return h("span", { class: ["badge", "status", `status-${statusClass(code)}`] }, code ?? "—");
}

/** A table row saying there is nothing to show. */
export function emptyRow(columns, ...message) {
  return h("tr", { class: "empty-row" }, h("td", { colspan: columns }, message));
}

/** A card with a title. */
export function card(title, ...children) {
  return h(
    "section",
    { class: "card" },
    title ? h("h2", { class: "card-title" }, title) : null,
    children,
  );
}

/** A key/value figure: label over value. */
export function metric(label, value, { hint, kind, id } = {}) {
  return h(
    "div",
    { class: ["metric", kind && `metric-${kind}`], dataset: { metric: id } },
    h("div", { class: "metric-label" }, label),
    h("div", { class: "metric-value" }, value),
    hint ? h("div", { class: "metric-hint" }, hint) : null,
  );
}

/** A duration as a metric value. */
export function durationMetric(label, value, options = {}) {
  return metric(label, ms(value), options);
}

/** An error message box. */
export function errorBox(error) {
  return h(
    "div",
    { class: "alert alert-error", role: "alert" },
    h("strong", {}, error?.status ? `Error ${error.status}: ` : "Error: "),
    error?.message ?? String(error),
  );
}

/** Replace a page with an error. */
export function showError(view, error) {
  replace(view, errorBox(error));
}

/** Ask for confirmation in a modal; resolves to true when confirmed. */
export function confirmDialog({ title, message, confirm = "Confirm", danger = false }) {
  return new Promise((resolve) => {
    const close = (answer) => {
      dialog.close();
      dialog.remove();
      resolve(answer);
    };
    const dialog = h(
      "dialog",
      { class: "modal", "aria-labelledby": "confirm-title" },
      h("h2", { id: "confirm-title" }, title),
      h("p", {}, message),
      h(
        "div",
        { class: "actions" },
        h("button", { type: "button", class: "button", on: { click: () => close(false) } }, "Cancel"),
        h(
          "button",
          {
            type: "button",
            class: ["button", danger ? "danger" : "primary"],
            on: { click: () => close(true) },
          },
          confirm,
        ),
      ),
    );
    dialog.addEventListener("cancel", () => close(false));
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** A button. */
export function button(label, onClick, { kind, id, title, disabled } = {}) {
  return h(
    "button",
    { type: "button", class: ["button", kind], id, title, disabled, on: { click: onClick } },
    label,
  );
}
