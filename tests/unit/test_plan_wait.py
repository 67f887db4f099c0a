"""What `fusion deploy` says while it waits: WaitState over container reports (pure)."""

from __future__ import annotations

from orchestrator.ops import WaitState
from specs.cluster import ContainerStatus, PlacementRecord


def status(n: int, host: str, h: str = "H", **kw: object) -> ContainerStatus:
    return ContainerStatus(app="gb", service="web", replica=n, host=host, unit=f"u{n}", spec_revision=1,
                           service_hash=h, **kw)  # type: ignore[arg-type]


def test_wait_state() -> None:
    s = WaitState({("gb", "web", 1): ("h1", "H"), ("gb", "web", 2): ("h2", "H"), ("gb", "web", 3): ("h3", "H")})
    s.statuses[("h1", ("gb", "web", 1))] = status(1, "h1", state="active", health="healthy")
    s.statuses[("h2", ("gb", "web", 2))] = status(2, "h2", state="active", health="starting")
    s.statuses[("h9", ("gb", "web", 3))] = status(3, "h9", state="active")  # the old host: not it
    assert s.ready() == [("gb", "web", 1)] and not s.done and s.failed() == []
    assert s.why_not(("gb", "web", 2)) == "gb/web/2 on h2: active, health starting"
    assert s.why_not(("gb", "web", 3)) == "gb/web/3 on h3: no report from the host yet"
    s.statuses[("h3", ("gb", "web", 3))] = status(3, "h3", h="OLD", state="active")
    assert s.why_not(("gb", "web", 3)) == "gb/web/3 on h3: the host still runs the previous definition (active)"
    s.statuses[("h3", ("gb", "web", 3))] = status(3, "h3", state="failed", sub_state="failed", message="no image")
    assert s.failed() == [("gb", "web", 3)]
    assert s.why_not(("gb", "web", 3)) == "gb/web/3 on h3: failed/failed: no image"


def placed(n: int, host: str, h: str = "H") -> PlacementRecord:
    return PlacementRecord(app="gb", service="web", replica=n, host=host, spec_revision=1, service_hash=h)


def test_the_wait_follows_a_replica_the_controller_moved() -> None:
    s = WaitState({("gb", "web", 1): ("h1", "H"), ("gb", "web", 2): ("h2", "H"), ("gb", "web", 3): ("h3", "H")})
    s.statuses[("h4", ("gb", "web", 1))] = status(1, "h4", state="active")
    s.follow([placed(1, "h4"),                      # h1 went away during the deploy: moved to h4
              placed(2, "h2"), placed(2, "h5"),     # a start-first move under way: not followed
              placed(3, "h6", h="OTHER")])          # another definition (a newer deploy): not it
    assert s.targets == {("gb", "web", 1): ("h4", "H"), ("gb", "web", 2): ("h2", "H"), ("gb", "web", 3): ("h3", "H")}
    assert s.ready() == [("gb", "web", 1)]


def test_endpoints_for_discovery() -> None:
    from specs.cluster import PublishedPort, endpoints

    reports = [
        status(2, "h2", state="active", address="10.0.0.2", ports=[PublishedPort(container_port=80, host_port=8080)]),
        status(1, "h1", state="active", health="unhealthy", address="10.0.0.1"),
        status(1, "h3", state="active", health="healthy", address="10.0.0.3"),
    ]
    found = endpoints(reports, "gb")
    assert [(e.replica, e.host, e.address) for e in found["web"]] == [(1, "h3", "10.0.0.3"), (2, "h2", "10.0.0.2")]
    assert found["web"][1].ports[0].host_port == 8080
    assert endpoints(reports, "other") == {}


def test_removed_containers_are_stopping_while_their_host_reports_them() -> None:
    s = WaitState({("gb", "web", 1): ("h1", "H")}, gone=frozenset({("h2", ("gb", "web", 2))}))
    s.statuses[("h1", ("gb", "web", 1))] = status(1, "h1", state="active", health="healthy")
    s.statuses[("h2", ("gb", "web", 2))] = status(2, "h2", state="deactivating")
    assert s.done and s.stopping() == [("h2", ("gb", "web", 2))]
    del s.statuses[("h2", ("gb", "web", 2))]
    assert s.stopping() == []
