"""Placement benchmark: 10,000 containers on 1,000 hosts.

1. The pure planner (orchestrator.placement.place): placements per second for a fresh placement,
   for a re-deploy of the same spec (stability: nothing moves), and after 10 hosts are lost.
2. Writing the decision to a real etcd (Debian's /usr/bin/etcd, started here on 127.0.0.1 with a
   temp data dir and stopped by pid): containers per second committed, as one deploy decision
   split into transactions of --batch puts.

Run: .venv/bin/python bench/placement.py [--containers 10000] [--hosts 1000] [--batch 20000]
Targets (issue 5): >= 20,000 placements/s pure, >= 2,000 containers/s to etcd.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common.store import Decision, EtcdConfig, Put, Store  # noqa: E402
from orchestrator import etcd_local  # noqa: E402
from orchestrator import ops as ops_  # noqa: E402
from orchestrator.placement import Constraint, Host, Resources, ServiceDemand, place  # noqa: E402
from specs.app import App  # noqa: E402
from specs.cluster import Capacity, HostRecord, Keys, PlacementRecord  # noqa: E402

GiB = 1 << 30
ZONES = ["a", "b", "c", "d"]


def cluster(n_hosts: int, n_containers: int, seed: int = 1) -> tuple[list[Host], list[ServiceDemand]]:
    rnd = random.Random(seed)
    hosts = [
        Host(f"host{i:04d}", {"zone": ZONES[i % len(ZONES)], "disk": rnd.choice(["ssd", "hdd"])},
             Resources(16.0, 64 * GiB))
        for i in range(n_hosts)
    ]
    services = []
    left, i = n_containers, 0
    while left > 0:
        replicas = min(left, rnd.choice([1, 3, 10, 50, 100]))
        kind = i % 4
        constraints: tuple[Constraint, ...] = ()
        if kind == 1:
            constraints = (Constraint("node.labels.zone", "==", ZONES[i % len(ZONES)]),)
        elif kind == 2:
            constraints = (Constraint("node.labels.disk", "==", "ssd"), Constraint("node.hostname", "!=", "host0000"))
        services.append(ServiceDemand(
            app=f"app{i // 10:03d}", service=f"svc{i:04d}", replicas=replicas, constraints=constraints,
            max_per_node=1 if kind == 3 else 0,
            reservations=Resources(rnd.choice([0.1, 0.25, 0.5]), rnd.choice([128, 256, 512]) << 20),
            ports=(f"tcp/{20000 + i}",) if kind == 3 else (),
        ))
        left -= replicas
        i += 1
    return hosts, services


def to_apps(services: list[ServiceDemand]) -> list[App]:
    by_app: dict[str, dict[str, object]] = {}
    for d in services:
        svc: dict[str, object] = {
            "image": f"registry.local/{d.service}:1",
            "deploy": {
                "replicas": d.replicas,
                "placement": {"constraints": [{"label": c.attribute, "op": c.op, "value": c.value}
                                              for c in d.constraints],
                              "max_replicas_per_node": d.max_per_node or None},
                "resources": {"reservations": {"cpus": d.reservations.cpus, "memory": d.reservations.memory}},
            },
        }
        if d.ports:
            svc["ports"] = [{"target": 80, "published": int(p.split("/")[1])} for p in d.ports]
        by_app.setdefault(d.app, {})[d.service] = svc
    return [App.model_validate({"name": name, "services": svcs}) for name, svcs in sorted(by_app.items())]


def timed(fn, repeat: int = 3):  # type: ignore[no-untyped-def]
    best, result = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return best, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--containers", type=int, default=10_000)
    ap.add_argument("--hosts", type=int, default=1_000)
    ap.add_argument("--batch", type=int, default=20_000,
                    help="most puts per etcd transaction (default: the whole decision in one)")
    ap.add_argument("--no-etcd", action="store_true")
    args = ap.parse_args()

    hosts, services = cluster(args.hosts, args.containers)
    n = sum(s.replicas for s in services)
    print(f"{n} containers ({len(services)} services) on {len(hosts)} hosts")

    t, first = timed(lambda: place(hosts, services, {}))
    assert len(first) == n
    print(f"pure planner, fresh placement:      {t * 1000:8.1f} ms  {n / t:10,.0f} placements/s")
    t, again = timed(lambda: place(hosts, services, first))
    assert again == first
    print(f"pure planner, same spec again:      {t * 1000:8.1f} ms  {n / t:10,.0f} placements/s (0 moved)")
    lost = {h.name for h in hosts[:10]}
    after = [Host(h.name, h.labels, h.capacity, h.cordoned, h.name not in lost) for h in hosts]
    t, moved = timed(lambda: place(after, services, first))
    n_moved = sum(1 for s, h in moved.items() if first[s] != h)
    print(f"pure planner, 10 hosts lost:        {t * 1000:8.1f} ms  {n / t:10,.0f} placements/s ({n_moved} moved)")
    pure_rate = n / timed(lambda: place(hosts, services, {}))[0]

    if args.no_etcd:
        return
    keys = Keys("/bench")
    records = [
        PlacementRecord(app=app, service=service, replica=k, host=host, spec_revision=1,
                        service_hash="0123456789abcdef")
        for (app, service, k), host in sorted(first.items())
    ]
    with tempfile.TemporaryDirectory(prefix="fusion-bench-") as tmp:
        etcd = etcd_local.start(Path(tmp) / "data", max_txn_ops=max(args.batch, 128))
        try:
            store = Store(EtcdConfig((etcd.endpoint,), max_txn_ops=args.batch), keys)
            ops = tuple(Put(keys.placement(r.host, r.app, r.service, r.replica), r.to_json()) for r in records)
            t = time.perf_counter()
            store.commit(Decision(ops=ops))
            t = time.perf_counter() - t
            kvs, _ = store.range(keys.placements_prefix())
            assert len(kvs) == n, len(kvs)
            etcd_rate = n / t
            print(f"etcd, {n} placements in transactions of {args.batch}: {t * 1000:8.1f} ms  "
                  f"{etcd_rate:10,.0f} containers/s")
            # The whole deploy path: read the view, plan, commit (26 apps, one deploy decision each).
            store2 = Store(EtcdConfig((etcd.endpoint,), max_txn_ops=args.batch), Keys("/bench2"))
            for h in hosts:
                store2.register_host(HostRecord(name=h.name, labels=dict(h.labels), capacity=Capacity(
                    cpus=h.capacity.cpus, memory=h.capacity.memory)), 0)  # type: ignore[union-attr]
            apps = to_apps(services)
            # one app holding all 10,000 containers: one `fusion deploy`
            big = App.model_validate({"name": "big", "services": {
                f"{a.name}-{k}": v for a in apps for k, v in a.model_dump(mode="json")["services"].items()}})
            store3 = Store(EtcdConfig((etcd.endpoint,), max_txn_ops=args.batch), Keys("/bench2"))
            t = time.perf_counter()
            ops_.deploy(store3, big, note="bench")
            t = time.perf_counter() - t
            print(f"etcd, one `fusion deploy` of one app with {n} containers (read, plan, commit): "
                  f"{t * 1000:8.1f} ms  {n / t:10,.0f} containers/s")
            ops_.remove(store3, "big")
            t = time.perf_counter()
            for app in apps:
                ops_.deploy(store2, app, note="bench")
            t = time.perf_counter() - t
            assert len(store2.placements()) == n
            print(f"etcd, `fusion deploy` path for {len(apps)} apps (read, plan, commit): {t * 1000:8.1f} ms  "
                  f"{n / t:10,.0f} containers/s")
            t = time.perf_counter()
            for i in range(0, 500):
                r = records[i]
                store.put(keys.placement(r.host, r.app, r.service, r.replica), r.to_json())
            t = time.perf_counter() - t
            print(f"etcd, one put per transaction (for comparison): {500 / t:10,.0f} containers/s")
        finally:
            etcd_local.stop_pid(etcd.pid)
    ok = pure_rate >= 20_000 and etcd_rate >= 2_000
    print(f"targets (>= 20,000/s pure, >= 2,000/s etcd): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
