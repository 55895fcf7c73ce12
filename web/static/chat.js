// chat.js: one conversation: messages with dates, receipts, replies,
// reactions, edits, deletes, disappearing timers and attachments, and the
// composer. Chat is a 1:1 conversation; a group chat (groups.js,
// GroupChat) is a Chat whose header, API calls and event handling are
// the group's: every message feature is this one code.
import { h, replace, $ } from "./dom.js";
import { api, fetchBlob, upload } from "./api.js";
import * as fmt from "./format.js";
import { scanVerify } from "./scan.js";

const reactions = ["👍", "❤️", "😂", "😮", "😢", "🙏"];

export class Chat {
  // prefix starts the id of each element of this chat (a page holds a
  // 1:1 chat and a group chat).
  constructor(app, root, prefix = "") {
    this.app = app;
    this.root = root;
    this.prefix = prefix;
    this.peer = null;
    this.msgs = new Map(); // id → message
    this.order = []; // ids, oldest first
    this.replyTo = null;
    this.editing = null;
    this.typingTimer = null;
    this.sentTyping = false;
    this.blobs = new Map(); // message id → object URL of its attachment
    this.build();
  }

  id(name) { return this.prefix + name; }

  build() {
    this.timerSel = h("select", { id: this.id("timer"), "aria-label": "Disappearing messages", onchange: () => this.setTimer() },
      fmt.timers.map((s) => h("option", { value: s }, s ? `Disappear after ${fmt.duration(s)}` : "Messages stay")));
    this.banner = h("div", { class: "banner warn", role: "alert", hidden: true });
    this.list = h("ol", { id: this.id("messages"), class: "messages", "aria-label": "Messages", tabindex: "-1" });
    this.replyBar = h("div", { class: "reply-bar", hidden: true });
    this.text = h("textarea", {
      id: this.id("composer-text"), rows: "1", placeholder: "Message", "aria-label": "Message",
      onkeydown: (e) => this.onKey(e), oninput: () => this.onInput(),
    });
    this.file = h("input", { type: "file", id: this.id("file"), class: "visually-hidden", tabindex: "-1", "aria-label": "File to send", onchange: () => this.sendFiles(this.file.files) });
    this.viewOnce = h("input", { type: "checkbox", id: this.id("view-once") });
    this.viewOnceLabel = h("label", { class: "view-once", title: "The recipient can open the attachment once" }, this.viewOnce, "once");
    this.progress = h("progress", { id: this.id("upload-progress"), max: "1", value: "0", hidden: true, "aria-label": "Upload" });
    this.composer = h("form", { id: this.id("composer"), class: "composer", onsubmit: (e) => { e.preventDefault(); this.submit(); } },
      h("button", { type: "button", id: this.id("attach"), title: "Attach a file", "aria-label": "Attach a file", onclick: () => this.file.click() }, "📎"),
      this.file,
      this.viewOnceLabel,
      this.text,
      h("button", { type: "submit", id: this.id("send") }, "Send"));
    replace(this.root, this.head(), this.banner, this.list, this.progress, this.replyBar, this.composer);
    // Drag and drop anywhere on the chat.
    this.root.addEventListener("dragover", (e) => { e.preventDefault(); this.root.classList.add("drop"); });
    this.root.addEventListener("dragleave", () => this.root.classList.remove("drop"));
    this.root.addEventListener("drop", (e) => {
      e.preventDefault();
      this.root.classList.remove("drop");
      if (e.dataTransfer?.files?.length) this.sendFiles(e.dataTransfer.files);
    });
  }

  // head is the chat's header: the peer, whether verified, typing, and
  // the call, safety number and timer controls.
  head() {
    this.title = h("h2", { id: "chat-title" });
    this.typingEl = h("span", { class: "typing", "aria-live": "polite" });
    this.verifiedEl = h("span", { class: "verified", hidden: true, title: "You compared safety numbers" }, "✓ verified");
    return h("header", { class: "chat-head" },
      h("button", { type: "button", class: "back", "aria-label": "Back to conversations", onclick: () => this.app.close() }, "←"),
      h("div", { class: "chat-who" }, this.title, this.verifiedEl, this.typingEl),
      h("button", { type: "button", id: "call-btn", onclick: () => this.app.calls.dial(this.peer) }, "Call"),
      h("button", { type: "button", id: "safety-btn", onclick: () => this.showSafetyNumber() }, "Safety number"),
      this.timerSel);
  }

  // The conversation's API calls (GroupChat has the group's).
  sendText(text, quoteID) { return api.send(this.peer, text, quoteID); }
  editText(id, text) { return api.edit(this.peer, id, text); }
  reactTo(id, emoji) { return api.react(this.peer, id, emoji); }
  removeMessage(id) { return api.remove(this.peer, id); }
  fetchContent(id) { return fetchBlob(api.contentURL(id)); }
  uploadFile(file, opts) { return upload(`/conversations/${encodeURIComponent(this.peer)}/files`, file, opts); }
  saveTimer(seconds) { return api.setTimer(this.peer, seconds); }
  afterSend(r) {
    if (r?.sealed_downgrade) this.app.say(`This message went to ${this.peer} with your name visible to the relay (sealed delivery was refused).`);
    this.app.list.refresh();
  }
  // sender is shown above an incoming message (a group's: who wrote it).
  sender() { return null; }
  // before orders two messages.
  before(a, b) { return new Date(a.sent_at) - new Date(b.sent_at); }

  async open(peer, focusID) {
    if (peer !== this.peer) {
      this.stopTyping();
      this.peer = peer;
      this.msgs.clear();
      this.order = [];
      this.cancelBars();
      for (const u of this.blobs.values()) URL.revokeObjectURL(u);
      this.blobs.clear();
      this.typingEl.textContent = "";
      this.banner.hidden = true;
    }
    this.title.textContent = peer;
    const [r, t] = await Promise.all([api.messages(peer), api.timer(peer).catch(() => ({ seconds: 0 }))]);
    for (const m of r.messages || []) this.put(m);
    this.selectTimer(t.seconds || 0);
    this.render();
    this.refreshContact();
    this.markRead();
    if (focusID) {
      const el = $(`[data-id="${CSS.escape(focusID)}"]`, this.list);
      if (el) { el.scrollIntoView({ block: "center" }); el.classList.add("found"); el.focus(); }
    } else {
      this.text.focus();
    }
  }

  selectTimer(s) {
    if (!fmt.timers.includes(s)) this.timerSel.append(h("option", { value: s }, `Disappear after ${fmt.duration(s)}`));
    this.timerSel.value = String(s);
  }

  put(m) {
    if (!this.msgs.has(m.id)) this.order.push(m.id);
    this.msgs.set(m.id, m);
  }

  // onEvent handles an agent event about this conversation.
  onEvent(ev) {
    const m = ev.message;
    switch (ev.type) {
      case "message":
      case "update":
        if (m.peer !== this.peer) return;
        this.put(m);
        if (m.kind === "timer") this.selectTimer(m.timer_seconds || 0);
        this.render();
        if (ev.type === "message" && !m.outgoing) this.markRead();
        break;
      case "expired":
        if (this.msgs.delete(m.id)) {
          this.order = this.order.filter((id) => id !== m.id);
          this.render();
        }
        break;
      case "receipt": {
        let changed = false;
        for (const id of ev.receipt.ids || []) {
          const x = this.msgs.get(id);
          if (!x) continue;
          x.delivered = true;
          if (ev.receipt.read) x.read = true;
          changed = true;
        }
        if (changed) this.render();
        break;
      }
      case "typing":
        if (ev.user === this.peer) this.typingEl.textContent = ev.typing ? "typing…" : "";
        break;
      case "identity_changed":
        if (ev.user === this.peer) this.showIdentityChanged();
        break;
    }
  }

  showIdentityChanged() {
    replace(this.banner,
      h("p", {}, `${this.peer}'s safety number changed. Nothing is sent to them until you compare the new one with them and accept it.`),
      h("button", { type: "button", class: "compare", onclick: () => this.showSafetyNumber() }, "Compare safety numbers"));
    this.banner.hidden = false;
  }

  // refreshContact shows whether the peer is verified, or changed.
  async refreshContact() {
    const peer = this.peer;
    let r;
    try { r = await api.contacts(); } catch { return; }
    if (peer !== this.peer) return;
    const c = (r.contacts || []).find((x) => x.user === peer);
    this.verifiedEl.hidden = !c?.verified;
    if (c?.changed) this.showIdentityChanged();
    else this.banner.hidden = true;
  }

  // showSafetyNumber shows the safety number as text (12 groups of 5
  // digits) and as a QR code, and lets the person mark it verified once
  // they compared it with the other person's.
  async showSafetyNumber() {
    const peer = this.peer;
    let sn;
    try { sn = await api.safetyNumber(peer); } catch (e) { this.app.error(e); return; }
    const groups = (sn.digits || "").replace(/\s+/g, "").match(/.{1,5}/g) || [];
    const state = h("p", { class: "sn-state", role: "status" },
      sn.changed ? "Their safety number changed: compare the new one before you accept it."
        : sn.verified ? "You marked this safety number as verified." : "Not verified yet.");
    const verify = h("button", {
      type: "button", class: "sn-verify", onclick: async () => {
        try {
          await api.verify(peer);
          state.textContent = "You marked this safety number as verified.";
          verify.hidden = true;
          this.refreshContact();
        } catch (e) { this.app.error(e); }
      },
    }, sn.changed ? "Accept the new safety number" : "Mark as verified");
    verify.hidden = sn.verified && !sn.changed;
    const dlg = h("dialog", { class: "safety", "aria-labelledby": "sn-h" },
      h("h2", { id: "sn-h" }, `Safety number with ${peer}`),
      h("p", {}, "Compare these digits with the ones on their device, in person or on a call you trust. If they match, nobody is between you."),
      h("p", { class: "sn-digits", "aria-label": "Safety number digits" }, groups.map((g) => h("span", {}, g))),
      sn.scannable ? h("img", { class: "sn-qr", src: "/qr.png?data=" + encodeURIComponent(sn.scannable), alt: "The safety number as a QR code, to scan with their device" }) : null,
      state,
      scanVerify(this.app, peer, state, () => { verify.hidden = true; this.refreshContact(); }),
      h("form", { method: "dialog" }, verify, h("button", { class: "sn-close" }, "Close")));
    dlg.addEventListener("close", () => dlg.remove());
    document.body.append(dlg);
    dlg.showModal();
  }

  markRead() {
    if (document.visibilityState !== "visible" || !this.peer) return;
    const ids = this.order.map((id) => this.msgs.get(id)).filter((m) => !m.outgoing && !m.read && !m.deleted).map((m) => m.id);
    if (!ids.length) return;
    for (const id of ids) this.msgs.get(id).read = true;
    api.markRead(this.peer, ids).then(() => this.app.list.refresh()).catch((e) => this.app.error(e));
  }

  render() {
    const atBottom = this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 40;
    const focusedID = document.activeElement?.closest?.(".msg")?.dataset.id;
    const items = [];
    let lastDay = "";
    const sorted = this.order.map((id) => this.msgs.get(id)).sort((a, b) => this.before(a, b));
    for (const m of sorted) {
      const d = new Date(m.sent_at);
      if (fmt.dayKey(d) !== lastDay) {
        lastDay = fmt.dayKey(d);
        items.push(h("li", { class: "day", role: "separator" }, fmt.day(d)));
      }
      items.push(this.renderMessage(m));
    }
    replace(this.list, items);
    if (focusedID) $(`[data-id="${CSS.escape(focusedID)}"]`, this.list)?.focus();
    if (atBottom || !focusedID) this.list.scrollTop = this.list.scrollHeight;
  }

  renderMessage(m) {
    const d = new Date(m.sent_at);
    if (m.kind === "timer") {
      return h("li", { class: "msg system", "data-id": m.id, tabindex: "0" },
        `${m.outgoing ? "You" : m.from} set disappearing messages to ${fmt.duration(m.timer_seconds)}.`);
    }
    const quoted = m.quote_id ? this.msgs.get(m.quote_id) : null;
    const edited = (m.versions || []).length > 1;
    const parts = [this.sender(m)];
    if (m.unverified) parts.push(h("p", { class: "unverified" }, "⚠ Sent while their safety number had changed: it may not come from them."));
    if (m.quote_id) {
      parts.push(h("blockquote", { class: "quote" },
        quoted ? [h("span", { class: "quote-from" }, quoted.outgoing ? "You" : quoted.from), " ", quoted.deleted ? "Deleted" : (quoted.text || quoted.attachment?.name || "")] : "A message not on this device"));
    }
    if (m.deleted) {
      parts.push(h("p", { class: "text deleted" }, "This message was deleted."));
    } else {
      if (m.attachment) parts.push(this.renderAttachment(m));
      if (m.text) parts.push(h("p", { class: "text", dir: "auto" }, m.text));
    }
    const marks = m.outgoing ? (m.read ? ["✓✓", "Read", "read"] : m.delivered ? ["✓✓", "Delivered", "delivered"] : ["✓", "Sent", "sent"]) : null;
    parts.push(h("div", { class: "meta" },
      h("time", { datetime: m.sent_at, title: d.toLocaleString() }, fmt.time(d)),
      edited ? h("span", { class: "edited" }, "edited") : null,
      m.expires_at || m.expire_seconds ? h("span", { class: "expires", title: m.expires_at ? "Disappears " + new Date(m.expires_at).toLocaleString() : "Disappears after it is read" }, "⏱ " + fmt.duration(m.expire_seconds)) : null,
      marks ? h("span", { class: "mark " + marks[2], title: marks[1], "aria-label": marks[1] }, marks[0]) : null));
    if ((m.reactions || []).length) {
      const counts = new Map();
      for (const r of m.reactions) {
        const c = counts.get(r.emoji) || [];
        c.push(r.from);
        counts.set(r.emoji, c);
      }
      parts.push(h("ul", { class: "reactions", "aria-label": "Reactions" },
        [...counts].map(([emoji, who]) => h("li", { title: who.join(", ") }, `${emoji} ${who.length}`))));
    }
    if (!m.deleted) parts.push(this.renderActions(m));
    return h("li", {
      class: "msg " + (m.outgoing ? "out" : "in"), "data-id": m.id, tabindex: "0",
      "aria-label": `${m.outgoing ? "You" : m.from}, ${fmt.time(d)}`,
      onkeydown: (e) => this.onMessageKey(e, m),
    }, h("div", { class: "bubble" }, parts));
  }

  renderActions(m) {
    // Which message's reaction menu is open survives a redraw (an event
    // may come in while the person picks).
    const open = this.reactMenuFor === m.id;
    const pick = (emoji) => { this.reactMenuFor = null; menu.hidden = true; this.react(m, emoji); };
    const menu = h("div", { class: "react-menu", hidden: !open, role: "group", "aria-label": "React with" },
      reactions.map((e) => h("button", { type: "button", class: "react-pick", "aria-label": `React ${e}`, onclick: () => pick(e) }, e)),
      h("button", { type: "button", class: "react-pick", "aria-label": "Withdraw reaction", onclick: () => pick("") }, "✕"));
    return h("div", { class: "actions" },
      h("button", { type: "button", class: "act-reply", onclick: () => this.startReply(m) }, "Reply"),
      h("button", {
        type: "button", class: "act-react", "aria-expanded": String(open), onclick: (e) => {
          menu.hidden = !menu.hidden;
          this.reactMenuFor = menu.hidden ? null : m.id;
          e.currentTarget.setAttribute("aria-expanded", String(!menu.hidden));
          if (!menu.hidden) menu.querySelector("button").focus();
        },
      }, "React"),
      m.outgoing && m.text && !m.attachment ? h("button", { type: "button", class: "act-edit", onclick: () => this.startEdit(m) }, "Edit") : null,
      m.outgoing ? h("button", { type: "button", class: "act-delete", onclick: () => this.confirmDelete(m) }, "Delete") : null,
      menu);
  }

  renderAttachment(m) {
    const a = m.attachment;
    const box = h("div", { class: "attachment" });
    const label = h("span", { class: "att-name" }, `📎 ${a.name} (${fmt.size(a.size || 0)})`);
    if (a.view_once) {
      if (m.outgoing) {
        replace(box, label, h("span", { class: "att-note" }, " · view once"));
      } else if (a.opened) {
        replace(box, label, h("span", { class: "att-note opened" }, " · opened"));
      } else {
        replace(box, label, h("button", { type: "button", class: "view-once-open", onclick: () => this.openOnce(m) }, "View once"));
      }
      return box;
    }
    const isImage = (a.content_type || "").startsWith("image/") && !/svg/.test(a.content_type);
    const show = h("button", { type: "button", class: "att-open", onclick: () => this.openAttachment(m, box, isImage) }, isImage ? "Show" : "Save");
    replace(box, label, " ", show);
    if (isImage && (a.size || 0) < 8 << 20 && !m.outgoing) this.openAttachment(m, box, true);
    else if (isImage && m.outgoing && (a.size || 0) < 8 << 20) this.openAttachment(m, box, true);
    return box;
  }

  async openAttachment(m, box, inline) {
    try {
      // Fetched once per page: the list is redrawn often, and the agent
      // may need the relay to fetch the file again.
      let url = this.blobs.get(m.id);
      if (!url) {
        const blob = await this.fetchContent(m.id);
        url = URL.createObjectURL(blob);
        this.blobs.set(m.id, url);
      }
      if (inline) {
        replace(box, h("img", { class: "preview", src: url, alt: m.attachment.name }),
          h("a", { href: url, download: m.attachment.name, class: "att-save" }, `Save ${m.attachment.name}`));
      } else {
        const a = h("a", { href: url, download: m.attachment.name });
        a.click();
      }
    } catch (e) {
      replace(box, h("span", { class: "att-name" }, `📎 ${m.attachment.name}: ${e.message} `),
        h("button", { type: "button", class: "att-retry", onclick: () => this.openAttachment(m, box, inline) }, "Retry"));
    }
  }

  // openOnce shows a view-once attachment in a dialog; closing it forgets
  // the bytes. The agent destroys the key as it sends them.
  async openOnce(m) {
    let blob;
    try {
      blob = await this.fetchContent(m.id);
    } catch (e) {
      this.app.error(e);
      m.attachment.opened = true;
      this.render();
      return;
    }
    m.attachment.opened = true;
    this.render();
    const url = URL.createObjectURL(blob);
    const isImage = blob.type.startsWith("image/") && !/svg/.test(blob.type);
    const body = isImage ? h("img", { class: "once-view", src: url, alt: m.attachment.name })
      : h("p", {}, `${m.attachment.name} (${fmt.size(blob.size)}) can be shown once only as an image.`);
    const dlg = h("dialog", { class: "once", "aria-label": "View once" },
      h("p", {}, "View once: this closes for good."), body,
      h("form", { method: "dialog" }, h("button", { class: "once-close" }, "Close")));
    dlg.addEventListener("close", () => { URL.revokeObjectURL(url); dlg.remove(); });
    document.body.append(dlg);
    dlg.showModal();
  }

  async react(m, emoji) {
    try { await this.reactTo(m.id, emoji); } catch (e) { this.app.error(e); }
  }

  confirmDelete(m) {
    const dlg = h("dialog", { class: "confirm", role: "alertdialog", "aria-labelledby": "confirm-q" },
      h("p", { id: "confirm-q" }, "Delete this message for everyone?"),
      h("p", { class: "quote" }, m.text || m.attachment?.name || ""),
      h("form", { method: "dialog" },
        h("button", { value: "cancel", class: "cancel", autofocus: true }, "Cancel"),
        h("button", { value: "delete", class: "danger confirm-delete" }, "Delete")));
    dlg.addEventListener("close", async () => {
      dlg.remove();
      if (dlg.returnValue !== "delete") return;
      try {
        await this.removeMessage(m.id);
        m.deleted = true;
        this.render();
      } catch (e) { this.app.error(e); }
    });
    document.body.append(dlg);
    dlg.showModal();
  }

  startReply(m) {
    this.editing = null;
    this.replyTo = m;
    replace(this.replyBar, h("span", {}, "Replying to ", h("q", {}, m.text || m.attachment?.name || "")),
      h("button", { type: "button", "aria-label": "Cancel the reply", onclick: () => this.cancelBars() }, "✕"));
    this.replyBar.hidden = false;
    this.text.focus();
  }

  startEdit(m) {
    this.replyTo = null;
    this.editing = m;
    replace(this.replyBar, h("span", {}, "Editing"),
      h("button", { type: "button", "aria-label": "Cancel the edit", onclick: () => { this.cancelBars(); this.text.value = ""; } }, "✕"));
    this.replyBar.hidden = false;
    this.text.value = m.text;
    this.text.focus();
  }

  cancelBars() {
    this.replyTo = null;
    this.editing = null;
    this.replyBar.hidden = true;
  }

  async submit() {
    const text = this.text.value.trim();
    if (!text || !this.peer) return;
    const peer = this.peer;
    try {
      let r = null;
      if (this.editing) {
        r = await this.editText(this.editing.id, text);
      } else {
        r = await this.sendText(text, this.replyTo?.id);
      }
      if (r?.message && peer === this.peer) { this.put(r.message); this.render(); }
      this.text.value = "";
      this.cancelBars();
      this.stopTyping();
      this.afterSend(r);
    } catch (e) { this.app.error(e); }
  }

  async sendFiles(files) {
    const peer = this.peer;
    for (const f of files) {
      this.progress.hidden = false;
      this.progress.value = 0;
      try {
        const r = await this.uploadFile(f, { viewOnce: this.viewOnce.checked, onProgress: (p) => { this.progress.value = p; } });
        if (r?.message && peer === this.peer) { this.put(r.message); this.render(); }
        this.afterSend(r);
      } catch (e) { this.app.error(e); }
    }
    this.progress.hidden = true;
    this.viewOnce.checked = false;
    this.file.value = "";
  }

  async setTimer() {
    try { await this.saveTimer(Number(this.timerSel.value)); } catch (e) { this.app.error(e); }
  }

  onKey(e) {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      this.submit();
    } else if (e.key === "Escape") {
      if (!this.editing && !this.replyTo) {
        this.app.close(); // nothing to cancel: back to the list
        return;
      }
      if (this.editing) this.text.value = "";
      this.cancelBars();
    } else if (e.key === "ArrowUp" && this.text.value === "") {
      const own = this.order.map((id) => this.msgs.get(id)).filter((m) => m.outgoing && !m.deleted && m.text && !m.attachment).pop();
      if (own) { e.preventDefault(); this.startEdit(own); }
    }
  }

  onMessageKey(e, m) {
    if (e.target !== e.currentTarget) return;
    const sib = (el, dir) => { do { el = dir > 0 ? el.nextElementSibling : el.previousElementSibling; } while (el && !el.classList.contains("msg")); return el; };
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      sib(e.currentTarget, e.key === "ArrowDown" ? 1 : -1)?.focus();
    } else if (e.key === "r" && !m.deleted) {
      e.preventDefault();
      this.startReply(m);
    } else if ((e.key === "Delete" || e.key === "Backspace") && m.outgoing && !m.deleted) {
      e.preventDefault();
      this.confirmDelete(m);
    } else if (e.key === "e" && m.outgoing && m.text && !m.deleted) {
      e.preventDefault();
      this.startEdit(m);
    }
  }

  onInput() {
    if (!this.peer) return;
    if (!this.sentTyping && this.text.value) {
      this.sentTyping = true;
      api.typing(this.peer, true).catch(() => {});
    }
    clearTimeout(this.typingTimer);
    this.typingTimer = setTimeout(() => this.stopTyping(), 4000);
  }

  stopTyping() {
    clearTimeout(this.typingTimer);
    if (this.sentTyping && this.peer) api.typing(this.peer, false).catch(() => {});
    this.sentTyping = false;
  }
}
