"""Placement: table-driven cases and hypothesis properties (stability, capacity, constraints)."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.placement import (
    Constraint,
    Host,
    Occupancy,
    PlacementError,
    Resources,
    ServiceDemand,
    moves,
    occupancy,
    place,
)
from specs.errors import InputError

GiB = 1 << 30


def hosts(*names: str, zone: dict[str, str] | None = None, cap: Resources | None = None) -> list[Host]:
    zone = zone or {}
    return [Host(n, labels={"zone": zone[n]} if n in zone else {}, capacity=cap) for n in names]


def svc(name: str, replicas: int, *constraints: str, app: str = "guestbook", max_per_node: int = 0,
        cpus: float = 0, memory: int = 0, ports: tuple[str, ...] = ()) -> ServiceDemand:
    return ServiceDemand(app, name, replicas, tuple(Constraint.parse(c) for c in constraints),
                         max_per_node, Resources(cpus, memory), ports)


# --- constraints ---------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "host", "expected"),
    [
        ("node.hostname==h1", Host("h1"), True),
        ("node.hostname==h1", Host("h2"), False),
        ("node.hostname!=h2", Host("h1"), True),
        ("node.id == h1", Host("h1"), True),
        ("node.labels.zone==a", Host("h1", {"zone": "a"}), True),
        ("node.labels.zone==a", Host("h1", {"zone": "b"}), False),
        ("node.labels.zone==a", Host("h1"), False),
        ("node.labels.zone!=a", Host("h1"), True),
        ("node.labels.disk.type==ssd", Host("h1", {"disk.type": "ssd"}), True),
    ],
)
def test_constraint_matches(text: str, host: Host, expected: bool) -> None:
    assert Constraint.parse(text).matches(host) is expected


@pytest.mark.parametrize("text", ["zone==a", "node.labels.zone=a", "node.role==manager", "node.hostname=="])
def test_bad_constraint_is_an_input_error(text: str) -> None:
    with pytest.raises(InputError, match="not understood"):
        Constraint.parse(text)


# --- table-driven placements ---------------------------------------------------------------------

CASES = [
    # (id, hosts, services, current, expected placement)
    ("spread", hosts("h1", "h2", "h3"), [svc("web", 3)], {},
     {("guestbook", "web", 1): "h1", ("guestbook", "web", 2): "h2", ("guestbook", "web", 3): "h3"}),
    ("more replicas than hosts wraps around", hosts("h1", "h2"), [svc("web", 3)], {},
     {("guestbook", "web", 1): "h1", ("guestbook", "web", 2): "h2", ("guestbook", "web", 3): "h1"}),
    ("label constraint", hosts("h1", "h2", "h3", zone={"h1": "b", "h2": "a", "h3": "a"}),
     [svc("web", 2, "node.labels.zone==a")], {},
     {("guestbook", "web", 1): "h2", ("guestbook", "web", 2): "h3"}),
    ("hostname exclusion", hosts("h1", "h2"), [svc("db", 2, "node.hostname!=h1")], {},
     {("guestbook", "db", 1): "h2", ("guestbook", "db", 2): "h2"}),
    ("stable: existing replica stays", hosts("h1", "h2", "h3"), [svc("web", 2)],
     {("guestbook", "web", 1): "h3"},
     {("guestbook", "web", 1): "h3", ("guestbook", "web", 2): "h1"}),
    ("scale down drops the highest numbers", hosts("h1", "h2", "h3"), [svc("web", 1)],
     {("guestbook", "web", 1): "h2", ("guestbook", "web", 2): "h1", ("guestbook", "web", 3): "h3"},
     {("guestbook", "web", 1): "h2"}),
    ("dead host's replica moves", [Host("h1", alive=False), Host("h2"), Host("h3")], [svc("web", 2)],
     {("guestbook", "web", 1): "h1", ("guestbook", "web", 2): "h2"},
     {("guestbook", "web", 1): "h3", ("guestbook", "web", 2): "h2"}),
    ("cordoned host keeps what it has, gets nothing new", [Host("h1", cordoned=True), Host("h2")],
     [svc("web", 3)], {("guestbook", "web", 1): "h1"},
     {("guestbook", "web", 1): "h1", ("guestbook", "web", 2): "h2", ("guestbook", "web", 3): "h2"}),
    ("capacity", hosts("h1", "h2", cap=Resources(1.0, 4 * GiB)), [svc("web", 3, cpus=0.6)], {}, None),
    ("capacity fits", hosts("h1", "h2", cap=Resources(1.0, 4 * GiB)), [svc("web", 2, cpus=0.6)], {},
     {("guestbook", "web", 1): "h1", ("guestbook", "web", 2): "h2"}),
    ("spread across services by load", hosts("h1", "h2"), [svc("a", 1), svc("b", 1)], {},
     {("guestbook", "a", 1): "h1", ("guestbook", "b", 1): "h2"}),
    ("constraint change moves a replica", hosts("h1", "h2", zone={"h1": "a", "h2": "b"}),
     [svc("web", 1, "node.labels.zone==b")], {("guestbook", "web", 1): "h1"},
     {("guestbook", "web", 1): "h2"}),
    ("services that are gone are dropped", hosts("h1"), [svc("web", 1)],
     {("guestbook", "old", 1): "h1", ("guestbook", "web", 1): "h1"}, {("guestbook", "web", 1): "h1"}),
    ("fixed host ports never share a host", hosts("h1", "h2", "h3"),
     [svc("a", 1, ports=("tcp/80",)), svc("b", 2, ports=("tcp/80", "tcp/443"))], {},
     {("guestbook", "a", 1): "h1", ("guestbook", "b", 1): "h2", ("guestbook", "b", 2): "h3"}),
    ("zero replicas", hosts("h1"), [svc("web", 0)], {("guestbook", "web", 1): "h1"}, {}),
]


@pytest.mark.parametrize(("name", "hs", "services", "current", "expected"), CASES, ids=[c[0] for c in CASES])
def test_place(name: str, hs: list[Host], services: list[ServiceDemand], current: dict, expected: dict | None) -> None:
    if expected is None:
        with pytest.raises(PlacementError):
            place(hs, services, current)
    else:
        assert place(hs, services, current) == expected


# --- error messages ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("hs", "service", "message"),
    [
        (hosts("h1", "h2", "h3", zone={"h1": "a", "h2": "a", "h3": "b"}),
         svc("web", 3, "node.labels.zone==a", max_per_node=1),
         "cannot place guestbook/web replica 3: max_replicas_per_node=1 and only 2 hosts match node.labels.zone==a"),
        (hosts("h1", "h2"), svc("web", 3, max_per_node=1),
         "cannot place guestbook/web replica 3: max_replicas_per_node=1 and only 2 hosts are schedulable"),
        (hosts("h1", zone={"h1": "b"}), svc("web", 1, "node.labels.zone==a"),
         "cannot place guestbook/web replica 1: no schedulable host matches node.labels.zone==a"),
        ([], svc("web", 1), "cannot place guestbook/web replica 1: no hosts are registered"),
        ([Host("h1", alive=False), Host("h2", cordoned=True)], svc("web", 1),
         "cannot place guestbook/web replica 1: no schedulable hosts (2 known: 1 down, 1 cordoned)"),
        (hosts("h1", "h2", cap=Resources(1.0, 2 * GiB)), svc("web", 2, memory=3 * GiB),
         "cannot place guestbook/web replica 1: not enough capacity: each replica reserves cpus=0 memory=3G; "
         "of the 2 hosts that are schedulable, the freest (h1) has cpus=1 memory=2G left"),
        ([Host("h1"), Host("h2", {"zone": "a"})], svc("web", 3, "node.labels.zone!=b", ports=("tcp/80",)),
         "cannot place guestbook/web replica 3: host port tcp/80 is already taken on every one of "
         "the 2 hosts matching node.labels.zone!=b"),
    ],
)
def test_error_names_service_and_constraint(hs: list[Host], service: ServiceDemand, message: str) -> None:
    with pytest.raises(PlacementError) as e:
        place(hs, [service], {})
    assert str(e.value) == message


def test_every_failing_service_is_reported() -> None:
    with pytest.raises(PlacementError) as e:
        place(hosts("h1"), [svc("a", 1, "node.hostname==x"), svc("b", 1, "node.hostname==y"), svc("c", 1)], {})
    assert e.value.failures == [
        "cannot place guestbook/a replica 1: no schedulable host matches node.hostname==x",
        "cannot place guestbook/b replica 1: no schedulable host matches node.hostname==y",
    ]


def test_other_apps_occupancy_counts() -> None:
    other = [svc("db", 1, app="other", cpus=0.8, ports=("tcp/80",))]
    occupied = occupancy({("other", "db", 1): "h1"}, other)
    assert occupied["h1"] == Occupancy(Resources(0.8, 0), frozenset({"tcp/80"}), 1)
    hs = hosts("h1", "h2", "h3", cap=Resources(1.0, GiB))
    # h1 has no CPU left and its port 80 is taken; h2 gets the first replica (least loaded)
    assert place(hs, [svc("web", 2, cpus=0.5, ports=("tcp/80",))], {}, occupied) == {
        ("guestbook", "web", 1): "h2", ("guestbook", "web", 2): "h3"}
    with pytest.raises(PlacementError, match="replica 3: host port tcp/80 is already taken"):
        place(hs, [svc("web", 3, ports=("tcp/80",))], {}, occupied)


def test_moves() -> None:
    old = {("a", "s", 1): "h1", ("a", "s", 2): "h2"}
    new = {("a", "s", 1): "h1", ("a", "s", 2): "h3", ("a", "s", 3): "h2"}
    assert moves(old, new) == {("a", "s", 2): ("h2", "h3"), ("a", "s", 3): (None, "h2")}


# --- properties ----------------------------------------------------------------------------------

ZONES = ["a", "b", "c"]


@st.composite
def clusters(draw: st.DrawFn) -> tuple[list[Host], list[ServiceDemand]]:
    n_hosts = draw(st.integers(0, 8))
    hs = [
        Host(
            f"h{i}",
            labels={"zone": draw(st.sampled_from(ZONES))},
            capacity=draw(st.one_of(st.none(), st.builds(Resources, st.sampled_from([1.0, 2.0, 4.0]),
                                                         st.sampled_from([GiB, 4 * GiB])))),
            cordoned=draw(st.booleans()) and draw(st.booleans()),
            alive=not (draw(st.booleans()) and draw(st.booleans())),
        )
        for i in range(n_hosts)
    ]
    constraint = st.one_of(
        st.builds(lambda z, op: Constraint("node.labels.zone", op, z), st.sampled_from(ZONES), st.sampled_from(["==", "!="])),
        st.builds(lambda i: Constraint("node.hostname", "!=", f"h{i}"), st.integers(0, 8)),
    )
    services = [
        ServiceDemand(
            draw(st.sampled_from(["app1", "app2"])),
            f"s{i}",
            draw(st.integers(0, 6)),
            tuple(draw(st.lists(constraint, max_size=2))),
            draw(st.integers(0, 3)),
            Resources(draw(st.sampled_from([0.0, 0.25, 0.5])), draw(st.sampled_from([0, 256 << 20, GiB]))),
            tuple(draw(st.lists(st.sampled_from(["tcp/80", "tcp/443"]), max_size=1))),
        )
        for i in range(draw(st.integers(1, 4)))
    ]
    return hs, services


def _check_valid(hs: list[Host], services: list[ServiceDemand], result: dict, current: dict) -> None:
    by_name = {h.name: h for h in hs}
    demand = {s.key: s for s in services}
    used: dict[str, Resources] = {}
    per_node: Counter[tuple[str, str, str]] = Counter()
    ports: Counter[tuple[str, str]] = Counter()
    for (app, service, n), host_name in result.items():
        d = demand[(app, service)]
        host = by_name[host_name]
        assert 1 <= n <= d.replicas
        assert host.alive
        assert host.schedulable or current.get((app, service, n)) == host_name  # new ones never cordoned
        assert all(c.matches(host) for c in d.constraints), (d, host)
        used[host_name] = used.get(host_name, Resources()) + d.reservations
        per_node[(app, service, host_name)] += 1
        for p in d.ports:
            ports[(host_name, p)] += 1
            assert ports[(host_name, p)] == 1, (host_name, p)
        if d.max_per_node:
            assert per_node[(app, service, host_name)] <= d.max_per_node
    for name, u in used.items():
        cap = by_name[name].capacity
        if cap is not None:
            assert u.fits_in(cap), (name, u, cap)
    assert len(result) == sum(s.replicas for s in services)


@settings(max_examples=300, deadline=None)
@given(clusters())
def test_property_valid_and_stable(cluster: tuple[list[Host], list[ServiceDemand]]) -> None:
    hs, services = cluster
    try:
        first = place(hs, services, {})
    except PlacementError:
        return
    _check_valid(hs, services, first, {})
    # Same spec, same hosts: nothing moves.
    assert place(hs, services, first) == first
    # Deterministic regardless of input order.
    assert place(list(reversed(hs)), list(reversed(services)), {}) == first


@settings(max_examples=200, deadline=None)
@given(clusters(), st.data())
def test_property_host_loss_moves_only_its_replicas(cluster: tuple[list[Host], list[ServiceDemand]],
                                                    data: st.DataObject) -> None:
    hs, services = cluster
    try:
        first = place(hs, services, {})
    except PlacementError:
        return
    if not hs:
        return
    lost = data.draw(st.sampled_from(hs)).name
    after = [Host(h.name, h.labels, h.capacity, h.cordoned, h.alive and h.name != lost) for h in hs]
    try:
        second = place(after, services, first)
    except PlacementError:
        return
    _check_valid(after, services, second, first)
    for slot, (old, _new) in moves(first, second).items():
        assert old == lost, slot
