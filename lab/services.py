"""The lab's shared services, all listening on the bridge address (reachable from every host).

- etcd (Debian ``etcd-server``), client port 2379, data on the lab's tmpfs;
- the image registry (Debian ``docker-registry``, distribution 2.8), port 5000, plain HTTP;
- the lab's OSTree repo over HTTP (Python's ``http.server``), port 8000, for host upgrades;
- the controller (``fusion reconcile``): when a host's registration expires, its containers are
  placed on the other hosts (and placed back nowhere when it returns: its agent stops them).

Side effects: starts and stops daemons (through ``common.runner.spawn``), writes the registry's
config file, polls their HTTP endpoints. Processes are recognised by pid *and* command line, so a
recycled pid is never mistaken for ours.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from common.runner import spawn
from lab.state import ETCD_PEER_PORT, ETCD_PORT, REGISTRY_PORT, REPO_PORT, Daemon, LabState
from orchestrator import etcd_local
from specs.errors import FusionError

ROOT = Path(__file__).resolve().parents[1]  # the daemons run from here (`python -m cli`)


class ServiceError(FusionError):
    pass


# --- processes -------------------------------------------------------------------------------

def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def alive(pid: int, marker: str | None = None) -> bool:
    """Is ``pid`` running (not a zombie), and if ``marker`` is given, does its command line hold it?"""
    if pid <= 0:
        return False
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is a child of ours that has exited
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
        return False
    return marker is None or any(marker in a for a in cmdline(pid))


def stop_pid(pid: int, marker: str | None = None, timeout: float = 15.0) -> None:
    """SIGTERM, wait (bounded), then SIGKILL. Only if the pid is still the process we started."""
    if not alive(pid, marker):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return
        time.sleep(0.1)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)
        for _ in range(50):
            if not alive(pid):
                return
            time.sleep(0.1)


def wait_http(url: str, timeout: float, ok: Sequence[int] = (200,), pid: int | None = None) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if pid is not None and not alive(pid):
            raise ServiceError(f"{url}: the server exited", hint="see the lab's logs directory")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status in ok:
                    return
                last = f"HTTP {resp.status}"
        except urllib.error.HTTPError as e:
            if e.code in ok:
                return
            last = f"HTTP {e.code}"
        except OSError as e:
            last = str(e)
        time.sleep(0.2)
    raise ServiceError(f"{url} did not answer within {timeout:.0f}s ({last})")


# --- the services ----------------------------------------------------------------------------

def _start(state: LabState, name: str, args: list[str], url: str, probe: str | None) -> Daemon:
    """Start a daemon unless it runs; wait until ``probe`` answers (no probe: until it has lived
    a second)."""
    old = state.daemon(name)
    if old is not None and alive(old.pid, MARKERS.get(name, args[0])):
        return old
    state.logs.mkdir(parents=True, exist_ok=True)
    log = str(state.logs / f"{name}.log")
    proc = spawn(args, log_path=log, cwd=str(ROOT))
    if probe is not None:
        wait_http(probe, timeout=30, pid=proc.pid)
    else:
        time.sleep(1.0)
        if proc.poll() is not None:
            raise ServiceError(f"{name} exited at once (status {proc.returncode}); see {log}")
    return Daemon(name=name, pid=proc.pid, url=url, log=log)


def start_etcd(state: LabState) -> Daemon:
    b = state.bridge_address
    data = state.fs / "etcd"
    data.mkdir(parents=True, exist_ok=True)
    client, peer = f"http://{b}:{ETCD_PORT}", f"http://{b}:{ETCD_PEER_PORT}"
    args = etcd_local.etcd_args(data, client, peer, name=f"fusion-{state.config.name}")
    return _start(state, "etcd", args, client, f"{client}/health")


def registry_config(rootdir: str, addr: str) -> str:
    return (
        "version: 0.1\n"
        "log:\n  level: warn\n"
        "storage:\n"
        f"  filesystem:\n    rootdirectory: {rootdir}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: {addr}\n"
    )


def start_registry(state: LabState) -> Daemon:
    data = state.fs / "registry"
    data.mkdir(parents=True, exist_ok=True)
    addr = f"{state.bridge_address}:{REGISTRY_PORT}"
    conf = Path(state.root) / "registry.yml"
    conf.write_text(registry_config(str(data), addr))
    args = ["docker-registry", "serve", str(conf)]
    return _start(state, "registry", args, f"http://{addr}", f"http://{addr}/v2/")


def start_repo_server(state: LabState) -> Daemon:
    state.repo.mkdir(parents=True, exist_ok=True)
    url = state.repo_url
    args = [sys.executable, "-m", "http.server", "--bind", state.bridge_address,
            "--directory", str(state.repo), str(REPO_PORT)]
    return _start(state, "repo", args, url, f"{url}/config")


def start_controller(state: LabState) -> Daemon:
    args = [sys.executable, "-m", "cli", "reconcile", "--etcd", state.etcd_url]
    return _start(state, "controller", args, "", None)


MARKERS = {"etcd": "etcd", "registry": "docker-registry", "repo": "http.server", "controller": "reconcile"}


def stop(daemon: Daemon) -> None:
    stop_pid(daemon.pid, MARKERS.get(daemon.name))
