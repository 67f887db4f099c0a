"""The rollout driver: the imperative shell around :func:`orchestrator.upgrade.machine.step`.

Side effects: etcd (rollout state, slots, cordons, placements, tree requests, a driver claim under a
lease) through the store; drains (``orchestrator.drain``); time.

One turn: load the rollout, observe the hosts, ``step``, save the new state (compare-and-swap on
its mod_revision), then carry out the actions: etcd ones (slots, cordons) in
``rollouts.carry_out_store_actions``, host ones by writing the host's :class:`TreeRequest`
(``fetch``, ``stage``, ``boot``; the agent obeys), drains by running :func:`orchestrator.drain.drain`
right here. The state is saved before acting and every action is idempotent, so a driver that was
killed at any moment is replaced by running it again (``fusion upgrade resume``): it picks up the
saved state. Only one driver runs a rollout at a time: it holds ``rollouts/<id>/driver`` under a
short lease, so a killed driver's claim is gone within :data:`CLAIM_TTL` seconds.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import threading
import time
from collections.abc import Callable

from common.store import Compare, ConflictError, Decision, Put, Store, StoreError
from orchestrator import drain as drains
from orchestrator.upgrade import machine, rollouts, slots
from orchestrator.upgrade.machine import (
    Action,
    Drain,
    Prefetch,
    Reboot,
    Rollback,
    RolloutState,
    Stage,
    Unstage,
)
from specs.cluster import TreeRequest
from specs.errors import FusionError

CLAIM_TTL = 5
TURN = 1.0  # seconds between turns when nothing happens


class DriverBusy(FusionError):
    """Another process drives this rollout."""


class Claim:
    """The driver's claim: a key under a lease that a thread keeps alive while the process lives."""

    def __init__(self, store: Store, key: str, lease: int) -> None:
        self.store, self.key, self.lease = store, key, lease
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._keepalive, daemon=True, name="rollout-claim")
        self._thread.start()

    def _keepalive(self) -> None:
        while not self._stop.wait(CLAIM_TTL / 3):
            try:
                self.lost = self.store.lease_keepalive(self.lease) <= 0
            except StoreError:
                continue  # etcd briefly unreachable: try again; the TTL decides
            if self.lost:
                return

    def check(self) -> None:
        if self.lost:
            raise DriverBusy("lost the claim on the rollout (etcd unreachable for too long?)",
                             hint="run `fusion upgrade resume` again")

    def release(self) -> None:
        self._stop.set()
        self._thread.join(timeout=CLAIM_TTL)
        with contextlib.suppress(StoreError):  # else it expires by itself
            self.store.lease_revoke(self.lease)


def claim(store: Store, rollout_id: str, wait: float = CLAIM_TTL + 2) -> Claim:
    """Become the rollout's only driver; waits (bounded) for a killed driver's claim to expire."""
    key = f"{rollouts.state_key(store, rollout_id).rsplit('/', 1)[0]}/driver"
    me = f"pid {os.getpid()} on {socket.gethostname()}".encode()
    deadline = time.monotonic() + wait
    while True:
        lease = store.lease_grant(CLAIM_TTL)
        try:
            store.commit(Decision((Compare(key, 0),), (Put(key, me, lease),), note=f"drive rollout {rollout_id}"))
            return Claim(store, key, lease)
        except ConflictError:
            store.lease_revoke(lease)
        if time.monotonic() >= deadline:
            holder = store.get(key)
            who = holder.value.decode(errors="replace") if holder else "another process"
            raise DriverBusy(f"rollout {rollout_id} is being driven by {who}",
                             hint="`fusion upgrade status` follows it; stop that process to take over")
        time.sleep(0.5)


def tree_request(state: RolloutState, action: Action, booted: str | None, now: float) -> TreeRequest | None:
    """The host's TreeRequest for a host action (pure); None for actions that are not tree requests."""
    if isinstance(action, Prefetch):
        return TreeRequest(checksum=action.checksum, action="fetch", by=state.id, at=now)
    if isinstance(action, Stage):
        return TreeRequest(checksum=action.checksum, action="stage", by=state.id, at=now)
    if isinstance(action, Reboot):
        return TreeRequest(checksum=state.target, action="boot", by=state.id, at=now)
    if isinstance(action, Unstage) and booted is not None:
        return TreeRequest(checksum=booted, action="stage", by=state.id, at=now)
    if isinstance(action, Rollback):
        back = action.checksum or booted
        return None if back is None else TreeRequest(checksum=back, action="boot", by=f"{state.id}/rollback", at=now)
    return None


def _prefixed(say: Callable[[str], None], host: str, line: str) -> None:
    say(f"{host}: {line}")


def _same(a: TreeRequest | None, b: TreeRequest | None) -> bool:
    return a is not None and b is not None and (a.checksum, a.action, a.by) == (b.checksum, b.action, b.by)


def turn(store: Store, rollout_id: str, *, drain_timeout: float | None = None,
         say: Callable[[str], None] = lambda _: None, now: Callable[[], float] = time.time,
         on_saved: Callable[[RolloutState], None] | None = None) -> RolloutState:
    """One decision and its actions; returns the state as saved (also given to ``on_saved`` as soon
    as it is saved, before the actions: a display shows a host draining while it drains)."""
    state, mod = rollouts.load(store, rollout_id)
    if state is None:
        raise FusionError(f"no rollout {rollout_id}")
    drained = frozenset(h.name for h in state.hosts if h.state == "draining" and drains.drained(store, h.name))
    observed = rollouts.observe(store, state, drained=drained)
    new, actions = machine.step(state, observed, now())
    if new != state:
        try:
            rollouts.save(store, new, mod)
        except ConflictError:
            return state  # a person paused or aborted meanwhile: decide again on the new state
        if on_saved:
            on_saved(new)
    host_actions = rollouts.carry_out_store_actions(store, new, actions, now())
    if new.phase in ("done", "aborted", "halted") and not any(h.state in machine.IN_FLIGHT for h in new.hosts):
        slots.release_owned(store, new.id)
    for action in host_actions:
        booted = observed.hosts[action.host].booted if action.host in observed.hosts else None
        request = tree_request(new, action, booted, now())
        if request is not None:
            if not _same(store.tree_request(action.host), request):
                store.set_tree_request(action.host, request)
        elif isinstance(action, Drain):
            timeout = drain_timeout if drain_timeout is not None else max(10.0, new.drain_timeout / 2)
            try:
                drains.drain(store, action.host, timeout=timeout, by=new.id, reason=f"upgrade to {new.version}",
                             progress=functools.partial(_prefixed, say, action.host))
            except drains.DrainError as e:
                say(f"{action.host}: {e}")  # tried again next turn, until the drain deadline
    if finished(new):
        rollouts.clear_tree_requests(store, new)  # the hosts are free again (e.g. to auto-update)
    return new


def drive(store: Store, rollout_id: str, *, on_turn: Callable[[RolloutState], None] | None = None,
          say: Callable[[str], None] = lambda _: None, stop: Callable[[], bool] = lambda: False,
          max_seconds: float | None = None, now: Callable[[], float] = time.time) -> RolloutState:
    """Drive the rollout until it ends (done, halted or aborted with nothing in flight), ``stop()``
    says so, or ``max_seconds``. Returns the last state."""
    held = claim(store, rollout_id)
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    # The next turn comes at once when a host's record changes, and after a turn that changed the
    # rollout's state or a slot (its own save and slot writes are events too); else after TURN.
    watch = store.watch(store.keys.hosts_prefix())
    watches = [watch, store.watch(rollouts.state_key(store, rollout_id), into=watch),
               store.watch(store.keys.slots_prefix(), into=watch)]
    try:
        while True:
            state = turn(store, rollout_id, say=say, now=now, on_saved=on_turn)
            if on_turn:
                on_turn(state)
            if finished(state) or stop() or (deadline is not None and time.monotonic() >= deadline):
                return state
            held.check()
            watch.drain(TURN)
    finally:
        for w in watches:
            w.cancel()
        held.release()


def finished(state: RolloutState) -> bool:
    if state.phase == "done":
        return True
    return state.phase in ("aborted", "halted") and not any(h.state in machine.IN_FLIGHT for h in state.hosts)
