// The sampling rule field with live validation: the compiler's errors underlined in place.

import { isAbort } from "../api.js";
import { h, replace } from "../dom.js";

/** The rule text with characters [start, end) underlined (offsets count code points). */
export function underlined(text, start, end) {
  const chars = Array.from(text);
  const from = Math.max(0, Math.min(start, chars.length));
  const to = Math.max(from, Math.min(end, chars.length));
  return h(
    "pre",
    { class: "rule-preview", "aria-hidden": "true" },
    chars.slice(0, from).join(""),
    // An empty range (e.g. the rule ends too early) still needs something to underline.
    h("mark", { class: "rule-error" }, chars.slice(from, to).join("") || " "),
    chars.slice(to).join(""),
  );
}

/**
 * A textarea validated as the user types (debounced, stale answers ignored).
 * Returns {element, value(), isValid(), showErrors(errors)}; onChange(valid) after each check.
 */
export function ruleEditor(ctx, { onChange }) {
  const input = h("textarea", {
    id: "sampling-rule",
    name: "sampling_rule",
    rows: 3,
    spellcheck: "false",
    autocomplete: "off",
    placeholder: 'http.method == "GET" && http.path ^= "/orders"',
    "aria-describedby": "rule-feedback",
  });
  const feedback = h("div", { id: "rule-feedback", class: "rule-feedback", "aria-live": "polite" });
  let valid = true;
  let sequence = 0;
  let timer = null;

  function showErrors(errors) {
    const text = input.value;
    valid = false;
    input.setAttribute("aria-invalid", "true");
    replace(
      feedback,
      errors.map((error) =>
        h(
          "div",
          { class: "rule-problem" },
          underlined(text, error.start, error.end),
          h(
            "div",
            { class: "rule-message" },
            h("span", { class: "rule-position" }, `at ${error.start}–${error.end}: `),
            error.message,
          ),
        ),
      ),
    );
  }

  function showValid(result) {
    valid = true;
    input.removeAttribute("aria-invalid");
    replace(
      feedback,
      h(
        "div",
        { class: "rule-ok" },
        "✓ Valid rule",
        result.fields.length ? [" · uses ", result.fields.map((f, i) => [i ? ", " : "", h("code", {}, f)])] : null,
      ),
      result.tail
        ? h(
            "div",
            { class: "rule-note" },
            "Uses response fields: decided after the response (tail sampling). Nodes record every request in scope and keep the matching ones.",
          )
        : null,
    );
  }

  function failed(error) {
    if (isAbort(error)) return;
    replace(feedback, h("div", { class: "rule-message" }, `Could not check the rule: ${error.message}`));
  }

  async function check() {
    const text = input.value;
    const mine = ++sequence;
    if (!text.trim()) {
      valid = true;
      input.removeAttribute("aria-invalid");
      replace(feedback, h("div", { class: "muted" }, "Empty: every request in scope is traced."));
      onChange(valid);
      return;
    }
    const result = await ctx.api("/api/v1/expressions/validate", { method: "POST", body: { expression: text } });
    if (mine !== sequence) return; // the user typed on; a newer check is coming
    if (result.valid) showValid(result);
    else showErrors(result.errors);
    onChange(valid);
  }

  input.addEventListener("input", () => {
    clearTimeout(timer);
    sequence++; // an answer for older text must not show
    valid = false;
    onChange(valid);
    timer = setTimeout(() => check().catch(failed), 250);
  });
  check().catch(failed);

  return {
    element: h("div", { class: "rule-editor" }, input, feedback),
    value: () => (input.value.trim() ? input.value : null),
    isValid: () => valid,
    showErrors,
  };
}
