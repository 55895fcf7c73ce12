// Takes over one party's stored state as another implementation serialized it, and
// goes on with libsignal: a check that the serialized forms (identity key pair,
// session record, prekey records) are libsignal's.
//
//   node interop/signal-node/records.mjs [--lib DIR] < request.json > result.json
//
// --lib DIR loads libsignal-client from DIR/node_modules (as peer.mjs does).
//
// Request (bytes in standard base64):
//   identity           IdentityKeyPair (libsignal's protobuf)
//   registration_id    the local registration id
//   remote             {name, device_id}: the party the session is with
//   local              {name, device_id}: this party (releases after 0.90 take it)
//   remote_identity    the remote identity key, trusted
//   session            a SessionRecord with remote, or null
//   prekeys, signed_prekeys, kyber_prekeys   lists of serialized records
//   incoming           [{type, ciphertext}] decrypted in order
//   reply              a plaintext to encrypt afterwards, or null
// Result: {identity_public, prekeys: [{id, public_key}], signed_prekeys and
// kyber_prekeys: [{id, public_key, signature}], plaintexts, reply: {type,
// ciphertext} | null, session}, or {error} with exit status 1.

import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const libFlag = process.argv.indexOf('--lib');
const libDir =
  libFlag > 0 ? resolve(process.argv[libFlag + 1]) : dirname(fileURLToPath(import.meta.url));
const SignalClient = await import(
  pathToFileURL(createRequire(join(libDir, 'package.json')).resolve('@signalapp/libsignal-client')).href
);
const TAKES_LOCAL_ADDRESS = SignalClient.signalDecrypt.length === 5;

const {
  IdentityKeyPair,
  KyberPreKeyRecord,
  PreKeyRecord,
  PreKeySignalMessage,
  ProtocolAddress,
  PublicKey,
  SessionRecord,
  SignalMessage,
  SignedPreKeyRecord,
} = SignalClient;

const b64 = (u) => Buffer.from(u.buffer, u.byteOffset, u.byteLength).toString('base64');
const bytes = (s) => new Uint8Array(Buffer.from(s, 'base64'));

class Identities extends SignalClient.IdentityKeyStore {
  constructor(pair, regId, remote, remoteKey) {
    super();
    this.pair = pair;
    this.regId = regId;
    this.known = new Map([[remote.toString(), remoteKey]]);
  }
  async getIdentityKey() {
    return this.pair.privateKey;
  }
  async getLocalRegistrationId() {
    return this.regId;
  }
  async saveIdentity(addr, key) {
    const old = this.known.get(addr.toString());
    this.known.set(addr.toString(), key.serialize());
    return old !== undefined && Buffer.compare(Buffer.from(old), Buffer.from(key.serialize())) !== 0
      ? SignalClient.IdentityChange.ReplacedExisting
      : SignalClient.IdentityChange.NewOrUnchanged;
  }
  async isTrustedIdentity(addr, key) {
    const old = this.known.get(addr.toString());
    return old === undefined || Buffer.compare(Buffer.from(old), Buffer.from(key.serialize())) === 0;
  }
  async getIdentity(addr) {
    const k = this.known.get(addr.toString());
    return k === undefined ? null : PublicKey.deserialize(k);
  }
}

class Sessions extends SignalClient.SessionStore {
  constructor() {
    super();
    this.m = new Map();
  }
  async saveSession(addr, rec) {
    this.m.set(addr.toString(), rec.serialize());
  }
  async getSession(addr) {
    const s = this.m.get(addr.toString());
    return s === undefined ? null : SessionRecord.deserialize(s);
  }
  async getExistingSessions(addrs) {
    return Promise.all(addrs.map((a) => this.getSession(a)));
  }
}

// records is a prekey store of any of the three kinds, keyed by id.
class Records {
  constructor(parse) {
    this.parse = parse;
    this.m = new Map();
  }
  get(id) {
    const s = this.m.get(id);
    if (s === undefined) throw new Error(`no record ${id}`);
    return this.parse(s);
  }
}

class PreKeys extends SignalClient.PreKeyStore {
  constructor(r) {
    super();
    this.r = r;
  }
  async savePreKey(id, rec) {
    this.r.m.set(id, rec.serialize());
  }
  async getPreKey(id) {
    return this.r.get(id);
  }
  async removePreKey(id) {
    this.r.m.delete(id);
  }
}

class SignedPreKeys extends SignalClient.SignedPreKeyStore {
  constructor(r) {
    super();
    this.r = r;
  }
  async saveSignedPreKey(id, rec) {
    this.r.m.set(id, rec.serialize());
  }
  async getSignedPreKey(id) {
    return this.r.get(id);
  }
}

class KyberPreKeys extends SignalClient.KyberPreKeyStore {
  constructor(r) {
    super();
    this.r = r;
  }
  async saveKyberPreKey(id, rec) {
    this.r.m.set(id, rec.serialize());
  }
  async getKyberPreKey(id) {
    return this.r.get(id);
  }
  async markKyberPreKeyUsed(id) {
    this.r.m.delete(id);
  }
}

async function run(req) {
  const pair = IdentityKeyPair.deserialize(bytes(req.identity));
  const remote = ProtocolAddress.new(req.remote.name, req.remote.device_id);
  // Releases after 0.90 take the local address after the remote one.
  const addrs = TAKES_LOCAL_ADDRESS
    ? [remote, ProtocolAddress.new(req.local.name, req.local.device_id)]
    : [remote];
  const identities = new Identities(pair, req.registration_id, remote, bytes(req.remote_identity));
  const sessions = new Sessions();
  if (req.session) {
    await sessions.saveSession(remote, SessionRecord.deserialize(bytes(req.session)));
  }
  const out = { identity_public: b64(pair.publicKey.serialize()), prekeys: [], signed_prekeys: [], kyber_prekeys: [] };
  const pre = new Records((s) => PreKeyRecord.deserialize(s));
  for (const s of req.prekeys ?? []) {
    const r = PreKeyRecord.deserialize(bytes(s));
    pre.m.set(r.id(), r.serialize());
    out.prekeys.push({ id: r.id(), public_key: b64(r.publicKey().serialize()) });
  }
  const signed = new Records((s) => SignedPreKeyRecord.deserialize(s));
  for (const s of req.signed_prekeys ?? []) {
    const r = SignedPreKeyRecord.deserialize(bytes(s));
    signed.m.set(r.id(), r.serialize());
    out.signed_prekeys.push({ id: r.id(), public_key: b64(r.publicKey().serialize()), signature: b64(r.signature()) });
  }
  const kyber = new Records((s) => KyberPreKeyRecord.deserialize(s));
  for (const s of req.kyber_prekeys ?? []) {
    const r = KyberPreKeyRecord.deserialize(bytes(s));
    kyber.m.set(r.id(), r.serialize());
    out.kyber_prekeys.push({ id: r.id(), public_key: b64(r.publicKey().serialize()), signature: b64(r.signature()) });
  }
  out.plaintexts = [];
  for (const m of req.incoming ?? []) {
    const ct = bytes(m.ciphertext);
    const pt = m.type === 3
      ? await SignalClient.signalDecryptPreKey(
        PreKeySignalMessage.deserialize(ct), ...addrs, sessions, identities,
        new PreKeys(pre), new SignedPreKeys(signed), new KyberPreKeys(kyber),
      )
      : await SignalClient.signalDecrypt(SignalMessage.deserialize(ct), ...addrs, sessions, identities);
    out.plaintexts.push(b64(pt));
  }
  out.reply = null;
  if (req.reply !== null && req.reply !== undefined) {
    const c = await SignalClient.signalEncrypt(bytes(req.reply), ...addrs, sessions, identities);
    out.reply = { type: c.type(), ciphertext: b64(c.serialize()) };
  }
  const rec = await sessions.getSession(remote);
  out.session = rec === null ? null : b64(rec.serialize());
  return out;
}

async function main() {
  const chunks = [];
  for await (const c of process.stdin) chunks.push(c);
  const out = await run(JSON.parse(Buffer.concat(chunks).toString('utf8')));
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => {
  process.stdout.write(JSON.stringify({ error: String(e?.message ?? e) }) + '\n');
  process.exitCode = 1;
});
