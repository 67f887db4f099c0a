"""A host's firmware: the process that powers a lab host on, boots it, and boots it again.

Run as ``python -m lab.firmware LAB_ROOT HOST`` (``fusion lab up/start`` spawn it and forget it).
Each round it reads the host's boot loader entries, picks a deployment (boot counting, see
:mod:`lab.bootcount`), boots it with ``systemd-nspawn --boot`` and watches it:

- a deployment on trial that is not healthy within the deadline is a failed boot: the firmware
  resets the host (SIGKILL to its PID 1) and boots again; after ``max_boot_tries`` failures that
  deployment is skipped and the previous one boots (the fallback), which is then made the default
  inside the host (``ostree admin set-default``, like ``rpm-ostree rollback`` after greenboot);
- nspawn exiting with status 133 means the host asked to reboot: boot again, from whatever
  deployment is now the default;
- any other exit (poweroff, ``fusion lab kill``) powers the host off and ends the firmware;
- SIGTERM asks for a clean shutdown (nspawn turns it into a poweroff of the host).

What it knows it writes to ``<lab>/hosts/<host>/run.json`` and, for the host itself, to
``/var/lib/fusion-lab/boot.json`` inside the host (booted deployment, fallback).

Every boot starts from a host network namespace with no firewall rules and no links but ``eth0``
and ``lo``, as after a power cycle (:func:`lab.network.reset_host_network`).

Side effects: everything here (processes, signals, files). Loops are bounded in count and time.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common.runner import CommandError, spawn
from lab import bootcount, machine, network
from lab.services import alive
from lab.state import HostConfig, LabState, load, write_json_atomic

log = logging.getLogger("fusion.lab.firmware")

REBOOT_STATUS = 133
MAX_BOOTS = 1000  # per firmware lifetime: a bound on the boot loop
POLL = 1.0


class Firmware:
    def __init__(self, state: LabState, host: HostConfig) -> None:
        self.state = state
        self.host = host
        self.sysroot = state.sysroot(host.name)
        self.run_file = state.host_dir(host.name) / "run.json"
        self.stopping = False
        self.info: dict[str, Any] = {"host": host.name, "firmware_pid": os.getpid(), "boots": 0}

    # --- reporting ---
    def report(self, **fields: Any) -> None:
        self.info.update(fields, updated=datetime.now(UTC).isoformat())
        write_json_atomic(self.run_file, self.info)

    def tell_host(self, choice: bootcount.BootChoice) -> None:
        var = machine.deploy_root(self.state, self.host.name) / "var" / "lib" / "fusion-lab"
        var.mkdir(parents=True, exist_ok=True)
        write_json_atomic(var / "boot.json", {
            "deployment": choice.deployment,
            "checksum": choice.deployment.split(".")[0],
            "fallback": choice.fallback_from is not None,
            "fallback_from": choice.fallback_from,
            "on_trial": choice.on_trial,
        })

    # --- the loop ---
    def main(self) -> int:
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        for _ in range(MAX_BOOTS):
            if self.stopping:
                break
            entries = bootcount.read_entries(self.sysroot)
            env = bootcount.forget_missing(bootcount.load_env(self.sysroot), [d for _, d in entries])
            choice = bootcount.choose_boot(entries, env)
            if choice is None:
                self.report(phase="failed", reason="no bootable deployment left", leader=None, nspawn_pid=None)
                return 1
            outcome = self.boot(choice)
            self.remember(choice, outcome)
            if outcome == "reboot":
                continue
            if outcome == "failed-boot":
                env = bootcount.boot_failed(bootcount.load_env(self.sysroot), choice.deployment,
                                            self.state.config.max_boot_tries)
                bootcount.save_env(self.sysroot, env)
                continue
            break
        self.report(phase="off", leader=None, nspawn_pid=None)
        return 0

    def remember(self, choice: bootcount.BootChoice, outcome: str) -> None:
        history = [*self.info.get("history", []), {
            "deployment": choice.deployment, "outcome": outcome, "reason": self.info.get("reason", ""),
            "at": datetime.now(UTC).isoformat()}]
        self.report(history=history[-10:])

    def boot(self, choice: bootcount.BootChoice) -> str:
        """Boot once; returns "reboot", "failed-boot" or "off"."""
        self.tell_host(choice)
        network.reset_host_network(self.host)
        self.info["boots"] += 1
        log_path = str(self.state.logs / f"{self.host.name}.console.log")
        proc = spawn(machine.nspawn_args(self.state, self.host, choice.deployment), log_path=log_path,
                     new_session=False, env=machine.NSPAWN_ENV)
        self.nspawn = proc
        leader = None
        for _ in range(100):
            leader = machine.leader_pid(proc.pid)
            if leader or proc.poll() is not None:
                break
            time.sleep(0.05)
        self.report(phase="booting", nspawn_pid=proc.pid, leader=leader, deployment=choice.deployment,
                    checksum=choice.deployment.split(".")[0], fallback_from=choice.fallback_from,
                    on_trial=choice.on_trial, reason="")
        healthy = False
        deadline = time.monotonic() + self.state.config.health_deadline
        unhealthy_in_a_row = 0
        while proc.poll() is None and not self.stopping:
            time.sleep(POLL)
            if leader is None:
                leader = machine.leader_pid(proc.pid)
                self.report(leader=leader)
                continue
            if healthy:
                continue
            if self.info.get("phase") == "degraded":
                time.sleep(4 * POLL)  # watched, but less often
            h = machine.health(leader)
            if h.verdict == "healthy":
                healthy = True
                self.on_healthy(choice, leader)
                self.report(phase="running", reason="")
                continue
            unhealthy_in_a_row = unhealthy_in_a_row + 1 if h.verdict == "unhealthy" else 0
            if choice.on_trial and (unhealthy_in_a_row >= 3 or time.monotonic() > deadline):
                self.report(phase="failed-boot", reason=h.reason or f"not healthy: {h.state}")
                self.reset(proc, leader)
                return "failed-boot"
            if unhealthy_in_a_row >= 3 and self.info.get("phase") != "degraded":
                # A good deployment stays booted: report it, keep watching (it may recover).
                self.report(phase="degraded", reason=h.reason)
        if self.stopping:
            self.shutdown(proc, leader)
            return "off"
        code = proc.wait()
        if code == REBOOT_STATUS:
            self.report(phase="rebooting", leader=None)
            return "reboot"
        if choice.on_trial and not healthy:
            return "failed-boot"
        self.report(exit_status=code)
        return "off"

    def on_healthy(self, choice: bootcount.BootChoice, leader: int) -> None:
        if choice.on_trial:
            env = bootcount.boot_succeeded(bootcount.load_env(self.sysroot), choice.deployment)
            bootcount.save_env(self.sysroot, env)
        if choice.fallback_from is not None:
            self.make_default(leader, choice.deployment)

    def make_default(self, leader: int, deployment: str) -> None:
        """Make the booted fallback the default deployment (inside the host, with its own ostree)."""
        names = [p.name for p in machine.deployments(self.state, self.host.name)]
        # `ostree admin status` order is the boot order; find our index there.
        ordered = [d for _, d in bootcount.read_entries(self.sysroot)]
        if deployment not in ordered or deployment not in names:
            return
        index = ordered.index(deployment)
        if index == 0:
            return
        try:
            machine.host_run(leader, ["ostree", "admin", "set-default", str(index)], timeout=120)
        except CommandError as e:
            self.report(reason=f"could not make the fallback the default: {e}")

    def reset(self, proc: Any, leader: int | None) -> None:
        """Hard reset: kill the host's PID 1 (its whole PID namespace dies with it) -- every init
        running from the host's deployments, so that none outlives its systemd-nspawn."""
        for pid in {leader, *machine.host_inits(self.state).get(self.host.name, [])}:
            if pid and alive(pid):
                os.kill(pid, signal.SIGKILL)
        try:
            proc.wait(timeout=30)
        except Exception:  # noqa: BLE001 - nspawn stuck: kill it too
            proc.kill()
            proc.wait(timeout=10)

    def shutdown(self, proc: Any, leader: int | None) -> None:
        """Clean poweroff: SIGTERM to nspawn makes systemd in the host shut down; bounded wait."""
        self.report(phase="stopping")
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=45)
            except Exception:  # noqa: BLE001
                self.reset(proc, leader)

    def _on_term(self, signum: int, frame: object) -> None:
        self.stopping = True


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    root, host_name = Path(argv[0]), argv[1]
    state = load(root.name, str(root.parent))
    if state is None:
        print(f"no lab at {root}", file=sys.stderr)
        return 2
    fw = Firmware(state, state.host(host_name))
    try:
        return fw.main()
    except Exception as e:
        fw.report(phase="crashed", reason=str(e), leader=None)
        raise


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
