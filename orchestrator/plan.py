"""What a deploy changes: pure functions from the app model and the current records to a plan.

No side effects. Three steps, each a function over values:

- :func:`demands` turns an ``specs.app.App`` into placement inputs (constraints, reservations,
  ``max_replicas_per_node``, fixed host ports).
- :func:`service_hash` fingerprints what a container *runs* (image, command, env, ports, mounts,
  health check, limits, links...), leaving out what only placement or rollout reads (replicas,
  constraints, reservations, update_config, min_available): changing those never restarts a
  container that stays where it is.
- :func:`diff` compares the desired placement + hashes with the current ``PlacementRecord``s and
  returns a :class:`Plan` of creates, updates, moves and removes; :func:`batches` orders the updates
  by ``update_config`` (dependencies first, ``parallelism`` at a time).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from orchestrator.placement import Constraint, Resources, ServiceDemand, Slot
from specs.app import App, Service
from specs.cluster import PlacementRecord


def demand(app_name: str, name: str, service: Service) -> ServiceDemand:
    d = service.deploy
    res = d.resources.reservations
    ports = tuple(sorted({f"{p.protocol}/{p.published}" for p in service.ports if p.published is not None}))
    return ServiceDemand(
        app=app_name,
        service=name,
        replicas=d.replicas,
        constraints=tuple(Constraint(c.label, c.op, c.value) for c in d.placement.constraints),
        max_per_node=d.placement.max_replicas_per_node or 0,
        reservations=Resources(res.cpus or 0.0, res.memory or 0),
        ports=ports,
    )


def demands(app: App) -> list[ServiceDemand]:
    return [demand(app.name, name, svc) for name, svc in sorted(app.services.items())]


def service_hash(app: App, name: str) -> str:
    """A short, stable fingerprint of what replica containers of ``name`` run."""
    svc = app.services[name]
    data = svc.model_dump(mode="json")
    data["deploy"] = {"resources": {"limits": data["deploy"]["resources"]["limits"]},
                      "restart_policy": data["deploy"]["restart_policy"]}
    data["x_fusion"] = {"links": data["x_fusion"]["links"]}
    used_volumes = sorted({m.source for m in svc.volumes if m.type == "volume" and m.source})
    data["_volumes"] = {v: app.volumes[v].model_dump(mode="json") for v in used_volumes if v in app.volumes}
    data["_networks"] = {n: app.networks[n].model_dump(mode="json") for n in sorted(svc.networks)
                         if n in app.networks}
    blob = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def service_hashes(app: App) -> dict[str, str]:
    return {name: service_hash(app, name) for name in sorted(app.services)}


@dataclass(frozen=True)
class Change:
    slot: Slot
    host: str | None  # where it runs after the change (None for a remove)
    old_host: str | None = None  # where it ran before (None for a create)

    def __str__(self) -> str:
        app, service, n = self.slot
        return f"{app}/{service}/{n}"


@dataclass(frozen=True)
class Plan:
    creates: tuple[Change, ...] = ()
    updates: tuple[Change, ...] = ()  # same host, new definition (service_hash changed)
    moves: tuple[Change, ...] = ()  # another host (start there, stop on the old one)
    removes: tuple[Change, ...] = ()
    unchanged: tuple[Change, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.creates or self.updates or self.moves or self.removes)

    def summary(self) -> str:
        parts = [f"{len(self.creates)} to create", f"{len(self.updates)} to update",
                 f"{len(self.moves)} to move", f"{len(self.removes)} to remove",
                 f"{len(self.unchanged)} unchanged"]
        return ", ".join(parts)

    def lines(self) -> list[str]:
        """The diff for a person: ``+ app/web/3 on h2``, ``~ app/web/1 on h1``, ``> ... h1 -> h3``, ``-``."""
        out = [f"+ {c} on {c.host}" for c in self.creates]
        out += [f"~ {c} on {c.host}" for c in self.updates]
        out += [f"> {c} {c.old_host} -> {c.host}" for c in self.moves]
        out += [f"- {c} on {c.old_host}" for c in self.removes]
        return out


def diff(
    app: str,
    desired: Mapping[Slot, str],
    hashes: Mapping[str, str],
    current: Iterable[PlacementRecord],
) -> Plan:
    """Compare the desired placement of ``app`` (slot -> host) and its services' hashes with the
    current placement records of the app. A slot placed on several hosts at once (mid-drain) counts
    as placed where the desired host is, the others are removed."""
    now: dict[Slot, list[PlacementRecord]] = {}
    for r in current:
        if r.app == app:
            now.setdefault((r.app, r.service, r.replica), []).append(r)
    creates: list[Change] = []
    updates: list[Change] = []
    moves: list[Change] = []
    removes: list[Change] = []
    unchanged: list[Change] = []
    for slot in sorted(set(desired) | set(now)):
        want = desired.get(slot)
        have = sorted(now.get(slot, []), key=lambda r: r.host)
        if want is None:
            removes += [Change(slot, None, r.host) for r in have]
            continue
        same = [r for r in have if r.host == want]
        others = [r for r in have if r.host != want]
        if same:
            change = Change(slot, want, want)
            (unchanged if same[0].service_hash == hashes[slot[1]] else updates).append(change)
            removes += [Change(slot, None, r.host) for r in others]
        elif others:
            moves.append(Change(slot, want, others[0].host))
            removes += [Change(slot, None, r.host) for r in others[1:]]
        else:
            creates.append(Change(slot, want, None))
    return Plan(tuple(creates), tuple(updates), tuple(moves), tuple(removes), tuple(unchanged))


def batches(plan: Plan, app: App) -> list[list[Change]]:
    """The updates in rollout order: services in dependency order, each in groups of its
    ``update_config.parallelism`` (0: all at once). Creates, moves and removes are not batched
    (nothing that runs is replaced in place)."""
    by_service: dict[str, list[Change]] = {}
    for c in plan.updates:
        by_service.setdefault(c.slot[1], []).append(c)
    out: list[list[Change]] = []
    for name in app.service_order():
        changes = by_service.get(name, [])
        if not changes:
            continue
        size = app.services[name].deploy.update_config.parallelism or len(changes)
        out += [changes[i : i + size] for i in range(0, len(changes), size)]
    return out
