"""The agent's auto-update mode against the real FleetLock server (127.0.0.1, random port) on the
real etcd, and on a real offline OSTree sysroot (tmpfs) following a real repo of busybox trees.

Only the reboot is replaced (by a recorded callback): it cannot happen outside a booted host. In a
sysroot that is not booted the default deployment stands for the booted one, so a new
:class:`AutoUpdater` after the "reboot" sees what a new agent process on the new tree would.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from common.store import Store
from host.agent.autoupdate import AutoUpdater, Settings
from host.agent.fleetlock import FleetLockClient, LockRefused, UnlockRefused, Unreachable
from host.tree import ops
from host.tree.compose import compose
from orchestrator.upgrade import slots
from orchestrator.upgrade.fleetlock import FleetLockServer

pytest_plugins = ["etcd_fixture"]
pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
REF = "fusion/test/x86_64/autoupdate"


def held(store: Store) -> list[str]:
    return sorted(r.holder for r in slots.holders(store).values())


# --- the client against the real server -----------------------------------------------------------


def test_lock_contention_release_and_recursion(fleetlock_server: FleetLockServer, store: Store) -> None:
    h1, h2 = FleetLockClient(fleetlock_server.url, "h1"), FleetLockClient(fleetlock_server.url, "h2", group="workers")
    assert "h1 holds" in h1.pre_reboot()
    assert "h1 holds" in h1.pre_reboot()  # recursive: still granted
    with pytest.raises(LockRefused) as refused:
        h2.pre_reboot()
    assert refused.value.kind == "failed_lock" and refused.value.status == 409
    assert held(store) == ["h1"]
    h2.steady_state()  # holds nothing: still ok, and h1 keeps its slot
    assert held(store) == ["h1"]
    h1.steady_state()
    assert held(store) == []
    h1.steady_state()  # idempotent
    assert "h2 holds" in h2.pre_reboot()
    [record] = slots.holders(store).values()
    assert (record.holder, record.owner, record.group) == ("h2", None, "workers")


def test_a_rollouts_slot_is_not_the_clients_to_release(fleetlock_server: FleetLockServer, store: Store) -> None:
    assert slots.acquire(store, 1, "h1", "upgrade to 2", "r1")
    with pytest.raises(LockRefused):
        FleetLockClient(fleetlock_server.url, "h2").pre_reboot()
    with pytest.raises(UnlockRefused, match="r1"):
        FleetLockClient(fleetlock_server.url, "h1").steady_state()


def test_no_server_is_unreachable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        with pytest.raises(Unreachable, match="no answer"):
            FleetLockClient(url, "h1", timeout=2).pre_reboot()


def test_fusion_fleetlock_serve(store: Store, etcd_config) -> None:  # type: ignore[no-untyped-def]
    env = {**os.environ, "FUSION_ETCD": etcd_config.endpoints[0]}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "fleetlock", "serve", "--listen", "127.0.0.1:0", "--slots", "2",
         "--etcd-root", store.keys.root, "--max-seconds", "60"],
        cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert line.startswith("FleetLock server on http://127.0.0.1:"), line
        url = line.split()[3].rstrip(":")
        FleetLockClient(url, "h1").pre_reboot()
        FleetLockClient(url, "h2").pre_reboot()  # two slots
        with pytest.raises(LockRefused):
            FleetLockClient(url, "h3").pre_reboot()
        assert held(store) == ["h1", "h2"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert "stopped" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_fusion_fleetlock_serve_bad_address_is_one_line(fusion: Callable[..., object]) -> None:
    r = fusion("fleetlock", "serve", "--listen", "127.0.0.1")
    assert r.returncode == 2 and r.stderr.splitlines()[0] == "error: --listen '127.0.0.1' is not HOST:PORT"  # type: ignore[attr-defined]


# --- the shell on a real sysroot ------------------------------------------------------------------


@pytest.fixture()
def tree_repo(tmpfs_dir: Path, busybox_treefile: Callable[..., Path]) -> Iterator[Callable[[str], str]]:
    """A repo of busybox trees on REF; calling the fixture's value composes the next version."""
    repo, cache = tmpfs_dir / "repo", tmpfs_dir / "cache"
    (tmpfs_dir / "trees").mkdir()

    def publish(version: str) -> str:
        tf = busybox_treefile(tmpfs_dir / "trees", version=version, ref=REF, files={"/etc/motd": f"v{version}\n"})
        return compose(tf, repo, cache_dir=cache).checksum

    yield publish


def test_auto_update_locks_stages_reboots_and_unlocks(tmpfs_dir: Path, tree_repo: Callable[[str], str],
                                                      fleetlock_server: FleetLockServer, store: Store) -> None:
    v1 = tree_repo("1")
    sysroot, state = tmpfs_dir / "sysroot", tmpfs_dir / "agent-state"
    assert ops.init(sysroot, f"file://{tmpfs_dir / 'repo'}", REF) is not None  # follows the ref: not pinned
    settings = Settings(url=fleetlock_server.url, interval=60)
    reboots: list[str] = []

    def updater() -> AutoUpdater:  # a new agent process
        return AutoUpdater(settings, "h1", lambda: reboots.append(ops.status(sysroot)[0].checksum),
                           sysroot=sysroot, state_dir=state)

    # nothing new: a check, no lock
    u = updater()
    assert u.tick(healthy=True, rollout=False, now=1000) == "check"
    assert u.available == v1 and held(store) == [] and reboots == []
    v2 = tree_repo("2")
    assert u.tick(healthy=True, rollout=False, now=1030) == "nothing"  # not time to check yet
    # a rollout has the host: the auto-update waits, even when it is time to check
    assert u.tick(healthy=True, rollout=True, now=1100) == "nothing"
    # another host holds the only slot: v2 is downloaded, the lock is refused
    assert slots.acquire(store, 1, "h2", "FleetLock pre-reboot", None)
    assert u.tick(healthy=True, rollout=False, now=1100) == "lock"
    assert u.available == v2 and ops.has_commit(sysroot, v2) and held(store) == ["h2"]
    assert [d.checksum for d in ops.status(sysroot)] == [v1] and reboots == []
    assert u.tick(healthy=True, rollout=False, now=1120) == "nothing"  # asks again after the interval
    slots.release(store, "h2", None)
    # granted: staged (the default deployment is v2) and rebooted, the slot is h1's
    assert u.tick(healthy=True, rollout=False, now=1200) == "stage-and-reboot"
    assert reboots == [v2] and held(store) == ["h1"]
    assert [d.checksum for d in ops.status(sysroot)][:2] == [v2, v1]
    assert u.tick(healthy=True, rollout=False, now=1300) == "nothing"  # going down: nothing more
    # the new tree "boots": unhealthy keeps the slot, healthy releases it
    u = updater()
    assert u.tick(healthy=False, rollout=False, now=2000) == "nothing" and held(store) == ["h1"]
    assert u.tick(healthy=True, rollout=False, now=2005) == "check"  # unlock, then check
    assert held(store) == [] and not (state / "fleetlock.json").exists()
    assert u.available == v2 and reboots == [v2]


def test_a_host_that_came_back_on_the_old_tree_releases_and_skips_that_commit(
        tmpfs_dir: Path, tree_repo: Callable[[str], str], fleetlock_server: FleetLockServer, store: Store) -> None:
    v1 = tree_repo("1")
    sysroot, state = tmpfs_dir / "sysroot", tmpfs_dir / "agent-state"
    ops.init(sysroot, f"file://{tmpfs_dir / 'repo'}", REF)
    v2 = tree_repo("2")
    reboots: list[int] = []

    def updater() -> AutoUpdater:
        return AutoUpdater(Settings(url=fleetlock_server.url, interval=60), "h1", lambda: reboots.append(1),
                           sysroot=sysroot, state_dir=state)

    assert updater().tick(healthy=True, rollout=False, now=1000) == "stage-and-reboot"
    assert held(store) == ["h1"] and reboots == [1]
    ops.rollback(sysroot)  # what boot counting does when v2 does not come up: v1 boots again
    assert ops.status(sysroot)[0].checksum == v1
    u = updater()
    assert u.tick(healthy=True, rollout=False, now=2000) == "check"  # unlock, then check
    assert held(store) == [] and (state / "fleetlock-failed").read_text().split() == [v2]
    assert u.available == v2
    assert u.tick(healthy=True, rollout=False, now=3000) == "check"  # v2 is not tried again
    assert held(store) == [] and reboots == [1] and ops.status(sysroot)[0].checksum == v1


def test_a_pinned_host_is_not_auto_updated(tmpfs_dir: Path, tree_repo: Callable[[str], str],
                                           fleetlock_server: FleetLockServer, store: Store) -> None:
    tree_repo("1")
    sysroot = tmpfs_dir / "sysroot"
    ops.init(sysroot, f"file://{tmpfs_dir / 'repo'}", REF, version="1")  # pinned to version 1
    tree_repo("2")
    u = AutoUpdater(Settings(url=fleetlock_server.url, interval=60), "h1", lambda: pytest.fail("rebooted"),
                    sysroot=sysroot, state_dir=tmpfs_dir / "agent-state")
    assert u.tick(healthy=True, rollout=False, now=1000) == "unlock"  # the start-up release only
    assert u.tick(healthy=True, rollout=False, now=5000) == "nothing" and held(store) == []

