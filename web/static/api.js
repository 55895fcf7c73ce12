// api.js: the agent's local API (docs/agent-api.md), version 1, as served
// under /api/ by the web app's own server. The app talks to nothing else.

const base = "/api/v1";

// APIError carries the agent's stable error kind.
export class APIError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `HTTP ${status}`);
    this.status = status;
    this.kind = body?.error?.kind || (status === 401 ? "session" : "internal");
    this.attemptsLeft = body?.error?.attempts_left;
  }
}

// listeners of "locked" and "session" failures, so any call can bring up
// the lock screen or the logged-out page.
const failHooks = [];
export function onFailure(fn) { failHooks.push(fn); }

export async function call(method, path, body) {
  const opts = { method, headers: {}, credentials: "same-origin" };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const resp = await fetch(base + path, opts);
  if (!resp.ok) {
    let j = null;
    try { j = await resp.json(); } catch { /* not JSON: the web server's own refusal */ }
    const err = new APIError(resp.status, j);
    for (const fn of failHooks) fn(err);
    throw err;
  }
  if (resp.status === 204) return null;
  return resp.json();
}

const enc = encodeURIComponent;

export const api = {
  status: () => call("GET", "/status"),
  unlock: (passphrase) => call("POST", "/unlock", { passphrase }),
  lock: () => call("POST", "/lock"),
  conversations: () => call("GET", "/conversations"),
  messages: (peer, limit = 200) => call("GET", `/conversations/${enc(peer)}/messages?limit=${limit}`),
  send: (peer, text, quoteID) => call("POST", `/conversations/${enc(peer)}/messages`, quoteID ? { text, quote_id: quoteID } : { text }),
  markRead: (peer, ids) => call("POST", `/conversations/${enc(peer)}/read`, { ids }),
  typing: (peer, typing) => call("POST", `/conversations/${enc(peer)}/typing`, { typing }),
  react: (peer, id, emoji) => call("POST", `/conversations/${enc(peer)}/messages/${enc(id)}/reaction`, { emoji }),
  edit: (peer, id, text) => call("POST", `/conversations/${enc(peer)}/messages/${enc(id)}/edit`, { text }),
  remove: (peer, id) => call("DELETE", `/conversations/${enc(peer)}/messages/${enc(id)}`),
  timer: (peer) => call("GET", `/conversations/${enc(peer)}/timer`),
  setTimer: (peer, seconds) => call("PUT", `/conversations/${enc(peer)}/timer`, { seconds }),
  search: (q, limit = 50) => call("GET", `/search?q=${enc(q)}&limit=${limit}`),
  contacts: () => call("GET", "/contacts"),
  settings: () => call("GET", "/settings"),
  setSettings: (s) => call("PUT", "/settings", s),
  notices: () => call("GET", "/notices"),
  activity: () => call("POST", "/activity"),
  devices: () => call("GET", "/devices"),
  removeDevice: (id) => call("DELETE", `/devices/${enc(id)}`),
  wipeDevice: (id) => call("POST", `/devices/${enc(id)}/wipe`),
  safetyNumber: (user) => call("GET", `/contacts/${enc(user)}/safety-number`),
  verify: (user) => call("POST", `/contacts/${enc(user)}/verify`),
  contentURL: (id) => `${base}/attachments/${enc(id)}/content`,
  eventsURL: () => `${base}/events`,
};

// fetchBlob fetches a file's bytes (GET …/content) as a Blob (a view-once
// attachment's: its only opening).
export async function fetchBlob(url) {
  const resp = await fetch(url, { credentials: "same-origin" });
  if (!resp.ok) {
    let j = null;
    try { j = await resp.json(); } catch { /* ignore */ }
    throw new APIError(resp.status, j);
  }
  return resp.blob();
}

// upload sends a file's bytes to path (a conversation's or a group's
// …/files) with progress (fetch has no upload progress; XMLHttpRequest
// does).
export function upload(path, file, { caption = "", viewOnce = false, onProgress } = {}) {
  return new Promise((resolve, reject) => {
    const q = new URLSearchParams({ name: file.name });
    if (caption) q.set("caption", caption);
    if (viewOnce) q.set("view_once", "true");
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `${base}${path}?${q}`);
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.responseType = "json";
    xhr.upload.onprogress = (e) => { if (e.lengthComputable && onProgress) onProgress(e.loaded / e.total); };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve(xhr.response);
      else reject(new APIError(xhr.status, xhr.response));
    };
    xhr.onerror = () => reject(new APIError(0, { error: { kind: "unavailable", message: "upload failed" } }));
    xhr.send(file);
  });
}
