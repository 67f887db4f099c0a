"""The cluster on a 3-host lab, as a user drives it: the guestbook deployed with ``fusion deploy``
and reached through every host (the routing mesh), its units under systemd, an agent restart that
restarts nothing, a spec that cannot be placed, and a killed host whose containers are re-placed
by the lab's controller (``fusion reconcile``, started by ``fusion lab up``) within the lease TTL + 5 s.

Runs before test_upgrade.py on the same lab and leaves it as it found it (the app removed, every
host up).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from labtools import explain_hosts, wait_for

from common.store import EtcdConfig, Store
from lab import ops
from lab.frontdoor import FrontDoor, store_backends
from lab.prober import Prober
from lab.state import LabState

pytestmark = [pytest.mark.lab]

ROOT = Path(__file__).resolve().parents[2]
APP = "guestbook"


def fusion(lab: LabState, *args: str, timeout: float = 400, **env: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FUSION_ETCD": lab.etcd_url, **env}
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=timeout, check=False)


def get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.read().decode()
    except OSError:
        return None


def through_every_host(lab: LabState, hosts: list[str]) -> dict[str, str]:
    """The guestbook's page through each host's port 8080, once every one of them answers."""
    addresses = {h.name: h.address for h in lab.hosts if h.name in hosts}

    def pages() -> dict[str, str] | None:
        got = {name: get(f"http://{addr}:8080/") for name, addr in addresses.items()}
        return got if all(p and "guestbook" in p.lower() for p in got.values()) else None  # type: ignore[misc]

    try:
        return wait_for(f"the guestbook through {', '.join(sorted(addresses))}", pages, timeout=90)
    except AssertionError as e:  # explain it: the units and the agent's and the mesh's journals
        bad = [n for n, a in addresses.items() if not get(f"http://{a}:8080/")]
        raise AssertionError(f"{e}; no answer through {bad}\n" + explain_hosts(lab, bad)) from None


def unit_pids(lab: LabState, store: Store) -> dict[str, str]:
    """host/unit -> MainPID of every guestbook container unit."""
    out = {}
    for s in store.statuses(app=APP):
        pid = ops.run_in(lab, s.host, ["systemctl", "show", "-p", "MainPID", "--value", s.unit]).strip()
        out[f"{s.host}/{s.unit}"] = pid
    return out


@pytest.fixture(scope="module")
def cluster(lab3: LabState) -> Iterator[tuple[LabState, Store]]:
    store = Store(EtcdConfig.parse(lab3.etcd_url))
    try:
        yield lab3, store
    finally:
        fusion(lab3, "rm", APP)
        wait_for("the app's containers to go", lambda: not store.statuses(app=APP), timeout=120)


def test_deploy_and_reach_the_guestbook_through_every_host(cluster: tuple[LabState, Store]) -> None:
    lab, store = cluster
    r = fusion(lab, "deploy", str(ROOT / "examples" / "guestbook.yaml"), "--timeout", "300")
    assert r.returncode == 0, r.stdout + r.stderr + explain_hosts(lab)
    r = fusion(lab, "ps", APP)
    assert r.returncode == 0 and r.stdout.count("running") >= 3, r.stdout + r.stderr
    web_hosts = {s.host for s in store.statuses(app=APP) if s.service == "web"}
    assert len(web_hosts) == 2
    pages = through_every_host(lab, [h.name for h in lab.hosts])  # the third one through its mesh unit
    assert len(pages) == 3
    (other,) = {h.name for h in lab.hosts} - web_hosts
    mesh = ops.run_in(lab, other, ["systemctl", "is-active", "fusion-mesh-8080.service"], check=False)
    assert mesh.strip() == "active"
    # every container is a plain systemd unit
    web = next(s for s in store.statuses(app=APP) if s.service == "web")
    status = ops.run_in(lab, web.host, ["systemctl", "status", "--no-pager", web.unit], check=False)
    assert "active (running)" in status, status


def test_restarting_the_agents_restarts_no_container(cluster: tuple[LabState, Store]) -> None:
    lab, store = cluster
    before = unit_pids(lab, store)
    started = {h.name: h.started_at for h in store.hosts()}
    for h in lab.hosts:
        ops.run_in(lab, h.name, ["systemctl", "restart", "fusion-agent.service"])
    wait_for("every agent to register again", lambda: all(
        h.started_at > started[h.name] for h in store.hosts()) and len(store.hosts()) == 3, timeout=60)
    time.sleep(5)  # a pass of every agent's loop
    assert unit_pids(lab, store) == before
    assert all(s.ready and s.restarts == 0 for s in store.statuses(app=APP))


def test_a_spec_that_cannot_be_placed_fails_clearly_and_changes_nothing(
        cluster: tuple[LabState, Store], tmp_path: Path) -> None:
    lab, store = cluster
    spec = (ROOT / "examples" / "guestbook.yaml").read_text().replace("replicas: 2", "replicas: 4")
    (tmp_path / "guestbook.yaml").write_text(spec)
    current = store.current(APP)
    placements = sorted(r.model_dump_json() for r in store.placements())
    r = fusion(lab, "deploy", str(tmp_path / "guestbook.yaml"), "--timeout", "30")
    assert r.returncode != 0
    assert "max_replicas_per_node" in r.stderr and "web" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) <= 2 and "Traceback" not in r.stderr, r.stderr
    assert store.current(APP) == current
    assert sorted(r.model_dump_json() for r in store.placements()) == placements


def test_a_start_first_update_keeps_both_web_replicas_serving(cluster: tuple[LabState, Store]) -> None:
    """The guestbook's web is ``order: start-first``: an update in place first starts an extra
    replica of the new definition (on the host without web), then replaces web/1 and web/2 one at
    a time, then stops the extra one -- two web replicas are ready at every moment."""
    lab, store = cluster
    fewest: list[int] = []
    done = threading.Event()

    def count_ready() -> None:
        while not done.wait(0.2):
            fewest.append(sum(1 for s in store.statuses(app=APP) if s.service == "web" and s.ready))

    sampler = threading.Thread(target=count_ready, daemon=True)
    door = FrontDoor(store_backends(store, 8080), (lab.bridge_address, 0)).start()
    prober = Prober(door.url, rate=10, duration=600).start()
    sampler.start()
    try:
        r = fusion(lab, "deploy", str(ROOT / "examples" / "guestbook.yaml"), "--timeout", "300",
                   GUESTBOOK_TITLE="Fusion guestbook, updated")
    finally:
        done.set()
        sampler.join(timeout=10)
        report = prober.stop()
        door.stop()
    assert r.returncode == 0, r.stdout + r.stderr + explain_hosts(lab)
    assert "(start-first: until the update is done)" in r.stdout, r.stdout
    assert fewest and min(fewest) >= 2, fewest
    assert report.failed == 0, report.summary() + "\n" + "\n".join(report.failures)
    assert sorted(r.replica for r in store.placements(app=APP) if r.service == "web") == [1, 2]
    # the extra replica was stopped before `fusion deploy` returned: its host's mesh proxy answers now
    assert all(get(f"http://{h.address}:8080/") for h in lab.hosts), explain_hosts(lab)
    through_every_host(lab, [h.name for h in lab.hosts])
    titles = {h.name: get(f"http://{h.address}:8080/cgi-bin/guestbook") for h in lab.hosts}
    assert all(t and t.startswith("Fusion guestbook, updated") for t in titles.values()), titles


def test_a_killed_host_s_containers_are_replaced_within_the_lease_ttl(cluster: tuple[LabState, Store]) -> None:
    lab, store = cluster
    controller = lab.daemon("controller")
    assert controller is not None, "the lab runs no controller (fusion reconcile)"
    victim = next(s.host for s in store.statuses(app=APP) if s.service == "redis")
    ttl = next(h.lease_ttl for h in store.hosts() if h.name == victim)
    lost = {(s.service, s.replica) for s in store.statuses(app=APP) if s.host == victim}
    t0 = time.monotonic()
    ops.kill(lab, victim)
    moved = wait_for("the victim's containers placed elsewhere", lambda: all(
        any(r.host != victim for r in store.placements() if (r.service, r.replica) == key) for key in lost
    ) and not any(r.host == victim for r in store.placements()), timeout=ttl + 30, every=0.3)
    elapsed = time.monotonic() - t0
    assert moved and elapsed <= ttl + 5, f"re-placed after {elapsed:.1f}s (lease TTL {ttl}s); see {controller.log}"
    survivors = [h.name for h in lab.hosts if h.name != victim]
    wait_for("the moved containers ready", lambda: len(store.statuses(app=APP)) == 3 and all(
        s.ready and s.host != victim for s in store.statuses(app=APP)), timeout=180)
    through_every_host(lab, survivors)
    # the host comes back: nothing of the app runs there any more (the mesh serves it)
    ops.start(lab, victim)
    wait_for(f"{victim} to register again", lambda: any(h.name == victim for h in store.hosts()), timeout=120)
    through_every_host(lab, [h.name for h in lab.hosts])
    units = ops.run_in(lab, victim, ["systemctl", "list-units", "--no-legend", "--plain", "guestbook-*"])
    assert not [u for u in units.splitlines() if "-web-" in u or "-redis-" in u], units
