// groups.js: group chats (the agent's /v1/groups, MLS in the agent): the
// groups in the sidebar with unread counts, a group's chat, its members
// with each one's verification state, adding and removing members, and
// creating a group.
//
// The agent keeps no read mark for group messages: the app keeps, per
// group, the highest seq this browser showed, in localStorage (a count of
// what is new here, not a receipt anyone else sees).
import { h, replace } from "./dom.js";
import { call } from "./api.js";
import * as fmt from "./format.js";

const enc = encodeURIComponent;

export const groupAPI = {
  list: () => call("GET", "/groups"),
  get: (id) => call("GET", `/groups/${enc(id)}`),
  create: (name, users) => call("POST", "/groups", { name, users }),
  add: (id, users) => call("POST", `/groups/${enc(id)}/add`, { users }),
  remove: (id, users) => call("POST", `/groups/${enc(id)}/remove`, { users }),
  messages: (id, limit = 200) => call("GET", `/groups/${enc(id)}/messages?limit=${limit}`),
  send: (id, text) => call("POST", `/groups/${enc(id)}/messages`, { text }),
  // Hooks for rename, leave and roles, which the agent's API has
  // (POST /v1/groups/{group}/rename, …/leave) and this app not yet; the members
  // dialog shows their buttons once groupAPI has them.
};

// groupName is what the app calls a group: its name (from the encrypted
// group context), else its members.
export function groupName(g, self) {
  if (g.name) return g.name;
  const users = [...new Set((g.members || []).map((m) => m.user))].filter((u) => u !== self);
  return users.length ? users.join(", ") : "Group " + String(g.id).slice(0, 8);
}

const readKey = (id) => "sotto-group-read-" + id;

export class Groups {
  constructor(app, sidebar, layout) {
    this.app = app;
    this.groups = [];
    this.unread = new Map(); // id → count
    this.last = new Map(); // id → newest message
    this.current = null; // the open group's id
    this.msgs = [];
    this.list = h("ul", { id: "group-list", class: "conv-list", "aria-label": "Groups" });
    this.section = h("section", { class: "groups-side", "aria-labelledby": "groups-h" },
      h("div", { class: "groups-head" },
        h("h2", { id: "groups-h" }, "Groups"),
        h("button", { type: "button", id: "new-group", onclick: () => this.showCreate() }, "New group")),
      this.list);
    sidebar.append(this.section);
    this.buildPane();
    layout.append(this.pane);
  }

  buildPane() {
    this.title = h("h2", { id: "group-title" });
    this.sub = h("span", { class: "typing", id: "group-sub" });
    this.messages = h("ol", { id: "group-messages", class: "messages", "aria-label": "Group messages", tabindex: "-1" });
    this.text = h("textarea", {
      id: "group-text", rows: "1", placeholder: "Message the group", "aria-label": "Message the group",
      onkeydown: (e) => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); this.submit(); } },
    });
    this.pane = h("section", { id: "group-chat", class: "chat", "aria-label": "Group chat", hidden: true },
      h("header", { class: "chat-head" },
        h("button", { type: "button", class: "back", "aria-label": "Back to conversations", onclick: () => this.app.close() }, "←"),
        h("div", { class: "chat-who" }, this.title, this.sub),
        h("button", { type: "button", id: "group-members-btn", onclick: () => this.showMembers() }, "Members")),
      this.messages,
      h("form", { class: "composer", id: "group-composer", onsubmit: (e) => { e.preventDefault(); this.submit(); } },
        this.text, h("button", { type: "submit", id: "group-send" }, "Send")));
  }

  // listen subscribes to the agent's group events (on: app.connectEvents').
  listen(on) {
    on("group_message", (ev) => this.onMessage(ev.group_message));
    on("group_update", (ev) => {
      if (ev.change === "removed" && ev.group === this.current) this.app.say("You were removed from this group.");
      this.refresh();
    });
    on("group_refused", (ev) => this.app.say("A group member was refused: " + (ev.detail || "")));
  }

  async refresh() {
    let r;
    try { r = await groupAPI.list(); } catch (e) {
      // No organization or no certificate: no groups on this device.
      if (e.kind === "forbidden") { this.section.hidden = true; return; }
      throw e;
    }
    this.section.hidden = false;
    this.groups = r.groups || [];
    await Promise.all(this.groups.map(async (g) => {
      const m = await groupAPI.messages(g.id, 100).catch(() => ({ messages: [] }));
      this.count(g.id, m.messages || []);
    }));
    this.render();
    this.app.updateTitle();
  }

  count(id, ms) {
    const seen = Number(localStorage.getItem(readKey(id)) || 0);
    if (id === this.current && this.visible()) {
      this.markRead(id, ms);
      this.unread.set(id, 0);
    } else {
      this.unread.set(id, ms.filter((m) => !m.outgoing && m.seq > seen).length);
    }
    if (ms.length) this.last.set(id, ms[ms.length - 1]);
  }

  markRead(id, ms) {
    const high = ms.reduce((n, m) => Math.max(n, m.seq || 0), Number(localStorage.getItem(readKey(id)) || 0));
    localStorage.setItem(readKey(id), String(high));
  }

  visible() { return document.visibilityState === "visible" && !this.pane.hidden; }

  totalUnread() {
    let n = 0;
    for (const v of this.unread.values()) n += v;
    return n;
  }

  render() {
    const self = this.app.status?.user;
    const items = this.groups.map((g) => {
      const cur = g.id === this.current;
      const n = this.unread.get(g.id) || 0;
      const last = this.last.get(g.id);
      return h("li", {},
        h("button", {
          class: "conv group" + (cur ? " current" : ""), "data-group": g.id, "aria-current": cur ? "true" : null,
          onclick: () => this.open(g.id),
        },
        h("span", { class: "conv-name" }, groupName(g, self)),
        last ? h("span", { class: "conv-when" }, fmt.when(new Date(last.received))) : null,
        h("span", { class: "conv-last" }, last ? (last.outgoing ? "You: " : last.from + ": ") + last.text : `${new Set(g.members.map((m) => m.user)).size} members`),
        n ? h("span", { class: "badge", "aria-label": `${n} unread` }, String(n)) : null));
    });
    replace(this.list, items.length ? items : h("li", { class: "empty" }, "No groups yet."));
  }

  // hide is called when a 1:1 chat opens in the same place.
  hide() {
    this.current = null;
    this.pane.hidden = true;
    this.render();
  }

  async open(id) {
    const app = this.app;
    app.peer = null;
    app.chatPane.hidden = true;
    app.placeholder.hidden = true;
    app.root.classList.add("in-chat");
    app.list.render();
    this.current = id;
    this.pane.hidden = false;
    this.render();
    try {
      const [g, m] = await Promise.all([groupAPI.get(id), groupAPI.messages(id)]);
      this.group = g.group;
      this.msgs = m.messages || [];
      this.showHead();
      this.renderMessages();
      this.count(id, this.msgs);
      this.render();
      app.updateTitle();
      this.text.focus();
    } catch (e) { app.error(e); }
  }

  showHead() {
    const g = this.group;
    this.title.textContent = groupName(g, this.app.status?.user);
    const users = new Set(g.members.map((m) => m.user));
    this.sub.textContent = `${users.size} members · ${g.members.length} devices`;
  }

  onMessage(m) {
    if (!m) return;
    if (m.group === this.current) {
      if (!this.msgs.some((x) => x.seq === m.seq && x.from === m.from && x.text === m.text)) this.msgs.push(m);
      this.renderMessages();
    }
    const g = this.groups.find((x) => x.id === m.group);
    if (!g) { this.refresh(); return; }
    this.last.set(m.group, m);
    if (m.group === this.current && this.visible()) this.markRead(m.group, [m]);
    else if (!m.outgoing) this.unread.set(m.group, (this.unread.get(m.group) || 0) + 1);
    this.render();
    this.app.updateTitle();
  }

  renderMessages() {
    const items = [];
    let lastDay = "";
    for (const m of this.msgs) {
      const d = new Date(m.received);
      if (fmt.dayKey(d) !== lastDay) {
        lastDay = fmt.dayKey(d);
        items.push(h("li", { class: "day", role: "separator" }, fmt.day(d)));
      }
      items.push(h("li", { class: "msg " + (m.outgoing ? "out" : "in"), "data-seq": m.seq, tabindex: "0" },
        h("div", { class: "bubble" },
          m.outgoing ? null : h("p", { class: "quote-from group-from" }, m.from),
          h("p", { class: "text", dir: "auto" }, m.text),
          h("div", { class: "meta" }, h("time", { datetime: m.received }, fmt.time(d))))));
    }
    replace(this.messages, items.length ? items : h("li", { class: "empty" }, "No messages yet."));
    this.messages.scrollTop = this.messages.scrollHeight;
  }

  async submit() {
    const text = this.text.value.trim();
    if (!text || !this.current) return;
    this.text.value = "";
    try {
      const r = await groupAPI.send(this.current, text);
      this.onMessage(r.message);
    } catch (e) { this.text.value = text; this.app.error(e); }
  }

  // showMembers lists the group's members, each with their verification
  // state as this device knows it, and adds or removes members.
  async showMembers() {
    const id = this.current;
    let g, contacts;
    try {
      [g, contacts] = await Promise.all([groupAPI.get(id), call("GET", "/contacts").catch(() => ({ contacts: [] }))]);
    } catch (e) { this.app.error(e); return; }
    g = g.group;
    const self = this.app.status?.user;
    const byUser = new Map((contacts.contacts || []).map((c) => [c.user, c]));
    const devices = new Map();
    for (const m of g.members) devices.set(m.user, [...(devices.get(m.user) || []), m.device]);
    const state = (u) => {
      if (u === self) return ["you", "self"];
      const c = byUser.get(u);
      if (!c) return ["not compared yet", "unverified"];
      if (c.changed) return ["safety number changed", "changed"];
      return c.verified ? ["✓ verified", "verified"] : ["not verified", "unverified"];
    };
    const list = h("ul", { class: "members" });
    const dlg = h("dialog", { class: "group-members", "aria-labelledby": "gm-h" });
    const renderList = () => replace(list, [...devices.keys()].map((u) => {
      const [text, cls] = state(u);
      return h("li", { "data-user": u },
        h("span", { class: "member-name" }, u),
        h("span", { class: "member-devices" }, ` · ${devices.get(u).length} device${devices.get(u).length > 1 ? "s" : ""}`),
        h("span", { class: "member-state " + cls }, " · " + text),
        u === self ? null : [" ", h("button", {
          type: "button", class: "member-remove", "aria-label": `Remove ${u} from the group`, onclick: async () => {
            if (!(await this.app.confirm(`Remove ${u} from the group? Their devices stop receiving its messages.`, "Remove"))) return;
            try { const r = await groupAPI.remove(id, [u]); dlg.close(); this.afterChange(r.group, `${u} removed.`); } catch (e) { this.app.error(e); }
          },
        }, "Remove")]);
    }));
    renderList();
    const addInput = h("input", { id: "member-add", placeholder: "user name", "aria-label": "Add a member", autocomplete: "off", required: true });
    const msg = h("p", { class: "hint", role: "status" });
    dlg.append(
      h("h2", { id: "gm-h" }, `Members of ${groupName(g, self)}`),
      h("p", { class: "hint" }, "Verified: you compared safety numbers with them. A member's safety number that changed is not trusted until you compare it again."),
      list,
      h("form", {
        class: "member-add-form", onsubmit: async (e) => {
          e.preventDefault();
          const u = addInput.value.trim();
          if (!u) return;
          msg.textContent = `Adding ${u}…`;
          try { const r = await groupAPI.add(id, [u]); dlg.close(); this.afterChange(r.group, `${u} added.`); } catch (err) { msg.textContent = err.message; }
        },
      }, addInput, h("button", { type: "submit", id: "member-add-btn" }, "Add")),
      msg,
      h("form", { method: "dialog" }, h("button", { class: "members-close" }, "Close")));
    dlg.addEventListener("close", () => dlg.remove());
    document.body.append(dlg);
    dlg.showModal();
  }

  afterChange(g, said) {
    if (g && g.id === this.current) { this.group = g; this.showHead(); }
    this.app.say(said);
    this.refresh();
  }

  // showCreate makes a new group: a name (in the encrypted group context,
  // shown to every member) and members.
  showCreate() {
    const name = h("input", { id: "group-name", "aria-label": "Group name", placeholder: "team", autocomplete: "off" });
    const users = h("input", { id: "group-users", "aria-label": "Members (user names, separated by commas)", placeholder: "bob, carol", autocomplete: "off", required: true });
    const msg = h("p", { class: "hint", role: "status" });
    const dlg = h("dialog", { class: "group-create", "aria-labelledby": "gc-h" },
      h("h2", { id: "gc-h" }, "New group"),
      h("form", {
        class: "stack", onsubmit: async (e) => {
          e.preventDefault();
          const us = users.value.split(/[,\s]+/).map((u) => u.trim()).filter(Boolean);
          if (!us.length) return;
          msg.textContent = "Creating the group…";
          try {
            const r = await groupAPI.create(name.value.trim(), us);
            dlg.close();
            await this.refresh();
            this.open(r.group.id);
          } catch (err) { msg.textContent = err.message; }
        },
      },
      h("label", { for: "group-name" }, "Name (every member sees it)"), name,
      h("label", { for: "group-users" }, "Members"), users,
      h("button", { type: "submit", id: "group-create-btn" }, "Create")),
      msg,
      h("form", { method: "dialog" }, h("button", { class: "group-create-close" }, "Cancel")));
    dlg.addEventListener("close", () => dlg.remove());
    document.body.append(dlg);
    dlg.showModal();
    name.focus();
  }
}
