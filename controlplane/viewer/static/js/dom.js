// Safe DOM construction: text always goes in as text nodes, never parsed as HTML.
// No code of the viewer parses strings as HTML, so captured headers and bodies stay text.

const SVG_NS = "http://www.w3.org/2000/svg";

/** An HTML element: h("a", {href: "#/nodes", class: "x", on: {click}}, "text", child). */
export function h(tag, props, ...children) {
  return build(document.createElement(tag), props, children);
}

/** An SVG element, same signature as h(). */
export function s(tag, props, ...children) {
  return build(document.createElementNS(SVG_NS, tag), props, children);
}

const PROPERTIES = new Set(["value", "checked", "disabled", "selected", "indeterminate"]);

function build(el, props, children) {
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "on") {
      for (const [name, handler] of Object.entries(value)) el.addEventListener(name, handler);
    } else if (key === "style") {
      // CSSOM, not a style attribute: allowed by the page's content security policy.
      for (const [name, v] of Object.entries(value)) el.style.setProperty(name, String(v));
    } else if (key === "dataset") {
      for (const [name, v] of Object.entries(value)) {
        if (v !== undefined && v !== null) el.dataset[name] = String(v);
      }
    } else if (key === "class") {
      el.setAttribute("class", [value].flat(Infinity).filter(Boolean).join(" "));
    } else if (PROPERTIES.has(key)) {
      el[key] = value;
    } else if (/^on/i.test(key)) {
      throw new Error(`event handlers belong in "on", not ${key}`);
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  return append(el, children);
}

/** Append children (nodes, strings, numbers, nested arrays; null/false are skipped). */
export function append(el, ...children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** Replace every child of el. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

const drawnFor = new WeakMap();

/**
 * Replace el's children by draw()'s unless they were last drawn for the same `key` (a string):
 * a live page's refresh then leaves what did not change alone, and a click on it is not lost to
 * a redraw between the press and the release.
 */
export function redraw(el, key, draw) {
  if (drawnFor.get(el) === key) return el;
  drawnFor.set(el, key);
  return replace(el, draw());
}
