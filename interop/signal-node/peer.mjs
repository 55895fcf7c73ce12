// A signal-peer speaking libsignal through @signalapp/libsignal-client.
//
// It reads one JSON request per line on standard input and writes one JSON reply per
// line on standard output, in order (see docs/interop.md). Diagnostics go to standard
// error. All state is in memory and dies with the process.
//
// `node peer.mjs --lib DIR` loads libsignal-client from DIR/node_modules instead of
// this directory's: interop/signal-node-latest holds the newest release that way.

import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';

const libFlag = process.argv.indexOf('--lib');
const libDir =
  libFlag > 0 ? resolve(process.argv[libFlag + 1]) : dirname(fileURLToPath(import.meta.url));
const libRequire = createRequire(join(libDir, 'package.json'));
const SignalClient = await import(pathToFileURL(libRequire.resolve('@signalapp/libsignal-client')).href);
const { ProfileKey } = await import(
  pathToFileURL(libRequire.resolve('@signalapp/libsignal-client/zkgroup.js')).href
);
// Releases after 0.90 take the local address too (processPreKeyBundle, signalEncrypt,
// signalDecrypt, signalDecryptPreKey): one more parameter after the remote address.
const TAKES_LOCAL_ADDRESS = SignalClient.signalDecrypt.length === 5;
function addrs(remote, p) {
  return TAKES_LOCAL_ADDRESS ? [remote, ProtocolAddress.new(p.name, p.deviceId)] : [remote];
}

const {
  Direction,
  ErrorCode,
  Fingerprint,
  IdentityChange,
  IdentityKeyPair,
  KEMKeyPair,
  KEMPublicKey,
  KyberPreKeyRecord,
  LibSignalErrorBase,
  PreKeyBundle,
  PreKeyRecord,
  PreKeySignalMessage,
  PrivateKey,
  ProtocolAddress,
  PublicKey,
  SenderCertificate,
  ServerCertificate,
  SessionRecord,
  UnidentifiedSenderMessageContent,
  SignalMessage,
  SignedPreKeyRecord,
} = SignalClient;

// PeerError carries one of the protocol's error kinds.
class PeerError extends Error {
  constructor(kind, detail) {
    super(detail);
    this.kind = kind;
  }
}

const invalidArgument = (detail) => new PeerError('invalid_argument', detail);

// MissingKeyError is thrown by the prekey stores for an unknown or used id, so that the
// failure can be told apart from libsignal's own errors when it comes back out.
class MissingKeyError extends Error {
  constructor(what, id) {
    super(`${what} ${id} not found`);
    this.name = 'MissingKeyError';
  }
}

const addrKey = (name, deviceId) => `${name}\u0000${deviceId}`;

function bytesEqual(a, b) {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

// IdentityStore: trust on first use per remote (name, device). A key that differs from
// the stored one is refused and remembered as pending until `trust` accepts it.
class IdentityStore extends SignalClient.IdentityKeyStore {
  constructor(pair, registrationId) {
    super();
    this.pair = pair;
    this.registrationId = registrationId;
    this.known = new Map(); // addrKey -> Uint8Array (serialized public key)
    this.pending = new Map(); // addrKey -> Uint8Array
  }
  async getIdentityKey() {
    return this.pair.privateKey;
  }
  async getLocalRegistrationId() {
    return this.registrationId;
  }
  async saveIdentity(address, key) {
    const k = addrKey(address.name(), address.deviceId());
    const ser = key.serialize();
    const old = this.known.get(k);
    this.known.set(k, ser);
    const pend = this.pending.get(k);
    if (pend !== undefined && bytesEqual(pend, ser)) this.pending.delete(k);
    if (old !== undefined && !bytesEqual(old, ser)) return IdentityChange.ReplacedExisting;
    return IdentityChange.NewOrUnchanged;
  }
  async isTrustedIdentity(address, key, _direction) {
    const k = addrKey(address.name(), address.deviceId());
    const ser = key.serialize();
    const old = this.known.get(k);
    if (old === undefined || bytesEqual(old, ser)) return true;
    this.pending.set(k, ser);
    return false;
  }
  async getIdentity(address) {
    const ser = this.known.get(addrKey(address.name(), address.deviceId()));
    return ser === undefined ? null : PublicKey.deserialize(ser);
  }
  // trust accepts every pending identity key of the remote user `name`.
  trust(name) {
    for (const [k, ser] of this.pending) {
      if (k.split('\u0000')[0] === name) {
        this.known.set(k, ser);
        this.pending.delete(k);
      }
    }
  }
  // anyIdentity returns a stored identity key of the remote user `name`, preferring the
  // given device, else the lowest device id.
  anyIdentity(name, deviceId) {
    if (deviceId !== undefined) {
      const ser = this.known.get(addrKey(name, deviceId));
      return ser === undefined ? null : ser;
    }
    let best = null;
    let bestDev = Infinity;
    for (const [k, ser] of this.known) {
      const [n, d] = k.split('\u0000');
      if (n === name && Number(d) < bestDev) {
        best = ser;
        bestDev = Number(d);
      }
    }
    return best;
  }
}

class SessionStore extends SignalClient.SessionStore {
  constructor() {
    super();
    this.sessions = new Map(); // addrKey -> serialized SessionRecord
  }
  async saveSession(address, record) {
    this.sessions.set(addrKey(address.name(), address.deviceId()), record.serialize());
  }
  async getSession(address) {
    const ser = this.sessions.get(addrKey(address.name(), address.deviceId()));
    return ser === undefined ? null : SessionRecord.deserialize(ser);
  }
  async getExistingSessions(addresses) {
    return addresses.map((a) => {
      const ser = this.sessions.get(addrKey(a.name(), a.deviceId()));
      if (ser === undefined) throw new Error(`no session for ${a.toString()}`);
      return SessionRecord.deserialize(ser);
    });
  }
}

class PreKeyStore extends SignalClient.PreKeyStore {
  constructor() {
    super();
    this.keys = new Map(); // id -> serialized PreKeyRecord
  }
  async savePreKey(id, record) {
    this.keys.set(id, record.serialize());
  }
  async getPreKey(id) {
    const ser = this.keys.get(id);
    if (ser === undefined) throw new MissingKeyError('prekey', id);
    return PreKeyRecord.deserialize(ser);
  }
  async removePreKey(id) {
    this.keys.delete(id);
  }
}

class SignedPreKeyStore extends SignalClient.SignedPreKeyStore {
  constructor() {
    super();
    this.keys = new Map();
  }
  async saveSignedPreKey(id, record) {
    this.keys.set(id, record.serialize());
  }
  async getSignedPreKey(id) {
    const ser = this.keys.get(id);
    if (ser === undefined) throw new MissingKeyError('signed prekey', id);
    return SignedPreKeyRecord.deserialize(ser);
  }
}

// KyberPreKeyStore removes a one-time Kyber prekey once used; the last-resort one stays.
class KyberPreKeyStore extends SignalClient.KyberPreKeyStore {
  constructor() {
    super();
    this.keys = new Map(); // id -> serialized KyberPreKeyRecord
    this.lastResort = new Set();
  }
  async saveKyberPreKey(id, record) {
    this.keys.set(id, record.serialize());
  }
  async getKyberPreKey(id) {
    const ser = this.keys.get(id);
    if (ser === undefined) throw new MissingKeyError('kyber prekey', id);
    return KyberPreKeyRecord.deserialize(ser);
  }
  async markKyberPreKeyUsed(id, _signedPreKeyId, _baseKey) {
    if (!this.lastResort.has(id)) this.keys.delete(id);
  }
}

const SIGNED_PREKEY_ID = 1;

// Party is one device of one user with its stores and its supply of one-time prekeys.
class Party {
  constructor(name, deviceId, registrationId, identity, prekeys) {
    this.name = name;
    this.deviceId = deviceId;
    this.registrationId = registrationId;
    this.identity = identity;
    this.identityStore = new IdentityStore(identity, registrationId);
    this.sessionStore = new SessionStore();
    this.preKeyStore = new PreKeyStore();
    this.signedPreKeyStore = new SignedPreKeyStore();
    this.kyberPreKeyStore = new KyberPreKeyStore();
    this.prekeyCount = prekeys;
    this.handedOut = 0;
    this.lastResortId = prekeys + 1;
  }

  async init() {
    const now = Date.now();
    const priv = this.identity.privateKey;
    for (let id = 1; id <= this.prekeyCount; id++) {
      const k = PrivateKey.generate();
      await this.preKeyStore.savePreKey(id, PreKeyRecord.new(id, k.getPublicKey(), k));
      await this.kyberPreKeyStore.saveKyberPreKey(id, newKyberRecord(priv, id, now));
    }
    const spk = PrivateKey.generate();
    const spkPub = spk.getPublicKey();
    const sig = priv.sign(spkPub.serialize());
    await this.signedPreKeyStore.saveSignedPreKey(
      SIGNED_PREKEY_ID,
      SignedPreKeyRecord.new(SIGNED_PREKEY_ID, now, spkPub, spk, sig),
    );
    await this.kyberPreKeyStore.saveKyberPreKey(this.lastResortId, newKyberRecord(priv, this.lastResortId, now));
    this.kyberPreKeyStore.lastResort.add(this.lastResortId);
  }

  async bundle(oneTime) {
    const spk = await this.signedPreKeyStore.getSignedPreKey(SIGNED_PREKEY_ID);
    const out = {
      registration_id: this.registrationId,
      device_id: this.deviceId,
      identity_key: b64(this.identity.publicKey.serialize()),
      signed_prekey_id: SIGNED_PREKEY_ID,
      signed_prekey: b64(spk.publicKey().serialize()),
      signed_prekey_signature: b64(spk.signature()),
    };
    let kyberId = this.lastResortId;
    if (oneTime) {
      if (this.handedOut >= this.prekeyCount) {
        throw invalidArgument(`all ${this.prekeyCount} one-time prekeys were handed out`);
      }
      this.handedOut++;
      const id = this.handedOut;
      const pk = await this.preKeyStore.getPreKey(id);
      out.prekey_id = id;
      out.prekey = b64(pk.publicKey().serialize());
      kyberId = id;
    }
    const kpk = await this.kyberPreKeyStore.getKyberPreKey(kyberId);
    out.kyber_prekey_id = kyberId;
    out.kyber_prekey = b64(kpk.publicKey().serialize());
    out.kyber_prekey_signature = b64(kpk.signature());
    return out;
  }
}

function newKyberRecord(identityPriv, id, now) {
  const kp = KEMKeyPair.generate();
  const sig = identityPriv.sign(kp.getPublicKey().serialize());
  return KyberPreKeyRecord.new(id, now, kp, sig);
}

function b64(bytes) {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

const B64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

// Argument readers: each throws invalid_argument on a missing or malformed value.
function argString(req, key) {
  const v = req[key];
  if (typeof v !== 'string' || v === '') throw invalidArgument(`${key}: want a non-empty string`);
  return v;
}

function argInt(req, key, def, min, max) {
  const v = req[key];
  if (v === undefined || v === null) {
    if (def === undefined) throw invalidArgument(`${key}: missing`);
    return def;
  }
  if (!Number.isInteger(v) || v < min || v > max) {
    throw invalidArgument(`${key}: want an integer in ${min}..${max}`);
  }
  return v;
}

function argBytes(obj, key) {
  const v = obj[key];
  if (typeof v !== 'string' || !B64_RE.test(v)) throw invalidArgument(`${key}: want standard base64`);
  // Copy into a fresh ArrayBuffer: Buffer.from may return a view into a shared pool.
  return new Uint8Array(Buffer.from(v, 'base64'));
}

function argBool(req, key, def) {
  const v = req[key];
  if (v === undefined || v === null) return def;
  if (typeof v !== 'boolean') throw invalidArgument(`${key}: want a boolean`);
  return v;
}

const MAX_U32 = 0xffffffff;
// Device ids are 1..127, as libsignal's ProtocolAddress takes them.
const MAX_DEVICE = 127;

// Peer holds every party of this process, by name and device.
class Peer {
  constructor() {
    this.parties = new Map(); // name -> Map(deviceId -> Party)
  }

  local(req) {
    const name = argString(req, 'name');
    const devices = this.parties.get(name);
    if (devices === undefined) throw invalidArgument(`no party named ${JSON.stringify(name)}`);
    if (req.device_id !== undefined && req.device_id !== null) {
      const id = argInt(req, 'device_id', undefined, 1, MAX_DEVICE);
      const p = devices.get(id);
      if (p === undefined) throw invalidArgument(`party ${JSON.stringify(name)} has no device ${id}`);
      return p;
    }
    if (devices.size === 1) return devices.values().next().value;
    const p = devices.get(1);
    if (p === undefined) throw invalidArgument(`party ${JSON.stringify(name)} has several devices: name one`);
    return p;
  }

  remote(req) {
    const peer = argString(req, 'peer');
    const dev = argInt(req, 'peer_device_id', 1, 1, MAX_DEVICE);
    return ProtocolAddress.new(peer, dev);
  }

  async create(req) {
    const name = argString(req, 'name');
    const registrationId = argInt(req, 'registration_id', undefined, 1, 16380);
    const deviceId = argInt(req, 'device_id', 1, 1, MAX_DEVICE);
    const prekeys = argInt(req, 'prekeys', 10, 0, 10000);
    let devices = this.parties.get(name);
    if (devices === undefined) {
      devices = new Map();
      this.parties.set(name, devices);
    }
    if (devices.has(deviceId)) throw invalidArgument(`party ${name}.${deviceId} exists`);
    // All devices of one user share the user's identity key, as in Signal.
    const sibling = devices.values().next().value;
    const identity = sibling !== undefined ? sibling.identity : IdentityKeyPair.generate();
    const p = new Party(name, deviceId, registrationId, identity, prekeys);
    await p.init();
    devices.set(deviceId, p);
    return { identity_key: b64(identity.publicKey.serialize()) };
  }

  async bundle(req) {
    return this.local(req).bundle(argBool(req, 'one_time', true));
  }

  async process_bundle(req) {
    const p = this.local(req);
    const addr = this.remote(req);
    const b = req.bundle;
    if (b === null || typeof b !== 'object') throw invalidArgument('bundle: want an object');
    let bundle;
    try {
      const hasPreKey = b.prekey_id !== undefined && b.prekey_id !== null;
      bundle = PreKeyBundle.new(
        argInt(b, 'registration_id', undefined, 0, MAX_U32),
        argInt(b, 'device_id', undefined, 0, MAX_U32),
        hasPreKey ? argInt(b, 'prekey_id', undefined, 0, MAX_U32) : null,
        hasPreKey ? PublicKey.deserialize(argBytes(b, 'prekey')) : null,
        argInt(b, 'signed_prekey_id', undefined, 0, MAX_U32),
        PublicKey.deserialize(argBytes(b, 'signed_prekey')),
        argBytes(b, 'signed_prekey_signature'),
        PublicKey.deserialize(argBytes(b, 'identity_key')),
        argInt(b, 'kyber_prekey_id', undefined, 0, MAX_U32),
        KEMPublicKey.deserialize(argBytes(b, 'kyber_prekey')),
        argBytes(b, 'kyber_prekey_signature'),
      );
    } catch (e) {
      if (e instanceof PeerError) throw e;
      throw invalidArgument(`bundle: ${e.message}`);
    }
    await SignalClient.processPreKeyBundle(bundle, ...addrs(addr, p), p.sessionStore, p.identityStore);
    return {};
  }

  async encrypt(req) {
    const p = this.local(req);
    const addr = this.remote(req);
    const plaintext = argBytes(req, 'plaintext');
    const msg = await SignalClient.signalEncrypt(plaintext, ...addrs(addr, p), p.sessionStore, p.identityStore);
    return { type: msg.type(), ciphertext: b64(msg.serialize()) };
  }

  async decrypt(req) {
    const p = this.local(req);
    const addr = this.remote(req);
    const type = argInt(req, 'type', undefined, 0, 255);
    const ct = argBytes(req, 'ciphertext');
    let plaintext;
    if (type === 3) {
      let msg;
      try {
        msg = PreKeySignalMessage.deserialize(ct);
      } catch (e) {
        throw new PeerError('invalid_message', e.message);
      }
      plaintext = await SignalClient.signalDecryptPreKey(
        msg,
        ...addrs(addr, p),
        p.sessionStore,
        p.identityStore,
        p.preKeyStore,
        p.signedPreKeyStore,
        p.kyberPreKeyStore,
      );
    } else if (type === 2) {
      let msg;
      try {
        msg = SignalMessage.deserialize(ct);
      } catch (e) {
        throw new PeerError('invalid_message', e.message);
      }
      plaintext = await SignalClient.signalDecrypt(msg, ...addrs(addr, p), p.sessionStore, p.identityStore);
    } else {
      throw invalidArgument(`type: want 2 or 3, got ${type}`);
    }
    return { plaintext: b64(plaintext) };
  }

  async fingerprint(req) {
    const p = this.local(req);
    const peer = argString(req, 'peer');
    const localId = argBytes(req, 'local_id');
    const remoteId = argBytes(req, 'remote_id');
    const iterations = argInt(req, 'iterations', 5200, 1, 1000000);
    const version = argInt(req, 'version', 2, 0, 0xffff);
    const dev = req.peer_device_id === undefined || req.peer_device_id === null
      ? undefined
      : argInt(req, 'peer_device_id', undefined, 1, MAX_DEVICE);
    const remoteKey = p.identityStore.anyIdentity(peer, dev);
    if (remoteKey === null) throw new PeerError('no_session', `no identity key known for ${peer}`);
    const fp = Fingerprint.new(
      iterations,
      version,
      localId,
      p.identity.publicKey,
      remoteId,
      PublicKey.deserialize(remoteKey),
    );
    return {
      displayable: fp.displayableFingerprint().toString(),
      scannable: b64(fp.scannableFingerprint().toBuffer()),
    };
  }

  async has_session(req) {
    const p = this.local(req);
    const addr = this.remote(req);
    const rec = await p.sessionStore.getSession(addr);
    return { exists: rec !== null && rec.hasCurrentState() };
  }

  async trust(req) {
    const p = this.local(req);
    p.identityStore.trust(argString(req, 'peer'));
    return {};
  }

  // Sealed sender (an extension of the protocol; see docs/interop.md).

  // sender_certificate makes a trust root -> server certificate -> sender certificate
  // chain for the local party (or for `identity_key` when given).
  async sender_certificate(req) {
    const p = this.local(req);
    const root = PrivateKey.deserialize(argBytes(req, 'trust_root_private'));
    const serverKey = req.server_key_private === undefined || req.server_key_private === null
      ? PrivateKey.generate()
      : PrivateKey.deserialize(argBytes(req, 'server_key_private'));
    const keyId = argInt(req, 'key_id', 1, 0, MAX_U32);
    const expires = argInt(req, 'expires', undefined, 0, Number.MAX_SAFE_INTEGER);
    const sender = req.sender === undefined || req.sender === null ? p.name : argString(req, 'sender');
    const e164 = req.e164 === undefined || req.e164 === null ? null : argString(req, 'e164');
    const identity = req.identity_key === undefined || req.identity_key === null
      ? p.identity.publicKey
      : PublicKey.deserialize(argBytes(req, 'identity_key'));
    const serverCert = ServerCertificate.new(keyId, serverKey.getPublicKey(), root);
    const cert = SenderCertificate.new(sender, e164, p.deviceId, identity, expires, serverCert, serverKey);
    return {
      sender_certificate: b64(cert.serialize()),
      server_certificate: b64(serverCert.serialize()),
      trust_root: b64(root.getPublicKey().serialize()),
    };
  }

  async sealed_encrypt(req) {
    const p = this.local(req);
    const addr = this.remote(req);
    const plaintext = argBytes(req, 'plaintext');
    let cert;
    try {
      cert = SenderCertificate.deserialize(argBytes(req, 'sender_certificate'));
    } catch (e) {
      throw invalidArgument(`sender_certificate: ${e.message}`);
    }
    const hint = argInt(req, 'content_hint', 0, 0, MAX_U32);
    const groupId = req.group_id === undefined || req.group_id === null ? null : argBytes(req, 'group_id');
    const inner = await SignalClient.signalEncrypt(plaintext, ...addrs(addr, p), p.sessionStore, p.identityStore);
    const usmc = UnidentifiedSenderMessageContent.new(inner, cert, hint, groupId);
    const ct = await SignalClient.sealedSenderEncrypt(usmc, addr, p.identityStore);
    return { ciphertext: b64(ct) };
  }

  async sealed_decrypt(req) {
    const p = this.local(req);
    const ct = argBytes(req, 'ciphertext');
    const root = PublicKey.deserialize(argBytes(req, 'trust_root'));
    const ts = argInt(req, 'timestamp', undefined, 0, Number.MAX_SAFE_INTEGER);
    const r = await SignalClient.sealedSenderDecryptMessage(
      ct, root, ts, null, p.name, p.deviceId,
      p.sessionStore, p.identityStore, p.preKeyStore, p.signedPreKeyStore, p.kyberPreKeyStore,
    );
    return { sender: r.senderUuid(), sender_device_id: r.deviceId(), plaintext: b64(r.message()) };
  }

  async sealed_unseal(req) {
    const p = this.local(req);
    const usmc = await SignalClient.sealedSenderDecryptToUsmc(argBytes(req, 'ciphertext'), p.identityStore);
    const gid = usmc.groupId();
    const out = {
      type: usmc.msgType(),
      sender_certificate: b64(usmc.senderCertificate().serialize()),
      contents: b64(usmc.contents()),
      content_hint: usmc.contentHint(),
    };
    if (gid !== null && gid !== undefined) out.group_id = b64(gid);
    return out;
  }

  async access_key(req) {
    return { access_key: b64(new ProfileKey(argBytes(req, 'profile_key')).deriveAccessKey()) };
  }
}

const OPS = new Set(['create', 'bundle', 'process_bundle', 'encrypt', 'decrypt', 'fingerprint', 'has_session', 'trust',
  'sender_certificate', 'sealed_encrypt', 'sealed_decrypt', 'sealed_unseal', 'access_key']);

// classify maps an exception to a protocol error kind.
function classify(e) {
  if (e instanceof PeerError) return e.kind;
  if (e instanceof MissingKeyError || e?.name === 'MissingKeyError') return 'invalid_key_id';
  if (e instanceof LibSignalErrorBase) {
    switch (e.code) {
      case ErrorCode.DuplicatedMessage:
        return 'duplicate_message';
      case ErrorCode.UntrustedIdentity:
        return 'untrusted_identity';
      case ErrorCode.SealedSenderSelfSend:
        return 'invalid_message';
      case ErrorCode.InvalidSession:
        return 'no_session';
      case ErrorCode.InvalidRegistrationId:
      case ErrorCode.InvalidProtocolAddress:
        return 'invalid_argument';
      default:
        break;
    }
    const m = String(e.message).toLowerCase();
    if (m.includes('trust root validation failed')) return 'invalid_certificate';
    // A store callback's MissingKeyError comes back wrapped in libsignal's error.
    if (m.includes('prekey identifier') || m.includes('missingkeyerror')) return 'invalid_key_id';
    if (m.includes('session') && (m.includes('not found') || m.includes('no session'))) return 'no_session';
    if (m.includes('signature')) return 'invalid_argument';
    return 'invalid_message';
  }
  return 'internal';
}

function oneLine(s) {
  return String(s).replace(/[\r\n]+/g, ' ');
}

async function handle(peer, line) {
  let req;
  try {
    req = JSON.parse(line);
  } catch (e) {
    return { id: null, ok: false, error: `invalid_argument: request is not JSON: ${oneLine(e.message)}` };
  }
  const id = req !== null && typeof req === 'object' && 'id' in req ? req.id : null;
  try {
    if (req === null || typeof req !== 'object' || Array.isArray(req)) throw invalidArgument('request is not an object');
    if (!OPS.has(req.op)) throw invalidArgument(`unknown op ${JSON.stringify(req.op)}`);
    const res = await peer[req.op](req);
    return { id, ok: true, ...res };
  } catch (e) {
    const kind = classify(e);
    if (kind === 'internal') process.stderr.write(`signal-node: ${req?.op}: ${e?.stack ?? e}\n`);
    return { id, ok: false, error: `${kind}: ${oneLine(e?.message ?? e)}` };
  }
}

async function main() {
  const peer = new Peer();
  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false });
  for await (const line of rl) {
    if (line.trim() === '') continue;
    const reply = await handle(peer, line);
    const out = JSON.stringify(reply) + '\n';
    if (!process.stdout.write(out)) {
      await new Promise((resolve) => process.stdout.once('drain', resolve));
    }
  }
}

main().then(
  () => process.exitCode = 0,
  (e) => {
    process.stderr.write(`signal-node: ${e?.stack ?? e}\n`);
    process.exitCode = 1;
  },
);
