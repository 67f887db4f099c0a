"""One lab host: its sysroot, how it boots (systemd-nspawn), how we look inside it.

- :func:`init_sysroot` makes the host's OSTree sysroot (init-fs, os-init, a remote ``lab`` pointing
  at the lab's HTTP repo, pull, deploy) and writes the host's own ``/etc`` bits into the deployment
  (hostname, machine-id, /etc/hosts, podman's lab settings); OSTree's 3-way /etc merge carries them
  into every later deployment.
- :func:`nspawn_args` is the command that boots a deployment, with the flags measured in
  MACHINE-NOTES: the stateroot's /var, the sysroot and its /boot bound in, on the host's netns.
- :func:`leader_pid` finds the host's PID 1 (the nspawn child); :func:`exec_args` enters it.
- :func:`health` asks systemd inside whether the host is up and well (greenboot's checks).

Side effects: ostree and nsenter commands, files in the sysroot, /proc reads.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from common.runner import CommandError, run
from lab.state import HostConfig, LabState

# Units that fail in every nspawn-booted host and mean nothing (no kernel modules in a container).
EXPECTED_FAILED = frozenset({"systemd-modules-load.service"})
# greenboot-style health checks run inside the host; any executable that exits non-zero fails the boot.
HEALTH_DIRS = ("/usr/lib/fusion/health.d", "/etc/fusion/health.d")


class Health(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    state: str  # what `systemctl is-system-running` says, or "unreachable"
    verdict: Literal["healthy", "pending", "unhealthy"]
    reason: str = ""


# --- sysroot ---------------------------------------------------------------------------------

def deploy_root(state: LabState, host: str) -> Path:
    return state.sysroot(host) / "ostree" / "deploy" / state.os_name


def deployments(state: LabState, host: str) -> list[Path]:
    d = deploy_root(state, host) / "deploy"
    return sorted(p for p in d.glob("*.*") if p.is_dir()) if d.is_dir() else []


def init_sysroot(state: LabState, host: HostConfig) -> None:
    """Idempotent: a sysroot that already has a deployment is left alone."""
    sysroot = state.sysroot(host.name)
    if deployments(state, host.name):
        return
    sysroot.mkdir(parents=True, exist_ok=True)
    repo = sysroot / "ostree" / "repo"
    if not (repo / "config").exists():
        run(["ostree", "admin", "init-fs", str(sysroot)])
    run(["ostree", "admin", f"--sysroot={sysroot}", "os-init", state.os_name])
    run(["ostree", f"--repo={repo}", "remote", "add", "--if-not-exists", "--no-gpg-verify",
         "lab", state.repo_url, state.ref])
    # The first pull is local (fast); later upgrades inside the host pull over HTTP from `lab`.
    run(["ostree", f"--repo={repo}", "pull-local", "--remote=lab", str(state.repo), state.ref], timeout=900)
    run(["ostree", "admin", f"--sysroot={sysroot}", "deploy", f"--os={state.os_name}", f"lab:{state.ref}"],
        timeout=600)
    (deployment,) = deployments(state, host.name)
    configure_etc(deployment / "etc", state, host)


def hosts_file(state: LabState) -> str:
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
             f"{state.bridge_address}\tlab etcd registry"]
    lines += [f"{h.address}\t{h.name}" for h in state.hosts]
    return "\n".join(lines) + "\n"


def etc_files(state: LabState, host: HostConfig) -> dict[str, str]:
    """The files the lab puts into a host's /etc (pure)."""
    return {
        "hostname": f"{host.name}\n",
        "hosts": hosts_file(state),
        # Containers inside nspawn: cgroupfs is read-only, so podman must not make cgroups.
        "containers/containers.conf.d/50-fusion-lab.conf": '[containers]\ncgroups = "disabled"\n',
        # The lab registry is plain HTTP; images named localhost:5000/... (as in the examples)
        # are pulled from it too.
        "containers/registries.conf.d/50-fusion-lab.conf": (
            f'unqualified-search-registries = ["{state.registry}"]\n\n'
            f'[[registry]]\nlocation = "{state.registry}"\ninsecure = true\n\n'
            f'[[registry]]\nprefix = "localhost:5000"\nlocation = "{state.registry}"\ninsecure = true\n'
        ),
        # What ostree-prepare-root does on a real machine: tell ostree it runs from a deployment.
        "tmpfiles.d/fusion-lab-ostree-booted.conf": "f /run/ostree-booted 0644 root root -\n",
        "fusion/lab.env": (
            f"FUSION_LAB={state.config.name}\nFUSION_HOST={host.name}\nFUSION_ADDRESS={host.address}\n"
            f"FUSION_ETCD={state.etcd_url}\nFUSION_REGISTRY={state.registry}\n"
        ),
    }


def configure_etc(etc: Path, state: LabState, host: HostConfig) -> None:
    for rel, content in etc_files(state, host).items():
        p = etc / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)
    (etc / "machine-id").write_text(uuid.uuid4().hex + "\n")


# --- booting ---------------------------------------------------------------------------------

# nspawn keeps /proc/sys read-only unless it made the network namespace itself; the host has its
# own (--network-namespace-path), so let it write /proc/sys/net (netavark sets sysctls there).
NSPAWN_ENV = {"SYSTEMD_NSPAWN_API_VFS_WRITABLE": "network"}

def nspawn_args(state: LabState, host: HostConfig, deployment: str) -> list[str]:
    sysroot = state.sysroot(host.name)
    root = deploy_root(state, host.name)
    return [
        "systemd-nspawn", "--quiet",
        f"--directory={root / 'deploy' / deployment}",
        f"--machine={host.name}",
        "--boot", "--register=no", "--keep-unit",
        f"--bind={root / 'var'}:/var",
        f"--bind={sysroot}:/sysroot",
        f"--bind={sysroot / 'boot'}:/boot",
        f"--network-namespace-path=/run/netns/{host.netns}",
        "--capability=all",
        "--system-call-filter=@mount @keyring @privileged",
        "--resolv-conf=off", "--timezone=off", "--link-journal=no",
        "--console=read-only",
    ]


def _ns_pids(pid: str | int) -> list[str]:
    """A process's pid in each PID namespace it is in, outermost first ([] if it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return []
    return next((ln.split()[1:] for ln in status.splitlines() if ln.startswith("NSpid:")), [])


def is_init(pid: str | int) -> bool:
    """Is ``pid`` the PID 1 of a PID namespace below ours (a container's init)?"""
    nspid = _ns_pids(pid)
    return len(nspid) >= 2 and nspid[-1] == "1"


def leader_pid(nspawn_pid: int) -> int | None:
    """The host's PID 1: the child of systemd-nspawn that is the init of its own PID namespace
    (not nspawn's short-lived helper child, which a boot would otherwise be watched through)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text.rsplit(")", 1)[1].split()
        if int(fields[1]) == nspawn_pid and is_init(stat.parent.name):
            return int(stat.parent.name)
    return None


def host_inits(state: LabState) -> dict[str, list[int]]:
    """Per host, the init processes (PID 1 of their own PID namespace) whose root is one of its
    deployments on this lab's tmpfs, whether or not the firmware still knows them (one /proc scan)."""
    source = f" fusion-lab-{state.config.name} "
    found: dict[str, list[int]] = {}
    for proc in Path("/proc").glob("[0-9]*"):
        if not is_init(proc.name):
            continue
        try:
            root = next((ln for ln in (proc / "mountinfo").read_text().splitlines() if ln.split()[4] == "/"), "")
        except (OSError, IndexError):
            continue
        parts = root.split()[3].split("/") if source in root else []  # /hosts/<host>/sysroot/...
        if len(parts) > 3 and parts[1] == "hosts" and parts[3] == "sysroot":
            found.setdefault(parts[2], []).append(int(proc.name))
    return found


def exec_args(leader: int, cmd: list[str]) -> list[str]:
    return ["nsenter", "-t", str(leader), "-a", "--", *cmd]


def host_run(leader: int, cmd: list[str], timeout: float = 30, check: bool = True) -> str:
    return run(exec_args(leader, cmd), timeout=timeout, check=check).stdout


# --- health ----------------------------------------------------------------------------------

_CHECKS = (
    "for d in " + " ".join(HEALTH_DIRS) + "; do for f in \"$d\"/*; do "
    "[ -f \"$f\" ] && [ -x \"$f\" ] || continue; "
    "\"$f\" >/dev/null 2>&1 || { echo \"$f\"; exit 1; }; done; done"
)


def judge(system_state: str, failed_units: list[str], jobs_pending: bool, check_failed: str | None) -> Health:
    """Pure verdict from what systemd said (see :func:`health`)."""
    if system_state in ("initializing", "starting") or (jobs_pending and system_state != "running"):
        return Health(state=system_state, verdict="pending")
    if system_state in ("running", "degraded"):
        unexpected = sorted(set(failed_units) - EXPECTED_FAILED)
        if unexpected:
            return Health(state=system_state, verdict="unhealthy", reason="failed units: " + ", ".join(unexpected))
        if check_failed:
            return Health(state=system_state, verdict="unhealthy", reason=f"health check failed: {check_failed}")
        return Health(state=system_state, verdict="healthy")
    return Health(state=system_state, verdict="unhealthy", reason=f"system is {system_state}")


def _generated(leader: int, units: list[str]) -> set[str]:
    """Units made by a generator (Quadlet's containers): the apps' business, not the boot's."""
    if not units:
        return set()
    out = run(exec_args(leader, ["systemctl", "show", "-p", "Id", "-p", "FragmentPath", "--", *units]),
              check=False, timeout=15).stdout
    found, unit = set(), ""
    for line in out.splitlines():
        key, _, value = line.partition("=")
        if key == "Id":
            unit = value
        elif key == "FragmentPath" and value.startswith("/run/systemd/generator"):
            found.add(unit)
    return found


def health(leader: int) -> Health:
    try:
        r = run(exec_args(leader, ["systemctl", "is-system-running"]), check=False, timeout=15)
        system_state = r.stdout.strip() or "unreachable"
        if system_state in ("initializing", "starting", "unreachable", "offline"):
            return Health(state=system_state, verdict="pending")
        failed = run(exec_args(leader, ["systemctl", "list-units", "--state=failed", "--plain",
                                        "--no-legend", "--no-pager"]), check=False, timeout=15).stdout
        units = [ln.split()[0] for ln in failed.splitlines() if ln.strip()]
        units = [u for u in units if u not in _generated(leader, units)]
        jobs = run(exec_args(leader, ["systemctl", "list-jobs", "--no-legend", "--no-pager"]),
                   check=False, timeout=15).stdout.strip()
        check = run(exec_args(leader, ["/bin/sh", "-c", _CHECKS]), check=False, timeout=60)
        check_failed = (check.stdout.strip() or "a check") if check.returncode != 0 else None
    except CommandError as e:
        return Health(state="unreachable", verdict="pending", reason=str(e))
    return judge(system_state, units, bool(jobs), check_failed)
