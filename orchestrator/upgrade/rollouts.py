"""Rollout state in etcd: ``<root>/rollouts/<id>/state`` holds a :class:`RolloutState` as JSON.

Side effects: every function here reads or writes etcd through :class:`common.store.Store`.

Writes compare the mod_revision the state was read at, so two orchestrators (or an orchestrator
and ``fusion upgrade pause``) never overwrite each other's decisions: the loser gets
``ConflictError``, re-reads and steps again. The orchestrator's loop is: ``load``, ``step``,
``save`` (the new state is stored *before* its actions are carried out, and every action is
idempotent), so a killed orchestrator resumes from the last saved state.
"""

from __future__ import annotations

import time

from pydantic import ValidationError

from common.store import Compare, Decision, Put, Store, StoreError
from orchestrator.upgrade import slots
from orchestrator.upgrade.machine import (
    Action,
    Cordon,
    HostObservation,
    Observations,
    ReleaseSlot,
    RolloutState,
    TakeSlot,
    Uncordon,
)
from specs.cluster import CordonRecord, TreeRequest, TreeState


def state_key(store: Store, rollout_id: str) -> str:
    return f"{store.keys.rollouts_prefix()}{rollout_id}/state"


def load(store: Store, rollout_id: str) -> tuple[RolloutState | None, int]:
    """The rollout's state and its mod_revision (None, 0 when there is no such rollout)."""
    kv = store.get(state_key(store, rollout_id))
    if kv is None:
        return None, 0
    try:
        return RolloutState.from_json(kv.value), kv.mod_revision
    except ValidationError as e:
        raise StoreError(f"malformed rollout state at {kv.key}: {e.errors()[0]['msg']}") from e


def save(store: Store, state: RolloutState, read_at: int) -> int:
    """Store ``state`` if the stored one is still the one read at ``read_at`` (0: create a new
    rollout); returns the new mod_revision. ConflictError otherwise (nothing written)."""
    key = state_key(store, state.id)
    return store.commit(Decision((Compare(key, read_at),), (Put(key, state.to_json()),),
                                 note=f"record rollout {state.id}"))


def all_rollouts(store: Store) -> list[RolloutState]:
    """Every rollout ever recorded (oldest first)."""
    kvs, _ = store.range(store.keys.rollouts_prefix())
    states = []
    for kv in kvs:
        if kv.key.endswith("/state"):
            try:
                states.append(RolloutState.from_json(kv.value))
            except ValidationError as e:
                raise StoreError(f"malformed rollout state at {kv.key}: {e.errors()[0]['msg']}") from e
    return sorted(states, key=lambda s: (s.created_at, s.id))


def active(store: Store) -> RolloutState | None:
    """The rollout that is not finished (running, paused or halted with hosts in flight), if any."""
    for state in reversed(all_rollouts(store)):
        if state.phase in ("running", "paused") or any(
            h.state not in ("waiting", "done", "failed", "rolled-back") for h in state.hosts
        ):
            return state
    return None


def failed_versions(store: Store) -> dict[str, tuple[str, ...]]:
    """Per host, every version that failed there in any rollout (what ``new_rollout`` skips)."""
    out: dict[str, tuple[str, ...]] = {}
    for state in all_rollouts(store):
        for host, versions in state.failed_versions.items():
            out[host] = tuple(dict.fromkeys((*out.get(host, ()), *versions)))
    return out


def observe(store: Store, state: RolloutState, drained: frozenset[str] = frozenset(),
            unhealthy: frozenset[str] = frozenset()) -> Observations:
    """What etcd says now, for :func:`~orchestrator.upgrade.machine.step`: each host's registration
    (booted and staged checksums), the slots this rollout holds, plus what the caller knows:
    ``drained`` (hosts whose drain completed) and ``unhealthy`` (hosts whose health checks fail).
    A registered host is healthy unless listed there or one of its containers is not ready."""
    registered = {h.name: h for h in store.hosts()}
    statuses = store.statuses()
    hosts = {}
    for h in state.hosts:
        record = registered.get(h.name)
        if record is None:
            hosts[h.name] = HostObservation(registered=False)
            continue
        ready = all(s.ready for s in statuses if s.host == h.name)
        on_target = record.tree.booted == state.target
        hosts[h.name] = HostObservation(booted=record.tree.booted, staged=record.tree.staged,
                                        healthy=ready and record.health.ok and h.name not in unhealthy,
                                        fetched=on_target or record.tree.fetched == state.target)
    held = frozenset(r.holder for r in slots.holders(store).values() if r.owner == state.id)
    return Observations(hosts=hosts, drained=drained, slots=held)


def carry_out_store_actions(store: Store, state: RolloutState, actions: list[Action],
                            now: float | None = None) -> list[Action]:
    """Do the actions that are etcd writes (TakeSlot, ReleaseSlot, Cordon, Uncordon) and return the
    others (Prefetch, Drain, Stage, Unstage, Reboot, Verify, Rollback) for the caller. Every one is
    idempotent. ``Uncordon`` removes only a cordon this rollout set (a person's cordon stays)."""
    at = time.time() if now is None else now
    rest: list[Action] = []
    for a in actions:
        if isinstance(a, TakeSlot):
            slots.acquire(store, state.max_unavailable, a.host, f"upgrade to {state.version}", state.id, now=at)
        elif isinstance(a, ReleaseSlot):
            slots.release(store, a.host, state.id)
        elif isinstance(a, Cordon):
            if a.host not in store.cordons():
                store.set_cordon(a.host, CordonRecord(reason=f"upgrade to {state.version}", by=state.id, at=at))
        elif isinstance(a, Uncordon):
            record = store.cordons().get(a.host)
            if record is not None and record.by == state.id:
                store.set_cordon(a.host, None)
        else:
            rest.append(a)
    return rest



def carried_out(request: TreeRequest, tree: TreeState) -> bool:
    """Whether a host whose registration says ``tree`` has done what ``request`` asks (pure)."""
    if request.action == "fetch":
        return request.checksum in (tree.fetched, tree.booted)
    if request.action == "stage":
        return tree.staged == request.checksum or (tree.booted == request.checksum and tree.staged is None)
    return tree.booted == request.checksum


def clear_tree_requests(store: Store, state: RolloutState) -> list[str]:
    """Delete the TreeRequests this rollout left on its hosts once each is carried out (when the
    rollout ends): a host without one is free again, e.g. for the agent's auto-update mode. A request
    not carried out yet (an unstage the agent has not done, a host that is down) and requests of
    others stay. Returns the hosts cleared."""
    trees = {h.name: h.tree for h in store.hosts()}
    cleared = []
    for h in state.hosts:
        try:
            request = store.tree_request(h.name)
        except ValidationError:
            continue  # not ours to judge: the agent ignores a malformed request
        if request is None or not (request.by == state.id or request.by.startswith(f"{state.id}/")):
            continue
        if h.name in trees and carried_out(request, trees[h.name]):
            store.set_tree_request(h.name, None)
            cleared.append(h.name)
    return cleared
