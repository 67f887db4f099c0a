"""host.agent: the pure parsers and record builders around the loop."""

from __future__ import annotations

from pathlib import Path

from host.agent.discovery import add_host_args, remote_dependencies, waiting_for
from host.agent.main import container_status, parse_labels, parse_meminfo
from host.agent.reconcile import add_hosts as parse_add_hosts
from host.agent.reconcile import stamp
from host.agent.systemd import Systemd, UnitProps, parse_podman_health, parse_show
from specs.app import App
from specs.cluster import Endpoint, PlacementRecord, PublishedPort


def test_parse_labels_lines_and_commas() -> None:
    text = "# zone of this host\nzone=a\n\nrole = web , disk=ssd\nnonsense\n"
    assert parse_labels(text) == {"zone": "a", "role": "web", "disk": "ssd"}


def test_parse_meminfo() -> None:
    assert parse_meminfo("MemTotal:       16384 kB\nMemFree: 1 kB\n") == 16384 * 1024
    assert parse_meminfo("") is None


def test_parse_show_blocks() -> None:
    text = (
        "Id=a-web-1.service\nActiveState=active\nSubState=running\nNRestarts=2\nLoadState=loaded\nResult=success\n\n"
        "Id=a-db-1.service\nActiveState=failed\nSubState=failed\nNRestarts=\nLoadState=loaded\nResult=exit-code\n"
    )
    props = parse_show(text)
    assert props["a-web-1.service"] == UnitProps("a-web-1.service", "active", "running", 2, "loaded", "success")
    assert props["a-db-1.service"].active == "failed"
    assert props["a-db-1.service"].restarts == 0


def test_parse_podman_health() -> None:
    ps = (
        '[{"Names": ["a-web-1"], "Status": "Up 3 seconds (healthy)"},'
        ' {"Names": ["a-db-1"], "Status": "Up 1 second (starting)"},'
        ' {"Names": ["a-x-1"], "Status": "Up 9 seconds"}]'
    )
    assert parse_podman_health(ps) == {"a-web-1": "healthy", "a-db-1": "starting"}
    assert parse_podman_health("not json") == {}


PLACEMENT = PlacementRecord(app="a", service="web", replica=1, host="h1", spec_revision=3, service_hash="abc")


def test_container_status_carries_the_placement_and_unit_state() -> None:
    ports = [PublishedPort(container_port=8080, host_port=18080)]
    props = UnitProps("a-web-1.service", "active", "running", 1)
    s = container_status(PLACEMENT, props, "healthy", ports, "10.0.0.2", "")
    assert (s.unit, s.state, s.sub_state, s.health, s.restarts) == ("a-web-1.service", "active", "running", "healthy", 1)
    assert (s.spec_revision, s.service_hash, s.address, s.ports) == (3, "abc", "10.0.0.2", ports)
    assert s.ready


def test_container_status_of_a_failed_or_unknown_unit() -> None:
    failed = container_status(PLACEMENT, UnitProps("a-web-1.service", "failed", "failed", result="exit-code"),
                              None, [], None, "")
    assert failed.state == "failed" and "exit-code" in failed.message and not failed.ready
    missing = container_status(PLACEMENT, None, None, [], None, "spec revision 3 not found")
    assert (missing.state, missing.health, missing.message) == ("unknown", "none", "spec revision 3 not found")


# --- discovery ------------------------------------------------------------------------------------

GUESTBOOK = App.model_validate(
    {
        "name": "gb",
        "services": {
            "web": {"image": "w", "depends_on": {"redis": {"condition": "service_started"}}},
            "redis": {"image": "r", "ports": [{"target": 6379, "published": 6379}]},
        },
    }
)


def ep(address: str, replica: int = 1) -> Endpoint:
    return Endpoint(service="redis", replica=replica, host=address, address=address)


def test_remote_dependency_gets_the_address_of_a_ready_replica() -> None:
    assert remote_dependencies(GUESTBOOK, "web", {"web"}, {"redis": [ep("10.0.0.2")]}, {}) == {"redis": "10.0.0.2"}
    assert add_host_args({"redis": "10.0.0.2"}) == ("--add-host=redis:10.0.0.2",)


def test_local_or_not_yet_ready_dependency_gets_nothing() -> None:
    assert remote_dependencies(GUESTBOOK, "web", {"web", "redis"}, {"redis": [ep("10.0.0.2")]}, {}) == {}
    assert remote_dependencies(GUESTBOOK, "web", {"web"}, {}, {}) == {}
    assert remote_dependencies(GUESTBOOK, "redis", {"redis"}, {}, {}) == {}


def test_the_choice_is_sticky() -> None:
    two = {"redis": [ep("10.0.0.2"), ep("10.0.0.3", 2)]}
    assert remote_dependencies(GUESTBOOK, "web", {"web"}, two, {"redis": "10.0.0.3"}) == {"redis": "10.0.0.3"}
    # no replica ready for a moment: keep the old address (no restart of the dependents)
    assert remote_dependencies(GUESTBOOK, "web", {"web"}, {}, {"redis": "10.0.0.3"}) == {"redis": "10.0.0.3"}
    # another host took over: follow it
    moved = {"redis": [ep("10.0.0.4")]}
    assert remote_dependencies(GUESTBOOK, "web", {"web"}, moved, {"redis": "10.0.0.3"}) == {"redis": "10.0.0.4"}


def test_a_dependency_without_a_replica_here_or_an_address_is_waited_for() -> None:
    assert waiting_for(GUESTBOOK, "web", {"web"}, {}) == ["redis"]
    assert waiting_for(GUESTBOOK, "web", {"web"}, {"redis": "10.0.0.2"}) == []
    assert waiting_for(GUESTBOOK, "web", {"web", "redis"}, {}) == []
    assert waiting_for(GUESTBOOK, "redis", {"redis"}, {}) == []


def test_add_hosts_are_read_back_from_a_unit() -> None:
    text = "[Service]\nExecStart=/usr/bin/podman run --add-host=redis:10.0.0.3 --add-host=db:10.0.0.4 img\n"
    assert parse_add_hosts(text) == {"redis": "10.0.0.3", "db": "10.0.0.4"}


def test_units_removed_since_a_deployment_was_staged_go_from_its_etc_too(tmp_path: Path) -> None:
    live, staged = tmp_path / "etc", tmp_path / "staged-etc"
    for d in (live, staged, staged / "multi-user.target.wants"):
        d.mkdir(parents=True)
    managed = stamp("[Service]\nExecStart=/bin/true\n")
    for name in ("app-web-1.service", "app-db-1.service"):
        (staged / name).write_text(managed)
        (staged / "multi-user.target.wants" / name).symlink_to(f"../{name}")
    (staged / "mine.service").write_text("[Service]\nExecStart=/bin/true\n")  # not Fusion's: kept
    (live / "app-db-1.service").write_text(managed)  # still placed here; app-web-1 was drained

    assert Systemd(live).forget_in(staged) == ["app-web-1.service"]
    assert sorted(p.name for p in staged.iterdir() if p.is_file()) == ["app-db-1.service", "mine.service"]
    assert [p.name for p in (staged / "multi-user.target.wants").iterdir()] == ["app-db-1.service"]
    assert Systemd(live).forget_in(staged) == []
