"""Placement: which replica of which service runs on which host. Pure functions over values.

No side effects, no clock, no etcd: :func:`place` takes the hosts, the services and the current
placement and returns the new placement (or raises :class:`PlacementError` naming the service, the
replica and the constraint that could not be met).

Rules, in the order they are applied:

1. A host is *schedulable* when it is alive and not cordoned. A cordoned host keeps the replicas it
   already runs (draining them is a separate, explicit step) but gets no new ones; a host that is not
   alive keeps nothing.
2. **Stability.** A replica already placed on a host that is still alive and still satisfies the
   service's constraints, ``max_replicas_per_node`` and capacity stays where it is. Deploying the same
   spec on the same hosts therefore moves nothing.
3. Scaling down removes the highest replica numbers first; replica numbers are 1-based.
4. Each missing replica goes to the schedulable host that matches every constraint, has room for
   its reservations, is below ``max_replicas_per_node`` and has none of the service's fixed host
   ports (``ServiceDemand.ports``) already taken by another container, preferring (in this order) the host with
   the fewest replicas of the same service (spread), then the fewest containers overall, then the
   host name (determinism).

Everything is processed in sorted order, so the same inputs always give the same output.
"""

from __future__ import annotations

import heapq
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from specs.errors import FusionError, InputError

# --- values ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resources:
    """CPUs (fractional) and memory (bytes)."""

    cpus: float = 0.0
    memory: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.cpus + other.cpus, self.memory + other.memory)

    def __sub__(self, other: Resources) -> Resources:
        return Resources(self.cpus - other.cpus, self.memory - other.memory)

    def fits_in(self, free: Resources) -> bool:
        # A small epsilon so that 0.1 + 0.2 CPUs fit in 0.3.
        return self.cpus <= free.cpus + 1e-9 and self.memory <= free.memory

    def __str__(self) -> str:
        return f"cpus={self.cpus:g} memory={format_bytes(self.memory)}"


@dataclass(frozen=True)
class Host:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    capacity: Resources | None = None  # None: unlimited (nothing reported)
    cordoned: bool = False
    alive: bool = True

    @property
    def schedulable(self) -> bool:
        return self.alive and not self.cordoned


_CONSTRAINT = re.compile(r"^\s*(node\.(?:hostname|id|labels\.[A-Za-z0-9_.\-/]+))\s*(==|!=)\s*(\S.*?)\s*$")


@dataclass(frozen=True)
class Constraint:
    """``node.hostname==h1``, ``node.labels.zone!=b`` (Compose/Swarm syntax)."""

    attribute: str  # "node.hostname" or "node.labels.<key>" ("node.id" is the host name too)
    op: str  # "==" or "!="
    value: str

    @classmethod
    def parse(cls, text: str) -> Constraint:
        m = _CONSTRAINT.match(text)
        if not m:
            raise InputError(
                f"placement constraint {text!r} is not understood",
                hint="write node.hostname==NAME, node.labels.KEY==VALUE (or != for either)",
            )
        attribute = "node.hostname" if m.group(1) == "node.id" else m.group(1)
        return cls(attribute, m.group(2), m.group(3))

    def matches(self, host: Host) -> bool:
        if self.attribute == "node.hostname":
            actual: str | None = host.name
        else:
            actual = host.labels.get(self.attribute[len("node.labels."):])
        equal = actual == self.value
        return equal if self.op == "==" else not equal

    def __str__(self) -> str:
        return f"{self.attribute}{self.op}{self.value}"


@dataclass(frozen=True)
class ServiceDemand:
    """What placement needs to know about one service of one app."""

    app: str
    service: str
    replicas: int
    constraints: tuple[Constraint, ...] = ()
    max_per_node: int = 0  # 0: no limit (as in Compose)
    reservations: Resources = Resources()
    ports: tuple[str, ...] = ()  # fixed host ports it publishes, e.g. "tcp/80" (one user per host)

    @property
    def key(self) -> tuple[str, str]:
        return (self.app, self.service)


@dataclass(frozen=True)
class Occupancy:
    """What is already running on a host that this call to :func:`place` does not decide about
    (other apps' containers): it counts against capacity, ports and spread."""

    reserved: Resources = Resources()
    ports: frozenset[str] = frozenset()
    containers: int = 0


Slot = tuple[str, str, int]
"""(app, service, replica number starting at 1)."""

Placement = Mapping[Slot, str]
"""slot -> host name."""


class PlacementError(FusionError):
    """Some replicas cannot be placed. ``failures`` has one line per service that failed."""

    def __init__(self, failures: list[str]) -> None:
        self.failures = failures
        super().__init__(
            "\n".join(failures),
            hint="add or uncordon hosts, relax the constraints, or lower replicas/reservations",
        )


# --- the planner ----------------------------------------------------------------------------------


def place(
    hosts: Iterable[Host],
    services: Iterable[ServiceDemand],
    current: Placement,
    occupied: Mapping[str, Occupancy] | None = None,
) -> dict[Slot, str]:
    """Return the new placement for ``services`` given ``current``; raise PlacementError if impossible.

    Slots of services not in ``services`` are dropped (the caller passes every service it decides
    about; what else runs on the hosts is ``occupied``). The result holds exactly ``replicas``
    slots for each service.
    """
    result, failures = place_partial(hosts, services, current, occupied)
    if failures:
        raise PlacementError(failures)
    return result


def place_partial(
    hosts: Iterable[Host],
    services: Iterable[ServiceDemand],
    current: Placement,
    occupied: Mapping[str, Occupancy] | None = None,
) -> tuple[dict[Slot, str], list[str]]:
    """Like :func:`place`, but best effort: replicas that cannot be placed are left out of the
    result and explained in the returned list (one line per service). For re-placing after host
    loss, where moving what can move beats moving nothing."""
    by_name = {h.name: h for h in sorted(hosts, key=lambda h: h.name)}
    demands = sorted(services, key=lambda s: s.key)
    used: dict[str, Resources] = defaultdict(Resources)
    taken: dict[str, set[str]] = defaultdict(set)  # host -> fixed host ports in use
    total: dict[str, int] = defaultdict(int)
    for name, occ in (occupied or {}).items():
        used[name] = used[name] + occ.reserved
        taken[name].update(occ.ports)
        total[name] += occ.containers
    result: dict[Slot, str] = {}

    # Pass 1: keep what is still valid (stability).
    current_by_service: dict[tuple[str, str], list[tuple[int, str]]] = defaultdict(list)
    for (app, service, n), host_name in current.items():
        current_by_service[(app, service)].append((n, host_name))
    per_service_count: dict[tuple[str, str], dict[str, int]] = {}
    for d in demands:
        counts: dict[str, int] = defaultdict(int)
        per_service_count[d.key] = counts
        for n, host_name in sorted(current_by_service.get(d.key, ())):
            host = by_name.get(host_name)
            if n > d.replicas or host is None or not host.alive:
                continue
            if not all(c.matches(host) for c in d.constraints):
                continue
            if d.max_per_node and counts[host_name] >= d.max_per_node:
                continue
            if host.capacity is not None and not d.reservations.fits_in(host.capacity - used[host_name]):
                continue
            if d.ports and not taken[host_name].isdisjoint(d.ports):
                continue
            result[(d.app, d.service, n)] = host_name
            counts[host_name] += 1
            used[host_name] = used[host_name] + d.reservations
            taken[host_name].update(d.ports)
            total[host_name] += 1

    # Pass 2: place what is missing.
    schedulable = [h for h in by_name.values() if h.schedulable]
    candidates_cache: dict[tuple[Constraint, ...], list[Host]] = {}
    failures: list[str] = []
    for d in demands:
        missing = [n for n in range(1, d.replicas + 1) if (d.app, d.service, n) not in result]
        if not missing:
            continue
        candidates = candidates_cache.get(d.constraints)
        if candidates is None:
            candidates = [h for h in schedulable if all(c.matches(h) for c in d.constraints)]
            candidates_cache[d.constraints] = candidates
        counts = per_service_count[d.key]
        heap = [(counts[h.name], total[h.name], h.name) for h in candidates]
        heapq.heapify(heap)
        for n in missing:
            chosen: str | None = None
            while heap:
                count, load, name = heapq.heappop(heap)
                if d.max_per_node and count >= d.max_per_node:
                    continue  # full for this service; every later entry is at least as full
                cap = by_name[name].capacity
                if cap is not None and not d.reservations.fits_in(cap - used[name]):
                    continue  # no room, and placing more of this service only makes it worse
                if d.ports and not taken[name].isdisjoint(d.ports):
                    continue  # a host port is taken (by another service, or by this one)
                chosen = name
                heapq.heappush(heap, (count + 1, load + 1, name))
                break
            if chosen is None:
                failures.append(
                    f"cannot place {d.app}/{d.service} replica {n}: "
                    + _why(d, list(by_name.values()), candidates, counts, used, taken)
                )
                break
            result[(d.app, d.service, n)] = chosen
            counts[chosen] += 1
            used[chosen] = used[chosen] + d.reservations
            taken[chosen].update(d.ports)
            total[chosen] += 1
    return result, failures


def _why(
    d: ServiceDemand,
    hosts: list[Host],
    candidates: list[Host],
    counts: Mapping[str, int],
    used: Mapping[str, Resources],
    taken: Mapping[str, set[str]],
) -> str:
    """Explain, for a person, why no host was left for one replica of ``d``."""
    schedulable = [h for h in hosts if h.schedulable]
    if not schedulable:
        if not hosts:
            return "no hosts are registered"
        down = sum(1 for h in hosts if not h.alive)
        cordoned = sum(1 for h in hosts if h.alive and h.cordoned)
        return f"no schedulable hosts ({len(hosts)} known: {down} down, {cordoned} cordoned)"
    remaining = schedulable
    for c in d.constraints:
        remaining = [h for h in remaining if c.matches(h)]
        if not remaining:
            return f"no schedulable host matches {c}"
    match_text = " and ".join(str(c) for c in d.constraints)
    if match_text:
        matching = f"{_hosts(len(candidates))} match {match_text}"
        pool = f"the {_hosts(len(candidates))} matching {match_text}"
    else:
        matching = f"{_hosts(len(candidates))} are schedulable"
        pool = f"the {_hosts(len(candidates))} that are schedulable"
    not_full = [h for h in candidates if not d.max_per_node or counts.get(h.name, 0) < d.max_per_node]
    if not not_full:
        return f"max_replicas_per_node={d.max_per_node} and only {matching}"
    free_ports = [h for h in not_full if taken.get(h.name, set()).isdisjoint(d.ports)]
    if not free_ports:
        return f"host port {', '.join(d.ports)} is already taken on every one of {pool}"
    not_full = free_ports
    best = max(
        not_full,
        key=lambda h: (
            (h.capacity - used.get(h.name, Resources())).cpus if h.capacity else float("inf"),
            (h.capacity - used.get(h.name, Resources())).memory if h.capacity else 0,
        ),
    )
    assert best.capacity is not None
    free = best.capacity - used.get(best.name, Resources())
    return (
        f"not enough capacity: each replica reserves {d.reservations}; of {pool}, "
        f"the freest ({best.name}) has {free} left"
    )


def _hosts(n: int) -> str:
    return f"{n} host" if n == 1 else f"{n} hosts"


def format_bytes(n: int) -> str:
    for unit, size in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size}{unit}"
    if n >= 1 << 20:
        return f"{n / (1 << 20):.1f}M"
    return str(n)


# --- helpers for callers ---------------------------------------------------------------------------


def occupancy(placement: Placement, demands: Iterable[ServiceDemand]) -> dict[str, Occupancy]:
    """What ``placement`` (of the services in ``demands``) uses on each host."""
    by_key = {d.key: d for d in demands}
    reserved: dict[str, Resources] = defaultdict(Resources)
    ports: dict[str, set[str]] = defaultdict(set)
    count: dict[str, int] = defaultdict(int)
    for (app, service, _n), host in placement.items():
        d = by_key.get((app, service))
        count[host] += 1
        if d is not None:
            reserved[host] = reserved[host] + d.reservations
            ports[host].update(d.ports)
    return {h: Occupancy(reserved[h], frozenset(ports[h]), count[h]) for h in count}


def moves(old: Placement, new: Placement) -> dict[Slot, tuple[str | None, str | None]]:
    """Slots whose host changed: slot -> (old host or None, new host or None)."""
    out: dict[Slot, tuple[str | None, str | None]] = {}
    for slot in sorted(set(old) | set(new)):
        a, b = old.get(slot), new.get(slot)
        if a != b:
            out[slot] = (a, b)
    return out
