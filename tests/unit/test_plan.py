"""Plans and decisions: diff of desired vs current, update batches, rollback/remove/host-loss steps."""

from __future__ import annotations

from dataclasses import replace

import pytest

from common.store import Compare, Delete, Put
from orchestrator.deploy import (
    ClusterView,
    deploy_steps,
    plan_app,
    reconcile_steps,
    remove_decision,
    step_decision,
)
from orchestrator.placement import Constraint, PlacementError, Resources
from orchestrator.plan import Change, demands, diff, service_hash
from specs.app import App
from specs.cluster import AppCurrent, HostRecord, Keys, PlacementRecord, SpecRevision


def app(name: str = "guestbook", **services: dict) -> App:
    return App.model_validate({"name": name, "services": services})


def web(replicas: int = 2, image: str = "web:1", **deploy: object) -> dict:
    return {"image": image, "deploy": {"replicas": replicas, **deploy}}


def rec(service: str, n: int, host: str, h: str, app_name: str = "guestbook", rev: int = 1) -> PlacementRecord:
    return PlacementRecord(app=app_name, service=service, replica=n, host=host, spec_revision=rev, service_hash=h)


HOSTS = tuple(HostRecord(name=n) for n in ("h1", "h2", "h3"))


def test_demands_adapter() -> None:
    a = app(web=web(3, placement={"constraints": [{"label": "node.labels.zone", "op": "==", "value": "a"}],
                                  "max_replicas_per_node": 1},
                    resources={"reservations": {"cpus": 0.5, "memory": 1024}}) | {"ports": [{"target": 80, "published": 8080}]})
    [d] = demands(a)
    assert d.app == "guestbook" and d.service == "web" and d.replicas == 3
    assert d.constraints == (Constraint("node.labels.zone", "==", "a"),)
    assert d.max_per_node == 1 and d.reservations == Resources(0.5, 1024) and d.ports == ("tcp/8080",)


def test_hash_ignores_what_only_placement_reads() -> None:
    base = app(web=web(2))
    assert service_hash(base, "web") == service_hash(app(web=web(5)), "web")
    assert service_hash(base, "web") == service_hash(app(web=web(2, update_config={"parallelism": 3})), "web")
    assert service_hash(base, "web") != service_hash(app(web=web(2, image="web:2")), "web")
    assert service_hash(base, "web") != service_hash(app(web=web(2) | {"environment": {"A": "1"}}), "web")


@pytest.mark.parametrize(
    ("name", "desired", "current", "expected"),
    [
        ("create", {("guestbook", "web", 1): "h1"}, [], ["+ guestbook/web/1 on h1"]),
        ("unchanged", {("guestbook", "web", 1): "h1"}, [rec("web", 1, "h1", "H")], []),
        ("update", {("guestbook", "web", 1): "h1"}, [rec("web", 1, "h1", "old")], ["~ guestbook/web/1 on h1"]),
        ("move", {("guestbook", "web", 1): "h2"}, [rec("web", 1, "h1", "H")], ["> guestbook/web/1 h1 -> h2"]),
        ("remove", {}, [rec("web", 1, "h1", "H")], ["- guestbook/web/1 on h1"]),
        ("mid-drain duplicate", {("guestbook", "web", 1): "h2"}, [rec("web", 1, "h1", "H"), rec("web", 1, "h2", "H")],
         ["- guestbook/web/1 on h1"]),
        ("other apps are not touched", {}, [rec("web", 1, "h1", "H", app_name="other")], []),
    ],
)
def test_diff(name: str, desired: dict, current: list[PlacementRecord], expected: list[str]) -> None:
    assert diff("guestbook", desired, {"web": "H"}, current).lines() == expected


def test_same_spec_again_is_an_empty_plan() -> None:
    a = app(web=web(3), db={"image": "db:1"})
    first = plan_app(ClusterView(HOSTS), a)
    assert first.plan.summary() == "4 to create, 0 to update, 0 to move, 0 to remove, 0 unchanged"
    [step] = deploy_steps(first, 1)
    again = plan_app(ClusterView(HOSTS, placements=step.puts, apps={"guestbook": a}), a)
    assert again.plan.empty and len(again.plan.unchanged) == 4


def test_update_batches_follow_parallelism_and_dependencies() -> None:
    old = app(web=web(3) | {"depends_on": {"db": {}}}, db=web(1))
    [step] = deploy_steps(plan_app(ClusterView(HOSTS), old), 1)
    new = app(web=web(3, image="web:2", update_config={"parallelism": 2}) | {"depends_on": {"db": {}}},
              db=web(1, image="db:2"))
    ap = plan_app(ClusterView(HOSTS, placements=step.puts, apps={"guestbook": old}), new)
    steps = deploy_steps(ap, 2)
    assert [[str(c) for c in s.changes] for s in steps] == [
        ["guestbook/db/1"], ["guestbook/web/1", "guestbook/web/2"], ["guestbook/web/3"]]
    assert all(r.spec_revision == 2 for s in steps for r in s.puts)
    [one] = deploy_steps(ap, 2, batched=False)
    assert len(one.puts) == 4


def test_step_decision_guards_current_and_spec() -> None:
    keys = Keys()
    a = app(web=web(1))
    [step] = deploy_steps(plan_app(ClusterView(HOSTS), a), 1)
    cur = AppCurrent(revision=1, generation=1, updated_at=0.0, note="deploy")
    spec = SpecRevision(revision=1, app=a.model_dump(mode="json"), created_at=0.0)
    d = step_decision(keys, "guestbook", step, current=cur, expected_mod=0, spec=spec)
    assert d.compares == (Compare("/fusion/apps/guestbook/current", 0), Compare("/fusion/apps/guestbook/spec/00000001", 0))
    assert [o.key for o in d.ops] == ["/fusion/apps/guestbook/current", "/fusion/apps/guestbook/spec/00000001",
                                      "/fusion/placements/h1/guestbook/web/1"]


def test_unplaceable_spec_raises_before_any_decision() -> None:
    a = app(web=web(4, placement={"max_replicas_per_node": 1}))
    with pytest.raises(PlacementError, match="replica 4: max_replicas_per_node=1 and only 3 hosts are schedulable"):
        plan_app(ClusterView(HOSTS), a)


def test_other_apps_published_ports_are_respected() -> None:
    other = app("other", web={"image": "x", "ports": [{"target": 80, "published": 80}]})
    mine = app(web={"image": "y", "ports": [{"target": 80, "published": 80}],
                    "deploy": {"replicas": 3, "placement": {"max_replicas_per_node": 1}}})
    [step] = deploy_steps(plan_app(ClusterView(HOSTS), other), 1)
    view = ClusterView(HOSTS, placements=step.puts, apps={"other": other})
    with pytest.raises(PlacementError, match="host port tcp/80 is already taken"):
        plan_app(view, mine)


def test_host_loss_moves_only_the_lost_hosts_containers() -> None:
    a = app(web=web(3), db=web(1))
    [step] = deploy_steps(plan_app(ClusterView(HOSTS), a), 1)
    lost = step.puts[0].host
    survivors = tuple(h for h in HOSTS if h.name != lost)
    moved, failures = reconcile_steps(ClusterView(survivors, placements=step.puts, apps={"guestbook": a}), a, 1)
    assert moved is not None and failures == ()
    assert {c.old_host for c in moved.deletes} == {lost}
    assert all(r.host != lost for r in moved.puts)
    # nothing to do once it is applied
    after = [r for r in step.puts if r.host != lost] + list(moved.puts)
    assert reconcile_steps(ClusterView(survivors, placements=tuple(after), apps={"guestbook": a}), a, 1) == (None, ())


def test_host_loss_does_not_push_pending_updates() -> None:
    a = app(web=web(2))
    [step] = deploy_steps(plan_app(ClusterView(HOSTS), a), 1)
    b = app(web=web(2, image="web:2"))
    assert reconcile_steps(ClusterView(HOSTS, placements=step.puts, apps={"guestbook": a}), b, 2) == (None, ())


def test_host_loss_moves_what_it_can_and_keeps_the_rest() -> None:
    a = app(web=web(3, placement={"max_replicas_per_node": 1}), db=web(1))
    [step] = deploy_steps(plan_app(ClusterView(HOSTS), a), 1)
    lost = next(r.host for r in step.puts if r.service == "db")
    survivors = tuple(h for h in HOSTS if h.name != lost)
    moved, failures = reconcile_steps(ClusterView(survivors, placements=step.puts, apps={"guestbook": a}), a, 1)
    assert failures == ("cannot place guestbook/web replica "
                        f"{next(r.replica for r in step.puts if r.service == 'web' and r.host == lost)}: "
                        "max_replicas_per_node=1 and only 2 hosts are schedulable",)
    assert moved is not None
    assert [(r.service, r.host != lost) for r in moved.puts] == [("db", True)]
    assert [c.slot[1] for c in moved.deletes] == ["db"]  # the web replica stays on the lost host


def test_remove_keeps_specs() -> None:
    keys = Keys()
    d = remove_decision(keys, "guestbook", [rec("web", 1, "h1", "H"), rec("web", 1, "h2", "H", app_name="x")], 7)
    assert d.compares == (Compare(keys.current("guestbook"), 7),)
    assert d.ops == (Delete("/fusion/apps/guestbook/current"), Delete("/fusion/placements/h1/guestbook/web/1"))
    assert not any(isinstance(o, Put) for o in d.ops)


def test_change_str() -> None:
    assert str(Change(("a", "b", 3), "h1")) == "a/b/3"


def test_start_first_moves_stop_the_old_replica_one_step_later() -> None:
    a = app(web=web(2, update_config={"order": "start-first"}))
    [step] = deploy_steps(plan_app(ClusterView(HOSTS), a), 1)
    lost = step.puts[0].host
    view = ClusterView(HOSTS, placements=step.puts, apps={"guestbook": a}, lost=frozenset({lost}))
    steps = deploy_steps(plan_app(view, a), 2)
    assert [len(s.puts) for s in steps] == [1, 0] and [len(s.deletes) for s in steps] == [0, 1]
    assert steps[1].deletes[0].old_host == lost
    # stop-first (the default) and unbatched: both in one step
    b = app(web=web(2))
    assert [len(s.deletes) for s in deploy_steps(plan_app(view, b), 2)] == [1]
    assert [len(s.deletes) for s in deploy_steps(plan_app(view, a), 2, batched=False)] == [1]


def test_drain_starts_replacements_before_stopping() -> None:
    from orchestrator.deploy import drain_steps

    a = app(web=web(2), db=web(1))
    [step] = deploy_steps(plan_app(ClusterView(HOSTS), a), 1)
    host = step.puts[0].host
    view = ClusterView(HOSTS, cordons=frozenset({host}), placements=step.puts, apps={"guestbook": a})
    result = drain_steps(view, a, 1, host)
    assert result is not None
    start, stop = result
    on_host = {(r.service, r.replica) for r in step.puts if r.host == host}
    assert {(r.service, r.replica) for r in start.puts} == on_host and not start.deletes
    assert all(r.host != host for r in start.puts)
    assert {(c.slot[1], c.slot[2]) for c in stop.deletes} == on_host and not stop.puts
    assert all(c.old_host == host for c in stop.deletes)
    assert drain_steps(view, a, 1, "elsewhere") is None


def start_first_web(image: str, hosts: int = 3) -> tuple[App, ClusterView]:
    """web (2 replicas, port 8080, start-first, one at a time) deployed as web:1 on ``hosts`` hosts,
    and the spec that updates it to ``image``."""
    [step] = deploy_steps(plan_app(ClusterView(HOSTS[:hosts]), published_web("web:1")), 1)
    return published_web(image), ClusterView(HOSTS[:hosts], placements=step.puts,
                                             apps={"guestbook": published_web("web:1")})


def published_web(image: str, order: str = "start-first") -> App:
    return app(web=web(2, image, update_config={"order": order, "parallelism": 1},
                       placement={"max_replicas_per_node": 1}) | {"ports": [{"target": 80, "published": 8080}]})


def test_start_first_in_place_update_runs_an_extra_replica_until_it_is_done() -> None:
    a, view = start_first_web("web:2")
    ap = plan_app(view, a)
    placed = {r.host for r in view.placements}
    [(slot, host)] = ap.surge.items()
    assert slot == ("guestbook", "web", 3) and host not in placed  # the port is taken where web runs
    assert f"+ guestbook/web/3 on {host} (start-first: until the update is done)" in ap.lines()
    steps = deploy_steps(ap, 2)
    # 1: the extra replica (no old one stops); 2, 3: one replica each, in place; 4: the extra one stops
    assert [[(r.replica, r.host) for r in s.puts] for s in steps] == [
        [(3, host)], [(1, ap.desired[("guestbook", "web", 1)])], [(2, ap.desired[("guestbook", "web", 2)])], []]
    assert [[(c.slot[2], c.old_host) for c in s.deletes] for s in steps] == [[], [], [], [(3, host)]]
    assert steps[0].changes == (Change(slot, host),)  # the caller waits for it to be healthy
    assert all(r.service_hash == ap.hashes["web"] for s in steps for r in s.puts)
    # unbatched (--no-wait): all at once, no extra replica
    assert [len(s.puts) for s in deploy_steps(ap, 2, batched=False)] == [2]


def test_start_first_without_room_is_stop_first_and_says_so() -> None:
    a, view = start_first_web("web:2", hosts=2)
    ap = plan_app(view, a)
    assert ap.surge == {} and ap.notes == ("web: no host has room for a start-first replica; its update is stop-first",)
    assert [len(s.puts) for s in deploy_steps(ap, 2)] == [1, 1]


def test_an_interrupted_start_first_update_is_finished_by_the_next_deploy() -> None:
    a, view = start_first_web("web:2")
    [first, *_] = deploy_steps(plan_app(view, a), 2)
    view = replace(view, placements=view.placements + first.puts)  # it stopped after step 1
    ap = plan_app(view, published_web("web:3"))
    assert ap.surge == {("guestbook", "web", 3): first.puts[0].host}  # the same host: put again, not deleted
    steps = deploy_steps(ap, 3)
    assert not steps[0].deletes and steps[0].puts[0].service_hash == ap.hashes["web"]
    assert [c.slot for c in steps[-1].deletes] == [("guestbook", "web", 3)]
    # a stop-first deploy removes it at once
    stop_first = plan_app(view, published_web("web:3", "stop-first"))
    assert [c.slot for c in deploy_steps(stop_first, 3)[0].deletes] == [("guestbook", "web", 3)]


def test_the_controller_removes_nothing_while_a_deploy_is_updating() -> None:
    a, view = start_first_web("web:2")
    [first, *_] = deploy_steps(plan_app(view, a), 2)
    view = replace(view, placements=view.placements + first.puts, apps={"guestbook": a})
    step, _ = reconcile_steps(view, a, 2)
    assert step is not None and [c.slot for c in step.deletes] == [("guestbook", "web", 3)]
    assert reconcile_steps(view, a, 2, updating=True) == (None, ())
