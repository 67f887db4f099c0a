"""Rollout state in etcd: optimistic writes, history of failed versions, and an orchestrator that is
"killed" (its memory dropped) after every step and resumes from etcd, with real reboot slots."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from common.store import ConflictError, Store
from orchestrator.upgrade import rollouts, slots
from orchestrator.upgrade.machine import (
    Drain,
    Reboot,
    RolloutState,
    Stage,
    approve,
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


class Fleet:
    """Hosts that do what a rollout asks at once (drain, stage, reboot into the staged tree) and
    report it, driven by an orchestrator that is "killed" after every step: each step loads the
    rollout from etcd, decides, saves, then acts."""

    def __init__(self, store: Store, hosts: list[str]) -> None:
        self.store, self.hosts = store, hosts
        self.lease = store.lease_grant(60)
        self.booted = dict.fromkeys(hosts, OLD)
        self.staged: dict[str, str | None] = dict.fromkeys(hosts)
        self.drained: set[str] = set()

    def step(self, rollout_id: str, now: float) -> RolloutState:
        for h in self.hosts:  # what the agents report
            self.store.register_host(HostRecord(name=h, tree=TreeState(booted=self.booted[h], staged=self.staged[h])),
                                     self.lease)
        state, read_at = rollouts.load(self.store, rollout_id)
        assert state is not None
        state, actions = step(state, rollouts.observe(self.store, state, frozenset(self.drained)), now)
        rollouts.save(self.store, state, read_at)  # persist first, then act
        rest = rollouts.carry_out_store_actions(self.store, state, actions, now)
        holders = {r.holder for r in slots.holders(self.store).values()}
        assert len(holders) <= 1  # max_unavailable 1
        for a in rest:
            if isinstance(a, Drain):
                self.drained.add(a.host)
            elif isinstance(a, Stage):
                self.staged[a.host] = a.checksum
            elif isinstance(a, Reboot):
                self.booted[a.host], self.staged[a.host] = self.staged[a.host] or self.booted[a.host], None
                self.drained.discard(a.host)
        return state

    def run(self, rollout_id: str, now: float, steps: int = 100, every: float = 5.0) -> tuple[RolloutState, float]:
        """Step until nothing changes any more (or ``steps``); returns the last state and time."""
        last = None
        for _ in range(steps):
            state = self.step(rollout_id, now)
            now += every
            if state == last or state.phase == "done":
                break
            last = state
        return state, now

    def close(self) -> None:
        self.store.lease_revoke(self.lease)


@pytest.fixture()
def fleet(store: Store) -> Iterator[Fleet]:
    f = Fleet(store, ["h1", "h2", "h3"])
    try:
        yield f
    finally:
        f.close()


def test_an_orchestrator_killed_after_every_step_finishes_the_rollout(store: Store, fleet: Fleet) -> None:
    store.set_cordon("h3", CordonRecord(reason="a person's cordon", by="cli"))
    rollouts.save(store, new_rollout("r1", "2", NEW, fleet.hosts, 0.0), 0)
    final, _ = fleet.run("r1", 0.0)
    assert final.phase == "done" and rollouts.load(store, "r1")[0] == final
    assert [h.state for h in final.hosts] == ["done"] * 3
    assert fleet.booted == dict.fromkeys(fleet.hosts, NEW) and slots.holders(store) == {}
    assert list(store.cordons()) == ["h3"]  # the person's cordon is left alone


def test_canaries_wait_for_approval(store: Store, fleet: Fleet) -> None:
    rollouts.save(store, new_rollout("r1", "2", NEW, fleet.hosts, 0.0, canary=1), 0)
    state, now = fleet.run("r1", 0.0)
    assert [h.state for h in state.hosts] == ["done", "waiting", "waiting"] and state.phase == "running"
    assert fleet.booted == {"h1": NEW, "h2": OLD, "h3": OLD} and slots.holders(store) == {}
    loaded, read_at = rollouts.load(store, "r1")
    assert loaded is not None
    rollouts.save(store, approve(loaded), read_at)  # `fusion upgrade approve`
    state, _ = fleet.run("r1", now)
    assert state.phase == "done" and fleet.booted == dict.fromkeys(fleet.hosts, NEW)


def test_no_host_starts_outside_the_window_and_one_under_way_finishes(store: Store, fleet: Fleet) -> None:
    saturday = datetime(2026, 12, 5, tzinfo=UTC)  # a Saturday
    window = "Sat 02:00-03:00 UTC"
    rollouts.save(store, new_rollout("r1", "2", NEW, fleet.hosts, 0.0, window=window), 0)
    state, _ = fleet.run("r1", (saturday + timedelta(hours=1)).timestamp(), steps=10)
    assert [h.state for h in state.hosts] == ["waiting"] * 3 and slots.holders(store) == {}
    # h1 starts (takes a slot, then drains) just before the window closes: it finishes; the others
    # wait for next Saturday
    state, _ = fleet.run("r1", (saturday + timedelta(hours=3, seconds=-10)).timestamp())
    assert [h.state for h in state.hosts] == ["done", "waiting", "waiting"] and state.phase == "running"
    state, _ = fleet.run("r1", (saturday + timedelta(days=7, hours=2)).timestamp())
    assert state.phase == "done" and fleet.booted == dict.fromkeys(fleet.hosts, NEW)


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
