"""Reboot slots against a real etcd: one transaction per acquire, idempotent re-acquire, owners."""

from __future__ import annotations

import threading

import pytest

from common.store import EtcdConfig, Store
from orchestrator.upgrade import slots
from specs.cluster import Keys

pytest_plugins = ["etcd_fixture"]
pytestmark = pytest.mark.integration


def test_acquire_records_who_and_why(store: Store) -> None:
    assert slots.acquire(store, 2, "h1", "upgrade to 2", "r1", now=5.0)
    assert slots.acquire(store, 2, "h2", "upgrade to 2", "r1")
    assert not slots.acquire(store, 2, "h3", "upgrade to 2", "r1")  # both slots held
    held = slots.holders(store)
    assert sorted(held) == [0, 1]
    assert held[0].holder == "h1" and held[0].reason == "upgrade to 2" and held[0].owner == "r1"
    assert held[0].at == 5.0
    assert slots.release(store, "h1", "r1")
    assert slots.acquire(store, 2, "h3", "upgrade to 2", "r1")
    assert {r.holder for r in slots.holders(store).values()} == {"h2", "h3"}


def test_reacquire_is_idempotent(store: Store) -> None:
    assert slots.acquire(store, 1, "zincati-1", "pre-reboot", None, group="default")
    assert slots.acquire(store, 1, "zincati-1", "pre-reboot", None, group="default")
    assert len(slots.holders(store)) == 1
    assert not slots.acquire(store, 1, "zincati-2", "pre-reboot", None)


def test_release_by_the_wrong_holder_or_owner_is_refused(store: Store) -> None:
    assert slots.acquire(store, 1, "h1", "upgrade", "r1")
    assert not slots.release(store, "h2", "r1")  # h2 holds nothing: nothing freed
    with pytest.raises(slots.SlotError, match="owned by r1"):
        slots.release(store, "h1", "r2")
    with pytest.raises(slots.SlotError, match="owned by r1"):
        slots.release(store, "h1", None)  # a FleetLock unlock cannot free a rollout's slot
    with pytest.raises(slots.SlotError):
        slots.acquire(store, 1, "h1", "upgrade", None)
    assert [r.holder for r in slots.holders(store).values()] == ["h1"]
    assert slots.release(store, "h1", "r1") and slots.holders(store) == {}
    assert not slots.release(store, "h1", "r1")  # already free


def test_release_owned_frees_only_that_rollouts_slots(store: Store) -> None:
    assert slots.acquire(store, 3, "h1", "upgrade", "r1")
    assert slots.acquire(store, 3, "c1", "pre-reboot", None)
    assert slots.acquire(store, 3, "h2", "upgrade", "r1")
    assert sorted(slots.release_owned(store, "r1")) == ["h1", "h2"]
    assert [r.holder for r in slots.holders(store).values()] == ["c1"]


def test_concurrent_acquirers_of_one_slot_exactly_one_wins(store: Store, etcd_config: EtcdConfig) -> None:
    for round_ in range(5):
        root = f"{store.keys.root}/round{round_}"
        results: dict[str, bool] = {}
        barrier = threading.Barrier(4)

        def take(name: str, root: str = root, results: dict[str, bool] = results,
                 barrier: threading.Barrier = barrier) -> None:
            own = Store(etcd_config, Keys(root))  # a client of its own, like another orchestrator
            barrier.wait(timeout=10)
            results[name] = slots.acquire(own, 1, name, "race", None)

        threads = [threading.Thread(target=take, args=(f"c{i}",)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        winners = [n for n, won in results.items() if won]
        assert len(results) == 4 and len(winners) == 1
        held = slots.holders(Store(etcd_config, Keys(root)))
        assert [r.holder for r in held.values()] == winners
