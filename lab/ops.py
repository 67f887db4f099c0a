"""What ``fusion lab`` does: bring a lab up and down, and drive its hosts.

Every operation is idempotent and bounded in time. ``up`` records its progress in ``state.json``
after each step, so ``down`` can clean up a lab that came up only halfway.

Side effects: everything (mounts, network, daemons, host firmware processes, the lab repo).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from common.runner import run, spawn
from common.store import EtcdConfig, Store
from lab import bootcount, images, machine, network, services, tree
from lab.state import (
    HostConfig,
    LabConfig,
    LabState,
    cache_dir,
    labs_dir,
    load,
    plan,
    read_json,
    save,
    write_json_atomic,
)
from specs.errors import FusionError, InputError

Progress = Callable[[str], None]


class LabError(FusionError):
    pass


def _quiet(_: str) -> None:
    pass


def _need_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, mounts, systemd-nspawn)",
                       hint="run it with sudo, or as root")


# --- mounts ----------------------------------------------------------------------------------

def mounts_under(path: Path) -> list[str]:
    prefix = str(path).rstrip("/")
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mnt = line.split()[4].replace("\\040", " ")
        if mnt == prefix or mnt.startswith(prefix + "/"):
            found.append(mnt)
    return found


def ensure_tmpfs(state: LabState) -> None:
    state.fs.mkdir(parents=True, exist_ok=True)
    if str(state.fs) not in mounts_under(state.fs):
        run(["mount", "-t", "tmpfs", "-o", f"size={state.config.tmpfs_size},mode=0755",
             f"fusion-lab-{state.config.name}", str(state.fs)])


# --- up --------------------------------------------------------------------------------------

def up(config: LabConfig, treefile: str | None = None, progress: Progress = _quiet,
       base: str | None = None, wait: float = 300) -> LabState:
    _need_root()
    base = base or labs_dir()
    old = load(config.name, base)
    state = plan(config, base)
    if old is not None:
        if old.config.subnet != config.subnet:
            raise InputError(f"lab {config.name!r} is up on {old.config.subnet}, not {config.subnet}",
                             hint="`fusion lab down` first, or pick another --name")
        for extra in old.hosts[len(state.hosts):]:
            progress(f"{extra.name}: removing (the lab now has {len(state.hosts)} hosts)")
            remove_host(old, extra)
        state = state.model_copy(update={"daemons": old.daemons, "ref": old.ref, "os_name": old.os_name})
    Path(state.root).mkdir(parents=True, exist_ok=True)
    state.logs.mkdir(parents=True, exist_ok=True)
    save(state)

    progress("lab filesystem (tmpfs)")
    ensure_tmpfs(state)
    state = state.model_copy(update={"mounted": True})
    save(state)

    progress(f"network: bridge {state.bridge} {state.bridge_address}/{state.prefixlen}")
    network.ensure_bridge(state)

    progress("host tree")
    state = _ensure_tree(state, treefile, progress)
    save(state)

    progress("etcd, registry, OSTree repo server, controller")
    daemons = [services.start_etcd(state), services.start_registry(state), services.start_repo_server(state)]
    daemons.append(services.start_controller(state))  # needs etcd
    state = state.model_copy(update={"daemons": tuple(daemons)})
    save(state)

    progress("images (build and push to the lab registry)")
    images.ensure_images(state, progress)

    for host in state.hosts:
        progress(f"{host.name}: network {host.address}, sysroot, deploy")
        network.ensure_host_network(state, host)
        machine.init_sysroot(state, host)
        start_firmware(state, host)

    progress(f"booting {len(state.hosts)} hosts")
    deadline = time.monotonic() + wait
    wait_running(state, [h.name for h in state.hosts], timeout=wait)
    wait_registered(state, timeout=max(10.0, deadline - time.monotonic()))
    state = state.model_copy(update={"phase": "up"})
    save(state)
    return state


BUILTIN = "builtin"


def default_treefile() -> str:
    """The project's default host tree (examples/trees/fusion-host.yaml next to this checkout), or
    ``builtin`` (the lab's own minimal tree) when it is not there."""
    path = Path(__file__).resolve().parent.parent / "examples" / "trees" / "fusion-host.yaml"
    return str(path) if path.exists() else BUILTIN


def _ensure_tree(state: LabState, treefile: str | None, progress: Progress) -> LabState:
    """Put the hosts' tree into the lab repo, unless it is there already (a lab keeps its tree)."""
    tree.ensure_repo(state.repo)
    if treefile is None:
        if tree.rev_parse(state.repo, state.ref) is not None:
            return state
        treefile = default_treefile()
    if treefile == BUILTIN:
        from lab.state import OS_NAME, REF

        state = state.model_copy(update={"ref": REF, "os_name": OS_NAME})
        if tree.rev_parse(state.repo, state.ref) is None:
            progress("host tree: the lab's built-in trixie tree (debootstrap once, then cached)")
            src, _ = tree.builtin_tree(cache_dir(), state.ref)
            tree.pull_local(src, state.repo, state.ref)
            tree.update_summary(state.repo)
        return state
    from specs.treefile import load_treefile

    spec = load_treefile(Path(treefile))
    if tree.rev_parse(state.repo, spec.ref) is None:
        src, ref, _, _ = compose_treefile(treefile, progress)
        tree.pull_local(src, state.repo, ref)
        tree.update_summary(state.repo)
    return state.model_copy(update={"ref": spec.ref, "os_name": spec.osname})


def compose_treefile(treefile: str, progress: Progress) -> tuple[Path, str, str, str]:
    """Compose with the project's composer (host.tree.compose) into the cache's compose repo.

    Returns (repo, ref, osname, checksum). The composer caches its rootfs work under the cache dir.
    """
    from host.tree.compose import compose  # the composer of issue "Atomic host trees"
    from specs.treefile import load_treefile

    spec = load_treefile(Path(treefile))
    repo = cache_dir() / "lab" / "compose-repo"
    progress(f"composing {treefile} ({spec.ref})")
    result = compose(spec, repo, cache_dir=cache_dir(), progress=progress)
    return repo, result.ref, spec.osname, result.checksum


# --- hosts -----------------------------------------------------------------------------------

def run_info(state: LabState, host: str) -> dict[str, Any]:
    return read_json(state.host_dir(host) / "run.json") or {}


def firmware_alive(state: LabState, host: str) -> bool:
    pid = run_info(state, host).get("firmware_pid")
    return isinstance(pid, int) and services.alive(pid, "lab.firmware")


def start_firmware(state: LabState, host: HostConfig) -> None:
    if firmware_alive(state, host.name):
        return
    state.host_dir(host.name).mkdir(parents=True, exist_ok=True)
    proc = spawn([sys.executable, "-m", "lab.firmware", state.root, host.name],
                 log_path=str(state.logs / f"{host.name}.firmware.log"),
                 env={"PYTHONPATH": _our_path()})
    write_json_atomic(state.host_dir(host.name) / "run.json",
                      {"host": host.name, "firmware_pid": proc.pid, "phase": "powering on", "boots": 0})


def _our_path() -> str:
    here = str(Path(__file__).resolve().parent.parent)
    rest = os.environ.get("PYTHONPATH")
    return f"{here}:{rest}" if rest else here


def wait_running(state: LabState, hosts: list[str], timeout: float, min_boots: dict[str, int] | None = None) -> None:
    deadline = time.monotonic() + timeout
    pending = list(hosts)
    while pending and time.monotonic() < deadline:
        for h in list(pending):
            info = run_info(state, h)
            if info.get("phase") in ("running", "degraded") and info.get("boots", 0) > (min_boots or {}).get(h, 0):
                pending.remove(h)
            elif info.get("phase") in ("off", "failed", "crashed") or not firmware_alive(state, h):
                raise LabError(f"{h} is {info.get('phase', 'off')}: {info.get('reason', '')}".rstrip(": "),
                               hint=f"see {state.logs}/{h}.console.log and {h}.firmware.log")
        time.sleep(0.5)
    if pending:
        raise LabError(f"not running after {timeout:.0f}s: {', '.join(pending)}",
                       hint=f"see `fusion lab status` and {state.logs}")


def wait_registered(state: LabState, timeout: float) -> None:
    """Wait until the agent of every host whose tree has one is registered in the lab's etcd: a
    deploy right after `lab up` places on every host, not on the ones registered already."""
    agent = Path("usr/lib/systemd/system/fusion-agent.service")
    want = {h.name for h in state.hosts if any((d / agent).exists() for d in machine.deployments(state, h.name))}
    store = Store(EtcdConfig.parse(state.etcd_url))
    deadline = time.monotonic() + timeout
    while (missing := want - {h.name for h in store.hosts()}) and time.monotonic() < deadline:
        time.sleep(0.5)
    if missing:
        raise LabError(f"not registered in etcd after {timeout:.0f}s: {', '.join(sorted(missing))}",
                       hint="see `fusion lab shell HOST journalctl -u fusion-agent`")


def leader(state: LabState, host: str) -> int:
    info = run_info(state, host)
    pid = info.get("leader")
    if not isinstance(pid, int) or not services.alive(pid):
        raise LabError(f"{host} is not running ({info.get('phase', 'off')})",
                       hint=f"start it with `fusion lab start {host}`")
    return pid


def shell(state: LabState, host: str, cmd: list[str]) -> int:
    state.host(host)
    args = machine.exec_args(leader(state, host), cmd or ["/bin/bash", "-l"])
    return run(args, check=False, capture=False).returncode


def run_in(state: LabState, host: str, cmd: list[str], timeout: float = 120, check: bool = True) -> str:
    """Run ``cmd`` inside ``host`` and return its output (raises CommandError on failure with check)."""
    state.host(host)
    return machine.host_run(leader(state, host), cmd, timeout=timeout, check=check)


def reboot(state: LabState, host: str, wait: float = 300) -> None:
    """A clean reboot from inside; the firmware boots the host again from the default deployment."""
    state.host(host)
    before = int(run_info(state, host).get("boots", 0))
    run(machine.exec_args(leader(state, host), ["systemctl", "reboot", "--no-block"]), timeout=60)
    if wait:
        wait_running(state, [host], timeout=wait, min_boots={host: before})


def kill(state: LabState, host: str) -> None:
    """Power loss: the firmware and the host's PID 1 die at once, no shutdown."""
    state.host(host)
    info = run_info(state, host)
    fw, lead, nsp = info.get("firmware_pid"), info.get("leader"), info.get("nspawn_pid")
    if isinstance(fw, int) and services.alive(fw, "lab.firmware"):
        os.kill(fw, signal.SIGKILL)
    if isinstance(lead, int) and isinstance(nsp, int) and services.alive(nsp, "systemd-nspawn") \
            and services.alive(lead):
        os.kill(lead, signal.SIGKILL)
    if isinstance(nsp, int):
        services.stop_pid(nsp, "systemd-nspawn", timeout=20)
    for pid in machine.host_inits(state).get(host, []):  # an init whose systemd-nspawn died first keeps running
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)  # PID 1 of its namespace: everything in it goes too
    info.update(phase="off", leader=None, nspawn_pid=None, reason="killed (power loss)")
    write_json_atomic(state.host_dir(host) / "run.json", info)


def start(state: LabState, host: str, wait: float = 300) -> None:
    cfg = state.host(host)
    if firmware_alive(state, host):
        return
    network.ensure_host_network(state, cfg)
    start_firmware(state, cfg)
    if wait:
        wait_running(state, [host], timeout=wait)


def poweroff(state: LabState, host: str, timeout: float = 60) -> None:
    """Clean shutdown through the firmware (SIGTERM), then make sure nothing of the host is left."""
    info = run_info(state, host)
    fw = info.get("firmware_pid")
    if isinstance(fw, int):
        services.stop_pid(fw, "lab.firmware", timeout=timeout)
    kill(state, host)  # whatever survived


def remove_host(state: LabState, host: HostConfig) -> None:
    poweroff(state, host.name)
    network.remove_host_network(host)
    shutil.rmtree(state.sysroot(host.name).parent, ignore_errors=True)
    shutil.rmtree(state.host_dir(host.name), ignore_errors=True)


# --- publish ---------------------------------------------------------------------------------

def publish(state: LabState, treefile: str, progress: Progress = _quiet) -> str:
    src, ref, _, _ = compose_treefile(treefile, progress)
    if ref != state.ref:
        raise InputError(f"{treefile} composes {ref}, but the lab's hosts follow {state.ref}",
                         hint=f"set `ref: {state.ref}` in the treefile")
    csum = tree.pull_local(src, state.repo, ref)
    tree.update_summary(state.repo)
    return csum


def publish_files(state: LabState, files: dict[str, str], version: str,
                  modes: dict[str, int] | None = None) -> str:
    """A new tree version = the current one plus ``files``: quick, for tests and experiments."""
    csum = tree.commit_overlay(state.repo, state.ref, files, version, modes)
    tree.update_summary(state.repo)
    return csum


BROKEN_CHECK = "usr/lib/fusion/health.d/50-lab-broken"


def publish_version(state: LabState, version: str, *, broken: bool = False) -> str:
    """A new version of the hosts' tree without composing: the current tree plus a release file
    (``/usr/lib/fusion/lab-release``). ``broken``: it also carries a health check that always
    fails, to see a rollout roll a host back."""
    files = {"usr/lib/fusion/lab-release": f"{version}\n"}
    modes = {}
    if broken:
        files[BROKEN_CHECK] = ("#!/bin/sh\n# `fusion lab publish --broken`: this tree is bad on purpose\n"
                               f"echo 'lab tree {version} is broken on purpose' >&2\nexit 1\n")
        modes[BROKEN_CHECK] = 0o755
    return publish_files(state, files, version, modes)


# --- status ----------------------------------------------------------------------------------

class HostStatus(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    address: str
    state: str
    booted: str | None = None
    version: str | None = None
    default: str | None = None
    fallback_from: str | None = None
    boots: int = 0
    reason: str = ""


def host_status(state: LabState, host: HostConfig) -> HostStatus:
    info = run_info(state, host.name)
    phase = str(info.get("phase", "off"))
    if not firmware_alive(state, host.name) and phase not in ("failed", "crashed"):
        phase = "off"
    booted = info.get("checksum") if phase != "off" else None
    lead = info.get("leader")
    if phase == "running" and isinstance(lead, int) and services.alive(lead):
        r = run(machine.exec_args(lead, ["systemctl", "is-system-running"]), check=False, timeout=15)
        live = r.stdout.strip()
        phase = "running" if live in ("running", "degraded") else (live or phase)
    entries = bootcount.read_entries(state.sysroot(host.name))
    default = entries[0][1].split(".")[0] if entries else None
    version = None
    if isinstance(booted, str):
        version = tree.commit_version(state.sysroot(host.name) / "ostree" / "repo", booted)
    return HostStatus(
        name=host.name, address=host.address, state=phase,
        booted=booted if isinstance(booted, str) else None, version=version, default=default,
        fallback_from=info.get("fallback_from") if phase != "off" else None,
        boots=int(info.get("boots", 0)), reason=str(info.get("reason") or ""),
    )


def status(state: LabState) -> dict[str, Any]:
    return {
        "name": state.config.name,
        "phase": state.phase,
        "bridge": state.bridge,
        "address": state.bridge_address,
        "etcd": state.etcd_url,
        "registry": state.registry,
        "repo": state.repo_url,
        "ref": state.ref,
        "published": tree.rev_parse(state.repo, state.ref) if (state.repo / "config").exists() else None,
        "services": {d.name: {"pid": d.pid, "url": d.url, "running": services.alive(d.pid, services.MARKERS.get(d.name))}
                     for d in state.daemons},
        "hosts": [host_status(state, h).model_dump() for h in state.hosts],
    }


# --- down ------------------------------------------------------------------------------------

def down(name: str, base: str | None = None, progress: Progress = _quiet) -> list[str]:
    """Stop everything of the lab and remove its state. Returns what could not be removed (empty)."""
    state = load(name, base)
    if state is None:
        return []
    _need_root()
    progress("powering the hosts off")
    for h in state.hosts:  # all at once: each firmware shuts its host down cleanly
        fw = run_info(state, h.name).get("firmware_pid")
        if isinstance(fw, int) and services.alive(fw, "lab.firmware"):
            os.kill(fw, signal.SIGTERM)
    for h in state.hosts:
        poweroff(state, h.name)
    progress("stopping etcd, registry, repo server, controller")
    for d in reversed(state.daemons):  # the controller before etcd
        services.stop(d)
    progress("removing network")
    for h in state.hosts:
        network.remove_host_network(h)
    network.remove_bridge(state)
    progress("unmounting")
    for mnt in sorted(mounts_under(Path(state.root)), key=len, reverse=True):
        r = run(["umount", mnt], check=False)
        if r.returncode != 0:
            run(["umount", "-l", mnt], check=False)
    left = leftovers(state)
    if not left:
        shutil.rmtree(state.root, ignore_errors=True)
    return left


def leftovers(state: LabState) -> list[str]:
    """Anything of this lab still on the machine: processes, mounts, network objects."""
    found = [f"mount {m}" for m in mounts_under(Path(state.root))]
    for d in state.daemons:
        if services.alive(d.pid, services.MARKERS.get(d.name)):
            found.append(f"process {d.name} ({d.pid})")
    for h in state.hosts:
        info = run_info(state, h.name)
        for key, marker in (("firmware_pid", "lab.firmware"), ("nspawn_pid", "systemd-nspawn"), ("leader", None)):
            pid = info.get(key)
            if isinstance(pid, int) and services.alive(pid, marker) and (marker or key != "leader" or
                                                                          _in_netns(pid, h.netns)):
                found.append(f"process {h.name} {key} ({pid})")
    inits = machine.host_inits(state)
    for h in state.hosts:
        found += [f"process {h.name} init ({pid})" for pid in inits.get(h.name, [])]
    found += network.leftovers(state)
    return found


def _in_netns(pid: int, netns: str) -> bool:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(f"/run/netns/{netns}").st_ino
    except OSError:
        return False


def require(name: str, base: str | None = None) -> LabState:
    state = load(name, base)
    if state is None:
        raise LabError(f"no lab {name!r}", hint="bring one up with `fusion lab up`")
    return state

