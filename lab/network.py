"""The lab's network: one bridge on the machine, one network namespace per host, a veth between.

The bridge carries the lab's first address (etcd, the registry and the OSTree repo listen there);
each host's namespace gets ``eth0`` with its own address in the same subnet and no default route,
so a host can reach the lab and the other hosts, and nothing else.

Side effects: every function here runs ``ip``; all of them are idempotent.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from common.runner import run
from lab.state import HostConfig, LabState
from specs.errors import InputError


def link_exists(name: str) -> bool:
    return run(["ip", "link", "show", "dev", name], check=False).returncode == 0


def netns_exists(name: str) -> bool:
    return Path("/run/netns", name).exists()


def subnet_in_use(state: LabState) -> list[str]:
    """Interfaces other than the lab's bridge that have an address in the lab's subnet."""
    net = ipaddress.ip_network(state.config.subnet)
    users = []
    for line in run(["ip", "-o", "-4", "addr", "show"]).stdout.splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[1] == state.bridge:
            continue
        if ipaddress.ip_interface(fields[3]).network.overlaps(net):
            users.append(fields[1])
    return users


def ensure_bridge(state: LabState) -> None:
    taken = subnet_in_use(state)
    if taken:
        raise InputError(f"the lab's subnet {state.config.subnet} is already used by {', '.join(taken)}",
                         hint="pick another with --subnet")
    if not link_exists(state.bridge):
        run(["ip", "link", "add", state.bridge, "type", "bridge"])
    cidr = f"{state.bridge_address}/{state.prefixlen}"
    addrs = run(["ip", "-o", "addr", "show", "dev", state.bridge]).stdout
    if f" {cidr} " not in addrs:
        run(["ip", "addr", "add", cidr, "dev", state.bridge])
    run(["ip", "link", "set", state.bridge, "up"])


def ensure_host_network(state: LabState, host: HostConfig) -> None:
    """The host's namespace, its veth pair (``eth0`` inside) and its address."""
    if not netns_exists(host.netns):
        run(["ip", "netns", "add", host.netns])
    if not link_exists(host.veth):
        # A stale eth0 left in the namespace (its peer gone) would block the new pair.
        run(["ip", "-n", host.netns, "link", "del", "eth0"], check=False)
        run(["ip", "link", "add", host.veth, "type", "veth", "peer", "name", "eth0", "netns", host.netns])
    run(["ip", "link", "set", host.veth, "master", state.bridge])
    run(["ip", "link", "set", host.veth, "up"])
    cidr = f"{host.address}/{state.prefixlen}"
    addrs = run(["ip", "-n", host.netns, "-o", "addr", "show", "dev", "eth0"]).stdout
    if f" {cidr} " not in addrs:
        run(["ip", "-n", host.netns, "addr", "add", cidr, "dev", "eth0"])
    run(["ip", "-n", host.netns, "link", "set", "lo", "up"])
    run(["ip", "-n", host.netns, "link", "set", "eth0", "up"])


def reset_host_network(host: HostConfig) -> None:
    """What a power cycle clears in the host's kernel: firewall rules and the links its containers
    made (podman's bridge, stale veths). ``eth0`` and ``lo`` stay, so the host keeps its MAC and
    the machine's neighbour entry for it stays right.

    Without this, the DNAT rules netavark wrote for a container of the previous boot outlive a
    ``lab kill`` and catch traffic for that port, e.g. before the host's routing mesh sees it.
    """
    run(["ip", "netns", "exec", host.netns, "nft", "flush", "ruleset"])
    for line in run(["ip", "-n", host.netns, "-o", "link", "show"]).stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if name not in ("lo", "eth0"):
            run(["ip", "-n", host.netns, "link", "del", name], check=False)  # a veth's peer may go first


def remove_host_network(host: HostConfig) -> None:
    if link_exists(host.veth):
        run(["ip", "link", "del", host.veth])
    if netns_exists(host.netns):
        run(["ip", "netns", "del", host.netns])


def remove_bridge(state: LabState) -> None:
    if link_exists(state.bridge):
        run(["ip", "link", "del", state.bridge])


def leftovers(state: LabState) -> list[str]:
    """Network objects of this lab that still exist (for `lab down` checks and tests)."""
    found = [f"bridge {state.bridge}"] if link_exists(state.bridge) else []
    for h in state.hosts:
        if link_exists(h.veth):
            found.append(f"veth {h.veth}")
        if netns_exists(h.netns):
            found.append(f"netns {h.netns}")
    return found
