"""Where a lab lives on disk and what it remembers.

A lab is named (default ``lab``); everything it owns is under ``<labs dir>/<name>/``:

- ``state.json``   the lab's layout (network, services, hosts), written by ``fusion lab`` only;
- ``logs/``        one log per daemon and per host firmware;
- ``fs/``          a tmpfs that the lab mounts: sysroots, the OSTree repo, etcd and registry data
                   (ostree deploy freezes the filesystem that holds /boot, so never the machine's /);
- ``hosts/<h>/run.json`` what a host's firmware reports (pids, booted deployment, phase).

Heavy artifacts that may be reused between labs (the bootstrapped root, the composed repo, image
tarballs) live in the cache dir, by default ``/var/cache/fusion``.

Side effects: only the load/save functions at the bottom touch the filesystem.
"""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from specs.errors import InputError

DEFAULT_LABS_DIR = "/var/lib/fusion/lab"
DEFAULT_CACHE_DIR = "/var/cache/fusion"
DEFAULT_SUBNET = "10.213.0.0/24"  # the lab's own; only the lab's hosts are ever contacted
OS_NAME = "fusion"  # the OSTree stateroot ("osname") of every lab host
REF = "fusion/host/x86_64"

ETCD_PORT = 2379
ETCD_PEER_PORT = 2380
REGISTRY_PORT = 5000
REPO_PORT = 8000


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Daemon(_Frozen):
    """A process the lab started (and stops, by pid)."""

    name: str
    pid: int
    url: str
    log: str


class HostConfig(_Frozen):
    name: str
    address: str  # e.g. 10.213.0.11
    netns: str
    veth: str  # the machine-side end, enslaved to the bridge


class LabConfig(_Frozen):
    """Everything `lab up` decided: pure data, the same on every run with the same inputs."""

    name: str = "lab"
    subnet: str = DEFAULT_SUBNET
    hosts: int = Field(default=3, ge=1, le=20)
    max_boot_tries: int = Field(default=2, ge=1, le=10)
    health_deadline: float = Field(default=90.0, gt=0)
    tmpfs_size: str = "8G"


class LabState(_Frozen):
    config: LabConfig
    root: str  # <labs dir>/<name>
    bridge: str
    bridge_address: str
    prefixlen: int
    mounted: bool = False
    hosts: tuple[HostConfig, ...] = ()
    daemons: tuple[Daemon, ...] = ()
    ref: str = REF
    os_name: str = OS_NAME
    phase: Literal["up", "down", "partial"] = "partial"

    # --- paths -------------------------------------------------------------------------------
    @property
    def fs(self) -> Path:
        return Path(self.root) / "fs"

    @property
    def repo(self) -> Path:
        return self.fs / "repo"

    @property
    def logs(self) -> Path:
        return Path(self.root) / "logs"

    def sysroot(self, host: str) -> Path:
        return self.fs / "hosts" / host / "sysroot"

    def host_dir(self, host: str) -> Path:
        return Path(self.root) / "hosts" / host

    def host(self, name: str) -> HostConfig:
        for h in self.hosts:
            if h.name == name:
                return h
        known = ", ".join(h.name for h in self.hosts) or "none"
        raise InputError(f"no host {name!r} in lab {self.config.name!r}", hint=f"hosts: {known}")

    def daemon(self, name: str) -> Daemon | None:
        return next((d for d in self.daemons if d.name == name), None)

    @property
    def etcd_url(self) -> str:
        return f"http://{self.bridge_address}:{ETCD_PORT}"

    @property
    def registry(self) -> str:
        """host:port of the lab registry, as image names use it."""
        return f"{self.bridge_address}:{REGISTRY_PORT}"

    @property
    def repo_url(self) -> str:
        return f"http://{self.bridge_address}:{REPO_PORT}"


def plan(config: LabConfig, labs_dir: str) -> LabState:
    """The layout of a lab: pure. Host ``h<i>`` gets the subnet's address ``.10+i``."""
    if not config.name.isalnum() or len(config.name) > 6:
        raise InputError(f"lab name {config.name!r}: use 1-6 letters or digits")
    net = ipaddress.ip_network(config.subnet)
    if net.version != 4 or net.prefixlen > 26:
        raise InputError(f"lab subnet {config.subnet}: need an IPv4 network of /26 or larger")
    hosts = tuple(
        HostConfig(
            name=f"h{i}",
            address=str(net.network_address + 10 + i),
            netns=f"fusion-{config.name}-h{i}",
            veth=f"fl-{config.name}-h{i}",
        )
        for i in range(1, config.hosts + 1)
    )
    return LabState(
        config=config,
        root=str(Path(labs_dir) / config.name),
        bridge=f"flbr-{config.name}",
        bridge_address=str(net.network_address + 1),
        prefixlen=net.prefixlen,
        hosts=hosts,
    )


# --- side effects ----------------------------------------------------------------------------

def labs_dir() -> str:
    return os.environ.get("FUSION_LAB_DIR", DEFAULT_LABS_DIR)


def cache_dir() -> Path:
    return Path(os.environ.get("FUSION_CACHE_DIR", DEFAULT_CACHE_DIR))


def state_path(name: str, base: str | None = None) -> Path:
    return Path(base or labs_dir()) / name / "state.json"


def load(name: str, base: str | None = None) -> LabState | None:
    path = state_path(name, base)
    if not path.exists():
        return None
    return LabState.model_validate_json(path.read_text())


def save(state: LabState) -> None:
    write_json_atomic(Path(state.root) / "state.json", state.model_dump(mode="json"))


def write_json_atomic(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, object] | None:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None
