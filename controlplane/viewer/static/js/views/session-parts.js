// Pieces of a tracing session shown on the list and on its own page.

import { h } from "../dom.js";
import { ago, dateTime, seconds } from "../format.js";
import { badge } from "./common.js";

export const LIVE = new Set(["pending", "active"]);

/** "route orders", "service demo", "all traffic". */
export function scopeText(scope) {
  if (scope.kind === "all") return "all traffic";
  return `${scope.kind} ${scope.name ?? scope.id}`;
}

/** Per node: a bar of samples taken out of max_samples, and the node's state. */
export function targetProgress(session) {
  return h(
    "div",
    { class: "progress-list" },
    session.targets.map((target) =>
      h(
        "div",
        { class: "progress-item", dataset: { node: target.node_id }, title: target.message || target.state },
        h("span", { class: "progress-node" }, target.node_id),
        h(
          "span",
          { class: "progress-track", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": session.max_samples, "aria-valuenow": target.samples },
          h("span", { class: "progress-fill", style: { width: `${Math.min(100, (100 * target.samples) / session.max_samples)}%` } }),
        ),
        h("span", { class: "progress-count" }, `${target.samples}/${session.max_samples}`),
        badge(target.state),
      ),
    ),
  );
}

/** Time left while live, or when it ended. */
export function timeLeft(session, now = Date.now()) {
  if (LIVE.has(session.status)) {
    const left = (new Date(session.ends_at).getTime() - now) / 1000;
    return h("span", { class: "time-left", title: `ends ${dateTime(session.ends_at)}` }, left > 0 ? `${seconds(left)} left` : "ending");
  }
  const ended = session.ended_at ?? session.ends_at;
  return h("span", { class: "muted", title: dateTime(ended) }, `ended ${ago(ended, now)}`);
}

/** The session's status pill. */
export function sessionStatus(session) {
  return badge(session.status);
}

/** The rule as code, or a note that every request in scope is traced. */
export function ruleText(session) {
  return session.sampling_rule
    ? h("code", { class: "rule" }, session.sampling_rule)
    : h("span", { class: "muted" }, "every request");
}
