// admin.js: the organization's console, for the admin's device (the one
// that holds the organization's key; the agent refuses every other):
// invitations with their QR code, members with their devices and
// certificates, notices, the device policy, and remote wipe with how far
// each order got (the device's signed confirmation).
import { h, replace } from "./dom.js";
import { call } from "./api.js";
import { showLink } from "./link.js";
import * as fmt from "./format.js";

export const adminAPI = {
  status: () => call("GET", "/admin"),
  invite: (user, days) => call("POST", "/admin/invitations", { user, days }),
  members: () => call("GET", "/admin/members"),
  certify: (user, days) => call("POST", "/admin/certify", { user, days }),
  notice: (text) => call("POST", "/admin/notices", { text }),
  policy: () => call("GET", "/admin/policy"),
  setPolicy: (p) => call("PUT", "/admin/policy", p),
  wipe: (user, device) => call("POST", "/admin/wipe", { user, device }),
  deliveries: (limit = 20) => call("GET", `/admin/deliveries?limit=${limit}`),
};

// installExtras adds the Link and Console buttons to the top bar; refresh
// (after each unlock) shows Console on the admin's device only.
export function installExtras(app, tools) {
  const link = h("button", { type: "button", id: "link-btn", onclick: () => showLink(app) }, "Link device");
  const consoleBtn = h("button", { type: "button", id: "console-btn", hidden: true, onclick: () => new Console(app).show() }, "Console");
  tools.prepend(link, consoleBtn);
  return {
    async refresh() {
      try {
        const s = await adminAPI.status();
        consoleBtn.hidden = !s.admin;
      } catch { consoleBtn.hidden = true; }
    },
  };
}

const b64 = (s) => btoa(String.fromCharCode(...new TextEncoder().encode(s)));

// qrImage draws text as a QR code (the web server's /qr.png).
export function qrImage(text, cls, alt) {
  return h("img", { class: cls, src: "/qr.png?data=" + encodeURIComponent(b64(text)), alt });
}

const policyFields = [
  ["failed_unlock_limit", "Wrong passphrases before a device wipes itself", "number"],
  ["idle_lock_seconds", "Idle lock (seconds, 0: never)", "number"],
  ["disappearing_min_seconds", "Shortest disappearing timer (seconds)", "number"],
  ["disappearing_max_seconds", "Longest disappearing timer (seconds, 0: no limit)", "number"],
  ["min_passphrase_bits", "Passphrase strength (bits, 0: the default)", "number"],
  ["attachments_disabled", "No attachments", "checkbox"],
  ["calls_disabled", "No calls", "checkbox"],
  ["sealed_only", "Sealed sender only (never fall back)", "checkbox"],
];

class Console {
  constructor(app) {
    this.app = app;
    this.status = h("p", { class: "console-status", role: "status" });
    this.members = h("div", { class: "console-members" }, h("p", {}, "Loading…"));
    this.invitation = h("div", { class: "console-invitation" });
    this.policyForm = h("form", { class: "console-policy stack", onsubmit: (e) => { e.preventDefault(); this.savePolicy(); } });
    this.deliveries = h("ol", { class: "console-deliveries", "aria-label": "Published documents" });
  }

  show() {
    const inviteUser = h("input", { id: "invite-user", autocomplete: "off", required: true, placeholder: "dave" });
    const inviteDays = h("input", { id: "invite-days", type: "number", min: "1", max: "3650", value: "30" });
    const notice = h("textarea", { id: "notice-text", rows: "2", required: true });
    const dlg = h("dialog", { class: "console", "aria-labelledby": "console-h" },
      h("h2", { id: "console-h" }, "Organization console"),
      this.status,
      h("section", { "aria-labelledby": "c-members-h" }, h("h3", { id: "c-members-h" }, "Members, devices and certificates"), this.members),
      h("section", { "aria-labelledby": "c-invite-h" }, h("h3", { id: "c-invite-h" }, "Invite someone"),
        h("form", {
          class: "inline", id: "invite-form", onsubmit: async (e) => {
            e.preventDefault();
            this.say(`Signing an invitation for ${inviteUser.value.trim()}…`);
            try {
              const r = await adminAPI.invite(inviteUser.value.trim(), Number(inviteDays.value) || 30);
              replace(this.invitation,
                h("p", {}, `Invitation for ${r.user}, valid ${r.days} days. Hand it over in person or by a channel the relay does not control: whoever holds it can enroll as ${r.user} until it is used.`),
                qrImage(r.invitation, "invite-qr", `The invitation for ${r.user} as a QR code`),
                h("textarea", { class: "invite-text", readonly: true, rows: "3", "aria-label": `Invitation for ${r.user}` }, r.invitation));
              this.say(`Invitation for ${r.user} ready.`);
            } catch (err) { this.say(err.message); }
          },
        },
        h("label", { for: "invite-user" }, "User name"), inviteUser,
        h("label", { for: "invite-days" }, "Days"), inviteDays,
        h("button", { type: "submit", id: "invite-btn" }, "Invite")),
        this.invitation),
      h("section", { "aria-labelledby": "c-notice-h" }, h("h3", { id: "c-notice-h" }, "Send a notice to every device"),
        h("form", {
          class: "stack", id: "notice-form", onsubmit: async (e) => {
            e.preventDefault();
            try {
              const r = await adminAPI.notice(notice.value);
              notice.value = "";
              this.say(`Notice signed and queued for ${r.devices} devices.`);
              this.loadDeliveries();
            } catch (err) { this.say(err.message); }
          },
        }, h("label", { for: "notice-text" }, "Notice"), notice, h("button", { type: "submit", id: "notice-btn" }, "Send notice"))),
      h("section", { "aria-labelledby": "c-policy-h" }, h("h3", { id: "c-policy-h" }, "Device policy"), this.policyForm),
      h("section", { "aria-labelledby": "c-deliv-h" }, h("h3", { id: "c-deliv-h" }, "What was published, and how far it got"),
        h("button", { type: "button", id: "deliveries-refresh", onclick: () => this.loadDeliveries() }, "Refresh"), this.deliveries),
      h("form", { method: "dialog" }, h("button", { class: "console-close" }, "Close")));
    dlg.addEventListener("close", () => dlg.remove());
    document.body.append(dlg);
    dlg.showModal();
    this.loadMembers();
    this.loadPolicy();
    this.loadDeliveries();
  }

  say(text) { this.status.textContent = text; }

  async loadMembers() {
    let r;
    try { r = await adminAPI.members(); } catch (e) { this.say(e.message); return; }
    const rows = (r.members || []).map((m) => h("tr", { "data-user": m.user },
      h("th", { scope: "row" }, m.user),
      h("td", { class: "mono" }, m.enrolled ? m.identity_key.slice(0, 16) : "invited, not enrolled yet"),
      h("td", {}, m.certificate_expires ? "until " + new Date(m.certificate_expires).toLocaleDateString() : "none"),
      h("td", {}, m.devices_error ? m.devices_error
        : h("ul", { class: "member-devs" }, m.devices.map((d) => h("li", { "data-device": d.id },
          `device ${d.id} (since ${new Date(d.created).toLocaleDateString()}) `,
          h("button", { type: "button", class: "wipe-btn", "aria-label": `Wipe ${m.user}'s device ${d.id}`, onclick: () => this.wipe(m.user, d.id) }, "Wipe"))))),
      h("td", {}, !m.enrolled ? null : h("button", { type: "button", class: "certify-btn", "aria-label": `Renew ${m.user}'s certificate`, onclick: () => this.certify(m.user) }, "Renew"))));
    replace(this.members, rows.length
      ? h("table", {}, h("thead", {}, h("tr", {},
        h("th", { scope: "col" }, "Member"), h("th", { scope: "col" }, "Identity key"), h("th", { scope: "col" }, "Certificate"),
        h("th", { scope: "col" }, "Devices"), h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")))), h("tbody", {}, rows))
      : h("p", {}, "No members yet."));
  }

  async certify(user) {
    try {
      const r = await adminAPI.certify(user, 365);
      this.say(`A new certificate for ${user}, sent to ${r.devices} devices.`);
      this.loadMembers();
    } catch (e) { this.say(e.message); }
  }

  async wipe(user, device) {
    if (!(await this.app.confirm(`Wipe ${user}'s device ${device}? It deletes everything on it when it next connects. This cannot be undone.`, "Wipe"))) return;
    try {
      const r = await adminAPI.wipe(user, device);
      this.say(`Wipe order for ${user}'s device ${device} signed and queued (${r.devices} device). Its confirmation shows below when the device has wiped itself.`);
      this.loadDeliveries();
    } catch (e) { this.say(e.message); }
  }

  async loadPolicy() {
    let p;
    try { p = await adminAPI.policy(); } catch (e) { this.say(e.message); return; }
    this.policy = p;
    const inputs = policyFields.map(([k, label, type]) => {
      const id = "policy-" + k.replaceAll("_", "-");
      const input = type === "checkbox"
        ? h("input", { id, type, name: k, checked: !!p[k] })
        : h("input", { id, type, name: k, min: "0", value: String(p[k] || 0) });
      return type === "checkbox"
        ? h("label", { class: "check", for: id }, input, label)
        : [h("label", { for: id }, label), input];
    });
    replace(this.policyForm,
      h("p", { class: "hint" }, p.version ? `Version ${p.version} is in force.` : "No policy published yet: the defaults apply."),
      inputs,
      h("button", { type: "submit", id: "policy-save" }, "Publish the policy"));
  }

  async savePolicy() {
    const p = { ...this.policy, version: 0 };
    for (const [k, , type] of policyFields) {
      const el = this.policyForm.elements[k];
      p[k] = type === "checkbox" ? el.checked : Number(el.value) || 0;
    }
    try {
      const r = await adminAPI.setPolicy(p);
      this.say(`Policy signed and queued for ${r.devices} devices.`);
      this.loadPolicy();
      this.loadDeliveries();
    } catch (e) { this.say(e.message); }
  }

  async loadDeliveries() {
    let r;
    try { r = await adminAPI.deliveries(); } catch (e) { this.say(e.message); return; }
    const items = (r.deliveries || []).map((d) => {
      const what = d.kind === "wipe" ? `wipe of ${d.user}'s device ${d.device}` : d.kind;
      const done = d.applied.length >= d.queued && d.queued > 0;
      const state = d.kind === "wipe"
        ? (done ? "confirmed: the device wiped itself" : "waiting for the device to connect and confirm")
        : `applied by ${d.applied.length} of ${d.queued} devices`;
      return h("li", { class: "delivery " + (done ? "done" : "pending"), "data-kind": d.kind, "data-id": d.id },
        h("time", { datetime: d.at }, fmt.when(new Date(d.at))), " ", h("strong", {}, what), ": ", h("span", { class: "delivery-state" }, state),
        d.bad ? ` (${d.bad} receipts with a bad signature ignored)` : "");
    });
    replace(this.deliveries, items.length ? items : h("li", {}, "Nothing published from this device yet."));
  }
}
