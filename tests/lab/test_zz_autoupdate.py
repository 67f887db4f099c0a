"""Hosts that update themselves, coordinated by FleetLock (issue 6, item 5), on the 2-host lab.

A new tree version is published; a FleetLock server (the real one, in this process, on the lab's
bridge, one reboot slot, the lab's etcd) coordinates; both agents are switched to the auto-update
mode (``/etc/fusion/agent.env``, which fusion-agent.service reads) and restarted. Both hosts must
end up booted on the new commit, one at a time: never two slots held, never both hosts down at
once, each host seen holding the slot, and no slot left held at the end.

Named to run last in the lab tier (only test_lab.py's `lab down` test comes after it, see
conftest.py): it moves the shared 2-host lab to a new tree.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import pytest

from common.runner import run
from common.store import EtcdConfig, Store
from lab import ops
from lab.state import LabState
from orchestrator.upgrade import slots
from orchestrator.upgrade.fleetlock import FleetLockServer
from specs.cluster import SlotRecord

pytestmark = [pytest.mark.lab, pytest.mark.slow]

INTERVAL = 3  # seconds between the agents' checks (and lock attempts)
DEADLINE = 600  # for both hosts to move to the new tree, one after the other
# test_lab.py publishes a tree whose health check always fails; a tree built on it must not fail
BROKEN_BY_TEST_LAB = "/usr/lib/fusion/health.d/50-always-fails"
UP = ("running", "degraded")


def sh(lab: LabState, host: str, script: str, check: bool = True, timeout: float = 120) -> str:
    return ops.run_in(lab, host, ["/bin/sh", "-c", script], timeout=timeout, check=check)


@pytest.fixture(scope="module")
def up_lab(lab: LabState) -> LabState:
    """The session's 2-host lab with every host running (test_lab.py's last reboots are over;
    its `lab down` test runs after this one, see conftest.py)."""
    ops.wait_running(lab, [h.name for h in lab.hosts], timeout=240)
    return lab


@pytest.fixture()
def server(up_lab: LabState) -> Iterator[tuple[FleetLockServer, Store]]:
    store = Store(EtcdConfig.parse(up_lab.etcd_url))
    s = FleetLockServer(store, (up_lab.bridge_address, 0), slot_count=1).start()
    try:
        yield s, store
    finally:
        s.stop()


def in_tip(lab: LabState, path: str) -> bool:
    r = run(["ostree", f"--repo={lab.repo}", "ls", lab.ref, path], check=False, timeout=60)
    return r.returncode == 0


def agent_env(url: str) -> str:
    return (f"FUSION_AUTO_UPDATE=fleetlock\nFUSION_FLEETLOCK_URL={url}\nFUSION_FLEETLOCK_GROUP=lab\n"
            f"FUSION_AUTO_UPDATE_INTERVAL={INTERVAL}\n")


def registered_tree(store: Store, host: str) -> str | None:
    """The booted commit in the host's registration (None while it is not registered)."""
    return next((h.tree.booted for h in store.hosts() if h.name == host), None)


def journals(lab: LabState) -> str:
    out = []
    for h in lab.hosts:
        try:
            out.append(f"--- {h.name}\n" + sh(lab, h.name, "journalctl --no-pager -n 40 -u fusion-agent", check=False,
                                             timeout=30))
        except Exception as e:  # noqa: BLE001 (a host that is down explains itself this way)
            out.append(f"--- {h.name}: {e}")
    return "\n".join(out)


def turns(store: Store, since: int) -> list[str]:
    """Who held a reboot slot since etcd revision ``since`` (sorted), replayed from etcd's history:
    a host's turn can be shorter than the test's sampling. Fails if two held slots at once."""
    watch = store.watch(store.keys.slots_prefix(), start_revision=since + 1)
    try:
        events = watch.drain(5.0)
    finally:
        watch.cancel()
    held: dict[str, str] = {}
    took: set[str] = set()
    for e in events:
        if e.type == "PUT":
            held[e.kv.key] = SlotRecord.model_validate_json(e.kv.value).holder
            took.add(held[e.kv.key])
        else:
            held.pop(e.kv.key, None)
        assert len(set(held.values())) <= 1, held
    return sorted(took)


def test_hosts_update_themselves_one_at_a_time(up_lab: LabState, server: tuple[FleetLockServer, Store]) -> None:
    lab = up_lab
    fleetlock, store = server
    names = [h.name for h in lab.hosts]
    assert slots.holders(store) == {}, "a reboot slot is held before the test"
    for name in names:
        assert store.tree_request(name) is None, f"{name} has a TreeRequest: the auto-update would wait for it"
    files = {"/usr/lib/fusion/lab-release": "autoupdate\n"}
    modes = {}
    if in_tip(lab, BROKEN_BY_TEST_LAB):
        files[BROKEN_BY_TEST_LAB] = "#!/bin/sh\nexit 0\n"
        modes[BROKEN_BY_TEST_LAB] = 0o755
    new = ops.publish_files(lab, files, version="autoupdate", modes=modes)
    assert all(ops.host_status(lab, h).booted != new for h in lab.hosts)

    _, since = store.range(store.keys.slots_prefix())
    for name in names:
        sh(lab, name, f"mkdir -p /etc/fusion && cat > /etc/fusion/agent.env <<'EOF'\n{agent_env(fleetlock.url)}EOF\n"
                      "systemctl restart fusion-agent")
    most_held, most_down = 0, 0
    booted: dict[str, object] = {}
    try:
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            holders = {r.holder for r in slots.holders(store).values()}
            most_held = max(most_held, len(holders))
            # the firmware's view: a host is up from when it is healthy until its systemd-nspawn exits
            phases = {h.name: str(ops.run_info(lab, h.name).get("phase")) for h in lab.hosts}
            booted = {h.name: ops.run_info(lab, h.name).get("checksum") for h in lab.hosts}
            most_down = max(most_down, sum(p not in UP for p in phases.values()))
            assert most_held <= 1 and most_down <= 1, (holders, phases, booted, journals(lab))
            if set(booted.values()) == {new} and not holders and all(p in UP for p in phases.values()):
                break
            time.sleep(1)
        else:
            pytest.fail(f"not every host on {new[:12]} with the slot free after {DEADLINE}s: booted {booted}, "
                        f"held {slots.holders(store)}\n{journals(lab)}")
        assert turns(store, since) == names  # each took its turn through the slot, one at a time
        for name in names:  # the agents agree with the lab: they run the new tree and hold nothing
            deadline = time.monotonic() + 60
            while (tree := registered_tree(store, name)) != new and time.monotonic() < deadline:
                time.sleep(1)
            assert tree == new, f"{name} registered {tree}, not {new}"
            assert sh(lab, name, "cat /usr/lib/fusion/lab-release").strip() == "autoupdate"
            assert sh(lab, name, "test -e /var/lib/fusion/agent/fleetlock.json || echo none").strip() == "none"
        time.sleep(2 * INTERVAL)  # another check finds nothing new: nobody takes the slot again
        assert slots.holders(store) == {}
    finally:
        for name in names:  # auto-update off again (best effort: the lab may be in a bad state)
            with contextlib.suppress(Exception):
                sh(lab, name, "rm -f /etc/fusion/agent.env; systemctl restart fusion-agent", check=False, timeout=60)
