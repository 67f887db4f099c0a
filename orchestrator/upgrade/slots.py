"""Reboot slots in etcd (``<root>/slots/<n>``, :class:`specs.cluster.SlotRecord`).

Side effects: every function here reads or writes etcd through :class:`common.store.Store`.

A slot is a permission to take a host out of service. At most ``slot_count`` are held at once.
Each record says who holds it (a host name, or a FleetLock client id), why, and which rollout owns
it (None for a FleetLock client). There are no leases: a slot is released by its rollout when the
host is back (or by the FleetLock client's steady-state call), so a restarted orchestrator finds the
slots its rollout held and goes on with them, and :func:`release_owned` frees all of a finished
rollout's slots so none is left stale.

:func:`acquire` is one transaction guarded by the mod_revision of every slot key it looked at
(0 for a free one): any concurrent change makes it re-read and decide again (bounded), so two
acquirers can never both take the last slot, and re-acquiring a slot already held by the same
holder is a no-op that returns True (as the FleetLock protocol requires).
"""

from __future__ import annotations

import time

from common.store import Compare, ConflictError, Decision, Delete, Put, Store, StoreError
from specs.cluster import SlotRecord
from specs.errors import FusionError, InputError

ATTEMPTS = 20


class SlotError(FusionError):
    """A slot operation that is not allowed (e.g. releasing a slot another rollout owns)."""


def _read(store: Store) -> tuple[dict[str, tuple[SlotRecord, int]], str]:
    prefix = store.keys.slots_prefix()
    kvs, _ = store.range(prefix)
    out: dict[str, tuple[SlotRecord, int]] = {}
    for kv in kvs:
        try:
            out[kv.key] = (SlotRecord.model_validate_json(kv.value), kv.mod_revision)
        except ValueError as e:
            raise StoreError(f"malformed slot record at {kv.key}: {e}") from e
    return out, prefix


def holders(store: Store) -> dict[int, SlotRecord]:
    """The held slots: slot number -> record."""
    held, prefix = _read(store)
    return {int(key[len(prefix):]): record for key, (record, _) in held.items()}


def acquire(
    store: Store,
    slot_count: int,
    holder: str,
    reason: str,
    owner_rollout: str | None,
    group: str = "default",
    now: float | None = None,
) -> bool:
    """Take a free slot for ``holder``: True if it holds one now (also when it already did), False
    if all ``slot_count`` slots are held by others."""
    if slot_count < 1:
        raise InputError(f"slot count must be at least 1, not {slot_count}")
    for attempt in range(ATTEMPTS):
        held, prefix = _read(store)
        mine = [record for record, _ in held.values() if record.holder == holder]
        if mine:
            if mine[0].owner != owner_rollout:
                raise SlotError(
                    f"{holder} already holds a slot owned by {mine[0].owner or 'its FleetLock client'}"
                )
            return True
        if len(held) >= slot_count:
            return False
        free = next(n for n in range(slot_count) if f"{prefix}{n}" not in held)
        record = SlotRecord(holder=holder, reason=reason, owner=owner_rollout, group=group,
                            at=time.time() if now is None else now)
        compares = [Compare(key, rev) for key, (_, rev) in held.items()]
        compares += [Compare(f"{prefix}{n}", 0) for n in range(slot_count) if f"{prefix}{n}" not in held]
        try:
            store.commit(Decision(tuple(compares), (Put(f"{prefix}{free}", record.to_json()),),
                                  note=f"give a reboot slot to {holder}"))
            return True
        except ConflictError:
            time.sleep(0.01 * (attempt + 1))
    raise ConflictError(f"could not take a reboot slot for {holder}: slots kept changing", hint="try again")


def release(store: Store, holder: str, owner_rollout: str | None) -> bool:
    """Free the slot ``holder`` holds: True if one was freed, False if it held none. A slot owned by
    another rollout (or by a FleetLock client, when ``owner_rollout`` is a rollout) is refused with
    SlotError."""
    for attempt in range(ATTEMPTS):
        held, _ = _read(store)
        mine = [(key, record, rev) for key, (record, rev) in held.items() if record.holder == holder]
        if not mine:
            return False
        for _key, record, _ in mine:
            if record.owner != owner_rollout:
                raise SlotError(
                    f"the slot of {holder} is owned by {record.owner or 'its FleetLock client'}, "
                    f"not {owner_rollout or 'a FleetLock client'}"
                )
        try:
            store.commit(Decision(tuple(Compare(k, rev) for k, _, rev in mine), tuple(Delete(k) for k, _, _ in mine),
                                  note=f"release the reboot slot of {holder}"))
            return True
        except ConflictError:
            time.sleep(0.01 * (attempt + 1))
    raise ConflictError(f"could not release the reboot slot of {holder}: slots kept changing", hint="try again")


def release_owned(store: Store, owner_rollout: str) -> list[str]:
    """Free every slot the rollout owns (when it ends); returns their holders."""
    freed = []
    for record in holders(store).values():
        if record.owner == owner_rollout and release(store, record.holder, owner_rollout):
            freed.append(record.holder)
    return freed
