// The control plane API: every call carries the admin token the user gave (if any).
// A 401 opens the token dialog once and retries the waiting calls with the new token.

const TOKEN_KEY = "activetrace.admin-token";

export class ApiError extends Error {
  constructor(status, message, errors = []) {
    super(message);
    this.status = status;
    this.errors = errors;
  }
}

export function storedToken() {
  return sessionStorage.getItem(TOKEN_KEY) ?? localStorage.getItem(TOKEN_KEY);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
  localStorage.removeItem(TOKEN_KEY);
  document.dispatchEvent(new Event("activetrace:token"));
}

function saveToken(token, remember) {
  forgetToken();
  (remember ? localStorage : sessionStorage).setItem(TOKEN_KEY, token);
  document.dispatchEvent(new Event("activetrace:token"));
}

let asking = null;

/** Show the token dialog (once, however many calls were refused); resolves when one is given. */
function askForToken(refused) {
  if (asking) return asking;
  const dialog = document.getElementById("token-dialog");
  const form = document.getElementById("token-form");
  const input = document.getElementById("token-input");
  const remember = document.getElementById("token-remember");
  const error = document.getElementById("token-error");
  error.hidden = !refused;
  error.textContent = refused ? "The control plane refused that token." : "";
  input.value = "";
  asking = new Promise((resolve) => {
    const submit = (event) => {
      event.preventDefault();
      const token = input.value.trim();
      if (!token) return;
      saveToken(token, remember.checked);
      form.removeEventListener("submit", submit);
      dialog.close();
      asking = null;
      resolve();
    };
    form.addEventListener("submit", submit);
  });
  if (!dialog.open) dialog.showModal();
  input.focus();
  return asking;
}

function headers(extra) {
  const token = storedToken();
  return { ...(token ? { authorization: `Bearer ${token}` } : {}), ...extra };
}

async function send(path, { method = "GET", body, signal, accept = "application/json" } = {}) {
  for (;;) {
    const response = await fetch(path, {
      method,
      signal,
      headers: headers({
        accept,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      }),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 401) {
      await askForToken(storedToken() !== null);
      continue;
    }
    if (!response.ok) {
      let payload = {};
      try {
        payload = await response.json();
      } catch {
        payload = { message: response.statusText };
      }
      throw new ApiError(response.status, payload.message ?? response.statusText, payload.errors ?? []);
    }
    return response;
  }
}

/** A JSON API call; resolves to the parsed body (null for 204). */
export async function api(path, options = {}) {
  const response = await send(path, options);
  return response.status === 204 ? null : response.json();
}

/** Download an API resource as a file (the token goes in a header, so not a plain link). */
export async function download(path, filename, options = {}) {
  const response = await send(path, options);
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** Whether an error is the abort of a page's requests when the user navigated away. */
export function isAbort(error) {
  return error?.name === "AbortError";
}
