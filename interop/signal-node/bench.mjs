// Times libsignal's session operations, defined as Sotto's Go benchmarks in
// signal/session define them, so that the two can be compared in one run:
//
//   node interop/signal-node/bench.mjs [--n N] [--op pqxdh|same_chain|dh_step] [--lib DIR]
//
// Each op prints one JSON line: {"op", "n", "ns_per_op", "cpu_ns_per_op"} and, for
// pqxdh, the initiator's and the responder's share. Stores are in memory (the
// classes of peer.mjs are not reused so that this file stays standalone).

import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

// --lib DIR loads libsignal-client from DIR/node_modules (as peer.mjs does).
const libFlag = process.argv.indexOf('--lib');
const libDir =
  libFlag > 0 ? resolve(process.argv[libFlag + 1]) : dirname(fileURLToPath(import.meta.url));
const SignalClient = await import(
  pathToFileURL(createRequire(join(libDir, 'package.json')).resolve('@signalapp/libsignal-client')).href
);
// Releases after 0.90 take the local address after the remote one.
const TAKES_LOCAL_ADDRESS = SignalClient.signalDecrypt.length === 5;
const addrs = (remote, local) => (TAKES_LOCAL_ADDRESS ? [remote, local] : [remote]);

const {
  IdentityKeyPair,
  KEMKeyPair,
  KyberPreKeyRecord,
  PreKeyBundle,
  PreKeyRecord,
  PreKeySignalMessage,
  PrivateKey,
  ProtocolAddress,
  PublicKey,
  SessionRecord,
  SignalMessage,
  SignedPreKeyRecord,
} = SignalClient;

class Identities extends SignalClient.IdentityKeyStore {
  constructor(pair, regId) {
    super();
    this.pair = pair;
    this.regId = regId;
    this.known = new Map();
  }
  async getIdentityKey() {
    return this.pair.privateKey;
  }
  async getLocalRegistrationId() {
    return this.regId;
  }
  async saveIdentity(addr, key) {
    this.known.set(addr.toString(), key.serialize());
    return SignalClient.IdentityChange.NewOrUnchanged;
  }
  async isTrustedIdentity() {
    return true;
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

class PreKeys extends SignalClient.PreKeyStore {
  constructor() {
    super();
    this.m = new Map();
  }
  async savePreKey(id, rec) {
    this.m.set(id, rec.serialize());
  }
  async getPreKey(id) {
    return PreKeyRecord.deserialize(this.m.get(id));
  }
  async removePreKey(id) {
    this.m.delete(id);
  }
}

class SignedPreKeys extends SignalClient.SignedPreKeyStore {
  constructor() {
    super();
    this.m = new Map();
  }
  async saveSignedPreKey(id, rec) {
    this.m.set(id, rec.serialize());
  }
  async getSignedPreKey(id) {
    return SignedPreKeyRecord.deserialize(this.m.get(id));
  }
}

class KyberPreKeys extends SignalClient.KyberPreKeyStore {
  constructor() {
    super();
    this.m = new Map();
  }
  async saveKyberPreKey(id, rec) {
    this.m.set(id, rec.serialize());
  }
  async getKyberPreKey(id) {
    return KyberPreKeyRecord.deserialize(this.m.get(id));
  }
  async markKyberPreKeyUsed(id) {
    this.m.delete(id);
  }
}

function party(name, regId) {
  const pair = IdentityKeyPair.generate();
  return {
    addr: ProtocolAddress.new(name, 1),
    pair,
    regId,
    identities: new Identities(pair, regId),
    sessions: new Sessions(),
    preKeys: new PreKeys(),
    signed: new SignedPreKeys(),
    kyber: new KyberPreKeys(),
  };
}

// keysOf gives p one-time prekey 1, signed prekey 1, Kyber prekey 1 and returns the
// bundle and the serialized one-time records (to put back after each use).
async function keysOf(p) {
  const now = Date.now();
  const pk = PrivateKey.generate();
  const pre = PreKeyRecord.new(1, pk.getPublicKey(), pk);
  const sk = PrivateKey.generate();
  const signed = SignedPreKeyRecord.new(1, now, sk.getPublicKey(), sk, p.pair.privateKey.sign(sk.getPublicKey().serialize()));
  const kp = KEMKeyPair.generate();
  const kyber = KyberPreKeyRecord.new(1, now, kp, p.pair.privateKey.sign(kp.getPublicKey().serialize()));
  await p.preKeys.savePreKey(1, pre);
  await p.signed.saveSignedPreKey(1, signed);
  await p.kyber.saveKyberPreKey(1, kyber);
  const bundle = PreKeyBundle.new(
    p.regId, 1, 1, pre.publicKey(), 1, signed.publicKey(), signed.signature(),
    p.pair.publicKey, 1, kyber.publicKey(), kyber.signature(),
  );
  return { bundle, pre: pre.serialize(), kyber: kyber.serialize() };
}

async function encrypt(from, to, msg) {
  return SignalClient.signalEncrypt(msg, ...addrs(to.addr, from.addr), from.sessions, from.identities);
}

async function decrypt(at, from, ct) {
  if (ct.type() === 3) {
    return SignalClient.signalDecryptPreKey(
      PreKeySignalMessage.deserialize(ct.serialize()), ...addrs(from.addr, at.addr),
      at.sessions, at.identities, at.preKeys, at.signed, at.kyber,
    );
  }
  return SignalClient.signalDecrypt(SignalMessage.deserialize(ct.serialize()), ...addrs(from.addr, at.addr), at.sessions, at.identities);
}

async function established() {
  const alice = party('alice', 1);
  const bob = party('bob', 2);
  const { bundle } = await keysOf(bob);
  await SignalClient.processPreKeyBundle(bundle, ...addrs(bob.addr, alice.addr), alice.sessions, alice.identities);
  await decrypt(bob, alice, await encrypt(alice, bob, new TextEncoder().encode('hello')));
  await decrypt(alice, bob, await encrypt(bob, alice, new TextEncoder().encode('hi')));
  return { alice, bob };
}

const msg = new Uint8Array(200).fill(0x78);

// Each op runs n iterations and returns [wall ns, cpu ns] per part.
const ops = {
  // Both sides of a session setup: the initiator processes a bundle and encrypts 200
  // bytes, the responder decrypts the PreKeySignalMessage (one-time EC and Kyber
  // prekeys included). Sessions are fresh each round.
  async pqxdh(n) {
    const alice = party('alice', 1);
    const bob = party('bob', 2);
    const { bundle, pre, kyber } = await keysOf(bob);
    let init = 0n;
    let resp = 0n;
    let initCPU = 0;
    let respCPU = 0;
    for (let i = 0; i < n; i++) {
      alice.sessions.m.clear();
      bob.sessions.m.clear();
      bob.preKeys.m.set(1, pre);
      bob.kyber.m.set(1, kyber);
      let c0 = process.cpuUsage();
      let t0 = process.hrtime.bigint();
      await SignalClient.processPreKeyBundle(bundle, ...addrs(bob.addr, alice.addr), alice.sessions, alice.identities);
      const ct = await encrypt(alice, bob, msg);
      let t1 = process.hrtime.bigint();
      let c1 = process.cpuUsage(c0);
      init += t1 - t0;
      initCPU += c1.user + c1.system;
      c0 = process.cpuUsage();
      t0 = process.hrtime.bigint();
      await decrypt(bob, alice, ct);
      t1 = process.hrtime.bigint();
      c1 = process.cpuUsage(c0);
      resp += t1 - t0;
      respCPU += c1.user + c1.system;
    }
    return {
      ns_per_op: Number(init + resp) / n,
      cpu_ns_per_op: ((initCPU + respCPU) * 1000) / n,
      initiator_ns_per_op: Number(init) / n,
      responder_ns_per_op: Number(resp) / n,
    };
  },
  // Encrypt and decrypt 200 bytes on one sending chain (no DH step).
  async same_chain(n) {
    const { alice, bob } = await established();
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      await decrypt(bob, alice, await encrypt(alice, bob, msg));
    }
    const t = process.hrtime.bigint() - t0;
    const c = process.cpuUsage(c0);
    return { ns_per_op: Number(t) / n, cpu_ns_per_op: ((c.user + c.system) * 1000) / n };
  },
  // Encrypt and decrypt 200 bytes, the conversation turning around at each message (a
  // DH ratchet step on each side).
  async dh_step(n) {
    const { alice, bob } = await established();
    let from = alice;
    let to = bob;
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      await decrypt(to, from, await encrypt(from, to, msg));
      [from, to] = [to, from];
    }
    const t = process.hrtime.bigint() - t0;
    const c = process.cpuUsage(c0);
    return { ns_per_op: Number(t) / n, cpu_ns_per_op: ((c.user + c.system) * 1000) / n };
  },
};

function parseArgs(argv) {
  const out = { n: 1000, op: null };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--n') out.n = Number(argv[++i]);
    else if (argv[i] === '--op') out.op = argv[++i];
    else if (argv[i] === '--lib') i++;
    else throw new Error(`unknown argument ${argv[i]}`);
  }
  if (!Number.isInteger(out.n) || out.n < 1) throw new Error('--n: want a positive integer');
  if (out.op !== null && !(out.op in ops)) throw new Error(`--op: want one of ${Object.keys(ops).join(', ')}`);
  return out;
}

async function main() {
  const { n, op } = parseArgs(process.argv.slice(2));
  for (const name of op === null ? Object.keys(ops) : [op]) {
    // A short warm-up so that lazy initialization is not timed.
    await ops[name](Math.min(n, 10));
    const r = await ops[name](n);
    process.stdout.write(JSON.stringify({ op: name, n, ...r }) + '\n');
  }
}

main().catch((e) => {
  process.stderr.write(`bench: ${e?.stack ?? e}\n`);
  process.exitCode = 1;
});
