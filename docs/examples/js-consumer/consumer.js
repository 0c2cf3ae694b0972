#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// consumer.js: an Aether consumer outside C, with the official NATS client
// for JavaScript (the `nats` package). It keeps its own view of the cluster's
// ShardMap and answers "which node owns this key?" exactly as every node
// does, from nothing but the wire format of docs/wire.md and DESIGN 4:
//
//   1. subscribe to aether.<cluster>.map (every ShardMap the leader publishes,
//      core NATS: at most once) BEFORE reading the current map, so nothing
//      published in between is lost;
//   2. read the current map from the JetStream KV bucket aether_<cluster>_state,
//      key "map" (bound, never created);
//   3. follow the event stream AETHER_<cluster>_EVENTS (aether-node
//      --event-stream) with an ordered consumer from its last message
//      (--replay: from its first; --from-seq N: from N):
//      check each event's per-term `seq` (1, 2, 3, ... within a term: a
//      jump is a gap), keep the nodes' statuses, and whenever an event names a
//      map version newer than the view (ShardAssigned, ShardMigrated,
//      RebalanceCompleted) re-read the map from KV: the publication it
//      stands for may have been missed. ShardAssigned and ShardMigrated are
//      batches (data.shards / data.moves, 1..1024 entries each);
//   4. LeaseRenewed (every ttl/4) is not stored in the stream: it is read on
//      core NATS (aether.<cluster>.evt.LeaseRenewed, seq 0, outside the
//      per-term numbering), and a renewal naming a newer map triggers the
//      same re-read.
//   A map replaces the view only if its version is higher (maps are whole and
//   immutable, versions only grow). key -> shard is XXH64(key bytes, seed 0)
//   mod shard_count (implemented below with BigInt and checked against
//   tests/vectors/keyhash.tsv).
//
// With --cluster-secret-file FILE (the cluster's cluster_secret_file), it
// verifies the Aether-Auth tag (docs/wire.md, "Authentication") of every map
// publication, every event it reads from the stream and every stored map it
// reads (fetched as the KV stream's last message on $KV.<bucket>.map, with
// its headers), and acts on nothing that does not verify: no tag, malformed,
// wrong MAC, stale (a publication made more than 60 s from this clock; an
// event or stored value made more than 60 s from the time the server stored
// it), or replayed (a sender's (epoch, ctr) admitted already, or more than 64
// below the highest admitted: one window for the map subject, one for the
// events, as a node keeps one per subscription). Refusals are counted by
// reason and source in the view ("auth") and logged at most once a second.
// BLAKE2b with a personal string comes from @noble/hashes, HMAC-SHA-512 from
// Node's crypto; tests/vectors/auth.tsv (made by the C code) checks both.
//
// Usage:
//   node consumer.js [--nats URL] [--cluster NAME] [--vectors FILE]
//                    [--auth-vectors FILE] [--cluster-secret-file FILE]
//                    [--view FILE] [--keys K1,K2,...] [--duration S]
//                    [--replay | --from-seq N]
//   node consumer.js --check-vectors-only [--vectors FILE] [--auth-vectors FILE]
//                    [--map-vectors DIR]
//   node consumer.js --help
// The events are read from the stream's last message on (what happens from
// now); --replay reads the whole stream from its first message (then the
// node statuses and the per-term seq check cover the cluster's history),
// --from-seq N from stream sequence N.
// Writes its view as JSON to --view FILE (atomically, after every change),
// one line per map / event / gap on stdout. Stops on SIGINT/SIGTERM or after
// --duration seconds, prints the final view and exits 0 (1 if a vector
// failed or a gap was seen; 2 for a bad option or secret file; 3 if the
// cluster cannot be reached).
"use strict";

const crypto = require("crypto");
const fs = require("fs");
const { connect, StringCodec } = require("nats");

// ---- XXH64 (seed 0), as xxhsum -H1 computes it -------------------------------
const M64 = (1n << 64n) - 1n;
const P1 = 11400714785074694791n;
const P2 = 14029467366897019727n;
const P3 = 1609587929392839161n;
const P4 = 9650029242287828579n;
const P5 = 2870177450012600261n;
const rotl = (x, r) => ((x << BigInt(r)) | (x >> BigInt(64 - r))) & M64;
const round = (acc, lane) => (rotl((acc + lane * P2) & M64, 31) * P1) & M64;
const merge = (acc, v) => ((((acc ^ round(0n, v)) * P1) & M64) + P4) & M64;

function xxh64(buf, seed = 0n) {
  const len = buf.length;
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const u64 = (i) => dv.getBigUint64(i, true);
  const u32 = (i) => BigInt(dv.getUint32(i, true));
  let p = 0;
  let h;
  if (len >= 32) {
    let v1 = (seed + P1 + P2) & M64;
    let v2 = (seed + P2) & M64;
    let v3 = seed;
    let v4 = (seed - P1) & M64;
    for (; p + 32 <= len; p += 32) {
      v1 = round(v1, u64(p));
      v2 = round(v2, u64(p + 8));
      v3 = round(v3, u64(p + 16));
      v4 = round(v4, u64(p + 24));
    }
    h = (rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18)) & M64;
    h = merge(merge(merge(merge(h, v1), v2), v3), v4);
  } else {
    h = (seed + P5) & M64;
  }
  h = (h + BigInt(len)) & M64;
  for (; p + 8 <= len; p += 8)
    h = (((rotl(h ^ round(0n, u64(p)), 27) * P1) & M64) + P4) & M64;
  if (p + 4 <= len) {
    h = (((rotl(h ^ ((u32(p) * P1) & M64), 23) * P2) & M64) + P3) & M64;
    p += 4;
  }
  for (; p < len; p++)
    h = (rotl(h ^ ((BigInt(buf[p]) * P5) & M64), 11) * P1) & M64;
  h = ((h ^ (h >> 33n)) * P2) & M64;
  h = ((h ^ (h >> 29n)) * P3) & M64;
  return h ^ (h >> 32n);
}

function shardOf(key, shardCount) {
  const bytes = typeof key === "string" ? Buffer.from(key, "utf8") : key;
  return Number(xxh64(bytes) % BigInt(shardCount));
}

// tests/vectors/keyhash.tsv: key_hex xxh64_hex shard_1 shard_1024 shard_16384
function checkVectors(path) {
  let ok = 0;
  const bad = [];
  for (const line of fs.readFileSync(path, "utf8").split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const [keyHex, hashHex, s1, s1024, s16384] = line.split("\t");
    const key = Buffer.from(keyHex, "hex");
    const h = xxh64(key).toString(16).padStart(16, "0");
    const want = [[1, s1], [1024, s1024], [16384, s16384]];
    const wrong = h !== hashHex || want.some(([n, s]) => shardOf(key, n) !== Number(s));
    if (wrong) bad.push(`key ${keyHex || "(empty)"}: xxh64 ${h}, want ${hashHex}`);
    else ok++;
  }
  return { ok, bad };
}


// ---- the cluster secret (transport/auth.h, docs/wire.md "Authentication") ------
// Tag "1 <sender> <epoch> <ctr> <ts_ms> <mac>": mac = HMAC-SHA-512-256 (libsodium
// crypto_auth: HMAC-SHA-512 cut to 32 bytes) under the cluster key over
// "aether-auth-1" 0 subject 0 sender 0 epoch ctr ts_ms (8 bytes LE each) payload;
// the key is BLAKE2b-256 of the secret file's bytes less trailing whitespace,
// personal string "aether.key.v1...", no key, no salt.
const AUTH_HEADER = "Aether-Auth";
const AUTH_DOMAIN = Buffer.from("aether-auth-1", "ascii");
const AUTH_PERSONAL = Buffer.from("aether.key.v1...", "ascii"); // 16 bytes
const AUTH_SECRET_MIN = 32;
const AUTH_SECRET_MAX = 4096;
const AUTH_SKEW_MS = 60000n;
const AUTH_TAG_MAX = 192; // with the C string's NUL: a tag has at most 191 bytes
const AUTH_WINDOW_SPAN = 64n;
const AUTH_WINDOW_SENDERS_MAX = 4096;
const U64_MAX = (1n << 64n) - 1n;
const NODE_ID = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/; // actors/node_id.h, at most 64 bytes
const ZERO = Buffer.alloc(1);

// The cluster key from the secret's bytes (aether_auth_create); throws naming the reason.
function authKey(bytes) {
  let n = bytes.length;
  while (n > 0 && [0x20, 0x09, 0x0a, 0x0d].includes(bytes[n - 1])) n--;
  if (n < AUTH_SECRET_MIN)
    throw new Error(`the secret has ${n} bytes, at least ${AUTH_SECRET_MIN} are needed (aetherctl secret new FILE makes one)`);
  if (n > AUTH_SECRET_MAX) throw new Error(`the secret has ${n} bytes, at most ${AUTH_SECRET_MAX} are read`);
  const { blake2b } = require("@noble/hashes/blake2b");
  return Buffer.from(blake2b(bytes.subarray(0, n), { dkLen: 32, personalization: AUTH_PERSONAL }));
}

// The key from a secret file (aether_auth_load_file); throws naming the file.
function loadSecretFile(path) {
  try {
    const st = fs.statSync(path);
    if (!st.isFile()) throw new Error("not a regular file");
    if (st.size > AUTH_SECRET_MAX + 16) throw new Error(`${st.size} bytes, a secret file has at most ${AUTH_SECRET_MAX}`);
    return authKey(fs.readFileSync(path));
  } catch (err) {
    throw new Error(`cluster secret file ${path}: ${err.code ? err.code : err.message}`);
  }
}

function macOf(key, subject, sender, epoch, ctr, ts, payload) {
  const nums = Buffer.alloc(24);
  nums.writeBigUInt64LE(epoch, 0);
  nums.writeBigUInt64LE(ctr, 8);
  nums.writeBigUInt64LE(ts, 16);
  return crypto.createHmac("sha512", key).update(AUTH_DOMAIN).update(ZERO).update(Buffer.from(subject, "utf8"))
    .update(ZERO).update(Buffer.from(sender, "ascii")).update(ZERO).update(nums).update(payload)
    .digest().subarray(0, 32);
}

// aether_auth_open: {stamp: {sender, epoch, ctr, ts}} or {reason, why}. nowMs (a
// BigInt) 0n: no freshness check.
function openTag(key, subject, payload, tag, nowMs) {
  const bad = (reason, why) => ({ reason, why });
  if (!tag) return bad("no_tag", `no ${AUTH_HEADER} tag`);
  if (Buffer.byteLength(tag, "utf8") >= AUTH_TAG_MAX) return bad("malformed", `malformed tag: longer than ${AUTH_TAG_MAX - 1} bytes`);
  const f = tag.split(" ").filter((x) => x !== "");
  if (f.length !== 6) return bad("malformed", `malformed tag: ${f.length} fields, 6 expected`);
  if (f[0] !== "1") return bad("malformed", "malformed tag: format is not 1");
  if (f[1].length > 64 || !NODE_ID.test(f[1])) return bad("malformed", "malformed tag: sender is not a NodeId");
  if (!/^[0-9a-fA-F]{16}$/.test(f[2])) return bad("malformed", "malformed tag: epoch is not 16 hex digits");
  const dec = (x) => (/^[0-9]{1,20}$/.test(x) && BigInt(x) <= U64_MAX ? BigInt(x) : null);
  const ctr = dec(f[3]);
  if (ctr === null || ctr === 0n) return bad("malformed", "malformed tag: counter is not a positive integer");
  const ts = dec(f[4]);
  if (ts === null) return bad("malformed", "malformed tag: ts_ms is not an integer");
  if (!/^[0-9a-fA-F]{64}$/.test(f[5])) return bad("malformed", "malformed tag: the MAC is not 64 hex digits");
  const stamp = { sender: f[1], epoch: BigInt(`0x${f[2]}`), ctr, ts };
  const want = macOf(key, subject, stamp.sender, stamp.epoch, ctr, ts, payload);
  if (!crypto.timingSafeEqual(want, Buffer.from(f[5], "hex")))
    return bad("wrong_mac", "wrong MAC (another secret, or altered bytes, subject or tag)");
  const skew = nowMs > ts ? nowMs - ts : ts - nowMs;
  if (nowMs !== 0n && skew > AUTH_SKEW_MS)
    return bad("stale", `stale: made ${skew} ms ${nowMs > ts ? "before" : "after"} the reference clock (at most ${AUTH_SKEW_MS})`);
  return { stamp };
}

// aether_auth_window: per sender the highest (epoch, ctr) admitted and which of
// the 64 counters below it were. admit() returns null or the refusal.
class ReplayWindow {
  constructor() { this.senders = new Map(); }
  admit(st) {
    const e = this.senders.get(st.sender);
    if (e === undefined) {
      if (this.senders.size >= AUTH_WINDOW_SENDERS_MAX)
        return { reason: "too_many_senders", why: `${AUTH_WINDOW_SENDERS_MAX} senders known already; ${st.sender} not admitted` };
      this.senders.set(st.sender, { epoch: st.epoch, ctr: st.ctr, seen: 1n });
      return null;
    }
    if (st.epoch > e.epoch || (st.epoch === e.epoch && st.ctr > e.ctr)) {
      const shift = st.epoch > e.epoch ? AUTH_WINDOW_SPAN : st.ctr - e.ctr;
      e.seen = shift >= AUTH_WINDOW_SPAN ? 1n : ((e.seen << shift) | 1n) & U64_MAX;
      e.epoch = st.epoch;
      e.ctr = st.ctr;
      return null;
    }
    const back = st.epoch === e.epoch ? e.ctr - st.ctr : AUTH_WINDOW_SPAN;
    if (back < AUTH_WINDOW_SPAN && (e.seen & (1n << back)) === 0n) {
      e.seen |= 1n << back;
      return null;
    }
    const hex = (x) => x.toString(16).padStart(16, "0");
    return { reason: "replayed", why: `replayed: ${st.sender}'s counter ${hex(st.epoch)}/${st.ctr} was admitted already or is too old (highest ${hex(e.epoch)}/${e.ctr})` };
  }
}

// tests/vectors/auth.tsv (made by the C code): secret_hex subject sender
// epoch_hex ctr ts_ms payload_hex tag. Each tag must verify, and the tag this
// file makes for the same inputs must equal it byte for byte; altered copies
// (payload, subject, counter) must not verify and a second admission of the
// same counter must be refused.
function checkAuthVectors(path) {
  let ok = 0;
  const bad = [];
  let n = 0;
  for (const line of fs.readFileSync(path, "utf8").split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    n++;
    const [secretHex, subject, sender, epochHex, ctrS, tsS, payloadHex, tag] = line.split("\t");
    const why = [];
    try {
      const key = authKey(Buffer.from(secretHex, "hex"));
      const payload = Buffer.from(payloadHex, "hex");
      const epoch = BigInt(`0x${epochHex}`);
      const ctr = BigInt(ctrS);
      const ts = BigInt(tsS);
      const mine = `1 ${sender} ${epochHex} ${ctr} ${ts} ${macOf(key, subject, sender, epoch, ctr, ts, payload).toString("hex")}`;
      if (mine !== tag) why.push(`tag ${mine}, the C code's ${tag}`);
      const r = openTag(key, subject, payload, tag, 0n);
      if (!r.stamp) why.push(`does not verify: ${r.why}`);
      else if (r.stamp.sender !== sender || r.stamp.epoch !== epoch || r.stamp.ctr !== ctr || r.stamp.ts !== ts)
        why.push("the stamp read differs from the columns");
      if (openTag(key, subject, Buffer.concat([payload, Buffer.from("x")]), tag, 0n).reason !== "wrong_mac")
        why.push("a longer payload verifies");
      if (openTag(key, `${subject}x`, payload, tag, 0n).reason !== "wrong_mac") why.push("another subject verifies");
      const other = tag.split(" ");
      other[3] = String(ctr === 1n ? 2n : ctr - 1n);
      if (openTag(key, subject, payload, other.join(" "), 0n).reason !== "wrong_mac") why.push("another counter verifies");
      if (openTag(key, subject, payload, tag, ts + AUTH_SKEW_MS + 1n).reason !== "stale" && ts + AUTH_SKEW_MS + 1n <= U64_MAX)
        why.push("a tag 60.001 s old is not stale");
      if (r.stamp) {
        const w = new ReplayWindow();
        if (w.admit(r.stamp) !== null || w.admit(r.stamp) === null) why.push("the replay window admits a counter twice");
      }
    } catch (err) {
      why.push(err.message);
    }
    if (why.length > 0) bad.push(`auth vector ${n} (${subject}): ${why.join("; ")}`);
    else ok++;
  }
  return { ok, bad };
}

// ---- options -------------------------------------------------------------------
function parseArgs(argv) {
  const o = { nats: "nats://127.0.0.1:4222", cluster: "aether", keys: [], duration: 0, fromSeq: null, replay: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    if (a === "--nats") o.nats = val();
    else if (a === "--cluster") o.cluster = val();
    else if (a === "--vectors") o.vectors = val();
    else if (a === "--auth-vectors") o.authVectors = val();
    else if (a === "--cluster-secret-file") o.secretFile = val();
    else if (a === "--view") o.view = val();
    else if (a === "--keys") o.keys = val().split(",").filter((k) => k !== "");
    else if (a === "--duration") o.duration = Number(val());
    else if (a === "--from-seq") o.fromSeq = Number(val());
    else if (a === "--replay") o.replay = true;
    else if (a === "--map-vectors") o.mapVectors = val();
    else if (a === "--check-vectors-only") o.vectorsOnly = true;
    else if (a === "--help" || a === "-h") help();
    else usage(`unknown option ${a}`);
  }
  if (!(o.duration >= 0) || (o.fromSeq !== null && !(Number.isSafeInteger(o.fromSeq) && o.fromSeq >= 1)))
    usage("bad --duration or --from-seq");
  if (o.replay && o.fromSeq !== null) usage("--replay and --from-seq are exclusive");
  if (o.vectorsOnly && !o.vectors && !o.authVectors && !o.mapVectors)
    usage("--check-vectors-only needs --vectors, --auth-vectors or --map-vectors");
  return o;
}

const USAGE = "usage: node consumer.js [--nats URL] [--cluster NAME] [--vectors FILE] [--auth-vectors FILE]\n" +
  "       [--cluster-secret-file FILE] [--view FILE] [--keys K1,K2] [--duration S]\n" +
  "       [--replay | --from-seq N]\n" +
  "   or: node consumer.js --check-vectors-only [--vectors FILE] [--auth-vectors FILE] [--map-vectors DIR]\n" +
  "   or: node consumer.js --help";

function usage(why) {
  console.error(`consumer.js: ${why}`);
  console.error(USAGE);
  process.exit(2);
}

function help() {
  console.log(USAGE + `

Keeps a view of an Aether cluster's shard map (KV bucket aether_<cluster>_state,
the map publications on aether.<cluster>.map, the event stream
AETHER_<cluster>_EVENTS) and answers which node owns a key.

  --nats URL                 NATS server (default nats://127.0.0.1:4222)
  --cluster NAME             cluster name (default aether)
  --cluster-secret-file FILE verify every map, event and stored value with the
                             cluster secret; act on nothing unauthenticated
  --view FILE                write the view as JSON there after every change
  --keys K1,K2               keys whose shard and owner the view lists
  --duration S               stop after S seconds (default: at SIGINT/SIGTERM)
  --replay                   read the event stream from its first message
                             (default: from its last message on)
  --from-seq N               read the event stream from stream sequence N
  --vectors FILE             check XXH64 against tests/vectors/keyhash.tsv
  --auth-vectors FILE        check the key derivation and MACs (auth.tsv)
  --map-vectors DIR          check the map decoder/encoder on tests/corpus/shardmap_codec
  --check-vectors-only       check the vectors and exit
  -h, --help                 this help

Exit status: 0 ok; 1 a vector failed or a gap was seen; 2 bad option or secret
file; 3 the cluster cannot be reached or has no event stream.`);
  process.exit(0);
}

// ---- the view --------------------------------------------------------------------
const view = {
  cluster: null,
  map: null,              // the ShardMap of docs/wire.md (format 2, decodeMap), as last applied
  mapSource: null,        // "kv" | "publication"
  nodes: {},              // id -> status, from the events (joined/draining/left/failed)
  leader: null,
  term: 0,
  events: 0,
  renewals: 0,            // LeaseRenewed heard on core NATS
  gaps: [],               // {term, from, to, stream_seq}
  lastSeq: {},            // term -> last per-term seq seen
  lastStreamSeq: 0,
  maxTerm: 0,
  complete: false,        // the replay starts at stream #1
  fromSeq: null,          // the stream sequence the replay starts at
  auth: { enabled: false, refused: 0, reasons: {}, sources: {} }, // unauthenticated input refused
};

// With a secret: the key, one replay window per subscription (the map
// subject; the event stream), and the refusal log's rate limit.
const auth = { key: null, mapWindow: new ReplayWindow(), eventWindow: new ReplayWindow(),
  renewWindow: new ReplayWindow(), lastLogMs: 0, suppressed: 0 };

// True if the bytes on subject carry a tag that verifies (always, without a
// secret). refMs: the clock the tag's ts_ms must be within 60 s of (now for a
// publication, the server's stored time for a stream message or stored
// value); window: the replay window, or null (a stored value: its revisions
// order it). A refusal is counted by reason and source and logged, at most
// one line a second with the count of lines suppressed.
const AUTH_SOURCES = { map: "map publication", event: "event", kv: "stored map" };
function authentic(source, subject, payload, headers, refMs, window) {
  if (auth.key === null) return true;
  const tag = headers ? headers.get(AUTH_HEADER) : "";
  // A reference clock that cannot be read checks against this one.
  const ref = Number.isFinite(refMs) && refMs > 0 ? refMs : Date.now();
  let r = openTag(auth.key, subject, payload, tag, BigInt(Math.floor(ref)));
  if (r.stamp && window !== null) r = window.admit(r.stamp) || r;
  if (r.stamp) return true;
  const a = view.auth;
  a.refused++;
  a.reasons[r.reason] = (a.reasons[r.reason] || 0) + 1;
  a.sources[source] = (a.sources[source] || 0) + 1;
  const now = Date.now();
  if (now - auth.lastLogMs >= 1000) {
    console.log(`UNAUTHENTICATED ${AUTH_SOURCES[source]} on ${subject} refused: ${r.why} [${auth.suppressed} more suppressed]`);
    auth.lastLogMs = now;
    auth.suppressed = 0;
  } else {
    auth.suppressed++;
  }
  return false;
}

// ---- ShardMap format 2 (docs/wire.md, "ShardMap format 2") ------------------------
// The stored map (KV key "map") and every map publication are this binary
// layout, little-endian: a 44-byte header, the node table, R u16 owner slots
// per shard (0xFFFF = none, only after the owners), the moving shards. The
// decoder is as strict as the C one (actors/shardmap_codec.c) and returns
// the shape the rest of this file reads: {version, term, gen, shard_count,
// replication, nodes, shards: [{id, owners: [ids], state, to?}]}.
const MAP_MAGIC = "AMAP";
const MAP_HEADER = 44;
const NONE = 0xffff;
const ID_RE = /^[A-Za-z0-9._-]{1,64}$/;

// exact: version and term as BigInt (the vectors reach 2^63-1); otherwise
// Numbers, and a map numbered beyond 2^53 is refused (not exact here).
function decodeMap(bytes, exact = false) {
  const b = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  const fail = (why) => { throw new Error(`map: ${why}`); };
  if (b.length > 0 && b[0] === 0x7b) fail("map format 1 (JSON): the cluster runs a release before map format 2");
  if (b.length < MAP_HEADER) fail(`${b.length} bytes, shorter than the ${MAP_HEADER}-byte header`);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (String.fromCharCode(b[0], b[1], b[2], b[3]) !== MAP_MAGIC) fail("magic: not a ShardMap");
  if (b[4] !== 2) fail(`format ${b[4]}, this reader takes format 2`);
  const r = b[5], flags = dv.getUint16(6, true), sc = dv.getUint32(8, true);
  const version = dv.getBigUint64(12, true), term = dv.getBigUint64(20, true);
  const gen = dv.getBigUint64(28, true), n = dv.getUint32(36, true), moving = dv.getUint32(40, true);
  if (r < 1 || r > 7) fail(`replication ${r} out of range 1..7`);
  if (flags !== 0) fail(`flags ${flags}, expected 0`);
  if (sc < 1 || sc > 65536) fail(`shard_count ${sc} out of range 1..65536`);
  if (version >= 1n << 63n || term >= 1n << 63n) fail("version or term above 2^63-1");
  if (!exact && (version > BigInt(Number.MAX_SAFE_INTEGER) || term > BigInt(Number.MAX_SAFE_INTEGER)))
    fail("version or term beyond 2^53: not exact in JavaScript");
  if (n > 65535) fail(`node_count ${n} out of range`);
  if (moving > sc) fail(`moving_count ${moving} above shard_count ${sc}`);
  let p = MAP_HEADER;
  const nodes = [];
  for (let i = 0; i < n; i++) {
    if (p >= b.length || p + 1 + b[p] > b.length) fail(`nodes[${i}]: input ends inside the node table`);
    const id = String.fromCharCode(...b.subarray(p + 1, p + 1 + b[p]));
    if (!ID_RE.test(id)) fail(`nodes[${i}]: not a node id`);
    if (i > 0 && !(nodes[i - 1] < id)) fail(`nodes[${i}]: ${id} not after ${nodes[i - 1]}`);
    nodes.push(id);
    p += 1 + b[p];
  }
  if (b.length - p !== sc * r * 2 + moving * 4)
    fail(`${b.length - p} bytes after the node table, ${sc * r * 2 + moving * 4} expected`);
  const shards = new Array(sc);
  for (let s = 0; s < sc; s++, p += 2 * r) {
    const owners = [];
    for (let j = 0; j < r; j++) {
      const v = dv.getUint16(p + 2 * j, true);
      if (v === NONE) continue;
      if (owners.length !== j) fail(`shards[${s}].owners[${j}]: an owner after an empty slot`);
      if (v >= n) fail(`shards[${s}].owners[${j}]: node index ${v} out of range`);
      if (owners.includes(nodes[v])) fail(`shards[${s}].owners[${j}]: duplicate owner ${nodes[v]}`);
      owners.push(nodes[v]);
    }
    if (owners.length === 0 && n > 0) fail(`shards[${s}]: no primary owner`);
    shards[s] = { id: s, owners, state: "stable" };
  }
  for (let i = 0, last = -1; i < moving; i++, p += 4) {
    const s = dv.getUint16(p, true), to = dv.getUint16(p + 2, true);
    if (s <= last || s >= sc) fail(`moving[${i}].shard ${s}: not ascending or out of range`);
    last = s;
    if (shards[s].owners.length === 0) fail(`moving[${i}]: shard ${s} has no primary`);
    if (to >= n || nodes[to] === shards[s].owners[0]) fail(`moving[${i}].to: not a node, or the primary`);
    shards[s].state = "moving";
    shards[s].to = nodes[to];
  }
  const num = (x) => (exact ? x : Number(x));
  return { version: num(version), term: num(term), gen: gen === 0n ? null : gen.toString(16).padStart(16, "0"),
    shard_count: sc, replication: r, nodes, shards };
}

// The inverse, for the vectors: decodeMap(x) re-encoded must be x.
function encodeMap(m) {
  const index = new Map(m.nodes.map((id, i) => [id, i]));
  const moving = m.shards.filter((s) => s.state === "moving");
  const len = MAP_HEADER + m.nodes.reduce((a, id) => a + 1 + id.length, 0) + m.shard_count * m.replication * 2 + moving.length * 4;
  const b = new Uint8Array(len), dv = new DataView(b.buffer);
  b.set([0x41, 0x4d, 0x41, 0x50, 2, m.replication], 0);
  dv.setUint32(8, m.shard_count, true);
  dv.setBigUint64(12, BigInt(m.version), true);
  dv.setBigUint64(20, BigInt(m.term), true);
  dv.setBigUint64(28, m.gen === null ? 0n : BigInt(`0x${m.gen}`), true);
  dv.setUint32(36, m.nodes.length, true);
  dv.setUint32(40, moving.length, true);
  let p = MAP_HEADER;
  for (const id of m.nodes) {
    b[p] = id.length;
    for (let i = 0; i < id.length; i++) b[p + 1 + i] = id.charCodeAt(i);
    p += 1 + id.length;
  }
  for (const s of m.shards)
    for (let j = 0; j < m.replication; j++, p += 2) dv.setUint16(p, j < s.owners.length ? index.get(s.owners[j]) : NONE, true);
  for (const s of moving) {
    dv.setUint16(p, s.id, true);
    dv.setUint16(p + 2, index.get(s.to), true);
    p += 4;
  }
  return b;
}

// --map-vectors DIR: every .bin of tests/corpus/shardmap_codec decodes and
// re-encodes to its exact bytes.
function checkMapVectors(dir) {
  let ok = 0, failed = 0;
  for (const f of fs.readdirSync(dir).filter((f) => f.endsWith(".bin")).sort()) {
    const bytes = new Uint8Array(fs.readFileSync(`${dir}/${f}`));
    try {
      const again = encodeMap(decodeMap(bytes, true));
      if (again.length === bytes.length && again.every((x, i) => x === bytes[i])) ok++;
      else { failed++; console.log(`map vector ${f}: re-encoded to different bytes`); }
    } catch (err) {
      failed++;
      console.log(`map vector ${f}: ${err.message}`);
    }
  }
  console.log(`map vectors: ${ok} ok, ${failed} failed`);
  return failed === 0 && ok > 0;
}

function validMap(m) {
  return m && Number.isSafeInteger(m.version) && Number.isSafeInteger(m.shard_count) &&
    Array.isArray(m.shards) && m.shards.length === m.shard_count &&
    m.shards.every((s, i) => s.id === i && Array.isArray(s.owners));
}

function applyMap(m, source) {
  if (!validMap(m)) {
    console.log(`refused a map from ${source}: not the ShardMap shape`);
    return false;
  }
  if (view.map !== null && m.version <= view.map.version) return false;
  view.map = m;
  view.mapSource = source;
  console.log(`map v${m.version} term ${m.term} (${source}): ${m.shard_count} shards, R${m.replication}`);
  return true;
}

function lookup(key) {
  const m = view.map;
  const shard = shardOf(key, m.shard_count);
  const e = m.shards[shard];
  return { key, shard, primary: e.owners[0] || null, owners: e.owners, moving: e.state === "moving",
    to: e.to || null };
}

function snapshot(keys) {
  const m = view.map;
  const perNode = {};
  if (m !== null) {
    m.shards.forEach((s) => s.owners.forEach((id, j) => {
      const n = perNode[id] || (perNode[id] = { primaries: [], replicas: 0 });
      if (j === 0) n.primaries.push(s.id);
      else n.replicas++;
    }));
  }
  return {
    cluster: view.cluster,
    map_version: m ? m.version : null,
    term: m ? m.term : null,
    shard_count: m ? m.shard_count : null,
    replication: m ? m.replication : null,
    map_source: view.mapSource,
    owners: m ? m.shards.map((s) => s.owners[0] || null) : [],
    moving: m ? m.shards.filter((s) => s.state === "moving").length : 0,
    nodes: Object.fromEntries(Object.entries(perNode).sort().map(([id, n]) =>
      [id, { primaries: n.primaries.length, replicas: n.replicas, primary_shards: ranges(n.primaries) }])),
    statuses: view.nodes,
    leader: view.leader,
    leader_term: view.term,
    events: view.events,
    renewals: view.renewals,
    last_stream_seq: view.lastStreamSeq,
    from_stream_seq: view.fromSeq,
    gaps: view.gaps,
    auth: view.auth,
    keys: m ? keys.map(lookup) : [],
  };
}

// "0-3,7,9-12", as aetherctl shards --node prints them.
function ranges(ids) {
  const out = [];
  for (let i = 0; i < ids.length;) {
    let j = i;
    while (j + 1 < ids.length && ids[j + 1] === ids[j] + 1) j++;
    out.push(j > i ? `${ids[i]}-${ids[j]}` : `${ids[i]}`);
    i = j + 1;
  }
  return out.join(",");
}

let viewFile = null;
let viewKeys = [];
function writeView() {
  if (viewFile === null) return;
  const tmp = `${viewFile}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(snapshot(viewKeys)) + "\n");
  fs.renameSync(tmp, viewFile);
}

// Per-term sequence check (DESIGN 2: seq 1, 2, 3, ... within a term).
function checkSeq(ev, streamSeq) {
  if (ev.seq === 0) return;
  const last = view.lastSeq[ev.term];
  let from = null;
  if (last === undefined) {
    // Replaying from stream #1, a new term above all seen must start at 1;
    // from the middle, its first events may lie before where we started.
    if (ev.term > view.maxTerm && ev.seq !== 1 && view.complete) from = 1;
  } else if (ev.seq > last + 1) {
    from = last + 1;
  }
  if (from !== null) {
    const gap = { term: ev.term, from, to: ev.seq - 1, stream_seq: streamSeq };
    view.gaps.push(gap);
    console.log(`GAP term ${gap.term}: seq ${gap.from}..${gap.to} missing (before stream #${streamSeq})`);
  }
  if (last === undefined || ev.seq > last) view.lastSeq[ev.term] = ev.seq;
  if (ev.term > view.maxTerm) view.maxTerm = ev.term;
}

const EVENT_MAP_VERSION = {
  ShardAssigned: (d) => d.map_version,
  ShardMigrated: (d) => d.map_version,
  RebalanceCompleted: (d) => d.map_version,
  LeaseRenewed: (d) => d.map_version,
};

// The entries of a batch event (DESIGN 2: at most 1024 per event), or null
// for a malformed one; undefined for the other types.
const BATCH_MAX = 1024;
const BATCH_KEY = { ShardAssigned: "shards", ShardMigrated: "moves" };
function batchEntries(ev) {
  const key = BATCH_KEY[ev.type];
  if (key === undefined) return undefined;
  const list = ev.data[key];
  if (!Array.isArray(list) || list.length < 1 || list.length > BATCH_MAX) return null;
  return list;
}

// An envelope of this cluster on its subject, or null (printed as refused).
function eventEnvelope(bytes, subject, prefix, cluster) {
  let ev;
  try {
    ev = JSON.parse(new TextDecoder().decode(bytes));
  } catch (err) {
    return { refused: err.message };
  }
  if (ev.v !== 1 || ev.cluster !== cluster || `${prefix}evt.${ev.type}` !== subject ||
      !Number.isSafeInteger(ev.term) || !Number.isSafeInteger(ev.seq) || typeof ev.data !== "object" ||
      ev.data === null)
    return { refused: "not an Aether event envelope" };
  if (batchEntries(ev) === null) return { refused: `${ev.type} without 1..${BATCH_MAX} entries` };
  return { ev };
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  if (o.vectors) {
    const { ok, bad } = checkVectors(o.vectors);
    bad.forEach((b) => console.log(`vector FAILED: ${b}`));
    console.log(`vectors: ${ok} ok, ${bad.length} failed (${o.vectors})`);
    if (bad.length > 0) process.exit(1);
  }
  if (o.authVectors) {
    const { ok, bad } = checkAuthVectors(o.authVectors);
    bad.forEach((b) => console.log(`vector FAILED: ${b}`));
    console.log(`auth vectors: ${ok} ok, ${bad.length} failed (${o.authVectors})`);
    if (bad.length > 0 || ok === 0) process.exit(1);
  }
  if (o.mapVectors && !checkMapVectors(o.mapVectors)) process.exit(1);
  if (o.vectorsOnly) return;
  if (o.secretFile) {
    try {
      auth.key = loadSecretFile(o.secretFile);
    } catch (err) {
      console.error(`consumer.js: ${err.message}`);
      process.exit(2);
    }
    view.auth.enabled = true;
    console.log(`cluster secret loaded from ${o.secretFile}: maps, events and stored values are verified`);
  }
  view.cluster = o.cluster;
  viewFile = o.view || null;
  viewKeys = o.keys;
  const sc = StringCodec();
  const prefix = `aether.${o.cluster}.`;
  let nc;
  try {
    nc = await connect({ servers: o.nats.split(","), name: "aether-js-consumer", timeout: 5000 });
  } catch (err) {
    console.error(`consumer.js: cannot connect to ${o.nats}: ${err.message}`);
    process.exit(3);
  }
  const js = nc.jetstream();
  let stopping = false;
  const stop = () => {
    if (!stopping) {
      stopping = true;
      nc.close().catch(() => {});
    }
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  if (o.duration > 0) setTimeout(stop, o.duration * 1000).unref();

  // 1. map publications first, 2. then the stored map.
  const mapSub = nc.subscribe(`${prefix}map`);
  (async () => {
    for await (const m of mapSub) {
      if (!authentic("map", m.subject, m.data, m.headers, Date.now(), auth.mapWindow)) {
        writeView();
        continue;
      }
      try {
        if (applyMap(decodeMap(m.data), "publication")) writeView();
      } catch (err) {
        console.log(`refused a map publication: ${err.message}`);
      }
    }
  })();
  const bucket = `aether_${o.cluster}_state`;
  let kv;
  let jsm = null;
  try {
    kv = await js.views.kv(bucket, { bindOnly: true });
    if (auth.key !== null) jsm = await nc.jetstreamManager();
  } catch (err) {
    console.error(`consumer.js: no state bucket ${bucket}: ${err.message}`);
    await nc.close();
    process.exit(3);
  }
  // The stored map with its headers (a KvEntry has none): the last message of
  // the bucket's stream on $KV.<bucket>.map, verified against the time the
  // server stored it. null: no map (none stored, or deleted).
  const storedMap = async () => {
    let sm;
    try {
      sm = await jsm.streams.getMessage(`KV_${bucket}`, { last_by_subj: `$KV.${bucket}.map` });
    } catch (err) {
      if (err.code === "404" || /no message found/i.test(err.message)) return null;
      throw err;
    }
    if (!authentic("kv", sm.subject, sm.data, sm.header, sm.time.getTime(), null)) return undefined;
    const op = sm.header ? sm.header.get("KV-Operation") : "";
    return op === "DEL" || op === "PURGE" ? null : sm.data;
  };
  let resyncing = null;
  const resync = async (why) => {
    if (resyncing !== null) return resyncing;
    resyncing = (async () => {
      try {
        if (jsm !== null) {
          const bytes = await storedMap();
          if (bytes === undefined) writeView(); // refused: counted in the view
          else if (bytes !== null && applyMap(decodeMap(bytes), `kv, ${why}`)) writeView();
          return;
        }
        const e = await kv.get("map");
        if (e !== null && e.operation === "PUT" && applyMap(decodeMap(e.value), `kv, ${why}`))
          writeView();
      } catch (err) {
        if (!stopping) console.log(`map re-read failed: ${err.message}`);
      } finally {
        resyncing = null;
      }
    })();
    return resyncing;
  };
  await resync("start");
  writeView();

  // 4. LeaseRenewed on core NATS (the stream does not store it).
  const renewSub = nc.subscribe(`${prefix}evt.LeaseRenewed`);
  (async () => {
    for await (const m of renewSub) {
      if (!authentic("event", m.subject, m.data, m.headers, Date.now(), auth.renewWindow)) {
        writeView();
        continue;
      }
      const { ev } = eventEnvelope(m.data, m.subject, prefix, o.cluster);
      if (ev === undefined) continue;
      view.renewals++;
      const mv = ev.data.map_version;
      if (Number.isSafeInteger(mv) && (view.map === null || mv > view.map.version))
        await resync(`LeaseRenewed names v${mv}`);
    }
  })();

  // 3. the event stream, with an ordered consumer.
  const stream = `AETHER_${o.cluster}_EVENTS`;
  // Where to start: --from-seq N, --replay (stream #1), else the stream's
  // last sequence (an empty stream: its next one), read before the consumer
  // is made so nothing stored in between is skipped.
  let consumer, info;
  try {
    info = await (await js.streams.get(stream)).info();
    view.fromSeq = o.fromSeq !== null ? o.fromSeq
      : o.replay ? 1 : Math.max(info.state.last_seq, 1);
    consumer = await js.consumers.get(stream, view.fromSeq > 1
      ? { deliver_policy: "by_start_sequence", opt_start_seq: view.fromSeq } : {});
  } catch (err) {
    console.error(`consumer.js: no event stream ${stream} (run aether-node with --event-stream): ${err.message}`);
    await nc.close();
    process.exit(3);
  }
  view.complete = info.state.first_seq === 1 && view.fromSeq <= 1;
  const messages = await consumer.consume();
  nc.closed().then(() => messages.stop());
  console.log(`following ${stream} from #${view.fromSeq} and ${prefix}map`);
  for await (const m of messages) {
    if (!authentic("event", m.subject, m.data, m.headers, m.info.timestampNanos / 1e6, auth.eventWindow)) {
      if (m.info.pending === 0) writeView();
      continue;
    }
    const { ev, refused } = eventEnvelope(m.data, m.subject, prefix, o.cluster);
    if (refused !== undefined) {
      console.log(`#${m.seq} refused: ${refused}`);
      continue;
    }
    checkSeq(ev, m.seq);
    view.events++;
    view.lastStreamSeq = m.seq;
    const d = ev.data;
    switch (ev.type) {
      case "NodeJoined": view.nodes[d.node] = "active"; break;
      case "NodeDraining": view.nodes[d.node] = "draining"; break;
      case "NodeLeft": view.nodes[d.node] = "left"; break;
      case "NodeFailed": view.nodes[d.node] = "failed"; break;
      case "LeaderElected":
        if (d.term >= view.term) { view.leader = d.leader; view.term = d.term; }
        break;
      case "LeadershipLost":
        if (d.term === view.term) view.leader = null;
        break;
      default: break;
    }
    const entries = batchEntries(ev);
    if (ev.type !== "LeaseRenewed") // an older stream may still hold renewals
      console.log(`#${m.seq} ${ev.type} term=${ev.term} seq=${ev.seq} node=${ev.node}` +
        (entries ? ` ${BATCH_KEY[ev.type]}=${entries.length}` : ""));
    const mv = EVENT_MAP_VERSION[ev.type] ? EVENT_MAP_VERSION[ev.type](d) : undefined;
    if (mv !== undefined && (view.map === null || mv > view.map.version)) await resync(`${ev.type} names v${mv}`);
    if (ev.type !== "LeaseRenewed" || m.info.pending === 0) writeView();
  }
  await nc.closed();
  writeView();
  const s = snapshot(viewKeys);
  console.log(`final: map v${s.map_version}, ${s.events} events (last #${s.last_stream_seq}), ${s.gaps.length} gaps` +
    (s.auth.enabled ? `, ${s.auth.refused} unauthenticated refused ${JSON.stringify(s.auth.reasons)}` : ""));
  process.exitCode = s.gaps.length > 0 ? 1 : 0;
}

main().catch((err) => {
  console.error(`consumer.js: ${err.stack || err}`);
  process.exit(1);
});
