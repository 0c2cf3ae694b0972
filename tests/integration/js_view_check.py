#!/usr/bin/env python3
"""js_view_check.py [--leader ID --term T] [--joined ID] WORK NODE...

Compares the JavaScript consumer's WORK/view.json with what aetherctl said
(WORK/shards.json, WORK/shards.NODE.json, WORK/lookups.json; js_lib.sh
js_compare_views writes them). Prints the differences, "; "-separated, or
nothing when the views agree."""
import argparse
import json

p = argparse.ArgumentParser()
p.add_argument("work")
p.add_argument("--leader")
p.add_argument("--term", type=int)
p.add_argument("--joined")
p.add_argument("nodes", nargs="*")
a = p.parse_args()
work = a.work
view = json.load(open(f"{work}/view.json"))
shards = json.load(open(f"{work}/shards.json"))
bad = []
for k in ("map_version", "term", "shard_count", "replication"):
    if view[k] != shards[k]:
        bad.append(f"{k}: consumer {view[k]}, aetherctl {shards[k]}")
for n in shards["nodes"]:
    mine = view["nodes"].get(n["id"], {"primaries": 0, "replicas": 0})
    if (mine["primaries"], mine["replicas"]) != (n["primaries"], n["replicas"]):
        bad.append(f"{n['id']}: consumer {mine['primaries']}+{mine['replicas']}, aetherctl {n['primaries']}+{n['replicas']}")
for nid in a.nodes:
    one = json.load(open(f"{work}/shards.{nid}.json"))["nodes"][0]
    mine = view["nodes"].get(nid, {}).get("primary_shards", "")
    if mine != one["primary_shards"]:
        bad.append(f"{nid} primary shards: consumer '{mine}', aetherctl '{one['primary_shards']}'")
if len(view["owners"]) != shards["shard_count"] or sum(n["primaries"] for n in shards["nodes"]) != shards["shard_count"]:
    bad.append("owner counts do not cover every shard")
lookups = [json.loads(line) for line in open(f"{work}/lookups.json")]
for mine, theirs in zip(view["keys"], lookups):
    if (mine["key"], mine["shard"], mine["primary"]) != (theirs["key"], theirs["shard"], theirs["primary"]):
        bad.append(f"key {theirs['key']!r}: consumer shard {mine['shard']} on {mine['primary']}, aetherctl shard {theirs['shard']} on {theirs['primary']}")
if len(view["keys"]) != len(lookups):
    bad.append(f"{len(view['keys'])} keys in the view, {len(lookups)} lookups")
if a.leader is not None and (view["leader"], view["leader_term"]) != (a.leader, a.term):
    bad.append(f"leader: consumer {view['leader']} term {view['leader_term']}, the cluster {a.leader} term {a.term}")
if view["gaps"]:
    bad.append(f"gaps seen: {view['gaps']}")
if a.joined is not None and view["statuses"].get(a.joined) != "active":
    bad.append(f"{a.joined}'s NodeJoined not seen (statuses {view['statuses']})")
print("; ".join(bad))
