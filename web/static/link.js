// link.js: linking a new device to this account. The new device runs
// `sotto devices link` and shows a link code (text and QR code); here the
// person pastes the code (or scans its QR code with the camera), sees the
// name the new device gave itself, and approves it, which hands over the
// account (and, if chosen, the history, end-to-end encrypted).
import { h } from "./dom.js";
import { call } from "./api.js";
import { scanQR } from "./scan.js";

export const linkAPI = {
  check: (code) => call("POST", "/devices/link/check", { code }),
  approve: (code, history) => call("POST", "/devices/link/approve", { code, history }),
};

export function showLink(app) {
  const code = h("textarea", { id: "link-code", rows: "3", required: true, autocomplete: "off", spellcheck: "false" });
  const msg = h("p", { id: "link-msg", role: "status" });
  const who = h("p", { class: "link-who", hidden: true });
  const history = h("input", { type: "checkbox", id: "link-history", checked: true });
  const approve = h("button", { type: "button", id: "link-approve", class: "danger", hidden: true }, "Approve");
  let checked = "";
  const check = async () => {
    const c = code.value.trim();
    if (!c) return;
    msg.textContent = "Checking the code…";
    approve.hidden = who.hidden = true;
    try {
      const r = await linkAPI.check(c);
      checked = c;
      who.textContent = r.name ? `The device asking to join is named “${r.name}”.` : "The device asking to join gave no name.";
      who.hidden = false;
      approve.hidden = false;
      msg.textContent = "Approve only a code shown on a device in your own hands: it gets your account.";
      approve.focus();
    } catch (e) { msg.textContent = e.message; }
  };
  approve.addEventListener("click", async () => {
    if (code.value.trim() !== checked) { check(); return; }
    msg.textContent = "Approving…";
    try {
      const r = await linkAPI.approve(checked, history.checked);
      approve.hidden = true;
      msg.textContent = `Approved${r.name ? " " + r.name : ""}: the new device is finishing its registration.` +
        (r.history ? ` History sent: ${r.history.messages} messages in ${r.history.conversations} conversations.` : "");
    } catch (e) { msg.textContent = e.message; }
  });
  const scan = h("button", {
    type: "button", id: "link-scan", onclick: async () => {
      msg.textContent = "Hold the new device's QR code up to the camera…";
      try { code.value = await scanQR(scanView); check(); } catch (e) { msg.textContent = e.message; }
    },
  }, "Scan its QR code");
  const scanView = h("div", { class: "scan-view" });
  const dlg = h("dialog", { class: "link-dlg", "aria-labelledby": "link-h" },
    h("h2", { id: "link-h" }, "Link a new device"),
    h("p", {}, "On the new device, run: sotto devices link --relay URL --device-name NAME. It shows a link code as text and as a QR code."),
    h("form", { class: "stack", onsubmit: (e) => { e.preventDefault(); check(); } },
      h("label", { for: "link-code" }, "Link code"), code,
      h("div", { class: "inline" }, h("button", { type: "submit", id: "link-check" }, "Check the code"), scan)),
    scanView, who,
    h("label", { class: "check", for: "link-history" }, history, "Also send this device's history, contacts and settings"),
    approve, msg,
    h("form", { method: "dialog" }, h("button", { class: "link-close" }, "Close")));
  dlg.addEventListener("close", () => dlg.remove());
  document.body.append(dlg);
  dlg.showModal();
  code.focus();
}
