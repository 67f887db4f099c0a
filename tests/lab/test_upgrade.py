"""The headline of rolling upgrades: a 3-host lab runs the guestbook (2 web replicas,
``min_available: 1``) behind the lab's front door while a prober sends 10 requests per second.

1. ``fusion upgrade --version 2`` is killed mid-rollout and ``fusion upgrade resume`` finishes it:
   every host boots v2, no request fails, no host is left cordoned, no slot held.
2. A broken v3 (its health check fails after boot) is rolled back on the first host and the rollout
   halts with every host serving on v2; still no failed request.

Everything is real: the booted hosts' agents obey the tree requests (ostree deploy, reboot), the
lab firmware boots the new default deployment, etcd holds the rollout.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from labtools import explain_hosts

from common.store import EtcdConfig, Store
from lab import ops
from lab.frontdoor import FrontDoor, store_backends
from lab.prober import Prober
from lab.state import LabState
from orchestrator import ops as cluster
from orchestrator.upgrade import rollouts, slots
from units.sources import load_any

pytestmark = [pytest.mark.lab]

ROOT = Path(__file__).resolve().parents[2]


def fusion(lab: LabState, tmp: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "FUSION_ETCD": lab.etcd_url, "FUSION_STATE_DIR": str(tmp)}
    return subprocess.Popen([sys.executable, "-m", "cli", *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def finish(proc: subprocess.Popen[str], timeout: float) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def booted(store: Store) -> dict[str, str | None]:
    return {h.name: h.tree.booted for h in store.hosts()}


def test_rolling_upgrade_keeps_the_guestbook_serving(lab3: LabState, tmp_path: Path) -> None:
    store = Store(EtcdConfig.parse(lab3.etcd_url))
    app = load_any([ROOT / "examples" / "guestbook.yaml"], env={})
    try:
        cluster.deploy(store, app, note="test", wait=cluster.WaitOptions(timeout=180))
    except cluster.DeployError as e:  # explain it: each host's containers and the units' journals
        raise AssertionError(f"{e}\n" + explain_hosts(lab3)) from None
    door = FrontDoor(store_backends(store, 8080), (lab3.bridge_address, 0)).start()
    prober = Prober(door.url, rate=10, duration=900).start()
    try:
        # --- v2, with the driver killed mid-rollout and resumed --------------------------------
        v2 = ops.publish_version(lab3, "2")
        proc = fusion(lab3, tmp_path, "upgrade", "--version", "2")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            state = rollouts.active(store)
            if state is not None and any(h.state in ("rebooting", "verifying") for h in state.hosts):
                break
            time.sleep(0.2)
        else:
            proc.kill()
            pytest.fail("the rollout never reached a reboot: " + finish(proc, 30)[1][-2000:])
        proc.send_signal(signal.SIGKILL)  # the orchestrator dies at a bad moment
        proc.wait(timeout=30)
        code, out = finish(fusion(lab3, tmp_path, "upgrade", "resume"), 600)
        assert code == 0, out[-3000:]
        assert set(booted(store).values()) == {v2}, booted(store)
        # --- a broken v3: rolled back on the first host, the rollout halts ----------------------
        v3 = ops.publish_version(lab3, "3", broken=True)
        code, out = finish(fusion(lab3, tmp_path, "upgrade", "--version", "3", "--verify-timeout", "40"), 600)
        assert code == 1, out[-3000:]
        assert "halted" in out
        state = rollouts.all_rollouts(store)[-1]
        assert state.version == "3" and state.phase == "halted"
        assert [h.state for h in state.hosts] == ["rolled-back", "waiting", "waiting"], out[-3000:]
        assert v3 not in booted(store).values() and set(booted(store).values()) == {v2}
    finally:
        report = prober.stop()
        door.stop()
    assert store.cordons() == {}
    assert slots.holders(store) == {}
    assert report.sent >= 10 * 60 and report.failed == 0, report.summary() + "\n" + "\n".join(report.failures)
    assert all(s.ready for s in store.statuses(app="guestbook")) and len(store.statuses(app="guestbook")) == 3
