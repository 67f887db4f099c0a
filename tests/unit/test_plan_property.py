"""Properties of deploy plans: applying a deploy's steps converges (planning again changes nothing),
whatever the spec change, and host loss moves only what was on the lost host."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.deploy import ClusterView, Step, deploy_steps, plan_app, reconcile_steps
from orchestrator.placement import PlacementError
from specs.app import App
from specs.cluster import HostRecord, PlacementRecord

Records = dict[tuple[str, str, str, int], PlacementRecord]


def apply(records: Records, steps: list[Step]) -> Records:
    out = dict(records)
    for step in steps:
        for c in step.deletes:
            assert c.old_host is not None
            out.pop((c.old_host, *c.slot), None)
        for r in step.puts:
            out[(r.host, r.app, r.service, r.replica)] = r
    return out


@st.composite
def apps(draw: st.DrawFn) -> App:
    services = {}
    for name in draw(st.lists(st.sampled_from(["web", "db", "cache"]), min_size=1, max_size=3, unique=True)):
        placement: dict[str, object] = {}
        if draw(st.booleans()):
            placement["constraints"] = [{"label": "node.labels.zone", "op": draw(st.sampled_from(["==", "!="])),
                                         "value": draw(st.sampled_from(["a", "b"]))}]
        if draw(st.booleans()):
            placement["max_replicas_per_node"] = 1
        services[name] = {
            "image": f"{name}:{draw(st.integers(1, 3))}",
            "deploy": {"replicas": draw(st.integers(0, 4)), "placement": placement,
                       "update_config": {"parallelism": draw(st.integers(0, 2)),
                                         "order": draw(st.sampled_from(["stop-first", "start-first"]))}},
        }
    return App.model_validate({"name": "app", "services": services})


@st.composite
def host_sets(draw: st.DrawFn) -> tuple[HostRecord, ...]:
    n = draw(st.integers(1, 5))
    return tuple(HostRecord(name=f"h{i}", labels={"zone": draw(st.sampled_from(["a", "b"]))}) for i in range(n))


@settings(max_examples=200, deadline=None)
@given(host_sets(), apps(), apps(), st.booleans())
def test_deploys_converge(hosts: tuple[HostRecord, ...], first: App, second: App, batched: bool) -> None:
    records: Records = {}
    for revision, app in enumerate([first, second], start=1):
        view = ClusterView(hosts, placements=tuple(records.values()), apps={"app": first} if revision > 1 else {})
        try:
            ap = plan_app(view, app)
        except PlacementError:
            return
        records = apply(records, deploy_steps(ap, revision, batched=batched))
        again = plan_app(ClusterView(hosts, placements=tuple(records.values()), apps={"app": app}), app)
        assert again.plan.empty, again.plan.lines()
        # exactly the wanted replicas, each on one host
        slots = sorted((r.service, r.replica) for r in records.values())
        assert slots == sorted((s, n) for s, svc in app.services.items() for n in range(1, svc.deploy.replicas + 1))


@settings(max_examples=200, deadline=None)
@given(host_sets(), apps(), st.data())
def test_host_loss_moves_only_its_replicas(hosts: tuple[HostRecord, ...], app: App, data: st.DataObject) -> None:
    try:
        records = apply({}, deploy_steps(plan_app(ClusterView(hosts), app), 1))
    except PlacementError:
        return
    lost = data.draw(st.sampled_from(hosts)).name
    survivors = tuple(h for h in hosts if h.name != lost)
    step, _failures = reconcile_steps(ClusterView(survivors, placements=tuple(records.values()), apps={"app": app}),
                                      app, 1)
    if step is None:
        assert all(r.host != lost for r in records.values()) or not survivors or _failures
        return
    assert all(c.old_host == lost for c in step.deletes)
    assert all(r.host != lost for r in step.puts)
    after = apply(records, [step])
    # whatever could not move stays on the lost host; everything else is on survivors
    assert {(r.service, r.replica) for r in after.values()} == {(r.service, r.replica) for r in records.values()}
