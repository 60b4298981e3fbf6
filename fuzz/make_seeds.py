#!/usr/bin/env python3
"""Writes the Avro seeds of fuzz/corpus/avro_usage_event and avro_cost_event, encoded from the
Avro specification (zigzag varints, length-prefixed strings, blocked maps and arrays), independent
of both decoders. `valid-*` files are events the readers accept (tests/fuzz.rs checks that); the
others are bodies at the edges. Run from the repository root; the output is committed."""

import math
import struct
from pathlib import Path


def long(v):
    z = (v << 1) ^ (v >> 63)
    z &= (1 << 64) - 1
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def string(s):
    b = s.encode() if isinstance(s, str) else s
    return long(len(b)) + b


def optional(s):
    return long(0) if s is None else long(1) + string(s)


def blocks(items, write, per_block=0, negative=False):
    out = bytearray()
    per = per_block or max(len(items), 1)
    for i in range(0, len(items), per):
        chunk = items[i : i + per]
        body = b"".join(write(x) for x in chunk)
        if negative:
            out += long(-len(chunk)) + long(len(body))
        else:
            out += long(len(chunk))
        out += body
    return bytes(out + long(0))


KINDS = ["usage", "request", "limit", "capacity"]


def usage(e, **blocking):
    s = e["subject"]
    out = b"".join(string(e[k]) for k in ["specversion", "id", "source", "type"])
    out += b"".join(long(e[k]) for k in ["time", "start", "end"])
    out += string(s["cluster_id"])
    for k in ["cluster_name", "namespace", "pod_name", "pod_uid", "container_name", "node_name",
              "workload_kind", "workload_name"]:
        out += optional(s.get(k))
    out += blocks(sorted(s.get("labels", {}).items()), lambda kv: string(kv[0]) + string(kv[1]),
                  **blocking)
    out += blocks(e["measurements"],
                  lambda m: string(m[0]) + long(KINDS.index(m[1])) + struct.pack("<d", m[2])
                  + string(m[3]), **blocking)
    return out


CATEGORIES = ["compute", "memory", "storage", "network", "license", "other", "gpu"]
STATUSES = ["estimated", "final"]


def cost(e, **blocking):
    out = b"".join(string(e[k]) for k in ["specversion", "id", "source", "type"])
    out += long(e["time"]) + long(e["revision"])
    out += string(e["provider"]) + string(e["billing_account_id"])
    out += b"".join(optional(e.get(k)) for k in ["sub_account_id", "cluster_id", "namespace"])
    out += b"".join(long(e[k]) for k in ["charge_period_start", "charge_period_end",
                                          "billed_cost_micros", "effective_cost_micros"])
    out += string(e["billing_currency"])
    out += long(CATEGORIES.index(e["category"])) + long(STATUSES.index(e["cost_status"]))
    out += b"".join(optional(e.get(k)) for k in ["service_name", "sku_id", "resource_id"])
    out += blocks(sorted(e.get("labels", {}).items()), lambda kv: string(kv[0]) + string(kv[1]),
                  **blocking)
    out += optional(e.get("meter"))  # schema version 2
    return out


T = 1_796_083_200_000  # 2026-12-01T00:00:00Z

CONTAINER = {
    "specversion": "1.0", "id": "3f1c0d5e9a7b4c2d8e6f1a0b9c8d7e6f", "type": "io.ferrisdx.usage.v1",
    "source": "//elastic-agent/elastic.metrics.kubernetes", "time": T, "start": T - 10_000, "end": T,
    "subject": {
        "cluster_id": "gke-1", "cluster_name": "gke-prod-1", "namespace": "team-a",
        "pod_name": "jupyter-7d9f-x2", "pod_uid": "b5c4a3f2-0e1d-4c2b-9a8f-7e6d5c4b3a21",
        "container_name": "notebook", "node_name": "gke-prod-1-pool-1-9f2c",
        "workload_kind": "Deployment", "workload_name": "jupyter",
        "labels": {"app": "jupyterhub", "team": "ä-team"},
    },
    "measurements": [("cpu", "usage", 1.5144561, "core_seconds"),
                     ("memory", "usage", 1.2e10, "byte_seconds"),
                     ("cpu", "request", 5.0, "core_seconds"),
                     ("memory", "limit", 2.1e10, "byte_seconds")],
}
NODE = {
    "specversion": "1.0", "id": "node-cap-1", "type": "io.ferrisdx.usage.v1",
    "source": "//elastic-agent/onprem", "time": T, "start": T - 30_000, "end": T,
    "subject": {"cluster_id": "onprem-1", "node_name": "worker-3", "workload_kind": "Node",
                "workload_name": "worker-3", "labels": {"node-pool": "standard"}},
    "measurements": [("cpu", "capacity", 240.0, "core_seconds"),
                     ("memory", "capacity", 1.9e12, "byte_seconds"),
                     ("gpu", "usage", 0.0, "gpu_seconds")],
}
EDGES = dict(CONTAINER, id="edges", time=0, start=-1, end=2**63 - 1,
             subject=dict(CONTAINER["subject"], namespace="bad\x00ns"),
             measurements=[("cpu", "usage", 1e22, "core_seconds"),
                           ("memory", "usage", math.nan, "byte_seconds"),
                           ("storage", "request", -0.0, "byte_seconds"),
                           ("network_rx", "usage", math.inf, "bytes")])

GCP_LINE = {
    "specversion": "1.0", "id": "gcp-5b1e0f3c", "source": "//cloud.google.com/billing/01A2B3-C4D5E6-F7A8B9",
    "type": "io.ferrisdx.cost.v1", "time": T, "revision": T, "provider": "gcp",
    "billing_account_id": "01A2B3-C4D5E6-F7A8B9", "sub_account_id": "ferris-prod", "cluster_id": "gke-1",
    "namespace": "team-a", "charge_period_start": T - 3_600_000, "charge_period_end": T,
    "billed_cost_micros": 258_712, "effective_cost_micros": 106_970, "billing_currency": "EUR",
    "category": "compute", "cost_status": "final", "service_name": "Compute Engine",
    "sku_id": "BB77-5FDA-5A3F", "resource_id": "gke-prod-1-pool-1-9f2c",
    "labels": {"goog-k8s-cluster-name": "gke-prod-1", "k8s-namespace": "team-a"},
}
CARD_LINE = {
    "specversion": "1.0", "id": "rate-card-0c9d", "source": "//usage-tracker/rate-card/dc1",
    "type": "io.ferrisdx.cost.v1", "time": T, "revision": 3, "provider": "onprem",
    "billing_account_id": "dc1", "cluster_id": "onprem-1",
    "charge_period_start": T - 86_400_000 * 30, "charge_period_end": T,
    "billed_cost_micros": 1_500_000_000, "effective_cost_micros": 1_500_000_000,
    "billing_currency": "EUR", "category": "license", "cost_status": "estimated",
    "meter": "x-presto-query-seconds",
}
COST_EDGES = dict(GCP_LINE, id="edges", billing_currency="eu", charge_period_start=T,
                  charge_period_end=T - 1, billed_cost_micros=-(2**63),
                  effective_cost_micros=100_000_000_000_000_001, category="other")


def write(target, name, body):
    d = Path("fuzz/corpus") / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(body)


write("avro_usage_event", "valid-container", usage(CONTAINER))
write("avro_usage_event", "valid-node-capacity", usage(NODE))
write("avro_usage_event", "valid-negative-blocks", usage(CONTAINER, per_block=1, negative=True))
# The evolved writer's body: v1's, then the added optional field (union index 1, a string).
write("avro_usage_event", "valid-evolved", usage(NODE) + long(1) + string("high"))
write("avro_usage_event", "valid-out-of-limits", usage(EDGES))
write("avro_cost_event", "valid-gcp-line", cost(GCP_LINE))
write("avro_cost_event", "valid-rate-card-line", cost(CARD_LINE, per_block=1, negative=True))
write("avro_cost_event", "valid-evolved", cost(CARD_LINE) + long(1) + string("x"))
write("avro_cost_event", "valid-out-of-limits", cost(COST_EDGES))
