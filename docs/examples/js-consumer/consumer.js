#!/usr/bin/env node
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
//      --event-stream) with an ordered consumer from its first message:
//      check each event's per-term `seq` (1, 2, 3, ... within a term: a
//      jump is a gap), keep the nodes' statuses, and whenever an event names a
//      map version newer than the view (ShardAssigned, ShardMigrated,
//      RebalanceCompleted, LeaseRenewed) re-read the map from KV: the
//      publication it stands for may have been missed.
//   A map replaces the view only if its version is higher (maps are whole and
//   immutable, versions only grow). key -> shard is XXH64(key bytes, seed 0)
//   mod shard_count (implemented below with BigInt and checked against
//   tests/vectors/keyhash.tsv).
//
// Usage:
//   node consumer.js [--nats URL] [--cluster NAME] [--vectors FILE]
//                    [--view FILE] [--keys K1,K2,...] [--duration S] [--from-seq N]
//   node consumer.js --check-vectors-only --vectors FILE
// Writes its view as JSON to --view FILE (atomically, after every change),
// one line per map / event / gap on stdout. Stops on SIGINT/SIGTERM or after
// --duration seconds, prints the final view and exits 0 (1 if a vector
// failed or a gap was seen; 3 if the cluster cannot be reached).
"use strict";

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

// ---- options -------------------------------------------------------------------
function parseArgs(argv) {
  const o = { nats: "nats://127.0.0.1:4222", cluster: "aether", keys: [], duration: 0, fromSeq: 1 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    if (a === "--nats") o.nats = val();
    else if (a === "--cluster") o.cluster = val();
    else if (a === "--vectors") o.vectors = val();
    else if (a === "--view") o.view = val();
    else if (a === "--keys") o.keys = val().split(",").filter((k) => k !== "");
    else if (a === "--duration") o.duration = Number(val());
    else if (a === "--from-seq") o.fromSeq = Number(val());
    else if (a === "--check-vectors-only") o.vectorsOnly = true;
    else usage(`unknown option ${a}`);
  }
  if (!(o.duration >= 0) || !(o.fromSeq >= 1)) usage("bad --duration or --from-seq");
  if (o.vectorsOnly && !o.vectors) usage("--check-vectors-only needs --vectors");
  return o;
}

function usage(why) {
  console.error(`consumer.js: ${why}`);
  console.error("usage: node consumer.js [--nats URL] [--cluster NAME] [--vectors FILE] [--view FILE]\n" +
    "       [--keys K1,K2] [--duration S] [--from-seq N] | --check-vectors-only --vectors FILE");
  process.exit(2);
}

// ---- the view --------------------------------------------------------------------
const view = {
  cluster: null,
  map: null,              // the ShardMap JSON of docs/wire.md, as last applied
  mapSource: null,        // "kv" | "publication"
  nodes: {},              // id -> status, from the events (joined/draining/left/failed)
  leader: null,
  term: 0,
  events: 0,
  gaps: [],               // {term, from, to, stream_seq}
  lastSeq: {},            // term -> last per-term seq seen
  lastStreamSeq: 0,
  maxTerm: 0,
  complete: false,        // the replay starts at stream #1
};

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
    last_stream_seq: view.lastStreamSeq,
    gaps: view.gaps,
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

async function main() {
  const o = parseArgs(process.argv.slice(2));
  if (o.vectors) {
    const { ok, bad } = checkVectors(o.vectors);
    bad.forEach((b) => console.log(`vector FAILED: ${b}`));
    console.log(`vectors: ${ok} ok, ${bad.length} failed (${o.vectors})`);
    if (bad.length > 0) process.exit(1);
    if (o.vectorsOnly) return;
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
      try {
        if (applyMap(JSON.parse(sc.decode(m.data)), "publication")) writeView();
      } catch (err) {
        console.log(`refused a map publication: ${err.message}`);
      }
    }
  })();
  let kv;
  try {
    kv = await js.views.kv(`aether_${o.cluster}_state`, { bindOnly: true });
  } catch (err) {
    console.error(`consumer.js: no state bucket aether_${o.cluster}_state: ${err.message}`);
    await nc.close();
    process.exit(3);
  }
  let resyncing = null;
  const resync = async (why) => {
    if (resyncing !== null) return resyncing;
    resyncing = (async () => {
      try {
        const e = await kv.get("map");
        if (e !== null && e.operation === "PUT" && applyMap(JSON.parse(e.string()), `kv, ${why}`))
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

  // 3. the event stream, with an ordered consumer.
  const stream = `AETHER_${o.cluster}_EVENTS`;
  let consumer;
  try {
    consumer = await js.consumers.get(stream, o.fromSeq > 1
      ? { deliver_policy: "by_start_sequence", opt_start_seq: o.fromSeq } : {});
  } catch (err) {
    console.error(`consumer.js: no event stream ${stream} (run aether-node with --event-stream): ${err.message}`);
    await nc.close();
    process.exit(3);
  }
  const info = await (await js.streams.get(stream)).info();
  view.complete = info.state.first_seq === 1 && o.fromSeq <= 1;
  const messages = await consumer.consume();
  nc.closed().then(() => messages.stop());
  console.log(`following ${stream} and ${prefix}map`);
  for await (const m of messages) {
    let ev;
    try {
      ev = JSON.parse(sc.decode(m.data));
    } catch (err) {
      console.log(`#${m.seq} refused: ${err.message}`);
      continue;
    }
    if (ev.v !== 1 || ev.cluster !== o.cluster || `${prefix}evt.${ev.type}` !== m.subject ||
        !Number.isSafeInteger(ev.term) || !Number.isSafeInteger(ev.seq) || typeof ev.data !== "object") {
      console.log(`#${m.seq} refused: not an Aether event envelope`);
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
    if (ev.type !== "LeaseRenewed")
      console.log(`#${m.seq} ${ev.type} term=${ev.term} seq=${ev.seq} node=${ev.node}`);
    const mv = EVENT_MAP_VERSION[ev.type] ? EVENT_MAP_VERSION[ev.type](d) : undefined;
    if (mv !== undefined && (view.map === null || mv > view.map.version)) await resync(`${ev.type} names v${mv}`);
    if (ev.type !== "LeaseRenewed" || m.info.pending === 0) writeView();
  }
  await nc.closed();
  writeView();
  const s = snapshot(viewKeys);
  console.log(`final: map v${s.map_version}, ${s.events} events (last #${s.last_stream_seq}), ${s.gaps.length} gaps`);
  process.exitCode = s.gaps.length > 0 ? 1 : 0;
}

main().catch((err) => {
  console.error(`consumer.js: ${err.stack || err}`);
  process.exit(1);
});
