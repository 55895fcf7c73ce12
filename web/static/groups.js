// groups.js: group chats (the agent's /v1/groups, MLS in the agent): the
// groups in the sidebar with unread counts, a group's chat (GroupChat:
// chat.js's Chat with the group's header and API, so replies, reactions,
// edits, deletes, files and the timer are the 1:1 chat's code), its
// members with each one's role and verification state, adding and
// removing members, admin roles, the announcement switch, the name and
// description, leaving, and creating a group.
//
// The app also keeps, per group, the highest seq this browser showed, in
// localStorage: the unread count in the list (the agent's read mark, and
// the receipts when they are on, go with POST …/read).
import { h, replace } from "./dom.js";
import { call, fetchBlob, upload } from "./api.js";
import { Chat } from "./chat.js";
import * as fmt from "./format.js";

const enc = encodeURIComponent;
const gpath = (id, rest = "") => `/groups/${enc(id)}${rest}`;
const mpath = (id, msg, rest = "") => gpath(id, `/messages/${enc(msg)}${rest}`);

export const groupAPI = {
  list: () => call("GET", "/groups"),
  get: (id) => call("GET", gpath(id)),
  create: (name, users) => call("POST", "/groups", { name, users }),
  add: (id, users) => call("POST", gpath(id, "/add"), { users }),
  remove: (id, users) => call("POST", gpath(id, "/remove"), { users }),
  messages: (id, limit = 200) => call("GET", gpath(id, `/messages?limit=${limit}`)),
  send: (id, text, quoteID) => call("POST", gpath(id, "/messages"), quoteID ? { text, quote_id: quoteID } : { text }),
  react: (id, msg, emoji) => call("POST", mpath(id, msg, "/react"), { emoji }),
  edit: (id, msg, text) => call("POST", mpath(id, msg, "/edit"), { text }),
  deleteMessage: (id, msg) => call("DELETE", mpath(id, msg)),
  contentURL: (id, msg) => "/api/v1" + mpath(id, msg, "/content"),
  filesPath: (id) => gpath(id, "/files"),
  timer: (id, seconds) => call("POST", gpath(id, "/timer"), { seconds }),
  read: (id) => call("POST", gpath(id, "/read")),
  rename: (id, name, description) => call("POST", gpath(id, "/rename"), { name, description }),
  admins: (id, users, admin) => call("POST", gpath(id, "/admins"), { users, admin }),
  announce: (id, announce) => call("POST", gpath(id, "/announce"), { announce }),
  leave: (id) => call("POST", gpath(id, "/leave")),
};

// GroupChat is a group's chat: Chat with the group's header (name,
// members, the member dialog's button, the timer) and API calls. Its
// peer is the group's id.
export class GroupChat extends Chat {
  constructor(app, root, groups) {
    super(app, root, "group-");
    this.groups = groups;
    this.viewOnceLabel.hidden = true; // no view-once files in groups yet
    this.text.placeholder = "Message the group";
    this.text.setAttribute("aria-label", "Message the group");
  }

  head() {
    this.title = h("h2", { id: "group-title" });
    this.sub = h("span", { class: "typing", id: "group-sub" });
    this.about = h("p", { class: "group-about", id: "group-about", dir: "auto" });
    return h("header", { class: "chat-head" },
      h("button", { type: "button", class: "back", "aria-label": "Back to conversations", onclick: () => this.app.close() }, "←"),
      h("div", { class: "chat-who" }, this.title, this.sub, this.about),
      h("button", { type: "button", id: "group-members-btn", onclick: () => this.groups.showMembers() }, "Members"),
      this.timerSel);
  }

  sendText(text, quoteID) { return groupAPI.send(this.peer, text, quoteID); }
  editText(id, text) { return groupAPI.edit(this.peer, id, text); }
  // The agent answers a group change with the message as it is now (its
  // events carry what others sent): shown at once.
  async reactTo(id, emoji) { this.afterSend(await groupAPI.react(this.peer, id, emoji)); }
  async removeMessage(id) { this.afterSend(await groupAPI.deleteMessage(this.peer, id)); }
  fetchContent(id) { return fetchBlob(groupAPI.contentURL(this.peer, id)); }
  uploadFile(file, opts) { return upload(groupAPI.filesPath(this.peer), file, { ...opts, viewOnce: false }); }
  async saveTimer(seconds) { this.afterSend(await groupAPI.timer(this.peer, seconds)); }
  afterSend(r) { if (r?.message) this.groups.onMessage(r.message); }
  sender(m) { return m.outgoing || m.kind ? null : h("p", { class: "quote-from group-from" }, m.from); }
  before(a, b) { return (a.seq || 0) - (b.seq || 0); }

  // put takes a group message in as the 1:1 chat's code reads one: its
  // id (a message of an older build has none: its seq then), receipts
  // as marks, the timer it was sent with.
  put(m) {
    if (!m.id) m.id = "seq-" + m.seq;
    if (!m.sent_at) m.sent_at = m.received;
    if (m.outgoing) {
      m.delivered = (m.delivered_to || []).length > 0;
      m.read = (m.read_by || []).length > 0;
    }
    if (m.kind !== "timer" && m.timer_seconds) m.expire_seconds = m.timer_seconds;
    super.put(m);
  }

  renderMessage(m) {
    // What this device detected about the group (a fork, a withheld
    // commit): a line of its own, no actions.
    if (m.kind === "alert") return h("li", { class: "msg system alert", "data-id": m.id, tabindex: "0", role: "alert" }, m.text);
    return super.renderMessage(m);
  }

  // open shows group g (from GET /v1/groups/{id}) with its messages.
  async open(g, ms) {
    if (g.id !== this.peer) {
      this.peer = g.id;
      this.msgs.clear();
      this.order = [];
      this.cancelBars();
      for (const u of this.blobs.values()) URL.revokeObjectURL(u);
      this.blobs.clear();
    }
    this.showHead(g);
    for (const m of ms) this.put(m);
    const timers = ms.filter((m) => m.kind === "timer");
    this.selectTimer(timers.length ? timers[timers.length - 1].timer_seconds || 0 : 0);
    this.render();
    this.markRead();
    this.text.focus();
  }

  showHead(g) {
    this.group = g;
    this.title.textContent = groupName(g, this.app.status?.user);
    const users = new Set(g.members.map((m) => m.user));
    this.sub.textContent = `${users.size} members · ${g.members.length} devices` + (g.policy?.announce ? " · only admins post" : "");
    this.about.textContent = g.description || "";
    this.about.hidden = !g.description;
  }

  onMessage(m) {
    if (m.group !== this.peer) return;
    this.put(m);
    if (m.kind === "timer") this.selectTimer(m.timer_seconds || 0);
    this.render();
    if (!m.outgoing) this.markRead();
  }

  markRead() {
    if (!this.peer || !this.groups.visible()) return;
    const unread = this.order.map((id) => this.msgs.get(id)).filter((m) => !m.outgoing && !m.read && !m.deleted && !m.kind && !m.id.startsWith("seq-"));
    if (!unread.length) return;
    for (const m of unread) m.read = true;
    groupAPI.read(this.peer).catch((e) => this.app.error(e));
  }

  onInput() {} // no typing indicator in groups
  stopTyping() {}
}

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
    this.pane = h("section", { id: "group-chat", class: "chat", "aria-label": "Group chat", hidden: true });
    this.chat = new GroupChat(this.app, this.pane, this);
  }

  // listen subscribes to the agent's group events (on: app.connectEvents').
  listen(on) {
    on("group_message", (ev) => this.onMessage(ev.group_message));
    on("group_update", async (ev) => {
      if (ev.change === "removed" && ev.group === this.current) this.app.say("You were removed from this group.");
      await this.refresh();
      if (ev.group === this.current) {
        const g = this.groups.find((x) => x.id === this.current);
        if (g) this.chat.showHead(g);
      }
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
        h("span", { class: "conv-last" }, last ? (last.outgoing ? "You: " : last.from + ": ") + (last.deleted ? "Deleted" : last.text || (last.attachment ? "📎 " + last.attachment.name : "")) : `${new Set(g.members.map((m) => m.user)).size} members`),
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
      const ms = m.messages || [];
      await this.chat.open(g.group, ms);
      this.count(id, ms);
      this.render();
      app.updateTitle();
    } catch (e) { app.error(e); }
  }

  onMessage(m) {
    if (!m) return;
    this.chat.onMessage(m);
    const g = this.groups.find((x) => x.id === m.group);
    if (!g) { this.refresh(); return; }
    const prev = this.last.get(m.group);
    if (!prev || (m.seq || 0) >= (prev.seq || 0)) this.last.set(m.group, m);
    if (m.updated) { this.render(); return; } // an earlier message changed: nothing new
    if (m.group === this.current && this.visible()) this.markRead(m.group, [m]);
    else if (!m.outgoing) this.unread.set(m.group, (this.unread.get(m.group) || 0) + 1);
    this.render();
    this.app.updateTitle();
  }

  // showMembers lists the group's members, each with their role and
  // verification state as this device knows it; adds or removes members,
  // makes or unmakes admins, switches the announcement rule, renames and
  // describes the group, and leaves it (what the group's policy lets this
  // user do: the agent refuses the rest with forbidden).
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
    const policy = g.policy; // null: a group made before policies, where everyone may do everything
    const admins = new Set(policy?.admins || []);
    const isAdmin = !policy || admins.has(self);
    const may = (what) => isAdmin || (policy.members_may || []).includes(what);
    const list = h("ul", { class: "members" });
    const dlg = h("dialog", { class: "group-members", "aria-labelledby": "gm-h" });
    const change = async (fn, said) => {
      try { const r = await fn(); dlg.close(); this.afterChange(r?.group, said); } catch (e) { this.app.error(e); }
    };
    const renderList = () => replace(list, [...devices.keys()].map((u) => {
      const [text, cls] = state(u);
      const admin = admins.has(u);
      return h("li", { "data-user": u },
        h("span", { class: "member-name" }, u),
        admin ? h("span", { class: "member-role" }, " · admin") : null,
        h("span", { class: "member-devices" }, ` · ${devices.get(u).length} device${devices.get(u).length > 1 ? "s" : ""}`),
        h("span", { class: "member-state " + cls }, " · " + text),
        policy && isAdmin && u !== self ? [" ", h("button", {
          type: "button", class: "member-admin", "aria-label": admin ? `Make ${u} a plain member` : `Make ${u} an admin`,
          onclick: () => change(() => groupAPI.admins(id, [u], !admin), admin ? `${u} is no longer an admin.` : `${u} is an admin.`),
        }, admin ? "Remove admin" : "Make admin")] : null,
        u === self || !may("remove") ? null : [" ", h("button", {
          type: "button", class: "member-remove", "aria-label": `Remove ${u} from the group`, onclick: async () => {
            if (!(await this.app.confirm(`Remove ${u} from the group? Their devices stop receiving its messages.`, "Remove"))) return;
            try { const r = await groupAPI.remove(id, [u]); dlg.close(); this.afterChange(r.group, `${u} removed.`); } catch (e) { this.app.error(e); }
          },
        }, "Remove")]);
    }));
    renderList();
    const addInput = h("input", { id: "member-add", placeholder: "user name", "aria-label": "Add a member", autocomplete: "off", required: true });
    const msg = h("p", { class: "hint", role: "status" });
    const nameInput = h("input", { id: "group-rename", "aria-label": "Group name", value: g.name || "", maxlength: "100", required: true, autocomplete: "off" });
    const descInput = h("textarea", { id: "group-description", "aria-label": "Group description", rows: "2", maxlength: "1000" });
    descInput.value = g.description || "";
    const announce = h("input", { type: "checkbox", id: "group-announce", checked: !!policy?.announce });
    dlg.append(
      h("h2", { id: "gm-h" }, `Members of ${groupName(g, self)}`),
      may("rename") ? h("form", {
        class: "group-rename-form stack", onsubmit: (e) => {
          e.preventDefault();
          const name = nameInput.value.trim();
          if (name) change(() => groupAPI.rename(id, name, descInput.value.trim()), "Group renamed.");
        },
      }, h("label", { for: "group-rename" }, "Name"), nameInput,
      h("label", { for: "group-description" }, "Description"), descInput,
      h("button", { type: "submit", id: "group-rename-btn" }, "Save name and description")) : null,
      policy && isAdmin ? h("label", { class: "group-announce" }, announce, " Announcement group: only admins post") : null,
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
      h("form", { method: "dialog" },
        h("button", {
          type: "button", id: "group-leave", class: "danger", onclick: async () => {
            if (!(await this.app.confirm(`Leave ${groupName(g, self)}? All your devices leave it, and you see none of its new messages.`, "Leave"))) return;
            try {
              await groupAPI.leave(id);
              dlg.close();
              this.hide();
              this.app.placeholder.hidden = false;
              this.app.close();
              this.app.say(`You left ${groupName(g, self)}.`);
              this.refresh();
            } catch (e) { this.app.error(e); }
          },
        }, "Leave the group"),
        " ",
        h("button", { class: "members-close" }, "Close")));
    announce.addEventListener("change", () => change(() => groupAPI.announce(id, announce.checked),
      announce.checked ? "Only admins post now." : "Every member posts now."));
    dlg.addEventListener("close", () => dlg.remove());
    document.body.append(dlg);
    dlg.showModal();
  }

  afterChange(g, said) {
    if (g && g.id === this.current) this.chat.showHead(g);
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
