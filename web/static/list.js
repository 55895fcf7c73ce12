// list.js: the conversation list, new chats and search.
import { h, replace, $ } from "./dom.js";
import { api } from "./api.js";
import * as fmt from "./format.js";

export class ConversationList {
  constructor(app, root) {
    this.app = app;
    this.root = root;
    this.convs = [];
    this.results = null; // search results, when searching
    this.search = h("input", {
      id: "search", type: "search", placeholder: "Search messages", "aria-label": "Search messages",
      autocomplete: "off", onkeydown: (e) => {
        if (e.key === "Enter") { e.preventDefault(); this.runSearch(this.search.value); }
        if (e.key === "Escape") { this.search.value = ""; this.runSearch(""); }
      },
      oninput: () => { if (this.search.value === "") this.runSearch(""); },
    });
    this.newPeer = h("input", { id: "new-peer", name: "peer", placeholder: "New chat: user name", "aria-label": "Start a chat with", autocomplete: "off", required: true });
    this.list = h("ul", { id: "conv-list", class: "conv-list", "aria-label": "Conversations" });
    replace(root,
      h("form", { role: "search", onsubmit: (e) => { e.preventDefault(); this.runSearch(this.search.value); } }, this.search),
      h("form", { id: "new-chat", onsubmit: (e) => { e.preventDefault(); this.startChat(); } },
        this.newPeer, h("button", { type: "submit", title: "Start the chat" }, "Start")),
      this.list);
  }

  async refresh() {
    const r = await api.conversations();
    this.convs = r.conversations || [];
    this.render();
    this.app.updateTitle();
  }

  startChat() {
    const peer = this.newPeer.value.trim();
    if (!peer) return;
    this.newPeer.value = "";
    this.app.open(peer);
  }

  async runSearch(q) {
    q = q.trim();
    if (!q) { this.results = null; this.render(); return; }
    const r = await api.search(q);
    this.results = r.messages || [];
    this.render();
  }

  totalUnread() {
    return this.convs.reduce((n, c) => n + (c.unread || 0), 0);
  }

  render() {
    if (this.results) {
      const items = this.results.map((m) => h("li", {},
        h("button", { class: "conv result", "data-peer": m.peer, "data-id": m.id, onclick: () => this.app.open(m.peer, m.id) },
          h("span", { class: "conv-name" }, m.peer),
          h("span", { class: "conv-when" }, fmt.when(new Date(m.sent_at))),
          h("span", { class: "conv-last" }, (m.outgoing ? "You: " : "") + (m.text || "")))));
      replace(this.list, items.length ? items : h("li", { class: "empty" }, "No message matches."));
      this.list.setAttribute("aria-label", "Search results");
      return;
    }
    this.list.setAttribute("aria-label", "Conversations");
    const items = this.convs.map((c) => {
      const last = c.last;
      const current = c.peer === this.app.peer;
      return h("li", {},
        h("button", {
          class: "conv" + (current ? " current" : ""), "data-peer": c.peer,
          "aria-current": current ? "true" : null,
          onclick: () => this.app.open(c.peer),
        },
        h("span", { class: "conv-name" }, c.peer),
        last ? h("span", { class: "conv-when" }, fmt.when(new Date(last.sent_at))) : null,
        h("span", { class: "conv-last" }, last ? preview(last) : ""),
        c.unread ? h("span", { class: "badge", "aria-label": `${c.unread} unread` }, String(c.unread)) : null));
    });
    replace(this.list, items.length ? items : h("li", { class: "empty" }, "No conversations yet."));
  }

  // move selects the conversation delta places away from the open one.
  move(delta) {
    if (!this.convs.length) return;
    let i = this.convs.findIndex((c) => c.peer === this.app.peer);
    i = Math.max(0, Math.min(this.convs.length - 1, i + delta));
    this.app.open(this.convs[i].peer);
    $(`.conv[data-peer="${CSS.escape(this.convs[i].peer)}"]`, this.list)?.focus();
  }
}

export function preview(m) {
  if (m.deleted) return "Deleted";
  let t = m.text || "";
  if (m.attachment) t = "📎 " + m.attachment.name + (t ? " " + t : "");
  if (m.kind === "timer") t = "Disappearing messages: " + fmt.duration(m.timer_seconds);
  return (m.outgoing ? "You: " : "") + t;
}
