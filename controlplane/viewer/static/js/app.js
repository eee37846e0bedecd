// The viewer's shell: routes the URL fragment to a page and gives pages a context that
// cancels their requests and timers when the user navigates away.

import { api, forgetToken, isAbort, storedToken } from "./api.js";
import { replace } from "./dom.js";
import { nodesPage } from "./pages/nodes.js";
import { newSessionPage } from "./pages/new-session.js";
import { sessionPage } from "./pages/session.js";
import { sessionsPage } from "./pages/sessions.js";
import { tracePage } from "./pages/trace.js";
import { errorBox } from "./views/common.js";

const ROUTES = [
  [/^\/nodes$/, nodesPage, "nodes"],
  [/^\/sessions$/, sessionsPage, "sessions"],
  [/^\/sessions\/new$/, newSessionPage, "new-session"],
  [/^\/sessions\/([\w-]+)$/, sessionPage, "sessions"],
  [/^\/traces\/([0-9a-fA-F]+)(?:\/(summary|waterfall|logs))?$/, tracePage, "sessions"],
];

/** What a page gets: where to draw, its query parameters, requests and timers it owns. */
class PageContext {
  constructor(view, path, params) {
    this.view = view;
    this.path = path;
    this.params = params;
    this.controller = new AbortController();
    this.timers = new Set();
    this.left = false;
  }

  /** An API call that is cancelled when the page is left. */
  api(path, options = {}) {
    return api(path, { ...options, signal: this.controller.signal });
  }

  /** Run fn every `interval` ms (after it finishes) until it returns false or the page is left. */
  every(interval, fn) {
    const tick = async () => {
      this.timers.delete(timer);
      if (this.left) return;
      let again = true;
      try {
        again = (await fn()) !== false;
      } catch (error) {
        if (!isAbort(error)) console.warn("refresh failed", error);
      }
      if (again && !this.left) {
        timer = setTimeout(tick, interval);
        this.timers.add(timer);
      }
    };
    let timer = setTimeout(tick, interval);
    this.timers.add(timer);
  }

  /** Keep the page's state in the URL (back/forward and links restore it), without reloading. */
  setParams(params) {
    if (this.left) return; // a late callback of a page already left must not rewrite the URL
    const query = params.toString();
    this.params = params;
    history.replaceState(null, "", `#${this.path}${query ? `?${query}` : ""}`);
  }

  /** fn, called `wait` ms after the last of a burst of calls, unless the page was left. */
  debounce(fn, wait) {
    let timer = null;
    return (...args) => {
      clearTimeout(timer);
      this.timers.delete(timer);
      timer = setTimeout(() => {
        this.timers.delete(timer);
        if (!this.left) fn(...args);
      }, wait);
      this.timers.add(timer);
    };
  }

  leave() {
    this.left = true;
    this.controller.abort();
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }
}

let current = null;

async function render() {
  current?.leave();
  const raw = location.hash.replace(/^#/, "");
  if (!raw || raw === "/") {
    location.replace("#/sessions");
    return;
  }
  const [path, query = ""] = raw.split("?", 2);
  const view = document.getElementById("view");
  const context = new PageContext(view, path, new URLSearchParams(query));
  current = context;
  const route = ROUTES.find(([pattern]) => pattern.test(path));
  for (const link of document.querySelectorAll("[data-nav]")) {
    link.classList.toggle("active", route !== undefined && link.dataset.nav === route[2]);
  }
  if (!route) {
    replace(view, errorBox({ status: 404, message: `no page at ${path}` }));
    return;
  }
  const [pattern, page] = route;
  view.setAttribute("aria-busy", "true");
  try {
    await page(context, ...path.match(pattern).slice(1));
  } catch (error) {
    if (!context.left && !isAbort(error)) replace(view, errorBox(error));
  } finally {
    if (!context.left) view.removeAttribute("aria-busy");
  }
}

function showSignOut() {
  document.getElementById("sign-out").hidden = storedToken() === null;
}

window.addEventListener("hashchange", render);
document.addEventListener("activetrace:token", showSignOut);
document.getElementById("sign-out").addEventListener("click", () => {
  forgetToken();
  render();
});
document.getElementById("token-dialog").addEventListener("cancel", (event) => event.preventDefault());
showSignOut();
render();
