// calls.js: live calls with this browser as the media endpoint. The page
// captures the microphone (echo cancellation on) and runs its own
// RTCPeerConnection; the agent carries the offer and the answer end to end
// encrypted (docs/agent-api.md, Calls in the browser), hands this page the
// peer's SDP exactly as it arrived, and checks the DTLS fingerprints this
// page reports once connected against the signalled ones.
import { h, replace } from "./dom.js";
import { call } from "./api.js";

const enc = encodeURIComponent;

const reasons = {
  busy: "busy", rejected: "declined", no_answer: "no answer", missed: "missed",
  answered_elsewhere: "answered on another device", declined_elsewhere: "declined on another device",
  canceled: "canceled", fingerprint_mismatch: "refused: the encryption keys did not match (possible interception)",
  fingerprint_missing: "refused: the peer sent no encryption key", connection_failed: "no connection",
  peer_failed: "the other side failed", connection_lost: "connection lost",
};

// gathered waits until ICE gathering is complete (no trickle: the SDP the
// agent signals carries every candidate), for at most ms.
function gathered(pc, ms) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") { clearTimeout(t); resolve(); }
    });
  });
}

// fingerprints reads the sha-256 fingerprints of the certificates the
// connected DTLS transport uses (its own) and saw (the peer's).
async function fingerprints(pc) {
  const stats = await pc.getStats();
  let local = "", remote = "";
  stats.forEach((s) => {
    if (s.type !== "transport" || s.dtlsState !== "connected") return;
    const l = stats.get(s.localCertificateId), r = stats.get(s.remoteCertificateId);
    if (l?.fingerprintAlgorithm === "sha-256") local = l.fingerprint;
    if (r?.fingerprintAlgorithm === "sha-256") remote = r.fingerprint;
  });
  return { local_fingerprint: local, remote_fingerprint: remote };
}

export class Calls {
  constructor(app, root) {
    this.app = app;
    this.root = root;
    this.es = null;
    this.cur = null; // { id, peer, pc, stream, outgoing }
    this.pending = null; // an incoming call ringing: its event's call
    this.audio = h("audio", { id: "call-audio", autoplay: true });
    this.text = h("span", { id: "call-status", role: "status", "aria-live": "polite" });
    this.answerBtn = h("button", { type: "button", id: "call-answer", onclick: () => this.answer() }, "Answer");
    this.muteBtn = h("button", { type: "button", id: "call-mute", "aria-pressed": "false", onclick: () => this.toggleMute() }, "Mute");
    this.hangBtn = h("button", { type: "button", id: "call-hangup", class: "danger", onclick: () => this.hangup() }, "Hang up");
    replace(root, this.text, this.answerBtn, this.muteBtn, this.hangBtn, this.audio);
    this.show("");
  }

  // start opens the call stream: while it is open, this device's incoming
  // calls ring in this page.
  start() {
    if (this.es) return;
    this.es = new EventSource("/api/v1/webcalls/events");
    this.es.addEventListener("webcall", (e) => {
      let ev;
      try { ev = JSON.parse(e.data); } catch { return; }
      this.onEvent(ev).catch((err) => this.fail(err));
    });
    this.es.onopen = () => this.root.setAttribute("data-ready", "1");
  }

  stop() {
    if (this.es) this.es.close();
    this.es = null;
    this.root.removeAttribute("data-ready");
    this.close();
  }

  // show sets the bar: its text, and which buttons apply.
  show(text, { answer = false, live = false } = {}) {
    this.text.textContent = text;
    this.root.hidden = !text;
    this.answerBtn.hidden = !answer;
    this.muteBtn.hidden = !live;
    this.hangBtn.hidden = !(answer || live);
  }

  async onEvent(ev) {
    const c = ev.call;
    if (!c) return;
    if (this.cur && this.cur.outgoing && this.cur.id === null && ev.type !== "incoming") {
      this.cur.early.push(ev); // before the agent said which call is ours
      return;
    }
    const mine = this.cur && this.cur.id === c.id;
    switch (ev.type) {
      case "incoming":
        if (this.cur) return; // the agent answers busy for a second call
        this.pending = c;
        this.root.setAttribute("data-state", "incoming");
        this.show(`Incoming call from ${c.peer}`, { answer: true });
        break;
      case "ringing":
        if (mine) this.show(`Ringing ${c.peer}…`, { live: true });
        break;
      case "answered":
        if (!mine || !this.cur.outgoing) return;
        this.show(`Connecting to ${c.peer}…`, { live: true });
        // The callee's answer, as the agent received it end to end.
        await this.cur.pc.setRemoteDescription({ type: "answer", sdp: c.remote_sdp });
        break;
      case "active":
        if (mine) {
          this.root.setAttribute("data-state", "active");
          this.show(`In a call with ${c.peer}`, { live: true });
        }
        break;
      case "ended":
        if (this.pending && this.pending.id === c.id) this.pending = null;
        if (mine || (!this.cur && this.root.getAttribute("data-state") === "incoming")) {
          this.close();
          this.root.setAttribute("data-state", "ended");
          this.show(`Call with ${c.peer} ended${c.reason ? ": " + (reasons[c.reason] || c.reason) : ""}`);
        }
        break;
    }
  }

  // media gets the microphone and builds the peer connection.
  async media(peer, id, outgoing) {
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true }, video: false,
    });
    const ice = await call("GET", "/webcalls/ice");
    const pc = new RTCPeerConnection({
      iceServers: ice.ice_servers || [],
      iceTransportPolicy: ice.relay_only ? "relay" : "all",
    });
    this.cur = { id, peer, pc, stream, outgoing, reported: false, early: [] };
    for (const t of stream.getAudioTracks()) pc.addTrack(t, stream);
    pc.ontrack = (e) => {
      this.audio.srcObject = e.streams[0] || new MediaStream([e.track]);
      this.audio.play().catch(() => {});
    };
    pc.onconnectionstatechange = () => this.onState(pc);
    return pc;
  }

  async onState(pc) {
    const cur = this.cur;
    if (!cur || cur.pc !== pc) return;
    if (pc.connectionState === "connected" && !cur.reported) {
      cur.reported = true;
      // The agent compares what the DTLS transport saw with the
      // fingerprints signalled end to end, and ends the call otherwise.
      try {
        await call("POST", `/webcalls/${enc(cur.id)}/connected`, await fingerprints(pc));
      } catch (e) {
        this.fail(e);
      }
    } else if (pc.connectionState === "failed") {
      call("POST", `/webcalls/${enc(cur.id)}/hangup`, { failed: true }).catch(() => {});
    }
  }

  // dial calls peer from this browser.
  async dial(peer) {
    if (this.cur) return;
    this.show(`Calling ${peer}…`);
    try {
      const pc = await this.media(peer, null, true);
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc, 5000);
      const r = await call("POST", "/webcalls", { user: peer, sdp: pc.localDescription.sdp });
      if (!this.cur || this.cur.pc !== pc) return; // hung up meanwhile
      this.cur.id = r.call.id;
      this.root.setAttribute("data-state", "calling");
      this.show(`Calling ${peer}…`, { live: true });
      for (const ev of this.cur.early.splice(0)) if (ev.call.id === r.call.id) await this.onEvent(ev);
    } catch (e) {
      this.fail(e);
    }
  }

  async answer() {
    const c = this.pending;
    if (!c || this.cur) return;
    this.pending = null;
    this.show(`Connecting to ${c.peer}…`);
    try {
      const pc = await this.media(c.peer, c.id, false);
      // The caller's offer, as the agent received it end to end.
      await pc.setRemoteDescription({ type: "offer", sdp: c.remote_sdp });
      await pc.setLocalDescription(await pc.createAnswer());
      await gathered(pc, 5000);
      await call("POST", `/webcalls/${enc(c.id)}/answer`, { sdp: pc.localDescription.sdp });
      this.root.setAttribute("data-state", "connecting");
      this.show(`Connecting to ${c.peer}…`, { live: true });
    } catch (e) {
      this.fail(e);
    }
  }

  async hangup() {
    const id = this.cur?.id || this.pending?.id;
    this.pending = null;
    const peer = this.cur?.peer;
    this.close();
    if (id) await call("POST", `/webcalls/${enc(id)}/hangup`).catch(() => {});
    this.root.setAttribute("data-state", "ended");
    this.show(peer ? `Call with ${peer} ended` : "");
  }

  toggleMute() {
    if (!this.cur) return;
    const tracks = this.cur.stream.getAudioTracks();
    const muted = tracks.some((t) => t.enabled);
    for (const t of tracks) t.enabled = !muted;
    this.muteBtn.setAttribute("aria-pressed", String(muted));
    this.muteBtn.textContent = muted ? "Unmute" : "Mute";
  }

  fail(e) {
    const id = this.cur?.id;
    if (id) call("POST", `/webcalls/${enc(id)}/hangup`, { failed: true }).catch(() => {});
    this.close();
    this.root.setAttribute("data-state", "ended");
    this.show(`Call failed: ${e.message || e}`);
  }

  // close releases the microphone and the peer connection.
  close() {
    const cur = this.cur;
    this.cur = null;
    if (!cur) return;
    cur.pc.close();
    for (const t of cur.stream.getTracks()) t.stop();
    this.audio.srcObject = null;
    this.muteBtn.textContent = "Mute";
    this.muteBtn.setAttribute("aria-pressed", "false");
  }
}
