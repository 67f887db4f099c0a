"""Benchmark: a rolling host upgrade against the sum of its per-host lower bounds.

A 3-host lab (its own name and subnet) runs the guestbook behind the lab's front door while a
prober sends 10 requests per second. Then, in the same process:

1. baseline, host by host (the order the rollout takes): ``drain`` it (replacements started and
   healthy elsewhere, then the old containers stopped), reboot it (a plain reboot into the same
   deployment) and wait until its agent reports the host healthy, uncordon it. These are the
   per-host lower bounds: a rollout with ``--max-unavailable 1`` cannot do less than drain +
   reboot + verify for each host, one after the other.
2. the app removed and deployed again, so the rollout starts from the placement the baseline started
   from (a drain moves containers: after the baseline, a host may hold more or fewer of them); both
   deploys are checked against the planner's placement on all the lab's hosts;
3. ``fusion lab publish --version 2``, then ``fusion upgrade --version 2`` (the CLI, as a user runs
   it), timed from start to exit. Its per-host state changes are stamped as they are printed.

It prints the per-host figures, the ratio rollout wall time / sum of the lower bounds (target
<= 1.25) and the prober's failed requests during the rollout (target 0).

Usage (as root)::

    python bench/rollout.py            # brings the lab up (cached trees: ~1 min) and down again
    python bench/rollout.py --keep     # leave the lab up (`fusion lab down bench` removes it)

Side effects: a lab named ``bench`` under /var/lib/fusion/bench-labs (subnet 10.213.7.0/24).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common.store import EtcdConfig, Store  # noqa: E402
from lab import ops  # noqa: E402
from lab.frontdoor import FrontDoor, store_backends  # noqa: E402
from lab.prober import Prober  # noqa: E402
from lab.state import LabConfig, LabState  # noqa: E402
from orchestrator import drain as drains  # noqa: E402
from orchestrator import ops as cluster  # noqa: E402
from orchestrator.deploy import AppPlan  # noqa: E402
from specs.app import App  # noqa: E402
from units.sources import load_any  # noqa: E402

LABS_DIR = "/var/lib/fusion/bench-labs"
NAME = "bench"
SUBNET = "10.213.7.0/24"
STATES = ("draining", "staging", "rebooting", "verifying", "done")


def healthy_since(store: Store, host: str, t0: float, timeout: float = 300) -> float:
    """Wait until an agent started after ``t0`` reports ``host`` healthy; returns when (epoch)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = next((h for h in store.hosts() if h.name == host), None)
        if record is not None and record.started_at > t0 and record.health.ok \
                and all(s.ready for s in store.statuses() if s.host == host):
            return time.time()
        time.sleep(0.2)
    raise SystemExit(f"bench: {host} did not come back healthy within {timeout:.0f}s")


def layout(store: Store) -> list[tuple[str, str, int]]:
    """Where each container is placed: (host, service, replica), sorted."""
    return sorted((p.host, p.service, p.replica) for p in store.placements())


def remove(store: Store, app: App) -> None:
    cluster.remove(store, app.name)
    deadline = time.monotonic() + 120
    while store.statuses(app=app.name):
        if time.monotonic() > deadline:
            raise SystemExit("bench: the removed app's containers did not go within 120s")
        time.sleep(0.2)


def deploy_as_planned(store: Store, lab: LabState, app: App, tries: int = 3) -> None:
    """Deploy ``app`` (not deployed now) and check that it runs where the planner put it: on the
    same registered hosts the plan is the same, so the baseline and the rollout start from the same
    placement. A replica that moved while the deploy waited (the controller re-placed it) is
    reported with the controller's log, and the app is deployed again."""
    for _ in range(tries):
        ops.wait_registered(lab, timeout=60)
        plans: list[AppPlan] = []
        cluster.deploy(store, app, note="bench", wait=cluster.WaitOptions(timeout=180), on_plan=plans.append)
        planned = sorted((host, s, n) for (_, s, n), host in plans[0].desired.items())
        if (now := layout(store)) == planned:
            return
        log = lab.logs / "controller.log"
        print(f"bench: warning: the app runs at {now}, planned at {planned}; the controller said:\n"
              + (log.read_text()[-2000:] if log.exists() else "(nothing)"), file=sys.stderr)
        remove(store, app)
    raise SystemExit(f"bench: the app did not stay where it was planned in {tries} deploys")


def lower_bounds(lab: LabState, store: Store) -> dict[str, tuple[float, float]]:
    """Per host (in name order): (drain seconds, reboot + verify seconds), measured one at a time."""
    bounds = {}
    for host in sorted(h.name for h in lab.hosts):
        t0 = time.time()
        drains.drain(store, host, timeout=300, by="bench", reason="lower bound")
        t1 = time.time()
        ops.reboot(lab, host, wait=0)
        t2 = healthy_since(store, host, t1)
        cluster.uncordon(store, host)
        bounds[host] = (t1 - t0, t2 - t1)
        print(f"  {host}: drain {t1 - t0:5.1f} s   reboot + verify {t2 - t1:5.1f} s", file=sys.stderr)
    return bounds


def rollout(lab: LabState, version: str, state_dir: str) -> tuple[float, dict[str, dict[str, float]]]:
    """Run ``fusion upgrade --version V``; returns its wall time and when each host entered each
    state (seconds from the start)."""
    env = {**os.environ, "FUSION_ETCD": lab.etcd_url, "FUSION_STATE_DIR": state_dir}
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "cli", "upgrade", "--version", version], cwd=ROOT, env=env,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    entered: dict[str, dict[str, float]] = {}
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        words = line.split()
        if len(words) >= 2 and words[1] in STATES:  # "h1  draining ..." as each host changes state
            entered.setdefault(words[0], {}).setdefault(words[1], time.monotonic() - start)
    code = proc.wait(timeout=60)
    wall = time.monotonic() - start
    if code != 0:
        raise SystemExit("bench: the rollout failed:\n" + "".join(lines[-40:]))
    said = [line for line in lines if line.startswith("  ") and line.split()[0] not in entered]
    if any("cannot" in line for line in said):  # e.g. a drain that timed out and was tried again
        print("the rollout said:\n" + "".join(said), file=sys.stderr)
    return wall, entered


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--keep", action="store_true", help="leave the lab up")
    p.add_argument("--rate", type=float, default=10.0, help="prober requests per second")
    a = p.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench: needs root (the lab)")
    ops.down(NAME, LABS_DIR)
    print("bringing up a 3-host lab ...", file=sys.stderr)
    lab = ops.up(LabConfig(name=NAME, hosts=3, subnet=SUBNET, health_deadline=60, max_boot_tries=2),
                 base=LABS_DIR, wait=240)
    store = Store(EtcdConfig.parse(lab.etcd_url))
    try:
        app = load_any([ROOT / "examples" / "guestbook.yaml"], env={})
        deploy_as_planned(store, lab, app)
        start_layout = layout(store)
        door = FrontDoor(store_backends(store, 8080), (lab.bridge_address, 0)).start()
        prober = Prober(door.url, rate=a.rate, duration=1800).start()
        try:
            print("lower bounds, one host at a time:", file=sys.stderr)
            bounds = lower_bounds(lab, store)
            prober.stop()  # the app goes away for a moment: its own prober comes after
            remove(store, app)
            deploy_as_planned(store, lab, app)
            if (now_layout := layout(store)) != start_layout:
                print(f"bench: warning: the rollout starts from another placement: {now_layout} "
                      f"(the baseline: {start_layout})", file=sys.stderr)
            web = sum(1 for s in store.statuses(app=app.name) if s.service == "web")
            deadline = time.monotonic() + 10  # the front door sees the new replicas (it polls every 0.5 s)
            while len(door.backends) < web and time.monotonic() < deadline:
                time.sleep(0.1)
            prober = Prober(door.url, rate=a.rate, duration=1800).start()
            probe_start = time.monotonic()
            ops.publish_version(lab, "2")
            print("fusion upgrade --version 2 ...", file=sys.stderr)
            with tempfile.TemporaryDirectory() as state_dir:
                rollout_at = time.monotonic() - probe_start
                wall, entered = rollout(lab, "2", state_dir)
        finally:
            report = prober.stop()
            door.stop()
    finally:
        if not a.keep:
            ops.down(NAME, LABS_DIR)
    floor = sum(d + r for d, r in bounds.values())
    print(f"{'host':6s} {'drain':>7s} {'reboot+verify':>14s}   rollout: entered draining/staging/rebooting/verifying/done at")
    for host, (d, r) in bounds.items():
        marks = "  ".join(f"{entered[host][s]:6.1f}" if s in entered.get(host, {}) else f"{'-':>6s}"
                          for s in STATES)  # a host whose target was staged during its drain skips staging
        print(f"{host:6s} {d:6.1f}s {r:13.1f}s   {marks}")
    print(f"sum of the per-host lower bounds: {floor:.1f} s; rollout wall time: {wall:.1f} s")
    print(f"ratio rollout / lower bounds = {wall / floor:.2f}   (target <= 1.25)")
    print(f"prober: {report.summary()}")
    print(f"failed requests: {report.failed}   (target 0)")
    for failure in report.failures:  # t: seconds from the prober's start (the rollout's start: below)
        print(f"  {failure}")
    if report.failed:
        print(f"  (the rollout started {rollout_at:.1f}s after the prober)")


if __name__ == "__main__":
    main()
