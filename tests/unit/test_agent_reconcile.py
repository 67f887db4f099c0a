"""host.agent.reconcile: desired units + observed units -> ordered actions (pure, table-driven)."""

from __future__ import annotations

import pytest

from host.agent.reconcile import (
    RESTART_HEADER,
    Action,
    DesiredUnit,
    ObservedUnit,
    add_hosts,
    dependency_order,
    desired_unit,
    plan,
    read_hash,
    restart_relevant,
    stamp,
    unit_dependencies,
    unit_hash,
)

VOL = "[Unit]\nDescription=volume\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n"
DB = "[Unit]\nDescription=db\nRequires=app-data-volume.service\nAfter=app-data-volume.service\n[Service]\nExecStart=/bin/db\n"
WEB = (
    "[Unit]\nDescription=web\nRequires=app-db-1.service\nAfter=app-db-1.service network-online.target\n"
    "[Service]\nExecStart=/bin/web\n[Install]\nWantedBy=multi-user.target\n"
)
WEB2 = WEB.replace("/bin/web", "/bin/web --v2")


APP = {"app-data-volume.service": VOL, "app-db-1.service": DB, "app-web-1.service": WEB}


def want(units: dict[str, str]) -> dict[str, DesiredUnit]:
    return {n: desired_unit(n, t) for n, t in units.items()}


def seen(units: dict[str, str], state: str = "active") -> dict[str, ObservedUnit]:
    return {n: ObservedUnit(n, unit_hash(t), state) for n, t in units.items()}


def kinds(actions: list[Action]) -> list[str]:
    return [str(a) for a in actions]


CASES = [
    pytest.param(
        APP,
        {},
        [
            "write app-data-volume.service",
            "write app-db-1.service",
            "write app-web-1.service",
            "daemon-reload",
            "start app-data-volume.service",
            "start app-db-1.service",
            "start app-web-1.service",
        ],
        id="new app: write all, one reload, start in dependency order",
    ),
    pytest.param(APP, APP, [], id="everything right: nothing (agent restart)"),
    pytest.param(
        {},
        APP,
        [
            "stop app-web-1.service",
            "stop app-db-1.service",
            "stop app-data-volume.service",
            "remove app-data-volume.service",
            "remove app-db-1.service",
            "remove app-web-1.service",
            "daemon-reload",
        ],
        id="removed: stop and remove",
    ),
    pytest.param(
        {**APP, "app-web-1.service": WEB2},
        APP,
        ["write app-web-1.service", "daemon-reload", "restart app-web-1.service"],
        id="changed: rewrite and restart only that unit",
    ),
    pytest.param(
        {"app-web-1.service": WEB, "app-db-1.service": DB + "# v2\n", "app-data-volume.service": VOL},
        {"app-web-1.service": WEB, "app-data-volume.service": VOL},
        ["write app-db-1.service", "daemon-reload", "start app-db-1.service"],
        id="a unit missing among running ones: written and started",
    ),
]


@pytest.mark.parametrize(("want_units", "seen_units", "expected"), CASES)
def test_plan(want_units: dict[str, str], seen_units: dict[str, str], expected: list[str]) -> None:
    assert kinds(plan(want(want_units), seen(seen_units))) == expected


def test_new_service_next_to_running_ones_starts_only_it() -> None:
    actions = plan(want(APP), seen({k: v for k, v in APP.items() if k != "app-web-1.service"}))
    assert kinds(actions) == ["write app-web-1.service", "daemon-reload", "start app-web-1.service"]


def test_inactive_unit_with_right_hash_is_started_not_rewritten() -> None:
    observed = seen(APP)
    observed["app-web-1.service"] = ObservedUnit("app-web-1.service", unit_hash(WEB), "inactive")
    assert kinds(plan(want(APP), observed)) == ["start app-web-1.service"]


def test_failed_unit_with_right_hash_is_left_to_systemd() -> None:
    observed = seen(APP)
    observed["app-web-1.service"] = ObservedUnit("app-web-1.service", unit_hash(WEB), "failed")
    assert plan(want(APP), observed) == []


def test_stopped_unwanted_unit_is_removed_without_stop() -> None:
    actions = plan({}, seen({"old-x-1.service": WEB}, state="inactive"))
    assert kinds(actions) == ["remove old-x-1.service", "daemon-reload"]


def test_unit_without_hash_line_is_rewritten() -> None:
    observed = {n: ObservedUnit(n, None, "active") for n in APP}
    actions = plan(want(APP), observed)
    assert [a.kind for a in actions].count("restart") == 3
    assert kinds(actions)[-3:] == [
        "restart app-data-volume.service",
        "restart app-db-1.service",
        "restart app-web-1.service",
    ]


def test_written_text_carries_the_hash_that_is_read_back() -> None:
    (write,) = [a for a in plan(want(APP), {}) if a.kind == "write" and a.unit == "app-web-1.service"]
    assert write.text == stamp(WEB)
    assert read_hash(write.text) == unit_hash(WEB)
    assert read_hash(write.text, RESTART_HEADER) == unit_hash(restart_relevant(WEB))
    assert write.text.split("\n", 2)[2] == WEB
    assert read_hash(WEB) is None


def test_a_change_of_discovery_only_refreshes_a_running_unit() -> None:
    """A dependency moved to another host: new --add-host address and dependency lines, nothing
    else. The running container is not restarted; its hosts entries are refreshed."""
    before = WEB.replace("ExecStart=/bin/web", "ExecStart=/x --add-host=redis:10.0.0.1 /bin/web", 1)
    after = before.replace("10.0.0.1", "10.0.0.2").replace("[Unit]", "[Unit]\nAfter=app-redis-1.service", 1)
    old = desired_unit("app-web-1.service", before)
    new = desired_unit("app-web-1.service", after)
    running = {"app-web-1.service": ObservedUnit("app-web-1.service", old.hash, "active", old.restart_hash)}
    assert kinds(plan({"app-web-1.service": new}, running)) == [
        "write app-web-1.service", "daemon-reload", "refresh app-web-1.service"]
    assert add_hosts(after) == {"redis": "10.0.0.2"}
    # anything else restarts it; so does a unit stamped by an agent that wrote no restart hash
    other = desired_unit("app-web-1.service", after.replace("/x", "/y"))
    assert kinds(plan({"app-web-1.service": other}, running))[-1] == "restart app-web-1.service"
    # the dependency came to this host: no --add-host any more, a Requires= instead
    local = desired_unit("app-web-1.service", WEB.replace("ExecStart=/bin/web", "ExecStart=/x /bin/web", 1)
                         .replace("[Unit]", "[Unit]\nRequires=app-redis-1.service", 1))
    assert kinds(plan({"app-web-1.service": local}, running))[-1] == "refresh app-web-1.service"
    legacy = {"app-web-1.service": ObservedUnit("app-web-1.service", old.hash, "active")}
    assert kinds(plan({"app-web-1.service": new}, legacy))[-1] == "restart app-web-1.service"


def test_unit_dependencies_reads_only_the_unit_section() -> None:
    text = WEB + "[Service]\nAfter=ignored.service\n"
    assert unit_dependencies(text) == {"app-db-1.service", "network-online.target"}


def test_dependency_order_goes_through_units_that_need_no_action() -> None:
    units = {
        "a.service": DesiredUnit("a.service", "x", frozenset({"b.service"})),
        "b.service": DesiredUnit("b.service", "x", frozenset({"c.service"})),
        "c.service": DesiredUnit("c.service", "x"),
    }
    assert dependency_order(units, ["a.service", "c.service"]) == ["c.service", "a.service"]


def test_dependency_cycle_still_lists_every_unit() -> None:
    units = {
        "a.service": DesiredUnit("a.service", "x", frozenset({"b.service"})),
        "b.service": DesiredUnit("b.service", "x", frozenset({"a.service"})),
    }
    assert sorted(dependency_order(units, units)) == ["a.service", "b.service"]
