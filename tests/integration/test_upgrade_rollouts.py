"""Rollout state in etcd: optimistic writes, history of failed versions, and an orchestrator that is
"killed" (its memory dropped) after every step and resumes from etcd, with real reboot slots."""

from __future__ import annotations

import pytest

from common.store import ConflictError, Store
from orchestrator.upgrade import rollouts, slots
from orchestrator.upgrade.machine import (
    Drain,
    Reboot,
    Stage,
    new_rollout,
    pause,
    step,
)
from specs.cluster import ContainerStatus, CordonRecord, HostRecord, TreeRequest, TreeState

pytest_plugins = ["etcd_fixture"]
pytestmark = pytest.mark.integration

OLD, NEW = "old-sum", "new-sum"


def test_save_load_and_conflicts(store: Store) -> None:
    assert rollouts.load(store, "r1") == (None, 0)
    state = new_rollout("r1", "2", NEW, ["h1", "h2"], 100.0, canary=1)
    rev = rollouts.save(store, state, 0)
    with pytest.raises(ConflictError):
        rollouts.save(store, state, 0)  # already exists
    loaded, read_at = rollouts.load(store, "r1")
    assert loaded == state and read_at == rev
    rollouts.save(store, pause(state), read_at)
    with pytest.raises(ConflictError):  # a second writer with the stale revision loses
        rollouts.save(store, state, read_at)
    assert rollouts.load(store, "r1")[0].phase == "paused"  # type: ignore[union-attr]
    assert rollouts.active(store) is not None


def test_failed_versions_are_collected_from_every_rollout(store: Store) -> None:
    a = new_rollout("a", "2", NEW, ["h1"], 1.0).model_copy(
        update={"failed_versions": {"h1": ("2",)}, "phase": "halted"})
    b = new_rollout("b", "3", NEW, ["h1", "h2"], 2.0).model_copy(
        update={"failed_versions": {"h1": ("3",), "h2": ("3",)}, "phase": "done"})
    rollouts.save(store, a, 0)
    rollouts.save(store, b, 0)
    assert rollouts.failed_versions(store) == {"h1": ("2", "3"), "h2": ("3",)}
    assert rollouts.active(store) is None
    c = new_rollout("c", "3", NEW, ["h1", "h2", "h3"], 3.0, failed_versions=rollouts.failed_versions(store))
    assert [h.state for h in c.hosts] == ["failed", "failed", "waiting"]


def test_an_orchestrator_killed_after_every_step_finishes_the_rollout(store: Store) -> None:
    hosts = ["h1", "h2", "h3"]
    lease = store.lease_grant(60)
    booted = dict.fromkeys(hosts, OLD)
    staged: dict[str, str | None] = dict.fromkeys(hosts)
    drained: set[str] = set()

    def register() -> None:  # what the agents report
        for h in hosts:
            store.register_host(HostRecord(name=h, tree=TreeState(booted=booted[h], staged=staged[h])), lease)

    store.set_cordon("h3", CordonRecord(reason="a person's cordon", by="cli"))
    rollouts.save(store, new_rollout("r1", "2", NEW, hosts, 0.0), 0)
    now = 0.0
    try:
        for _ in range(100):
            register()
            # a fresh "process" each time: everything comes from etcd
            state, read_at = rollouts.load(store, "r1")
            assert state is not None
            state, actions = step(state, rollouts.observe(store, state, frozenset(drained)), now)
            rollouts.save(store, state, read_at)  # persist first, then act
            rest = rollouts.carry_out_store_actions(store, state, actions, now)
            holders = {r.holder for r in slots.holders(store).values()}
            assert len(holders) <= 1 and set(store.cordons()) - {"h3"} <= holders  # cordoned only with a slot
            for a in rest:
                if isinstance(a, Drain):
                    drained.add(a.host)
                elif isinstance(a, Stage):
                    staged[a.host] = a.checksum
                elif isinstance(a, Reboot):
                    booted[a.host], staged[a.host] = staged[a.host] or booted[a.host], None
                    drained.discard(a.host)
            now += 5
            if state.phase == "done":
                break
        final, _ = rollouts.load(store, "r1")
        assert final is not None and final.phase == "done"
        assert [h.state for h in final.hosts] == ["done"] * 3
        assert booted == dict.fromkeys(hosts, NEW) and slots.holders(store) == {}
        assert list(store.cordons()) == ["h3"]  # the person's cordon is left alone
    finally:
        store.lease_revoke(lease)


def test_observe_reads_registrations_health_and_own_slots(store: Store) -> None:
    lease = store.lease_grant(60)
    try:
        store.register_host(HostRecord(name="h1", tree=TreeState(booted=OLD, staged=NEW)), lease)
        store.register_host(HostRecord(name="h2", tree=TreeState(booted=OLD)), lease)
        store.put_status(ContainerStatus(app="a", service="web", replica=1, host="h2", unit="u",
                                         spec_revision=1, service_hash="x", state="failed"), lease)
        state = new_rollout("r1", "2", NEW, ["h1", "h2", "h3"], 0.0)
        assert slots.acquire(store, 2, "h1", "upgrade", "r1")
        assert slots.acquire(store, 2, "h2", "someone else's", "r0")
        obs = rollouts.observe(store, state, drained=frozenset({"h1"}))
        assert obs.hosts["h1"].booted == OLD and obs.hosts["h1"].staged == NEW and obs.hosts["h1"].healthy
        assert not obs.hosts["h2"].healthy  # a container is not ready
        assert not obs.hosts["h3"].registered
        assert obs.slots == {"h1"} and obs.drained == {"h1"}
        assert not rollouts.observe(store, state, unhealthy=frozenset({"h1"})).hosts["h1"].healthy
    finally:
        store.lease_revoke(lease)



def test_a_finished_rollout_clears_its_carried_out_tree_requests_only(store: Store) -> None:
    state = new_rollout("r1", "2", NEW, ["h1", "h2", "h3", "h4", "h6"], 0.0)
    lease = store.lease_grant(60)
    try:
        for name, tree in {"h1": TreeState(booted=NEW), "h2": TreeState(booted=OLD), "h3": TreeState(booted=NEW),
                           "h4": TreeState(booted=OLD, staged=NEW), "h5": TreeState(booted=NEW)}.items():
            store.register_host(HostRecord(name=name, tree=tree), lease)
        store.set_tree_request("h1", TreeRequest(checksum=NEW, action="boot", by="r1"))
        store.set_tree_request("h2", TreeRequest(checksum=OLD, action="boot", by="r1/rollback"))
        store.set_tree_request("h3", TreeRequest(checksum=NEW, action="stage", by="a person"))
        store.set_tree_request("h4", TreeRequest(checksum=OLD, action="stage", by="r1"))  # unstage not done yet
        store.set_tree_request("h5", TreeRequest(checksum=NEW, action="boot", by="r1"))  # not in the rollout
        store.set_tree_request("h6", TreeRequest(checksum=NEW, action="boot", by="r1"))  # not registered (down)
        assert rollouts.clear_tree_requests(store, state) == ["h1", "h2"]
        assert store.tree_request("h1") is None and store.tree_request("h2") is None
        assert all(store.tree_request(h) is not None for h in ("h3", "h4", "h5", "h6"))
        assert rollouts.clear_tree_requests(store, state) == []
    finally:
        store.lease_revoke(lease)
