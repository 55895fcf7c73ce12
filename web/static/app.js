// app.js: the Sotto web app. It is served by the device's own agent from
// the sotto binary, on 127.0.0.1, and talks only to the agent's API.
import { h, replace, $ } from "./dom.js";
import { api, onFailure } from "./api.js";
import { ConversationList, preview } from "./list.js";
import { Chat } from "./chat.js";
import { Groups } from "./groups.js";
import { installExtras } from "./admin.js";
import { Calls } from "./calls.js";

class App {
  constructor(root) {
    this.root = root;
    this.peer = null;
    this.status = null;
    this.events = null;
    this.notices = [];
    this.unseenNotices = 0;
    this.connEvents = 0;
  }

  async start() {
    onFailure((e) => this.onFailure(e));
    this.buildShell();
    this.applyTheme(localStorage.getItem("theme") || "auto");
    document.addEventListener("keydown", (e) => this.onKey(e));
    // The agent's idle lock counts the person's activity here too (at most
    // one call every 20 seconds).
    let lastActivity = 0;
    const active = () => {
      const now = Date.now();
      if (now - lastActivity < 20000 || this.root.classList.contains("locked")) return;
      lastActivity = now;
      api.activity().catch(() => {});
    };
    document.addEventListener("keydown", active, { capture: true });
    document.addEventListener("pointerdown", active, { capture: true });
    document.addEventListener("visibilitychange", () => { if (document.visibilityState === "visible") { this.chat.markRead(); this.groups?.chat.markRead(); } });
    try {
      this.status = await api.status();
    } catch (e) {
      if (this.root.querySelector(".top")) this.showGone(e.message); // else onFailure showed why
      return;
    }
    this.connectEvents();
    if (this.status.locked) this.showLock();
    else await this.load();
  }

  buildShell() {
    this.who = h("span", { class: "who" });
    this.conn = h("span", { class: "conn", role: "status", "aria-live": "polite" });
    this.noticeBtn = h("button", { type: "button", id: "notices-btn", onclick: () => this.showNotices() }, "Notices");
    this.devicesBtn = h("button", { type: "button", id: "devices-btn", onclick: () => this.showDevices() }, "Devices");
    this.themeBtn = h("button", { type: "button", id: "theme-btn", onclick: () => this.cycleTheme() });
    this.notifyBtn = h("button", { type: "button", id: "notify-btn", onclick: () => this.askNotifications() }, "Alerts");
    this.toast = h("p", { class: "toast", role: "alert", hidden: true });
    this.sidebar = h("nav", { id: "sidebar", class: "sidebar", "aria-label": "Conversations and search" });
    this.chatPane = h("section", { id: "chat", class: "chat", "aria-label": "Chat", hidden: true });
    this.placeholder = h("section", { class: "chat placeholder" }, h("p", {}, "Choose a conversation, or start one with a user name."));
    this.lockEl = h("div", { id: "lock", class: "lock", hidden: true });
    this.callBar = h("section", { id: "call-bar", class: "call-bar", "aria-label": "Call" });
    replace(this.root,
      h("header", { class: "top" },
        h("h1", {}, "Sotto"), this.who, this.conn,
        h("div", { class: "tools" }, this.noticeBtn, this.devicesBtn, this.notifyBtn, this.themeBtn,
          h("button", { type: "button", id: "lock-btn", onclick: () => api.lock().catch(() => {}) }, "Lock"))),
      this.callBar,
      h("main", { class: "layout" }, this.sidebar, this.chatPane, this.placeholder),
      this.toast, this.lockEl);
    this.list = new ConversationList(this, this.sidebar);
    this.chat = new Chat(this, this.chatPane);
    this.groups = new Groups(this, this.sidebar, this.root.querySelector(".layout"));
    this.extras = installExtras(this, this.root.querySelector(".tools"));
    this.calls = new Calls(this, this.callBar);
    if (!("Notification" in window)) this.notifyBtn.hidden = true;
  }

  async load() {
    this.lockEl.hidden = true;
    this.root.classList.remove("locked");
    const seen = this.connEvents;
    this.status = await api.status();
    const s = this.status;
    this.who.textContent = s.user ? `${s.user}${s.org?.name ? " · " + s.org.name : ""}` : "";
    if (seen === this.connEvents) this.setConnected(s.connected); // else an event is newer
    await this.list.refresh();
    await this.groups.refresh().catch((e) => this.error(e));
    this.extras.refresh();
    const n = await api.notices().catch(() => ({ notices: [] }));
    this.notices = n.notices || [];
    this.updateTitle();
    this.calls.start();
    if (this.peer) await this.chat.open(this.peer);
  }

  setConnected(ok) {
    this.conn.textContent = ok ? "connected" : "offline: messages wait";
    this.conn.className = "conn " + (ok ? "on" : "off");
  }

  async open(peer, focusID) {
    this.peer = peer;
    this.groups.hide();
    this.chatPane.hidden = false;
    this.placeholder.hidden = true;
    this.root.classList.add("in-chat");
    this.list.render();
    try { await this.chat.open(peer, focusID); } catch (e) { this.error(e); }
  }

  close() {
    this.root.classList.remove("in-chat");
    $(`.conv[data-peer="${CSS.escape(this.peer || "")}"]`)?.focus();
  }

  connectEvents() {
    const es = new EventSource(api.eventsURL());
    this.events = es;
    const on = (type, fn) => es.addEventListener(type, (e) => {
      let ev;
      try { ev = JSON.parse(e.data); } catch { return; }
      fn(ev);
    });
    on("message", (ev) => { this.chat.onEvent(ev); this.list.refresh(); this.notify(ev.message); });
    for (const t of ["update", "expired", "receipt", "typing", "identity_changed"]) {
      on(t, (ev) => { this.chat.onEvent(ev); if (t !== "typing" && t !== "receipt") this.list.refresh(); });
    }
    on("connection", (ev) => { this.connEvents++; this.setConnected(ev.connected); });
    // "idle" (the backlog is processed) may come instead of "connected".
    on("idle", () => { this.connEvents++; this.setConnected(true); });
    on("locked", () => this.showLock());
    on("unlocked", () => { if (!this.lockEl.hidden) this.load(); });
    on("org_notice", (ev) => { this.notices.push(ev.notice); this.unseenNotices++; this.updateTitle(); this.say("Notice from your organization: " + ev.notice.text); });
    on("transparency_alarm", (ev) => this.say("Key transparency alarm: the relay may be substituting keys (" + (ev.alarm?.detail || ev.alarm?.kind || "") + ")."));
    on("sealed_downgrade", (ev) => this.say(`A message to ${ev.user} went with your name visible to the relay.`));
    this.groups.listen(on);
    on("wiped", () => this.showGone("This device was wiped."));
  }

  updateTitle() {
    const n = this.list.totalUnread() + (this.groups?.totalUnread() || 0);
    document.title = n ? `(${n}) Sotto` : "Sotto";
    this.noticeBtn.textContent = this.unseenNotices ? `Notices (${this.unseenNotices})` : "Notices";
  }

  notify(m) {
    if (!m || m.outgoing || document.visibilityState === "visible") return;
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    const n = new Notification(m.from || m.peer, { body: preview(m), tag: m.peer });
    n.onclick = () => { window.focus(); this.open(m.peer); };
  }

  async askNotifications() {
    const p = await Notification.requestPermission();
    this.say(p === "granted" ? "Alerts on: new messages show while this tab is in the background." : "Alerts are off in this browser.");
  }

  showNotices() {
    this.unseenNotices = 0;
    this.updateTitle();
    const dlg = h("dialog", { class: "notices", "aria-labelledby": "notices-h" },
      h("h2", { id: "notices-h" }, "Notices from your organization"),
      this.notices.length
        ? h("ol", {}, this.notices.slice().reverse().map((n) => h("li", {},
          h("time", { datetime: n.issued }, new Date(n.issued).toLocaleString()), h("p", { dir: "auto" }, n.text))))
        : h("p", {}, "No notices."),
      h("form", { method: "dialog" }, h("button", {}, "Close")));
    dlg.addEventListener("close", () => dlg.remove());
    document.body.append(dlg);
    dlg.showModal();
  }

  // showDevices lists the account's devices (as the relay lists them), and
  // removes or wipes another one after a confirmation.
  async showDevices() {
    let r;
    try { r = await api.devices(); } catch (e) { this.error(e); return; }
    const list = h("ul", { class: "devices" });
    const dlg = h("dialog", { class: "devices-dlg", "aria-labelledby": "devices-h" },
      h("h2", { id: "devices-h" }, "Your devices"), list,
      h("p", { class: "hint" }, "To add a device, run sotto devices link on it and approve its code here with sotto devices approve."),
      h("form", { method: "dialog" }, h("button", { class: "devices-close" }, "Close")));
    const act = (d, what, fn) => h("button", {
      type: "button", class: `device-${what.toLowerCase()}`, onclick: async () => {
        const q = what === "Wipe"
          ? `Wipe device ${d.id} (${d.name || "unnamed"})? It deletes everything on it when it next connects.`
          : `Remove device ${d.id} (${d.name || "unnamed"}) from your account? It can no longer send or receive.`;
        if (!(await this.confirm(q, what))) return;
        try { await fn(d.id); dlg.close(); this.say(`${what === "Wipe" ? "Wipe order sent to" : "Removed"} device ${d.id}.`); } catch (e) { this.error(e); }
      },
    }, what);
    replace(list, (r.devices || []).map((d) => h("li", { "data-device": d.id },
      h("span", { class: "device-name" }, `${d.name || "unnamed"} (device ${d.id})`),
      d.current ? h("span", { class: "device-current" }, " · this device") : null,
      d.last_seen ? h("span", { class: "device-seen" }, ` · last seen ${new Date(d.last_seen).toLocaleString()}`) : null,
      d.current ? null : [" ", act(d, "Remove", api.removeDevice), " ", act(d, "Wipe", api.wipeDevice)])));
    dlg.addEventListener("close", () => dlg.remove());
    document.body.append(dlg);
    dlg.showModal();
  }

  // confirm asks a yes/no question in a dialog; it resolves to true on yes.
  confirm(question, yes) {
    return new Promise((resolve) => {
      const dlg = h("dialog", { class: "confirm", role: "alertdialog", "aria-labelledby": "confirm-q" },
        h("p", { id: "confirm-q" }, question),
        h("form", { method: "dialog" },
          h("button", { value: "cancel", class: "cancel", autofocus: true }, "Cancel"),
          h("button", { value: "yes", class: "danger confirm-yes" }, yes)));
      dlg.addEventListener("close", () => { dlg.remove(); resolve(dlg.returnValue === "yes"); });
      document.body.append(dlg);
      dlg.showModal();
    });
  }

  showLock() {
    if (!this.lockEl.hidden) return;
    this.root.classList.add("locked");
    this.calls.stop();
    const pass = h("input", { type: "password", id: "passphrase", autocomplete: "current-password", required: true, "aria-describedby": "lock-msg" });
    const msg = h("p", { id: "lock-msg", role: "alert" });
    const form = h("form", {
      class: "lock-form", onsubmit: async (e) => {
        e.preventDefault();
        msg.textContent = "Unlocking…";
        try {
          await api.unlock(pass.value);
          pass.value = "";
          await this.load();
        } catch (err) {
          pass.value = "";
          msg.textContent = err.kind === "wrong_passphrase"
            ? "Wrong passphrase." + (err.attemptsLeft ? ` ${err.attemptsLeft} tries left before this device wipes itself.` : "")
            : err.message;
          pass.focus();
        }
      },
    },
    h("h2", {}, "Sotto is locked"),
    h("label", { for: "passphrase" }, "Passphrase"), pass,
    h("button", { type: "submit", id: "unlock" }, "Unlock"), msg);
    replace(this.lockEl, form);
    this.lockEl.hidden = false;
    pass.focus();
  }

  showGone(text) {
    if (this.events) this.events.close();
    replace(this.root, h("main", { class: "gone" }, h("h1", {}, "Sotto"), h("p", { role: "alert" }, text)));
  }

  onFailure(e) {
    if (e.kind === "locked") this.showLock();
    else if (e.kind === "session") this.showGone("This tab is no longer logged in. Run `sotto web` for a new link.");
    else if (e.kind === "wiped" || e.kind === "no_device" || e.kind === "revoked") this.showGone(e.message);
  }

  error(e) {
    if (["locked", "session", "wiped", "no_device", "revoked"].includes(e.kind)) return;
    this.say(e.message || String(e));
  }

  say(text) {
    this.toast.textContent = text;
    this.toast.hidden = false;
    clearTimeout(this.toastTimer);
    this.toastTimer = setTimeout(() => { this.toast.hidden = true; }, 6000);
  }

  applyTheme(t) {
    this.theme = t;
    if (t === "auto") delete document.documentElement.dataset.theme;
    else document.documentElement.dataset.theme = t;
    if (this.themeBtn) this.themeBtn.textContent = { auto: "Theme: auto", light: "Theme: light", dark: "Theme: dark" }[t];
  }

  cycleTheme() {
    const next = { auto: "light", light: "dark", dark: "auto" }[this.theme];
    localStorage.setItem("theme", next);
    this.applyTheme(next);
  }

  onKey(e) {
    const typing = e.target.closest?.("input, textarea, select");
    if ((e.key === "/" && !typing) || (e.key === "k" && (e.ctrlKey || e.metaKey))) {
      e.preventDefault();
      $("#search").focus();
    } else if (e.altKey && (e.key === "ArrowUp" || e.key === "ArrowDown")) {
      e.preventDefault();
      this.list.move(e.key === "ArrowUp" ? -1 : 1);
    } else if (e.key === "Escape" && !typing && this.root.classList.contains("in-chat") && !document.querySelector("dialog[open]")) {
      this.close();
    }
  }
}

new App(document.getElementById("app")).start();
