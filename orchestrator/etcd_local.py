"""The embedded default etcd: start (or reuse) a one-member etcd from Debian's ``etcd`` binary.

Side effects: files under the state directory, a daemon process (started through
``common.runner.spawn``, remembered by pid in ``<state>/etcd/pid``), HTTP requests to its health
endpoint. Nothing here is used when the user names a cluster with ``--etcd``.

Layout of ``<state>/etcd/``: ``data/`` (etcd's data dir), ``pid``, ``ports`` (client and peer port,
reused across restarts so the member keeps its URLs), ``etcd.log``.
The state directory is ``$FUSION_STATE_DIR``, else ``$XDG_STATE_HOME/fusion``, else
``~/.local/state/fusion``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from common.runner import spawn
from specs.errors import FusionError

ETCD_BINARY = "/usr/bin/etcd"
# One decision is one transaction: allow big ones (etcd's defaults are 128 ops and 1.5 MiB).
MAX_TXN_OPS = 20000
MAX_REQUEST_BYTES = 32 << 20


class EtcdStartError(FusionError):
    pass


@dataclass(frozen=True)
class Tls:
    """Serve clients over https with this server cert/key and require client certs signed by ``ca``."""

    ca: Path
    cert: Path
    key: Path
    client_cert: Path | None = None  # what our own health check presents
    client_key: Path | None = None


@dataclass(frozen=True)
class LocalEtcd:
    endpoint: str  # http://127.0.0.1:PORT
    pid: int
    data_dir: Path
    log_path: Path
    max_txn_ops: int = MAX_TXN_OPS


def state_dir() -> Path:
    if env := os.environ.get("FUSION_STATE_DIR"):
        return Path(env)
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(base) / "fusion"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as etcd's listener does
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def healthy(endpoint: str, timeout: float = 1.0, tls: Tls | None = None) -> bool:
    kw: dict[str, object] = {}
    if tls is not None:
        kw["verify"] = str(tls.ca)
        if tls.client_cert and tls.client_key:
            kw["cert"] = (str(tls.client_cert), str(tls.client_key))
    try:
        r = requests.get(f"{endpoint}/health", timeout=timeout, **kw)  # type: ignore[arg-type]
        return r.status_code == 200 and r.json().get("health") == "true"
    except (requests.RequestException, ValueError):
        return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as dead.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def etcd_args(
    data_dir: Path,
    client_url: str,
    peer_url: str,
    *,
    name: str = "fusion",
    max_txn_ops: int = MAX_TXN_OPS,
    tls: Tls | None = None,
) -> list[str]:
    """The command line of a one-member etcd (also what the lab runs, on its bridge address)."""
    tls_args = [] if tls is None else [
        f"--cert-file={tls.cert}", f"--key-file={tls.key}", f"--trusted-ca-file={tls.ca}", "--client-cert-auth",
    ]
    return [
        ETCD_BINARY,
        f"--name={name}",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={client_url}",
        f"--advertise-client-urls={client_url}",
        f"--listen-peer-urls={peer_url}",
        f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster={name}={peer_url}",
        "--initial-cluster-state=new",
        f"--max-txn-ops={max_txn_ops}",
        f"--max-request-bytes={MAX_REQUEST_BYTES}",
        "--quota-backend-bytes=4294967296",
        "--auto-compaction-mode=revision",
        "--auto-compaction-retention=100000",
        "--logger=zap",
        *tls_args,
    ]


def start(
    data_dir: Path,
    *,
    client_port: int | None = None,
    peer_port: int | None = None,
    log_path: Path | None = None,
    max_txn_ops: int = MAX_TXN_OPS,
    timeout: float = 20.0,
    name: str = "fusion",
    tls: Tls | None = None,
) -> LocalEtcd:
    """Start a one-member etcd on 127.0.0.1 and wait until it is healthy. The caller owns the pid."""
    data_dir.mkdir(parents=True, exist_ok=True)
    client_port = client_port or free_port()
    peer_port = peer_port or free_port()
    log_path = log_path or data_dir.parent / "etcd.log"
    client = f"{'https' if tls else 'http'}://127.0.0.1:{client_port}"
    peer = f"http://127.0.0.1:{peer_port}"
    proc = spawn(
        etcd_args(data_dir, client, peer, name=name, max_txn_ops=max_txn_ops, tls=tls),
        log_path=str(log_path),
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EtcdStartError(
                f"etcd exited with status {proc.returncode} while starting",
                hint=f"see {log_path}",
            )
        if healthy(client, timeout=0.5, tls=tls):
            return LocalEtcd(client, proc.pid, data_dir, log_path, max_txn_ops)
        time.sleep(0.1)
    stop_pid(proc.pid)
    raise EtcdStartError(f"etcd did not become healthy within {timeout:g}s", hint=f"see {log_path}")


def stop_pid(pid: int, timeout: float = 10.0) -> None:
    """Stop an etcd we started: SIGTERM, then SIGKILL after ``timeout``; reap it if it is our child."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return
        if not pid_alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def ensure(state: Path | None = None) -> LocalEtcd:
    """Reuse the local etcd recorded in the state directory if it is healthy, else start one."""
    base = (state or state_dir()) / "etcd"
    base.mkdir(parents=True, exist_ok=True)
    # Two `fusion` commands at once must not both start one: hold a lock while deciding.
    with open(base / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _ensure_locked(base)


def _ensure_locked(base: Path) -> LocalEtcd:
    pid_file, ports_file = base / "pid", base / "ports"
    ports: dict[str, int] = {}
    if ports_file.exists():
        with contextlib.suppress(ValueError):
            ports = json.loads(ports_file.read_text())
    if pid_file.exists() and ports:
        with contextlib.suppress(ValueError):
            pid = int(pid_file.read_text())
            endpoint = f"http://127.0.0.1:{ports['client']}"
            if pid_alive(pid) and healthy(endpoint):
                return LocalEtcd(endpoint, pid, base / "data", base / "etcd.log")
    client_port = ports.get("client")
    peer_port = ports.get("peer")
    if not (client_port and peer_port and _port_free(client_port) and _port_free(peer_port)):
        client_port, peer_port = free_port(), free_port()
    etcd = start(base / "data", client_port=client_port, peer_port=peer_port, log_path=base / "etcd.log")
    ports_file.write_text(json.dumps({"client": client_port, "peer": peer_port}))
    pid_file.write_text(str(etcd.pid))
    return etcd


def stop(state: Path | None = None) -> bool:
    """Stop the local etcd recorded in the state directory (if it runs). True if one was stopped."""
    base = (state or state_dir()) / "etcd"
    pid_file = base / "pid"
    if not pid_file.exists():
        return False
    try:
        pid = int(pid_file.read_text())
    except ValueError:
        return False
    # Only stop it if that pid is still an etcd (pids get reused).
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        pid_file.unlink(missing_ok=True)
        return False
    if os.path.basename(exe) != "etcd":
        pid_file.unlink(missing_ok=True)
        return False
    stop_pid(pid)
    pid_file.unlink(missing_ok=True)
    return True


# --- the default cluster: which etcd `fusion` talks to when --etcd is not given ------------------------


@dataclass(frozen=True)
class ChosenCluster:
    endpoints: str  # URL[,URL...]
    ca_cert: str | None = None
    cert: str | None = None
    key: str | None = None
    by: str = ""  # who chose it, e.g. "lab dev"


def use_cluster(cluster: ChosenCluster, state: Path | None = None) -> None:
    """Make ``cluster`` the default for `fusion` commands without ``--etcd`` (``fusion lab up`` calls
    this so that a plain ``fusion deploy`` talks to the lab). Order of precedence: ``--etcd`` /
    ``FUSION_ETCD``, then this choice, then the embedded local etcd."""
    base = state or state_dir()
    base.mkdir(parents=True, exist_ok=True)
    tmp = base / "cluster.json.tmp"
    tmp.write_text(json.dumps(cluster.__dict__, indent=2, sort_keys=True))
    tmp.replace(base / "cluster.json")


def forget_cluster(state: Path | None = None, endpoints: str | None = None) -> None:
    """Back to the embedded default (only if the choice is still ``endpoints``, when given)."""
    path = (state or state_dir()) / "cluster.json"
    chosen = chosen_cluster(state)
    if chosen is not None and (endpoints is None or chosen.endpoints == endpoints):
        path.unlink(missing_ok=True)


def chosen_cluster(state: Path | None = None) -> ChosenCluster | None:
    path = (state or state_dir()) / "cluster.json"
    try:
        return ChosenCluster(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None
