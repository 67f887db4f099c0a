"""Host loss: the reconcile loop that keeps every app placed on the hosts that are alive.

Side effects: etcd reads, writes and a watch on host registrations (through the store); time.
The decisions themselves are pure (``deploy.reconcile_steps``). Run it with ``fusion reconcile``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from common.store import ConflictError, Store, StoreError
from orchestrator.deploy import reconcile_steps, step_decision
from orchestrator.ops import Clock, read_view


def reconcile_once(
    store: Store, *, assume_alive: frozenset[str] = frozenset(), now: Clock = time.time
) -> list[str]:
    """Re-place what runs on lost hosts (and create what is missing) for every app; one decision per
    app, guarded like a deploy. Returns what was done, one line per app (errors included)."""
    view = read_view(store, assume_alive=assume_alive)
    notes: list[str] = []
    for name, app in sorted(view.apps.items()):
        current, mod = store.current(name)
        if current is None:
            continue
        updating = current.updating_until is not None and current.updating_until > now()
        step, failures = reconcile_steps(view, app, current.revision, updating=updating)
        notes += [f"{name}: {f}" for f in failures]
        if step is None:
            continue
        record = current.bumped("re-placed after host loss", now())
        try:
            store.commit(step_decision(store.keys, name, step, current=record, expected_mod=mod))
        except ConflictError:
            notes.append(f"{name}: changed meanwhile; will look again")
            continue
        moved = [f"{c} {c.old_host}->{c.host}" for c in step.changes if c.old_host]
        created = [f"{c} on {c.host}" for c in step.changes if not c.old_host]
        notes.append(f"{name}: " + ", ".join(["moved " + " ".join(moved)] * bool(moved) +
                                             ["created " + " ".join(created)] * bool(created)
                                             + [f"removed {len(step.deletes) - len(moved)}"] *
                                             bool(len(step.deletes) - len(moved))))
    return notes


def reconcile_loop(
    store: Store,
    *,
    grace: float = 15.0,
    resync: float = 30.0,
    duration: float | None = None,
    on_note: Callable[[str], None] | None = None,
    clock: Clock = time.monotonic,
    stop: Callable[[], bool] | None = None,
) -> None:
    """Watch host registrations and reconcile on every change (and every ``resync`` seconds).

    For the first ``grace`` seconds, hosts that hold placements but have not registered are
    assumed alive (agents get time to register after a restart of the whole cluster); a host
    whose registration disappears while we watch is lost at once. Runs for ``duration`` seconds
    (None: until interrupted, or until ``stop()`` says so)."""
    start = clock()
    seen_gone: set[str] = set()
    kvs, revision = store.range(store.keys.hosts_prefix())
    watch = store.watch(store.keys.hosts_prefix(), start_revision=revision + 1)
    last = -resync

    def run() -> None:
        in_grace = clock() - start < grace
        registered = {h.name for h in store.hosts()}
        placed = {r.host for r in store.placements()}
        assume = frozenset(placed - registered - seen_gone) if in_grace else frozenset()
        for note in reconcile_once(store, assume_alive=assume):
            if on_note:
                on_note(note)

    try:
        while (duration is None or clock() - start < duration) and not (stop and stop()):
            events = watch.drain(0.5)
            for e in events:
                name = e.kv.key[len(store.keys.hosts_prefix()):]
                if e.type == "DELETE":
                    seen_gone.add(name)
                else:
                    seen_gone.discard(name)
            now = clock()
            if events or now - last >= resync or (now - start >= grace > now - start - 1.0):
                last = now
                try:
                    run()
                except StoreError as e:
                    if on_note:
                        on_note(f"error: {e}")
    finally:
        watch.cancel()
