// scan.js: reading a QR code with the camera (getUserMedia; the page's
// own reader, qrdecode.js), for verifying a contact by scanning their
// safety number and for reading a new device's link code.
import { h, replace } from "./dom.js";
import { call } from "./api.js";
import { decodeImage } from "./qrdecode.js";

// scanBytes shows the camera in view until a QR code is read (its bytes)
// or the person stops (rejects).
export async function scanBytes(view) {
  if (!navigator.mediaDevices?.getUserMedia) throw new Error("This browser gives the page no camera.");
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
  } catch (e) {
    throw new Error("No camera: " + (e.message || e.name));
  }
  const video = h("video", { class: "scan-video", muted: true, playsinline: true, autoplay: true, "aria-label": "Camera" });
  video.srcObject = stream;
  return new Promise((resolve, reject) => {
    let timer = 0;
    const stop = () => {
      clearInterval(timer);
      for (const t of stream.getTracks()) t.stop();
      video.srcObject = null;
      replace(view);
    };
    const cancel = h("button", { type: "button", class: "scan-stop", onclick: () => { stop(); reject(new Error("Scanning stopped.")); } }, "Stop scanning");
    replace(view, video, cancel);
    let canvas = null;
    timer = setInterval(() => {
      // The dialog closed while scanning: the camera goes off.
      if (!view.isConnected) { stop(); reject(new Error("Scanning stopped.")); return; }
      const w = video.videoWidth;
      const ht = video.videoHeight;
      if (!w || !ht) return;
      if (!canvas || canvas.width !== w || canvas.height !== ht) canvas = new OffscreenCanvas(w, ht);
      const ctx = canvas.getContext("2d", { willReadFrequently: true });
      ctx.drawImage(video, 0, 0, w, ht);
      const bytes = decodeImage(ctx.getImageData(0, 0, w, ht));
      if (bytes) { stop(); resolve(bytes); }
    }, 150);
  });
}

// scanQR is scanBytes for a text code (a link code).
export async function scanQR(view) {
  return new TextDecoder().decode(await scanBytes(view));
}

const b64 = (bytes) => btoa(String.fromCharCode(...bytes));

// scanVerify adds to a safety-number dialog a button that scans the other
// person's QR code; the agent compares it (in constant time) with this
// device's safety number, and only a match marks them verified.
export function scanVerify(app, peer, state, onVerified) {
  const view = h("div", { class: "scan-view" });
  const result = h("p", { class: "scan-result", role: "status" });
  const btn = h("button", {
    type: "button", class: "sn-scan", onclick: async () => {
      result.textContent = "Point the camera at the QR code on their device…";
      result.className = "scan-result";
      let bytes;
      try { bytes = await scanBytes(view); } catch (e) { result.textContent = e.message; return; }
      try {
        const r = await call("POST", `/contacts/${encodeURIComponent(peer)}/scan`, { scanned: b64(bytes) });
        if (r.match) {
          result.textContent = `✓ The codes match: ${peer} is verified.`;
          result.className = "scan-result match";
          state.textContent = "You marked this safety number as verified.";
          onVerified();
        } else {
          result.textContent = `✗ The codes do not match. This is not ${peer}'s safety number with you, or someone is between you. ${peer} was not marked verified.`;
          result.className = "scan-result mismatch";
        }
      } catch (e) {
        result.textContent = e.kind === "bad_request" ? "That QR code is not a Sotto safety number." : e.message;
        result.className = "scan-result mismatch";
        if (e.kind !== "bad_request") app.error(e);
      }
    },
  }, "Scan their code");
  return [btn, view, result];
}
